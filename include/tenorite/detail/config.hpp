// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/config.hpp — the compiler-specific spellings the library needs, in one place.
#pragma once

/// Keeps a function out of line (GCC and Clang: gnu::noinline; MSVC: __declspec(noinline)).
#if defined(_MSC_VER) && !defined(__clang__)
#define TENORITE_NOINLINE __declspec(noinline)
#else
#define TENORITE_NOINLINE [[gnu::noinline]]
#endif

/// A function whose static state must be one per process even when the library is compiled
/// into several shared objects (default visibility: the dynamic linker merges the copies).
#if defined(_MSC_VER) && !defined(__clang__)
#define TENORITE_SHARED_STATE
#else
#define TENORITE_SHARED_STATE [[gnu::visibility("default")]]
#endif
