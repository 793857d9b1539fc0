/* SPDX-License-Identifier: BSL-1.0 */
/*
 * watch.pml -- responder::async_wait_closed on a delivered call, racing the caller's
 * terminal cancellation (the caller gives up), the worker's reply and the cancellation of the
 * wait itself (Promela model; check with spin, see check.sh).
 *
 * Source of truth: include/tenorite/detail/service_state.hpp (call_op::on_complete, on_watch,
 * on_signal's give-up path, unpin, destroy), include/tenorite/detail/call_fsm.hpp (answer,
 * pin, give_up, unpin, watch, unwatch: the call's one atomic word), include/tenorite/request.hpp
 * (responder::send, async_wait_closed, start_wait_closed, closed_wait::finish / on_fire /
 * cancel / release, closed_wait_cancel, wait_op::complete), include/tenorite/detail/reply_slot.hpp
 * (reply_slot::watch / unwatch / waiter_gone) and include/tenorite/detail/cancellation.hpp.
 * Follows the headers as of the commit that made the call's arbitration one atomic word.
 *
 * The call is already delivered: the worker holds its responder; the call is cancellable
 * (cancel_ctl armed, refs = 2, the word pending).  The word's transitions are one step each;
 * closed_wait::m (cw_m) is a lock variable: closed_wait::cancel holds it across
 * reply_slot::unwatch, and the fire's closed_wait::finish takes it, which is what keeps the
 * call alive while an unwatch runs (a taken watch must fire before its call is freed).
 *
 * Processes and the C++ they mirror
 *   Caller   the caller's cancellation signal: cancel_slot_handler -> call_op::on_signal:
 *            pin; channel::withdraw and withdraw_buffered both fail (delivered); returning is
 *            explored both ways (the worker's service ended while this responder lives on:
 *            unpin, the reply completes the call); partial: unpin; terminal: give_up (the
 *            watch taken with the phase), still pinned: mark_waiter_gone, handler moved,
 *            call_completed(cancelled), w->fire(w) (closed_wait::on_fire: finish + release),
 *            unpin (free when the reply came meanwhile: responder_done), then the handler
 *            completes (cancelled).  An answer parked first is completed by unpin (it fires
 *            the watch first).  Then ~cancel_slot_handler.
 *   Waiter   the worker's responder::async_wait_closed: the operation starts
 *            (start_wait_closed(self->slot_), the slot read at initiation): null slot or
 *            waiter_gone() -> finish at once; else new closed_wait refs 1, new wait_op, the
 *            wait's own cancellation slot (refs + 1), c->slot = slot under c->m, refs + 1 for
 *            the registration, reply_slot::watch -> call_op::on_watch(add) -> call_fsm::watch
 *            (claim, then watching unless the phase ended): registered / already_gone
 *            (release + finish).  Then, maybe, the wait's cancellation (closed_wait_cancel ->
 *            closed_wait::cancel: under c->m, unwatch -> call_fsm::unwatch, one exchange; if
 *            it was still registered, complete the wait with operation_aborted), and
 *            ~closed_wait_cancel (release).
 *   Replier  responder::send (or ~responder): reply_slot::complete -> call_op::on_complete:
 *            call_fsm::answer: complete (the watch taken: fire, then finish), park_first
 *            (store, answer again), free after a give-up (destroy), leave while the give-up
 *            holds the call.
 *
 * Ordering of the worker's own actions (check.sh runs every one):
 *   default            the documented pattern `co_await (work() || r->client.wait_closed())`
 *                      on a strand, reply after the race: the wait's cancellation, if any,
 *                      happens before the reply, in one process;
 *   -DREPLY_FIRST      the same process answers first and then its wait is cancelled (work()
 *                      itself answers: `co_await (answer(std::move(r)) || wait)`);
 *   -DREPLY_ANY_ORDER  the reply is made by a separate process (the responder was handed to
 *                      another thread), so it may come before the wait's cancellation or
 *                      concurrently with it (the Replier process exists only then);
 *   -DDEFERRED_START   the wait is created deferred (async_wait_closed(deferred)) and the
 *                      worker may answer before it starts it: the operation then reads the
 *                      responder's slot (already null) when it starts.
 *   REPLY_FIRST and REPLY_ANY_ORDER found a use after free of the call_op in
 *   closed_wait::cancel before 7e5786a (see PLANT_DESTROY_WHILE_FIRING and the README).
 *
 * What is checked
 *   - the call's handler completes exactly once; the wait's handler completes exactly once
 *     (wruns), with success when the caller gave up or the reply went out, or
 *     operation_aborted when the wait was cancelled first;
 *   - the call_op and the closed_wait/wait_op are freed exactly once and never touched after
 *     (in particular reply_slot::unwatch/waiter_gone/watch never reach a destroyed call_op
 *     through closed_wait::slot, and on_cancel's relock after the fire never reaches a
 *     destroyed call_op);
 *   - both refcounts (cancel_ctl, closed_wait) reach zero exactly once;
 *   - metrics->call_completed runs exactly once for the call (mdone);
 *   - no deadlock on c->m, no lost wake-up of the wait.
 *
 * Planted bugs (check.sh --planted):
 *   PLANT_GIVE_UP_NO_FIRE      give_up leaves the watch registered instead of taking it;
 *   PLANT_ON_COMPLETE_NO_FIRE  call_op::on_complete forgets to fire the watcher;
 *   PLANT_CANCEL_NO_UNWATCH    closed_wait::cancel completes the wait without unwatching;
 *   PLANT_DESTROY_WHILE_FIRING the give-up unpins before it fires the watch (the C++ before
 *                              7e5786a freed the same way): with REPLY_FIRST / REPLY_ANY_ORDER
 *                              the answer frees the call while the fire is pending, and
 *                              closed_wait::cancel unwatches through the freed call_op;
 *   PLANT_SLOT_READ_EARLY      async_wait_closed reads the responder's slot when it is called,
 *                              not when the operation starts (the C++ before 7e5786a; with
 *                              DEFERRED_START the wait starts on a call_op the reply freed);
 *   PLANT_GIVE_UP_NOT_COUNTED  the give-up path does not count the call in the metrics;
 *   PLANT_UNWATCH_LATE_STORE   unwatch clears `watching` in one exchange and the claim in a
 *                              later store (the first draft of call_fsm): between the two the
 *                              call completes unwatched and is freed, and the store writes
 *                              into a freed (or recycled) cancel_ctl — found by REPLY_FIRST
 *                              and REPLY_ANY_ORDER.
 */

