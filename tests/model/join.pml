/* SPDX-License-Identifier: BSL-1.0 */
/*
 * join.pml -- a cancellable join racing the worker's end and the join handle's drop
 * (Promela model of tenorite's join path; check with spin, see check.sh).
 *
 * Source of truth: include/tenorite/detail/task_state.hpp (task_state::set_result, take,
 * mark_taken, withdraw, put_back, handle_dropped; join_handle::async_join, take_state,
 * release; join_op::on_complete / finish / on_cancel) and
 * include/tenorite/detail/cancellation.hpp (cancel_ctl, cancel_slot_handler,
 * arm_cancellation, settle, late_cancel_watch).  Follows the headers as of commit 7e5786a
 * (which left this path unchanged).
 *
 * One Promela step = one critical section under task_state::m_ (an atomic block) or one
 * action outside any lock; cancel_ctl::m is a lock variable (ctl_m[j]) because
 * join_op::on_cancel holds it across task_state::withdraw (an m_ section).
 *
 * Processes and the C++ they mirror
 *   Worker  worker_guard::finish -> task_state::set_result(r) (r is a value or a panic,
 *           chosen nondeterministically): under m_ take the waiting join, or report an
 *           unobserved panic, or store the outcome; outside the lock w->complete(r) =
 *           join_op::on_complete -> finish(watch_late = true): settle, late_cancel_watch
 *           (refs + 1), delete op, cancel_ctl::release, complete_on posts the lambda to the
 *           joiner's executor.
 *   Joiner  the owner of the join_handle, on its own executor: async_join = take_state
 *           (mark_taken under m_; a second claim would throw) + new_op<join_op> +
 *           arm_cancellation (refs = 2, ctl->op = op) + task_state::take (park as waiter_, or
 *           take the outcome now and complete: the completion may be posted, so it is
 *           modelled as posted); then, in any order, on the joiner's executor: emit the
 *           cancellation (cancel_slot_handler -> join_op::on_cancel: task_state::withdraw ->
 *           finish(wait_cancelled, watch_late = false), or late = true when the outcome is on
 *           its way), destroy the slot handler, run the posted lambda (late_cancel_watch::
 *           requested() -> task_state::put_back + wait_cancelled; then the handler; then
 *           ~late_cancel_watch).  A join whose cancellation was emitted lost its race (e.g.
 *           `join() || timer`): its result is dropped, so an outcome delivered to it would be
 *           lost.  After a cancelled join the owner joins again, or drops the handle
 *           (join_handle::release -> handle_dropped); it may also drop the handle while a join
 *           is still pending.
 *
 * What is checked
 *   - the outcome is never lost nor duplicated: a value ends in exactly one join handler or
 *     stays in result_ (handle dropped); a panic ends in exactly one join handler or is
 *     reported to the unhandled-exception hook exactly once;
 *   - a join whose cancellation was emitted never takes the outcome with it;
 *   - a cancelled join gives its claim back (taken_ = false), so the next join does not throw
 *     (asserted in mark_taken); when the owner keeps joining, the last join gets the outcome;
 *   - every join_op is freed exactly once and never touched after; every cancel_ctl reaches
 *     refcount 0 exactly once and is not touched after;
 *   - no deadlock / lost wake-up (spin's invalid end states: a join parked forever, a party
 *     blocked on ctl->m).
 *
 * Planted bugs (check.sh --planted):
 *   PLANT_JOIN_NO_LATE        on_cancel does not set `late` when withdraw fails;
 *   PLANT_WITHDRAW_KEEPS_TAKEN task_state::withdraw leaves taken_ set;
 *   PLANT_PUT_BACK_DROPS      put_back forgets the outcome when the handle is alive.
 */

#ifndef NCAN
#define NCAN 2          /* cancellations emitted in a run */
#endif
#define MAXJ (NCAN + 1) /* join operations in a run */

#define R_NONE 0
#define R_OUTCOME 1     /* the worker's outcome */
#define R_CANCELLED 2   /* join_error::wait_cancelled */

