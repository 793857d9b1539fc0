// SPDX-License-Identifier: BSL-1.0
// tenorite/version.hpp — the library's version, for the preprocessor and for code.
//
//   #if TENORITE_VERSION >= 100        // 0.1.0 or later
//   std::puts(TENORITE_VERSION_STRING); // "0.1.0"
//
// TENORITE_VERSION is one integer, as BOOST_VERSION is, so that `#if` can compare it:
// MAJOR * 100000 + MINOR * 100 + PATCH (MINOR < 1000, PATCH < 100). 0.1.0 is 100, 1.2.3 is
// 100203. TENORITE_VERSION_STRING is "MAJOR.MINOR.PATCH".
//
// The numbers here are the project's version: CMakeLists.txt reads this file at configure
// time and fails when they differ from its project(VERSION ...), so a release changes both in
// one commit (nothing is generated at build time, so the header is the same in the source
// tree, in an installed package and in an add_subdirectory or FetchContent build).
#pragma once

#define TENORITE_VERSION_MAJOR 0
#define TENORITE_VERSION_MINOR 1
#define TENORITE_VERSION_PATCH 0
#define TENORITE_VERSION_STRING "0.1.0"

#define TENORITE_VERSION \
  (TENORITE_VERSION_MAJOR * 100000 + TENORITE_VERSION_MINOR * 100 + TENORITE_VERSION_PATCH)
