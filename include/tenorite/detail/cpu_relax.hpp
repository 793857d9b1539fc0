// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/cpu_relax.hpp — the pause a spinning thread makes between two looks.
#pragma once

#include <atomic>

namespace tenorite::detail {

/// Tells the CPU this thread is spinning (lets the other hyperthread run, saves power; no
/// system call): `pause` on x86, `yield` on ARM, and on other targets only a compiler
/// barrier, so the loop around it still reloads what it watches.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

}  // namespace tenorite::detail
