// SPDX-License-Identifier: BSL-1.0
// A serving process for the multi-process NATS tests:
//   nats_test_server <url> <subject> <queue group> <name> [on-executor]
// serves the probe service (answering `who` with <name>), prints "ready", and on SIGTERM or
// SIGINT drains and exits 0. With `on-executor` its connection runs on the service's runtime.
#include <signal.h>

#include <cstdio>
#include <string>
#include <tenorite/nats/server.hpp>

#include "probe_service.hpp"

int main(int argc, char** argv) {
  const bool on_executor = argc == 6 && std::string(argv[5]) == "on-executor";
  if (argc != 5 && !on_executor) {
    std::fprintf(stderr, "usage: %s url subject group name [on-executor]\n", argv[0]);
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any thread starts: all inherit it

  tenorite::runtime rt(1);
  auto [task, caller] = probe::service{}.start_task(rt.executor(), 64, probe::config{argv[4]});
  tenorite::nats::connection_options opts{.servers = {argv[1]}, .name = argv[4]};
  if (on_executor) opts.executor = rt.executor();
  auto conn = tenorite::nats::connection::connect(opts);
  auto srv = tenorite::nats::serve(conn, argv[2], argv[3], caller);
  std::printf("ready\n");
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  bool drained = srv.drain(std::chrono::seconds(10));
  return drained ? 0 : 1;
}
