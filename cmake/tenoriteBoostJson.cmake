# SPDX-License-Identifier: BSL-1.0
# tenorite_boost_json(<out_var> <from_source>): sets <out_var> to a target giving Boost.JSON's
# compiled part to tenorite::nats_json (json_codec.hpp), or to "" with a warning if there is
# none. Used by the build (TENORITE_BOOST_JSON_FROM_SOURCE) and by the installed package config
# (the build's choice), so that a project using the installed package gets the same.
#   from_source ON   tenorite_boost_json: a static library compiled from Boost's own
#                    boost/json/src.hpp in the project that links it, with its compiler, its
#                    standard library and the Boost headers it compiles against. Prebuilt
#                    libboost_json matches none of these for sure: Debian's is for libstdc++
#                    (not libc++), for one Boost version (a consumer may use other Boost
#                    headers), and an optional package. One file, compiled once per build tree.
#   from_source OFF  Boost's own Boost::json (find_package(Boost COMPONENTS json)): for
#                    builds whose prebuilt Boost.JSON matches.
function(tenorite_boost_json out from_source)
  if(from_source)
    if(NOT TARGET tenorite_boost_json)
      add_library(tenorite_boost_json STATIC
                  ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/tenorite_boost_json.cpp)
      target_link_libraries(tenorite_boost_json PUBLIC Boost::headers)
      target_compile_features(tenorite_boost_json PUBLIC cxx_std_17)
      # Compiled only for what links it; PIC so that a shared library may link it too.
      set_target_properties(tenorite_boost_json PROPERTIES EXCLUDE_FROM_ALL ON
                            POSITION_INDEPENDENT_CODE ON)
    endif()
    set(${out} tenorite_boost_json PARENT_SCOPE)
    return()
  endif()
  find_package(Boost ${Boost_VERSION} CONFIG QUIET COMPONENTS json)
  if(TARGET Boost::json)
    set(${out} Boost::json PARENT_SCOPE)
  else()
    message(WARNING "tenorite: Boost.JSON's library (Boost::json) was not found, so there is "
                    "no tenorite::nats_json (Debian: apt-get install libboost-json-dev, or "
                    "configure tenorite with TENORITE_BOOST_JSON_FROM_SOURCE=ON)")
    set(${out} "" PARENT_SCOPE)
  endif()
endfunction()