#define EC_OK 1
#define EC_ABORTED 2
#define PARTIAL 1
#define TERMINAL 2

/* ---- the call (call_op + cancel_ctl, its word ctl->fsm: detail/call_fsm.hpp) ---- */
#define P_PENDING  0
#define P_ANSWERED 1
#define P_GAVE_UP  2
#define A_COMPLETE        1
#define A_PARK_FIRST      2
#define A_PARKED          3
#define A_COMPLETE_STORED 4
#define A_FREE            5
#define A_LEAVE           6
bool op_alive = 1;
bool op_freed;
bool handler_moved;
bool waiter_gone;
byte phase;             /* the word's phase */
bool pinned;            /* a cancellation runs on the call */
bool parked;            /* answered while pinned: the answer lies in the call */
bool rdone;             /* responder_done: gave up, the responder came while pinned */
bool watching;          /* a watch is registered (the flag in the word) */
bool wclaim;            /* the word's `claimed` flag */
bool stored;            /* call_op::answer engaged */
byte refs = 2;
bool ctl_freed;
byte runs;
byte mdone;             /* service_metrics::call_completed for the call */
bool resp_live = 1;

/* ---- closed_wait + wait_op ---- */
bool cw_alive;
byte cw_refs;
bool cw_freed;
byte cw_m;
bool cw_op;             /* closed_wait::op set */
bool cw_slot;           /* closed_wait::slot set (points at the call_op) */
bool wop_alive;
bool wop_freed;
byte wruns;
byte wres;
bool started;

