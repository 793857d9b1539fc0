# SPDX-License-Identifier: BSL-1.0
# Builds and runs tests/consumer, the project of a new user, with tenorite got one way (WAY):
#   find_package      installs tenorite from the build tree into a scratch prefix, checks its
#                     pkg-config files, configures the consumer against the prefix (with the
#                     nats component when NATS is ON), builds and runs it; then checks that
#                     requiring a component the package does not have fails the configure
#                     with the reason
#   add_subdirectory  configures the consumer with tenorite's sources as a subdirectory
#   fetchcontent      configures the consumer with FetchContent of the local checkout
# cmake -DWAY=... -DSOURCE_DIR=<tenorite> -DBINARY_DIR=<its build> -DWORK_DIR=<scratch>
#       -DCXX=... -DCXX_FLAGS=... -DLINKER_FLAGS=... -DGENERATOR=... [-DLAUNCHER=ccache]
#       [-DNATS=ON] [-DPKG_CONFIG=<pkg-config>] [-DBOOST_DIR=<dir of BoostConfig.cmake>]
#       [-DEXPECT_BOOST_VERSION=<BOOST_VERSION>] -P run.cmake
# BOOST_DIR builds the consumer against another Boost than tenorite's build found (its
# Boost_DIR); EXPECT_BOOST_VERSION fails the build unless that is the Boost compiled against.
if(NOT WAY)
  set(WAY find_package)
endif()
file(REMOVE_RECURSE ${WORK_DIR})

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "consumer (${WAY}): ${what} failed (${rc})")
  endif()
endfunction()

set(configure_args -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX} "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
    "-DCMAKE_EXE_LINKER_FLAGS=${LINKER_FLAGS}" -DCMAKE_BUILD_TYPE=Release
    -DTENORITE_CONSUME=${WAY})
if(LAUNCHER)
  list(APPEND configure_args -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()
if(BOOST_DIR)
  list(APPEND configure_args -DBoost_DIR=${BOOST_DIR})
endif()
if(EXPECT_BOOST_VERSION)
  list(APPEND configure_args -DTENORITE_CONSUMER_EXPECT_BOOST=${EXPECT_BOOST_VERSION})
endif()
set(programs consumer)

if(WAY STREQUAL "find_package")
  set(prefix ${WORK_DIR}/prefix)
  execute_process(COMMAND ${CMAKE_COMMAND} --install ${BINARY_DIR} --prefix ${prefix}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc)
    message(FATAL_ERROR "consumer (${WAY}): installing tenorite failed (${rc}):\n${out}")
  endif()
  list(APPEND configure_args -DCMAKE_PREFIX_PATH=${prefix})
  if(NATS)
    list(APPEND configure_args -DTENORITE_CONSUMER_NATS=ON)
    list(APPEND programs consumer_nats consumer_json)
  endif()

  # pkg-config: the version, and an include directory that holds the headers.
  if(PKG_CONFIG)
    set(pc_env ${CMAKE_COMMAND} -E env PKG_CONFIG_PATH=${prefix}/share/pkgconfig ${PKG_CONFIG})
    execute_process(COMMAND ${pc_env} --modversion tenorite OUTPUT_VARIABLE v
                    OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
    file(STRINGS ${SOURCE_DIR}/include/tenorite/version.hpp want
         REGEX "TENORITE_VERSION_STRING")
    if(rc OR NOT want MATCHES "\"${v}\"")
      message(FATAL_ERROR "pkg-config --modversion tenorite: '${v}' (${rc}), not ${want}")
    endif()
    execute_process(COMMAND ${pc_env} --cflags tenorite OUTPUT_VARIABLE cflags
                    OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
    set(incdir "")
    if(NOT rc AND cflags MATCHES "-I([^ ]+)")
      set(incdir "${CMAKE_MATCH_1}")
    endif()
    if(NOT incdir OR NOT EXISTS "${incdir}/tenorite/version.hpp")
      message(FATAL_ERROR "pkg-config --cflags tenorite: '${cflags}' names no include "
                          "directory holding tenorite/version.hpp")
    endif()
    if(NATS)
      execute_process(COMMAND ${pc_env} --libs tenorite-nats OUTPUT_VARIABLE libs
                      OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
      if(rc OR NOT libs MATCHES "-lnats")
        message(FATAL_ERROR "pkg-config --libs tenorite-nats: '${libs}' (${rc})")
      endif()
    endif()
    message(STATUS "pkg-config: tenorite ${v}: ${cflags}")
  endif()
else()
  list(APPEND configure_args -DTENORITE_SOURCE=${SOURCE_DIR})
endif()

run("configuring" ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${WORK_DIR}/build
    ${configure_args})
run("building" ${CMAKE_COMMAND} --build ${WORK_DIR}/build --parallel 2)
foreach(p IN LISTS programs)
  run("running ${p}" ${WORK_DIR}/build/${p})
endforeach()

# A required component the package lacks: the configure fails and says which and why.
if(WAY STREQUAL "find_package")
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer
                          -B ${WORK_DIR}/build-missing ${configure_args}
                          "-DTENORITE_CONSUMER_COMPONENTS=tenorite;no_such_part"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc OR NOT "${out}${err}" MATCHES "component \"no_such_part\" is missing")
    message(FATAL_ERROR "requiring a missing component did not fail the configure with its "
                        "reason (${rc}):\n${out}${err}")
  endif()
  message(STATUS "requiring a missing component fails the configure, as it should")
endif()
