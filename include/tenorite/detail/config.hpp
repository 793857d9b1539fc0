// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/config.hpp — the compiler-specific spellings the library needs, in one place.
#pragma once

/// Keeps a function out of line (GCC and Clang: gnu::noinline; MSVC: __declspec(noinline)).
#if defined(_MSC_VER) && !defined(__clang__)
#define TENORITE_NOINLINE __declspec(noinline)
#else
#define TENORITE_NOINLINE [[gnu::noinline]]
#endif