#define TOUCH_OP     assert(op_alive && !op_freed)
#define TOUCH_CTL    assert(refs > 0 && !ctl_freed)
#define TOUCH_CW     assert(cw_alive && cw_refs > 0 && !cw_freed)

inline release_ctl() {
  d_step { TOUCH_CTL; refs--; if :: refs == 0 -> ctl_freed = 1 :: else -> skip fi }
}
inline cw_release() {
  d_step {
    TOUCH_CW;
    cw_refs--;
    if
    :: cw_refs == 0 -> cw_freed = 1; cw_alive = 0
    :: else -> skip
    fi
  }
}
inline complete_call(kind) { d_step { runs++; assert(runs == 1) } }

/* wait_op::complete(p, ec): handler moved, delete_op, c->release(), complete_on */
inline wait_complete(ec) {
  d_step { assert(wop_alive && !wop_freed); wop_alive = 0; wop_freed = 1 };
  cw_release();
  d_step { wruns++; assert(wruns == 1); wres = ec }
}

/* closed_wait::finish(ec) */
inline cw_finish(ec) {
  atomic {
    cw_m == 0 ->
    TOUCH_CW;
    p = cw_op;
    cw_op = 0;
    cw_slot = 0
  };
  if
  :: p -> p = 0; wait_complete(ec)
  :: else -> skip
  fi
}

/* closed_wait::on_fire */
inline fire() {
  cw_finish(EC_OK);
  cw_release()
}

/* call_op::destroy: delete_op(this), then c->release() */
inline destroy() {
  d_step { TOUCH_OP; op_alive = 0; op_freed = 1; stored = 0 };   /* ~call_op: the answer too */
  release_ctl()
}

/* call_op::finish: metrics->call_completed, handler moved, destroy, complete_on */
inline finish() {
  d_step {
    TOUCH_OP;
    mdone++;
    assert(!handler_moved);
    handler_moved = 1;
    op_alive = 0;
    op_freed = 1
  };
  release_ctl();
  complete_call(1)
}

/* call_fsm::answer(stored): one compare-exchange */
inline answer_step(st_in) {
  d_step {
    TOUCH_OP;
    TOUCH_CTL;
    if
    :: phase == P_PENDING && pinned && !st_in -> ast = A_PARK_FIRST
    :: phase == P_PENDING && pinned && st_in -> phase = P_ANSWERED; parked = 1; ast = A_PARKED
    :: phase == P_PENDING && !pinned ->
       phase = P_ANSWERED;
       w = watching;            /* the watch is taken with the phase */
       watching = 0;
       wclaim = 0;
       if
       :: st_in -> ast = A_COMPLETE_STORED
       :: else -> ast = A_COMPLETE
       fi
    :: phase == P_GAVE_UP && pinned -> rdone = 1; ast = A_LEAVE
    :: phase == P_GAVE_UP && !pinned -> ast = A_FREE
    :: else -> assert(0)
    fi
  }
}

/* call_op::on_complete (the reply, or the responder dropped) */
inline on_complete() {
  answer_step(0);
  if
  :: ast == A_PARK_FIRST ->
     d_step { TOUCH_OP; stored = 1 };   /* self->answer.emplace(r) */
     answer_step(1)
  :: else -> skip
  fi;
  if
  :: ast == A_COMPLETE || ast == A_COMPLETE_STORED ->
#ifndef PLANT_ON_COMPLETE_NO_FIRE
     if
     :: w -> w = 0; fire()      /* answered: the watch ends too */
     :: else -> skip
     fi;
#else
     w = 0;
#endif
     stored = 0;                /* finish_stored moves it out first */
     finish()
  :: ast == A_PARKED -> skip    /* the canceller completes with it */
  :: ast == A_FREE -> destroy()
  :: ast == A_LEAVE -> skip     /* the canceller frees the call (and the stored answer) */
  fi;
  ast = 0
}

inline reply() {
  d_step { assert(resp_live); resp_live = 0 };   /* responder::send: exchange(slot_) */
  on_complete()
}