/* ---- task_state (guarded by m_) ---- */
bool result_set;        /* result_ engaged */
byte waiter;            /* waiter_: 0 none, else join j + 1 */
bool taken;             /* taken_ */
bool handle_alive = 1;  /* handle_alive_ */
bool panic;             /* the outcome is a panic */
bool set_done;

/* ---- join_op and cancel_ctl, one per join ---- */
bool op_alive[MAXJ];
bool op_freed[MAXJ];
bool ctl_op[MAXJ];
byte ctl_m[MAXJ];
byte refs[MAXJ];
bool ctl_freed[MAXJ];
bool late[MAXJ];

/* ---- the completion posted to the joiner's executor ---- */
bool pend;
byte pend_r;
bool pend_watch;
byte pend_j;

/* ---- bookkeeping ---- */
byte got;               /* outcome delivered to a join handler */
byte reported;          /* report_unhandled */

#define TOUCH_OP(j)  assert(op_alive[j] && !op_freed[j])
#define TOUCH_CTL(j) assert(refs[j] > 0 && !ctl_freed[j])

inline release_ctl(j) {
  d_step {
    TOUCH_CTL(j);
    refs[j]--;
    if
    :: refs[j] == 0 -> ctl_freed[j] = 1
    :: else -> skip
    fi
  }
}

/* join_op::finish(self, r, watch_late) */
inline join_finish(j, r, watch_late) {
  atomic { ctl_m[j] == 0 -> TOUCH_OP(j); TOUCH_CTL(j); ctl_op[j] = 0 };   /* settle */
  if
  :: watch_late -> d_step { TOUCH_CTL(j); refs[j]++ }; pw = 1           /* late_cancel_watch */
  :: else -> pw = 0
  fi;
  d_step { TOUCH_OP(j); op_alive[j] = 0; op_freed[j] = 1 };               /* delete_op */
  release_ctl(j);                                                          /* c->release() */
  d_step {                      /* complete_on: the lambda goes to the joiner's executor */
    assert(!pend);
    pend = 1;
    pend_r = r;
    pend_watch = pw;
    pend_j = j
  }
}

proctype Worker() {
  byte w, pw, j;
  bool unobs;
  if                            /* the task's outcome: a value or a panic */
  :: panic = 0
  :: panic = 1
  fi;
  atomic {                      /* task_state::set_result (under m_) */
    if
    :: waiter != 0 -> w = waiter; waiter = 0
    :: waiter == 0 && !handle_alive && panic -> unobs = 1
    :: else -> result_set = 1
    fi;
    set_done = 1
  };
  if
  :: w != 0 -> j = w - 1; join_finish(j, R_OUTCOME, 1)   /* w->complete(r) */
  :: unobs -> reported++
  :: else -> skip
  fi
}

inline drop_handle() {          /* join_handle::release -> task_state::handle_dropped */
  atomic {
    handle_alive = 0;
    if
    :: result_set && panic -> result_set = 0; unobs = 1
    :: else -> unobs = 0
    fi
  };
  if
  :: unobs -> reported++; unobs = 0
  :: else -> skip
  fi
}

