# SPDX-License-Identifier: BSL-1.0
# Finds nats.c for tenorite::nats. The project's CMakeLists.txt and the installed package
# (tenoriteConfig.cmake) both use this file, so a build and its users find nats.c alike.
#
#   tenorite_find_nats(<target-var> <reason-var>)
#
# sets <target-var> to an imported target that compiles and links against nats.c, or to ""
# with <reason-var> saying why not (when found, <reason-var> says what). Where it looks:
# 1. pkg-config's `libnats` (the libnats.pc that nats.c's own build installs, e.g. with
#    Debian's libnats-dev; honours PKG_CONFIG_PATH and CMAKE_PREFIX_PATH)
#    -> PkgConfig::tenorite_libnats;
# 2. only with TENORITE_NATS_USE_CNATS=ON (a cache or normal variable, in tenorite's build or
#    in the project calling find_package(tenorite)): nats.c's own CMake package, `cnats`
#    (honours cnats_DIR and CMAKE_PREFIX_PATH) -> cnats::nats, else cnats::nats_static. For
#    machines without pkg-config. Not tried by default because a broken cnats package stops
#    the whole configure (its config raises a FATAL_ERROR that nothing can catch): Debian 12's
#    names libnats_static.a and libprotobuf-c.so, which libnats-dev does not install.
# A function, so that pkg-config's and cnats' variables stay out of the caller's scope (the
# imported targets are created in the caller's directory all the same).
include_guard(GLOBAL)

function(tenorite_find_nats out_target out_reason)
  set(${out_target} "" PARENT_SCOPE)
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(tenorite_libnats QUIET IMPORTED_TARGET libnats)
    if(tenorite_libnats_FOUND)
      set(${out_target} PkgConfig::tenorite_libnats PARENT_SCOPE)
      set(${out_reason} "libnats ${tenorite_libnats_VERSION} (pkg-config)" PARENT_SCOPE)
      return()
    endif()
    set(where "pkg-config has no libnats (PKG_CONFIG_PATH)")
  else()
    set(where "pkg-config is not installed")
  endif()
  if(TENORITE_NATS_USE_CNATS)
    find_package(cnats CONFIG QUIET)
    foreach(t cnats::nats cnats::nats_static)
      if(cnats_FOUND AND TARGET ${t})
        set(${out_target} ${t} PARENT_SCOPE)
        set(${out_reason} "nats.c's CMake package (${cnats_DIR}, ${t})" PARENT_SCOPE)
        return()
      endif()
    endforeach()
    set(where "${where}, and there is no cnats CMake package (cnats_DIR)")
  else()
    set(where "${where} (-DTENORITE_NATS_USE_CNATS=ON tries nats.c's cnats CMake package)")
  endif()
  set(${out_reason} "nats.c not found: ${where}; install nats.c (Debian: libnats-dev) or \
point PKG_CONFIG_PATH or CMAKE_PREFIX_PATH at it" PARENT_SCOPE)
endfunction()