/* closed_wait_cancel::operator() -> closed_wait::cancel() */
inline cancel_wait() {
  atomic { cw_m == 0 -> TOUCH_CW; cw_m = _pid + 1; p = cw_op };
  if
  :: !p -> cw_m = 0
  :: p ->
     wasreg = 0;
     if
     :: cw_slot ->
#ifndef PLANT_CANCEL_NO_UNWATCH
        /* slot->unwatch(this) -> call_op::on_watch(remove): self->ctl read, then
           call_fsm::unwatch: one compare-exchange clears the flag and the claim (nothing of
           the call is touched after it: PLANT_UNWATCH_LATE_STORE releases the claim in a
           later step, as the first C++ of the word did) */
        d_step {
          TOUCH_OP;
          TOUCH_CTL;
          if
#ifndef PLANT_UNWATCH_LATE_STORE
          :: watching -> watching = 0; wclaim = 0; reg = 1
#else
          :: watching -> watching = 0; reg = 1
#endif
          :: else -> reg = 0    /* taken: it fires */
          fi
        };
#ifdef PLANT_UNWATCH_LATE_STORE
        if
        :: reg -> d_step { TOUCH_CTL; wclaim = 0 }
        :: else -> skip
        fi;
#endif
#else
        reg = 1;
#endif
        if
        :: !reg -> cw_m = 0     /* the watch is firing: it completes the wait */
        :: reg -> cw_slot = 0; wasreg = 1
        fi
     :: else -> reg = 1
     fi;
     if
     :: reg ->
        d_step { p = cw_op; cw_op = 0; cw_m = 0 };
        if
        :: wasreg -> cw_release()
        :: else -> skip
        fi;
        assert(p);
        p = 0;
        wait_complete(EC_ABORTED)
     :: else -> skip
     fi
  fi
}

/* call_op::unpin -> call_fsm::unpin */
inline unpin() {
  d_step {
    TOUCH_CTL;
    assert(pinned);
    pinned = 0;
    if
    :: phase == P_ANSWERED -> parked = 0; w = watching; watching = 0; wclaim = 0; u = 1
    :: phase == P_GAVE_UP && rdone -> u = 2
    :: else -> u = 0
    fi
  };
  if
  :: u == 1 ->                  /* complete with the parked answer */
     if
     :: w -> w = 0; fire()
     :: else -> skip
     fi;
     d_step { TOUCH_OP; assert(stored); stored = 0 };
     finish()
  :: u == 2 -> destroy()
  :: else -> skip
  fi;
  u = 0
}

proctype Caller() {
  bool hasop, w, p, g;
  byte type, u;
  if
  :: skip
  :: type = TERMINAL
  :: type = PARTIAL
  fi;
  if
  :: type == TERMINAL || type == PARTIAL ->
     d_step {                   /* ctl->fsm.pin() */
       TOUCH_CTL;
       if
       :: phase == P_PENDING && !pinned -> pinned = 1; hasop = 1
       :: else -> hasop = 0
       fi
     };
     if
     :: !hasop -> skip
     :: hasop ->                /* call_op::on_signal */
        TOUCH_OP;               /* chan.withdraw(self): not linked (delivered) */
        skip;                   /* chan.withdraw_buffered(...): not in the buffer */
        if
        :: unpin()              /* returned / returning: the worker's service ended */
        :: type == PARTIAL -> unpin()
        :: type == TERMINAL ->  /* ctl->fsm.give_up(): one compare-exchange; on success the */
           d_step {             /* call stays pinned and this side moves its handler out */
             TOUCH_CTL;
             if
             :: phase == P_PENDING ->
                phase = P_GAVE_UP;
#ifndef PLANT_GIVE_UP_NO_FIRE
                w = watching;
                watching = 0;
                wclaim = 0;
#endif
                g = 1;
                TOUCH_OP;
                waiter_gone = 1;
                assert(!handler_moved);
                handler_moved = 1;
#ifndef PLANT_GIVE_UP_NOT_COUNTED
                mdone++
#else
                skip
#endif
             :: else -> g = 0   /* answered first: parked */
             fi
           };
           if
           :: !g -> unpin()
           :: g ->
#ifndef PLANT_DESTROY_WHILE_FIRING
              if
              :: w -> w = 0; fire()   /* still pinned: the call stays */
              :: else -> skip
              fi;
              unpin();
#else
              unpin();                /* unpinned before the fire: the answer may free the */
              if                      /* call while the wait still reaches it */
              :: w -> w = 0; fire()
              :: else -> skip
              fi;
#endif
              g = 0;
              complete_call(2)     /* complete_on(ex, cancelled) */
           fi
        fi
     fi
  :: else -> skip
  fi;
  release_ctl()                 /* ~cancel_slot_handler */
}