proctype Joiner() {
  byte j, pw, ncan, r;
  bool parked, slot, cancelled, hasop, wd, lw, req, unobs, stop, dropped;

  do
  :: stop -> break
  :: !stop ->
     assert(j < MAXJ);
     atomic {                   /* take_state: task_state::mark_taken (under m_) */
       assert(!taken);          /* "the worker's outcome was already taken" would throw */
       taken = 1
     };
     /* new_op<join_op>; arm_cancellation */
     d_step { op_alive[j] = 1; refs[j] = 2; ctl_op[j] = 1; slot = 1 };
     atomic {                   /* task_state::take (under m_) */
       if
       :: !result_set -> waiter = j + 1; parked = 1
       :: result_set -> result_set = 0; parked = 0
       fi
     };
     if
     :: !parked -> join_finish(j, R_OUTCOME, 1)   /* w->complete(*r) */
     :: else -> skip
     fi;
     cancelled = 0;
     do
     :: slot && !cancelled && ncan < NCAN ->
        ncan++;
        cancelled = 1;          /* cancel_slot_handler::operator() */
        atomic { ctl_m[j] == 0 -> TOUCH_CTL(j); ctl_m[j] = _pid + 1; hasop = ctl_op[j] };
        if
        :: !hasop -> d_step { late[j] = 1; ctl_m[j] = 0 }
        :: hasop ->             /* join_op::on_cancel */
           atomic {             /* task_state::withdraw(self) (under m_) */
             TOUCH_OP(j);
             if
             :: waiter == j + 1 ->
                waiter = 0;
#ifndef PLANT_WITHDRAW_KEEPS_TAKEN
                taken = 0;
#endif
                wd = 1
             :: else -> wd = 0
             fi
           };
           if
           :: !wd ->            /* the outcome is on its way */
              d_step {
                TOUCH_OP(j);
#ifndef PLANT_JOIN_NO_LATE
                late[j] = 1;
#endif
                ctl_m[j] = 0
              }
           :: wd ->
              d_step { TOUCH_OP(j); ctl_op[j] = 0; ctl_m[j] = 0 };
              join_finish(j, R_CANCELLED, 0)
           fi
        fi
     :: slot -> slot = 0; release_ctl(j)          /* ~cancel_slot_handler */
     :: !dropped -> dropped = 1; drop_handle()    /* the handle goes while the join waits */
     :: atomic { pend && pend_j == j ->           /* the posted lambda runs */
          r = pend_r; lw = pend_watch; pend = 0; pend_r = 0; pend_watch = 0; pend_j = 0 };
        if
        :: lw -> d_step { TOUCH_CTL(j); req = late[j] }
        :: else -> req = 0
        fi;
        if
        :: req ->               /* task_state::put_back(r); r = wait_cancelled */
           assert(r == R_OUTCOME);
           atomic {
             taken = 0;
#ifndef PLANT_PUT_BACK_DROPS
             if
             :: handle_alive || !panic -> result_set = 1
             :: else -> unobs = 1
             fi
#else
             if
             :: handle_alive || !panic -> skip
             :: else -> unobs = 1
             fi
#endif
           };
           if
           :: unobs -> reported++; unobs = 0
           :: else -> skip
           fi;
           r = R_CANCELLED
        :: else -> skip
        fi;
        /* std::move(h)(r) */
        if
        :: cancelled -> assert(r == R_CANCELLED)  /* a dropped result must not be the outcome */
        :: !cancelled -> assert(r == R_OUTCOME); got++; assert(got == 1)
        fi;
        if
        :: lw -> release_ctl(j)                  /* ~late_cancel_watch */
        :: else -> skip
        fi;
        break
     od;
     if
     :: slot -> slot = 0; release_ctl(j)
     :: else -> skip
     fi;
     if
     :: !cancelled || dropped -> stop = 1         /* done, or the handle is gone */
     :: cancelled && !dropped -> skip             /* join again */
     :: cancelled && !dropped -> dropped = 1; drop_handle(); stop = 1
     fi;
     parked = 0; cancelled = 0; hasop = 0; wd = 0; lw = 0; req = 0; r = 0;
     j++
  od;
  if                            /* the handle goes at the end */
  :: !dropped -> drop_handle()
  :: else -> skip
  fi
}

init {
  byte j;
  atomic {
    run Worker();
    run Joiner()
  };
  _nr_pr == 1;
  assert(set_done && waiter == 0 && !pend);
  assert(got <= 1 && reported <= 1);
  if
  :: panic -> assert(got + reported == 1); assert(!result_set)
  :: !panic -> assert(got + result_set == 1); assert(reported == 0)
  fi;
  for (j : 0 .. MAXJ - 1) {
    assert(!op_alive[j]);
    assert(!op_freed[j] || (ctl_freed[j] && refs[j] == 0))
  }
}
