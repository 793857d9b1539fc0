// SPDX-License-Identifier: BSL-1.0
// Test support for the NATS component: a real nats-server on a free loopback port, and
// serving processes (nats_test_server) spawned as children. Waits are bounded by deadlines.
#pragma once

#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace nats_test {

using namespace std::chrono_literals;

// fork + exec (not posix_spawn): the child gets SIGKILL if the test process dies first, so
// a crashed test leaves no server behind.
inline pid_t spawn(const std::vector<std::string>& args, int stdout_fd = -1) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    if (stdout_fd >= 0) dup2(stdout_fd, 1);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

inline void stop_process(pid_t& pid, int sig) {
  if (pid <= 0) return;
  ::kill(pid, sig);
  int status = 0;
  ::waitpid(pid, &status, 0);
  pid = -1;
}

/// A nats-server child on 127.0.0.1: a free port (-p -1, read from the ports file), or a
/// given one (to restart on the same port). Stopped with SIGINT.
class server {
 public:
  /// `extra` is passed to nats-server as is (authentication, TLS...).
  explicit server(int port = -1, std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
    start(port);
  }
  ~server() { stop(); }
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  void start(int port = -1) {
    char tmpl[] = "/tmp/tenorite-nats-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    std::vector<std::string> args{TENORITE_NATS_SERVER_BIN, "-a", "127.0.0.1", "-p",
                                  std::to_string(port), "-l", "/dev/null", "--ports_file_dir",
                                  dir_};
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = spawn(args);
    auto file = dir_ + "/nats-server_" + std::to_string(pid_) + ".ports";
    auto deadline = std::chrono::steady_clock::now() + 20s;
    for (;;) {
      std::ifstream in(file);
      std::stringstream ss;
      ss << in.rdbuf();
      auto text = ss.str();
      auto at = text.find("127.0.0.1:");  // nats:// or tls://
      if (in && at != std::string::npos && text.find(']', at) != std::string::npos) {
        port_ = std::stoi(text.substr(at + 10));
        return;
      }
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("nats-server did not start (no ports file " + file + ")");
      std::this_thread::sleep_for(5ms);  // polling for a file, with a deadline
    }
  }
  void stop() {
    stop_process(pid_, SIGINT);
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
    dir_.clear();
  }
  int port() const { return port_; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

 private:
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
};

/// A serving process (nats_test_server): serves the probe service as `name`. Ready when it
/// printed "ready" (its subscription is known to the server).
class serving_process {
 public:
  /// on_executor: the process's connection runs on its service's runtime (event-loop mode).
  serving_process(const std::string& url, const std::string& subject, const std::string& group,
                  const std::string& name, bool on_executor = false) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    std::vector<std::string> args{TENORITE_NATS_TEST_SERVER_BIN, url, subject, group, name};
    if (on_executor) args.push_back("on-executor");
    pid_ = spawn(args, fds[1]);
    close(fds[1]);
    std::string got;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (got.find("ready") == std::string::npos) {
      pollfd p{fds[0], POLLIN, 0};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buf[64];
      auto n = read(fds[0], buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<std::size_t>(n));
    }
    close(fds[0]);
    if (got.find("ready") == std::string::npos)
      throw std::runtime_error("the serving process did not get ready");
  }
  ~serving_process() { stop_process(pid_, SIGKILL); }
  serving_process(const serving_process&) = delete;
  serving_process& operator=(const serving_process&) = delete;
  void kill() { stop_process(pid_, SIGKILL); }
  /// SIGTERM: the process drains and exits; returns its exit status.
  int terminate() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
};

}  // namespace nats_test
