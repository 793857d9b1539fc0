/* SPDX-License-Identifier: BSL-1.0 */
/*
 * mutex.pml -- the queue's lock, detail::small_mutex (include/tenorite/detail/small_mutex.hpp).
 * Promela model; check with spin (see check.sh).
 *
 * state: 0 free, 1 held, 2 held and a thread may sleep on it.
 *   lock():      CAS 0 -> 1; else lock_contended: a few tries of "load; CAS 0 -> 1" (the spin),
 *                then c = exchange(2); while (c != 0) { wait(2); c = exchange(2) }
 *   unlock():    if (exchange(0) == 2) notify_one()
 *   wait(v):     the futex: sleeps only if the word still equals v (checked atomically with
 *                going to sleep); may also return spuriously
 *   notify_one:  wakes one sleeper, if any
 *
 * Processes: Thread(t) x NT, each taking the lock K times.
 * Checked: mutual exclusion (at most one thread between lock and unlock); no lost wake-up
 * (every thread finishes: spin reports a sleeper left behind as an invalid end state).
 *
 * Planted bugs (check.sh --planted must find each):
 *   PLANT_UNLOCK_NO_WAKE   unlock stores 0 and never wakes a sleeper
 *   PLANT_RELOCK_AS_ONE    a woken thread takes the lock in state 1 (forgets other sleepers)
 */
#ifndef NT
#define NT 3
#endif
#ifndef K
#define K 2
#endif
#ifndef SPIN
#define SPIN 1
#endif

byte state = 0;
byte inside = 0;
bool sleeping[NT];

inline futex_wait(t, v) {
  atomic {
    if
    :: state == v -> sleeping[t] = true
    :: else -> skip
    fi
  }
  if
  :: sleeping[t] -> (!sleeping[t])      /* woken by notify_one ... */
  :: atomic { sleeping[t] -> sleeping[t] = false }   /* ... or spuriously */
  :: !sleeping[t] -> skip
  fi
}

inline futex_wake_one() {
  atomic {
    if
    :: sleeping[0] -> sleeping[0] = false
#if NT > 1
    :: sleeping[1] -> sleeping[1] = false
#endif
#if NT > 2
    :: sleeping[2] -> sleeping[2] = false
#endif
#if NT > 3
    :: sleeping[3] -> sleeping[3] = false
#endif
    :: else -> skip
    fi
  }
}

proctype Thread(byte t) {
  byte k = 0, c, i;
  do
  :: k < K ->
    /* lock() */
    atomic { c = state; if :: state == 0 -> state = 1 :: else fi }
    if
    :: c == 0 -> skip
    :: else ->
      i = 0;
      do
      :: i < SPIN && c != 2 ->
        i++;
        atomic { c = state; if :: c == 0 -> state = 1 :: else fi }
        if :: c == 0 -> goto locked :: else fi
      :: else -> break
      od;
      atomic { c = state; state = 2 }
      do
      :: c != 0 ->
        futex_wait(t, 2);
#ifdef PLANT_RELOCK_AS_ONE
        atomic { c = state; if :: c == 0 -> state = 1 :: else -> state = 2 fi }
#else
        atomic { c = state; state = 2 }
#endif
      :: else -> break
      od
    fi;
locked:
    inside++;
    assert(inside == 1);
    inside--;
    /* unlock() */
#ifdef PLANT_UNLOCK_NO_WAKE
    state = 0;
#else
    atomic { c = state; state = 0 }
    if :: c == 2 -> futex_wake_one() :: else fi;
#endif
    k++
  :: else -> break
  od
}

init {
  byte t;
  atomic {
    for (t : 0 .. NT - 1) { run Thread(t) }
  }
}