/* the worker's reply, when the Waiter process makes it */
inline worker_reply() {
  reply();
  replied = 1
}

proctype Waiter() {
  bool p, wg, reg, wasreg, cslot, w, st, slotp, replied;
  byte ast;
#ifdef PLANT_SLOT_READ_EARLY
  slotp = resp_live;            /* async_wait_closed(token) called: slot_ captured now */
#endif
#ifdef DEFERRED_START
  if                            /* the deferred wait may start after the worker answered */
  :: worker_reply()
  :: skip
  fi;
#endif
  /* the operation starts: start_wait_closed(handler, self->slot_) */
#ifndef PLANT_SLOT_READ_EARLY
  slotp = resp_live;            /* the slot is read at initiation */
#endif
  /* new closed_wait (refs 1), new_op<wait_op>, c->op = op */
  d_step { cw_alive = 1; cw_refs = 1; cw_op = 1; wop_alive = 1 };
  if                            /* !slot || slot->waiter_gone() */
  :: !slotp -> wg = 1
  :: slotp -> d_step { TOUCH_OP; wg = waiter_gone }
  fi;
  if
  :: wg -> cw_finish(EC_OK)
  :: !wg ->
     d_step { TOUCH_CW; cw_refs++; cslot = 1 };   /* emplace<closed_wait_cancel> */
     atomic { cw_m == 0 -> TOUCH_CW; cw_slot = 1 };
     d_step { TOUCH_CW; cw_refs++ };              /* the registration's reference */
     /* slot->watch(c) -> call_op::on_watch(add): self->ctl read, then call_fsm::watch:
        the registration claimed in the word (a compare-exchange), the pointer written, then
        `watching` set unless the phase ended meanwhile (already_gone) */
     d_step {
       TOUCH_OP;
       TOUCH_CTL;
       if
       :: phase != P_PENDING -> st = 0
       :: phase == P_PENDING && wclaim -> assert(0)   /* busy: one waiter in this model */
       :: phase == P_PENDING && !wclaim -> wclaim = 1; st = 1
       fi
     };
     if
     :: st ->
        d_step {
          TOUCH_CTL;
          if
          :: phase == P_PENDING -> watching = 1
          :: else -> st = 0
          fi
        }
     :: else -> skip
     fi;
     if
     :: !st -> cw_release(); cw_finish(EC_OK)
     :: else -> skip
     fi
  fi;
  started = 1;
#ifdef REPLY_FIRST
  worker_reply();               /* work() itself answers, then the race ends */
#endif
  if
  :: cslot ->
     if
     :: skip
     :: cancel_wait()           /* the other branch of the race won */
     fi;
     cslot = 0;
     cw_release()               /* ~closed_wait_cancel */
  :: else -> skip
  fi;
#ifndef REPLY_ANY_ORDER
  if
  :: !replied -> worker_reply() /* the worker answers after the race */
  :: else -> skip
  fi
#endif
}

#ifdef REPLY_ANY_ORDER
proctype Replier() {
  bool w, p;
  byte ast;
  started;
  reply()
}
#endif

init {
  atomic {
    run Caller();
    run Waiter();
#ifdef REPLY_ANY_ORDER
    run Replier();
#endif
  };
  _nr_pr == 1;
  assert(runs == 1);
  assert(wruns == 1);
  assert(op_freed && ctl_freed && refs == 0);
  assert(wop_freed && cw_freed && cw_refs == 0);
  assert(!resp_live && !watching && !pinned && !stored);
  assert(mdone == 1)
}
