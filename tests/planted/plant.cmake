# SPDX-License-Identifier: BSL-1.0
# Copies the headers to DST and breaks one protocol in the copy (NAME): kit_race_test built
# against it must then find a failing seed. Run as
#   cmake -DNAME=<bug> -DSRC=<include dir> -DDST=<out include dir> -DSTAMP=<file> -P plant.cmake
# Each bug is one exact replacement; when the code it breaks changes, this fails loudly.
if(NAME STREQUAL "cancel_vs_reply")
  # A delivered call no longer gives up on a terminal cancellation: it waits for the answer.
  set(file tenorite/detail/service_state.hpp)
  set(from [=[while (this->returned || this->returning() || !terminal) {]=])
  set(to [=[while (this->returned || this->returning() || !terminal || true) {]=])
elseif(NAME STREQUAL "drain_vs_permit")
  # A drained queue ends without waiting for its reserved slots.
  set(file tenorite/channel.hpp)
  set(from [=[slots_.reserved() == 0 && ]=])
  set(to "")
elseif(NAME STREQUAL "restart_vs_queued")
  # A restart loses the oldest queued request.
  set(file tenorite/detail/worker.hpp)
  set(from [=[    st.restarts.fetch_add(1, std::memory_order_relaxed);]=])
  set(to [=[    st.restarts.fetch_add(1, std::memory_order_relaxed);
    (void)st.chan.try_receive();]=])
else()
  message(FATAL_ERROR "plant.cmake: unknown planted bug '${NAME}'")
endif()

file(REMOVE_RECURSE "${DST}")
file(COPY "${SRC}/tenorite" DESTINATION "${DST}")
file(READ "${DST}/${file}" text)
string(FIND "${text}" "${from}" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "planted bug ${NAME}: the code it breaks is no longer in ${file}; "
                      "update tests/planted/plant.cmake")
endif()
string(REPLACE "${from}" "${to}" text "${text}")
file(WRITE "${DST}/${file}" "${text}")
file(TOUCH "${STAMP}")
