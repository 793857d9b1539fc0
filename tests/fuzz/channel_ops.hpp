// SPDX-License-Identifier: BSL-1.0
// Operation-sequence fuzzing of tenorite::channel against a reference model.
//
// A byte string is read as a capacity and a sequence of operations (try_send, async_send,
// try_receive, async_receive, withdraw, close_for_send, mark_no_senders, close, and the
// reservations of permits: try_reserve, send_reserved, release_reservation). Each is
// applied to a real channel on a single-threaded io_context and to a plain model (a deque,
// FIFOs of parked senders and receivers, held permits, three flags). After every operation the handlers
// that ran and the values returned are compared, event by event; any difference aborts
// with both logs. Used by the libFuzzer target (clang) and by a CTest replay of the corpus
// plus seeded random inputs (any compiler).
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <optional>
#include <string>
#include <tenorite/channel.hpp>
#include <vector>

namespace fuzz {

struct model {
  std::size_t capacity;
  std::deque<int> buffer;
  std::deque<std::pair<int, int>> senders;  // (sender id, value)
  std::deque<int> receivers;                // receiver ids
  bool closed = false, send_closed = false, no_senders = false;
  std::vector<std::string> events;
  std::size_t reserved = 0;  // slots held by permits
  std::size_t permits = 0;   // permits held by the sequence (used or given back later)

  bool has_room() const { return buffer.size() + reserved < capacity; }
  bool at_end() const {
    return closed ||
           ((no_senders || send_closed) && buffer.empty() && reserved == 0 && senders.empty());
  }
  void accept_one() {
    if (has_room() && !senders.empty()) {
      auto [id, v] = senders.front();
      senders.pop_front();
      buffer.push_back(v);
      events.push_back("send" + std::to_string(id) + " accepted");
    }
  }
  // A slot freed while receivers may wait: every free slot goes to the oldest waiting
  // sender, its value straight to a waiting receiver when there is one.
  void refill() {
    while (has_room() && !senders.empty()) {
      auto [id, v] = senders.front();
      senders.pop_front();
      events.push_back("send" + std::to_string(id) + " accepted");
      if (!receivers.empty()) {
        events.push_back("recv" + std::to_string(receivers.front()) + " got " + std::to_string(v));
        receivers.pop_front();
      } else {
        buffer.push_back(v);
      }
    }
  }
  std::string try_reserve() {
    if (closed || send_closed) return "closed";
    if (!has_room()) return "full";
    ++reserved;
    ++permits;
    return "reserved";
  }
  std::string send_reserved(int v) {
    --permits;
    if (closed) return "closed";
    --reserved;
    if (!receivers.empty()) {
      events.push_back("recv" + std::to_string(receivers.front()) + " got " + std::to_string(v));
      receivers.pop_front();
      refill();
      // The last reservation of a drained channel: the other receivers see the end now.
      wake_receivers_at_end();
    } else {
      buffer.push_back(v);
    }
    return "sent";
  }
  void release() {
    --permits;
    if (closed) return;
    --reserved;
    refill();
    wake_receivers_at_end();
  }
  void wake_receivers_at_end() {
    if (!at_end()) return;
    while (!receivers.empty()) {
      events.push_back("recv" + std::to_string(receivers.front()) + " end");
      receivers.pop_front();
    }
  }
  std::string try_send(int v) {
    if (closed || send_closed) return "closed";
    if (!receivers.empty()) {
      events.push_back("recv" + std::to_string(receivers.front()) + " got " + std::to_string(v));
      receivers.pop_front();
      return "sent";
    }
    if (has_room()) {
      buffer.push_back(v);
      return "sent";
    }
    return "full";
  }
  void async_send(int id, int v) {
    if (closed || send_closed) {
      events.push_back("send" + std::to_string(id) + " closed back " + std::to_string(v));
      return;
    }
    if (!receivers.empty()) {
      events.push_back("recv" + std::to_string(receivers.front()) + " got " + std::to_string(v));
      receivers.pop_front();
      events.push_back("send" + std::to_string(id) + " accepted");
      return;
    }
    if (has_room()) {
      buffer.push_back(v);
      events.push_back("send" + std::to_string(id) + " accepted");
      return;
    }
    senders.emplace_back(id, v);
  }
  std::string try_receive() {
    if (buffer.empty()) return "none";
    int v = buffer.front();
    buffer.pop_front();
    accept_one();
    return std::to_string(v);
  }
  void async_receive(int id) {
    if (!buffer.empty()) {
      int v = buffer.front();
      buffer.pop_front();
      accept_one();
      events.push_back("recv" + std::to_string(id) + " got " + std::to_string(v));
    } else if (at_end()) {
      events.push_back("recv" + std::to_string(id) + " end");
    } else {
      receivers.push_back(id);
    }
  }
  std::string withdraw(int v) {
    for (auto it = buffer.begin(); it != buffer.end(); ++it) {
      if (*it != v) continue;
      buffer.erase(it);
      accept_one();
      return "withdrew " + std::to_string(v);
    }
    return "not queued";
  }
  void close() {
    closed = true;
    reserved = 0;
    for (int v : buffer) events.push_back("handed back " + std::to_string(v));
    buffer.clear();
    for (auto [id, v] : senders)
      events.push_back("send" + std::to_string(id) + " closed back " + std::to_string(v));
    senders.clear();
    wake_receivers_at_end();
  }
};

struct real {
  boost::asio::io_context ioc;
  tenorite::channel<int> ch;
  std::vector<std::string> events;  // handlers append here when they run
  explicit real(std::size_t cap) : ch(ioc.get_executor(), cap) {}
  void run() {
    ioc.restart();
    ioc.poll();
  }
};

inline void fail(const std::vector<std::string>& a, const std::vector<std::string>& b,
                 const char* what) {
  std::fprintf(stderr, "channel differs from the model after %s\nreal:\n", what);
  for (auto& e : a) std::fprintf(stderr, "  %s\n", e.c_str());
  std::fprintf(stderr, "model:\n");
  for (auto& e : b) std::fprintf(stderr, "  %s\n", e.c_str());
  std::abort();
}

/// Runs one operation sequence; aborts on the first difference.
inline void run(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return;
  const std::size_t cap = 1 + data[0] % 4;
  model m{cap, {}, {}, {}, false, false, false, {}};
  real r(cap);
  int next_id = 0;
  static const char* names[] = {"try_send",      "async_send",     "try_receive",
                                "async_receive", "withdraw",       "close_for_send",
                                "mark_no_senders", "close",        "try_reserve",
                                "send_reserved", "release_reservation"};
  for (std::size_t i = 1; i + 1 < size; i += 2) {
    int op = data[i] % 11;
    // A permit's use or release needs a held permit: without one, reserve instead.
    if ((op == 9 || op == 10) && m.permits == 0) op = 8;
    const int v = data[i + 1];
    std::string got, want;
    switch (op) {
      case 0: {
        int x = v;
        auto s = r.ch.try_send(x);
        got = s == tenorite::send_status::sent ? "sent"
              : s == tenorite::send_status::full ? "full"
                                                  : "closed";
        want = m.try_send(v);
        break;
      }
      case 1: {
        const int id = next_id++;
        r.ch.async_send(v, [&r, id](boost::system::error_code ec, std::optional<int> back) {
          r.events.push_back("send" + std::to_string(id) +
                             (ec ? " closed back " + std::to_string(back.value_or(-1))
                                 : std::string(" accepted")));
        });
        m.async_send(id, v);
        break;
      }
      case 2: {
        auto x = r.ch.try_receive();
        got = x ? std::to_string(*x) : "none";
        want = m.try_receive();
        break;
      }
      case 3: {
        const int id = next_id++;
        r.ch.async_receive([&r, id](boost::system::error_code, std::optional<int> x) {
          r.events.push_back("recv" + std::to_string(id) +
                             (x ? " got " + std::to_string(*x) : std::string(" end")));
        });
        m.async_receive(id);
        break;
      }
      case 4: {
        // Usually aim at a value that is queued (the model knows which), sometimes not.
        const int target =
            (!m.buffer.empty() && v % 4 != 0) ? m.buffer[std::size_t(v) % m.buffer.size()] : v;
        auto x = r.ch.withdraw_buffered([target](const int& item) { return item == target; });
        got = x ? "withdrew " + std::to_string(*x) : "not queued";
        want = m.withdraw(target);
        break;
      }
      case 5:
        r.ch.close_for_send();
        m.send_closed = true;
        m.wake_receivers_at_end();
        break;
      case 6:
        r.ch.mark_no_senders();
        m.no_senders = true;
        m.wake_receivers_at_end();
        break;
      case 7:
        r.ch.close([&r](int&& x) { r.events.push_back("handed back " + std::to_string(x)); });
        m.close();
        break;
      case 8: {
        tenorite::detail::send_waiter<int> probe(nullptr, nullptr);
        probe.reservation = true;
        auto s = r.ch.reserve_or_wait(&probe, true);
        got = s == tenorite::send_status::sent   ? "reserved"
              : s == tenorite::send_status::full ? "full"
                                                  : "closed";
        want = m.try_reserve();
        break;
      }
      case 9: {
        int x = v;
        auto s = r.ch.send_reserved(x);
        got = s == tenorite::send_status::sent ? "sent" : "closed";
        want = m.send_reserved(v);
        break;
      }
      default:
        r.ch.release_reservation();
        m.release();
        break;
    }
    r.run();
    if (got != want) fail({got}, {want}, names[op]);
    if (r.events != m.events) fail(r.events, m.events, names[op]);
  }
  r.ch.close();  // parked handlers complete; nothing is left pending
  r.run();
}

}  // namespace fuzz
