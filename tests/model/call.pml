/* SPDX-License-Identifier: BSL-1.0 */
/*
 * call.pml -- a service call racing its worker, its own cancellation and the end of the
 * service (Promela model of tenorite's call path; check with spin, see check.sh).
 *
 * Source of truth: include/tenorite/detail/service_state.hpp (service_state::initiate_call,
 * call_op: on_complete, on_signal, unpin, finish, finish_stored),
 * include/tenorite/detail/call_fsm.hpp (the word: answer, pin, unpin, withdraw, give_up),
 * include/tenorite/channel.hpp (send_or_wait, receive_or_wait, withdraw, withdraw_buffered
 * (the overload that returns the accepted sender), accept_one_locked, close (returned /
 * mark_returning), close_for_send, mark_no_senders, fifo::take/drain),
 * include/tenorite/detail/cancellation.hpp (cancel_ctl, cancel_slot_handler -> signal),
 * include/tenorite/request.hpp (responder::send, reset, fail_undelivered, release).
 * Follows the headers as of the commit that made the call's arbitration one atomic word.
 *
 * One Promela step = one critical section under the channel mutex m_ (an atomic block: those
 * sections never block and never take another lock), one compare-exchange on the call's word
 * (ctl->fsm; a d_step: phase[i], pinned[i], parked[i], rdone[i]), or one action outside any
 * lock.  No party ever waits for another on the call itself: there is no per-call lock.
 *
 * Processes and the C++ they mirror
 *   Caller(i)  service_state::initiate_call: new_op<call_op> + op->value = {req, responder(op)}
 *              + cancel_ctl::make/arm (refs = 2, the word pending); channel::send_or_wait
 *              (closed / direct hand-off to the parked receiver / push / park in senders_);
 *              after the lock: r->ready (recv_op::on_ready posts the item to the worker), or
 *              op->on_closed = service_state::return_request -> responder::fail_undelivered ->
 *              call_op::on_complete.  Then, as the caller's executor would, it emits its
 *              cancellation signal 0, 1 or 2 times (cancel_slot_handler::operator() ->
 *              ctl->signal = call_op::on_signal):
 *                0. ctl->fsm.pin(): only a pending call not already pinned; otherwise the
 *                   cancellation does nothing (the call may be gone);
 *                1. channel::withdraw (an m_ section);
 *                2. else channel::withdraw_buffered(pred, refilled) (an m_ section, with
 *                   accept_one_locked; the accepted sender is returned, not told);
 *                   withdrawn by 1 or 2 -> client.release, ctl->fsm.withdraw(),
 *                   refilled->on_accepted (nothing for a call_op), call_op::finish
 *                   (cancelled, with the request);
 *                3. else returned / returning (set under m_ by close(), which withdraw just
 *                   took): the close() drain completes the call with its request -> unpin;
 *                4. else partial -> unpin; terminal -> ctl->fsm.give_up(): an answer parked
 *                   first -> unpin (which completes with it); else, still pinned,
 *                   mark_waiter_gone, handler/executor moved out, call_completed(cancelled),
 *                   (the watch fired: watch.pml's), unpin (free when the responder side came
 *                   meanwhile), complete_on (cancelled, without the request);
 *                unpin = ctl->fsm.unpin(): a parked answer -> finish_stored; after a give-up
 *                   with the responder done -> destroy;
 *              and finally destroys its slot handler (~cancel_slot_handler ->
 *              cancel_ctl::release).  Cancellation is never emitted during initiate_call itself
 *              (Asio: a slot is used on the initiator's executor).
 *   Worker     the worker coroutine: receive_or_wait (take_locked = pop + accept_one_locked, or
 *              park in receivers_, or the end), then for a request: responder::send or
 *              ~responder (reset: fetch_failure) -> call_op::on_complete: ctl->fsm.answer():
 *              complete (finish), park_first (the answer stored in the call, then answer
 *              again: parked / complete_stored / free / leave), free after a give-up
 *              (destroy), leave while the give-up still holds the call; or the task ends
 *              (with or without a request in hand)
 *              -> worker_guard::finish -> service_state::close_and_return_queued =
 *              channel::close: under m_ closed_ = true, slots and senders_.take() (linked =
 *              false); outside the lock every buffered item gets fail_undelivered, every parked
 *              sender on_closed (return_request).
 *   Owner      join_handle::drain (close_for_send) at any time, or not; and, once every caller
 *              initiated, the last caller copy goes (~caller_core -> mark_no_senders).  Both
 *              hand "the end" to a parked receiver when at_end_locked().
 *
 * What is checked (assertions; spin also reports invalid end states = deadlocks and lost
 * wake-ups, e.g. a worker parked forever):
 *   - each call's handler completes exactly once (runs[i] == 1, asserted at every completion
 *     and at the end);
 *   - the call_op is freed exactly once and never touched after (TOUCH_OP at every access of
 *     the op: its fields, its node in the channel, its value);
 *   - its cancel_ctl reaches refcount 0 exactly once and is not touched afterwards
 *     (TOUCH_CTL, release_ctl);
 *   - a withdrawn request is never seen by the worker, and a request the worker saw is never
 *     withdrawn;
 *   - no request is lost: every request the worker did not see goes back to the caller
 *     inside the completion (req_back: withdrawn, refused by a closed queue, or handed back
 *     by close), also when the caller cancels terminally while close() is handing it back
 *     (the library's promise: "an error that carries the request back whenever it was never
 *     delivered"); a give-up therefore only happens for a request the worker has or will
 *     see, and the responder side never drops a request (req_lost);
 *   - with metrics on, service_metrics::call_completed runs exactly once per call (in
 *     call_op::finish, or in the give-up path; the answer after a give-up only frees);
 *   - a parked answer is in the call before anyone can complete with it (finish_stored
 *     asserts stored[i]), and is completed with the kind and request it carried;
 *   - the value in op->value is moved out exactly once (op_has_value), the responder slot is
 *     completed/released exactly once (resp_live);
 *   - at the end nothing is left in the queue, in senders_, in receivers_ or in flight.
 *
 * Why this covers the races that matter: the arbitration between the responder side
 * (on_complete from a reply, a dropped responder or the close hand-back) and the caller side
 * (on_signal) is explored at every interleaving point: before/after the request enters the
 * buffer, while it is parked in senders_, while it is accepted from senders_ into the buffer
 * by the worker's take, while it is in flight to the parked receiver, between close's
 * take() under the lock and its drain outside the lock, between the pin and each m_ section
 * of on_signal, and between the responder's store of a parked answer and its publication.
 * Terminal and partial cancellation, repeated cancellation and the slot handler's release at
 * any time are all covered.
 *
 * -DDEADLINE: call 0 also has a Deadline process, a second emitter of a terminal
 * cancellation into the same slot handler, concurrent with the caller's own (the deadline
 * adapter's signal has two sources: the user's slot and the timer). Checked: a terminal
 * cancellation that found the call pending is acted on (give-up, or the answer wins while
 * it is pinned, or the request is returning): never dropped (tpend, asserted when the
 * answer completes an unpinned call).
 *
 * Sizes: NC calls (default 2), queue capacity CAP (default 1); only calls 0 .. NCANCEL-1
 * (default all) may be cancelled. Without the lock every party runs freely, so the space is
 * larger than the lock-based model's (NC = 2, both cancellable: 62 M states; check.sh runs it
 * with COLLAPSE); the --quick configurations let one call be cancelled.
 *
 * Planted bugs (each must make spin report an error; see check.sh --planted):
 *   PLANT_WITHDRAW_NO_LINKED  channel::withdraw ignores `linked` (takes a node that close or
 *                             the worker's accept_one_locked already unlinked);
 *   PLANT_TAKE_KEEPS_LINKED   fifo::take does not mark the taken nodes unlinked;
 *   PLANT_FREE_ON_GIVE_UP     the give-up path frees the op itself whatever unpin says (the
 *                             responder side then frees it too, or touches it after);
 *   PLANT_NO_GAVE_UP          give_up leaves the phase pending, so the answer completes the
 *                             handler a second time;
 *   PLANT_ANSWER_LOAD_THEN_STORE  answer reads the word, then writes it in a later step (a
 *                             check-then-act instead of one compare-exchange);
 *   PLANT_PARK_BEFORE_STORE   the responder publishes `parked` before the answer is in the
 *                             call (the canceller may complete with nothing, and the late
 *                             store touches a call it freed);
 *   PLANT_UNPIN_IGNORES_PARKED unpin clears the pin without completing a parked answer: the
 *                             call never completes;
 *   PLANT_DROP_CONCURRENT_TERMINAL (with -DDEADLINE) pin() refuses a terminal cancellation
 *                             that finds the call pinned without recording it (the first
 *                             draft of call_fsm; a reviewer found it): a partial cancel then
 *                             unpins and the deadline is lost (tpend asserted at the answer);
 *   PLANT_CANCEL_IGNORES_CLOSE on_signal does not check returning (the C++ before 7e5786a):
 *                             a terminal cancellation between close()'s take and its drain
 *                             gives up, and the drain's send_failure (with the request) is
 *                             dropped by on_complete's gave_up branch;
 *   PLANT_GIVE_UP_NOT_COUNTED the give-up path does not call metrics->call_completed (the C++
 *                             before 7e5786a): a given-up call is never counted.
 */

#ifndef NC
#define NC 2
#endif
#ifndef CAP
#define CAP 1
#endif
#ifndef NCANCEL
#define NCANCEL NC      /* calls 0 .. NCANCEL-1 may be cancelled */
#endif

#define NONE 255
#define END  254

/* send_or_wait outcome */
#define S_SENT   1
#define S_DIRECT 2
#define S_WAIT   3
#define S_CLOSED 4

/* how the call's handler completed */
#define R_REPLY      1
#define R_FETCH      2
#define R_SENDFAIL   3
#define R_CANCEL_REQ 4
#define R_CANCEL     5

#define PARTIAL  0
#define TERMINAL 1

/* call_fsm phases */
#define P_PENDING   0
#define P_ANSWERED  1
#define P_GAVE_UP   2
#define P_WITHDRAWN 3

/* call_fsm::answer_step */
#define A_COMPLETE        1
#define A_PARK_FIRST      2
#define A_PARKED          3
#define A_COMPLETE_STORED 4
#define A_FREE            5
#define A_LEAVE           6

/* call_fsm::unpin_step */
#define U_NONE   0
#define U_PARKED 1
#define U_FREE   2
#define U_RETRY  3

/* ---- channel<request> (guarded by m_) ---- */
byte buf[CAP];          /* buffered items (call ids), oldest first */
byte bsize;
byte snd[NC];           /* senders_ fifo (call ids), oldest first */
byte slen;
bool linked[NC];        /* send_waiter::linked of each call_op */
bool closed, send_closed, no_senders;
bool rlinked;           /* the worker's recv_op is parked in receivers_ (linked) */
byte rdeliv = NONE;     /* recv_op::on_ready posted: item id or END, run on the worker strand */

#define AT_END (closed || ((no_senders || send_closed) && bsize == 0 && slen == 0))

/* ---- per call: call_op, its item, its cancel_ctl ---- */
bool op_alive[NC];
bool op_freed[NC];
bool op_has_value[NC];  /* op->value engaged */
bool handler_moved[NC];
/* ctl->fsm (detail/call_fsm.hpp): the phase and the flags of the call's one atomic word */
byte phase[NC];         /* P_PENDING, P_ANSWERED, P_GAVE_UP, P_WITHDRAWN */
bool pinned[NC];        /* a cancellation is running on the call */
bool parked[NC];        /* phase answered while pinned: the answer lies in the call */
bool rdone[NC];         /* responder_done: gave up, the responder side came while pinned */
bool treq[NC];          /* terminal_requested: a terminal cancellation found the call pinned */
bool tpend[NC];         /* check: a terminal cancellation found the call pending and no
                           canceller has acted on it yet */
bool ddone[NC];         /* the Deadline process has emitted (or chosen not to) */
bool inited[NC];        /* initiate_call returned: cancellation may be emitted */
bool stored[NC];        /* call_op::answer engaged, and what it holds: */
byte skind[NC];
bool sback[NC];
bool returning[NC];     /* reply_slot::mark_returning / send_waiter::returned (under m_) */
bool waiter_gone[NC];
bool resp_live[NC];     /* the item's responder still holds the slot pointer */
byte refs[NC];          /* ctl->refs */
bool ctl_freed[NC];
byte runs[NC];          /* handler completions */
byte result[NC];
bool req_back[NC];      /* the completion carries the request back */
bool req_lost[NC];      /* the request was destroyed without reaching caller or worker */
bool saw[NC];           /* the worker received it */
bool withdrawn[NC];
byte mdone[NC];         /* service_metrics::call_completed calls (metrics on) */
byte initiated;

#define TOUCH_OP(i)  assert(op_alive[i] && !op_freed[i])
#define TOUCH_CTL(i) assert(refs[i] > 0 && !ctl_freed[i])

/* cancel_ctl::release */
inline release_ctl(i) {
  d_step {
    TOUCH_CTL(i);
    refs[i]--;
    if
    :: refs[i] == 0 -> ctl_freed[i] = 1   /* cancel_ctl_cache::put */
    :: else -> skip
    fi
  }
}

/* call_op::destroy: delete_op(this), then c->release() */
inline destroy(i) {
  d_step {                     /* ~call_op destroys a stored answer too */
    TOUCH_OP(i); op_alive[i] = 0; op_freed[i] = 1; stored[i] = 0; skind[i] = 0; sback[i] = 0
  };
  release_ctl(i)
}

inline complete_handler(i, kind, back) {
  d_step {
    runs[i]++;
    assert(runs[i] == 1);
    result[i] = kind;
    req_back[i] = back
  }
}

/* call_op::finish: metrics->call_completed, move the handler out, destroy(), complete_on */
inline finish(i, kind, back) {
  d_step {
    TOUCH_OP(i);
    mdone[i]++;                /* if (metrics) metrics->call_completed(mark, outcome) */
    assert(!handler_moved[i]);
    handler_moved[i] = 1;
    op_alive[i] = 0;
    op_freed[i] = 1
  };
  release_ctl(i);
  complete_handler(i, kind, back)
}

/* call_op::finish_stored: the answer parked in the call, moved out, then finish */
inline finish_stored(i) {
  d_step {
    TOUCH_OP(i);
    assert(stored[i]);         /* PLANT_PARK_BEFORE_STORE: the canceller finds nothing */
    stored[i] = 0;
    fk = skind[i];
    fb = sback[i];
    skind[i] = 0;
    sback[i] = 0
  };
  finish(i, fk, fb);
  d_step { fk = 0; fb = 0 }
}

/* call_fsm::answer(stored): one compare-exchange on the word (one step), or two steps with
   PLANT_ANSWER_LOAD_THEN_STORE (the phase read, then written, as a lock-free check-then-act) */
inline answer_step(i, st_in) {
#ifndef PLANT_ANSWER_LOAD_THEN_STORE
  d_step {
    TOUCH_OP(i);
    TOUCH_CTL(i);
    if
    :: phase[i] == P_PENDING && pinned[i] && !st_in -> ast = A_PARK_FIRST
    :: phase[i] == P_PENDING && pinned[i] && st_in -> phase[i] = P_ANSWERED; parked[i] = 1;
       ast = A_PARKED
    :: phase[i] == P_PENDING && !pinned[i] ->
       assert(!tpend[i] || returning[i]);   /* no terminal cancellation was dropped */
       phase[i] = P_ANSWERED;
       if
       :: st_in -> ast = A_COMPLETE_STORED
       :: else -> ast = A_COMPLETE
       fi
    :: phase[i] == P_GAVE_UP && pinned[i] -> rdone[i] = 1; ast = A_LEAVE
    :: phase[i] == P_GAVE_UP && !pinned[i] -> ast = A_FREE
    :: else -> assert(0)       /* answered twice, or a withdrawn call answered */
    fi
  }
#else
  d_step { TOUCH_OP(i); TOUCH_CTL(i); pp = phase[i]; pn = pinned[i] };
  d_step {
    if
    :: pp == P_PENDING && pn && !st_in -> ast = A_PARK_FIRST
    :: pp == P_PENDING && pn && st_in -> phase[i] = P_ANSWERED; parked[i] = 1; ast = A_PARKED
    :: pp == P_PENDING && !pn -> phase[i] = P_ANSWERED;
       if
       :: st_in -> ast = A_COMPLETE_STORED
       :: else -> ast = A_COMPLETE
       fi
    :: pp == P_GAVE_UP && pn -> rdone[i] = 1; ast = A_LEAVE
    :: pp == P_GAVE_UP && !pn -> ast = A_FREE
    :: else -> assert(0)
    fi;
    pp = 0;
    pn = 0
  }
#endif
}

/* call_op::on_complete (reply_slot::complete): ctl->fsm.answer(false); park_first -> the
   answer stored in the call, then answer(true); then complete / complete_stored / parked
   (touch nothing) / free (destroy) / leave (the canceller frees) */
inline on_complete(i, kind, back) {
  answer_step(i, 0);           /* (reads self->ctl: the op is alive) */
  if
  :: ast == A_PARK_FIRST ->
#ifndef PLANT_PARK_BEFORE_STORE
     d_step { TOUCH_OP(i); assert(!stored[i]); stored[i] = 1; skind[i] = kind; sback[i] = back };
     answer_step(i, 1);
#else
     answer_step(i, 1);        /* parked published before the answer is in the call */
     if
     :: ast != A_PARKED -> d_step { TOUCH_OP(i); stored[i] = 1; skind[i] = kind; sback[i] = back }
     :: else -> skip
     fi;
#endif
  :: else -> skip
  fi;
  if
  :: ast == A_COMPLETE -> finish(i, kind, back)
  :: ast == A_COMPLETE_STORED -> finish_stored(i)
  :: ast == A_PARKED -> skip   /* the canceller completes with it; the call may be gone */
  :: ast == A_FREE ->           /* the caller gave up and is done: free the call, drop r */
     destroy(i);
     if
     :: back -> req_lost[i] = 1
     :: else -> skip
     fi
  :: ast == A_LEAVE ->          /* the caller gave up and still uses the call: it frees it */
     if
     :: back -> req_lost[i] = 1
     :: else -> skip
     fi
  fi;
  ast = 0
}

/* responder::fail_undelivered: exchange(slot_, nullptr)->complete(send_failure(req)) */
inline fail_undelivered(i) {
  d_step { assert(resp_live[i]); resp_live[i] = 0 };
  on_complete(i, R_SENDFAIL, 1)
}

/* fifo::unlink of call i from senders_ (under m_) */
inline unlink_sender(i) {
  k = 0;
  do
  :: k < slen && snd[k] != i -> k++
  :: else -> break
  od;
  assert(k < slen);
  do
  :: k + 1 < slen -> snd[k] = snd[k + 1]; k++
  :: else -> break
  od;
  slen--;
  snd[slen] = 0;
  linked[i] = 0
}

/* channel::accept_one_locked (under m_): a freed slot takes the oldest parked sender's
   value; call_op has no on_accepted, so nobody is told */
inline accept_one_locked() {
  if
  :: bsize < CAP && slen > 0 ->
     s = snd[0];
     k = 0;
     do
     :: k + 1 < slen -> snd[k] = snd[k + 1]; k++
     :: else -> break
     od;
     slen--;
     snd[slen] = 0;
     linked[s] = 0;
     TOUCH_OP(s);
     assert(op_has_value[s]);
     op_has_value[s] = 0;
     buf[bsize] = s;
     bsize++
  :: else -> skip
  fi
}

/* call_op::unpin -> call_fsm::unpin: complete with a parked answer, or free after a give-up
   when the responder side came meanwhile */
inline unpin(i) {
  d_step {
    TOUCH_CTL(i);
    assert(pinned[i]);
    if
#ifndef PLANT_UNPIN_IGNORES_PARKED
    :: phase[i] == P_ANSWERED -> pinned[i] = 0; parked[i] = 0; u = U_PARKED
#endif
    :: phase[i] == P_GAVE_UP && rdone[i] -> pinned[i] = 0; u = U_FREE
    :: phase[i] == P_PENDING && treq[i] -> treq[i] = 0; u = U_RETRY; rt = 1   /* still pinned */
    :: else -> pinned[i] = 0; u = U_NONE
    fi
  };
  if
  :: u == U_PARKED -> finish_stored(i)
  :: u == U_FREE -> destroy(i)
  :: else -> skip
  fi
#ifndef PLANT_FREE_ON_GIVE_UP
  ; u = 0
#endif
}

/* cancel_slot_handler::operator()(type) -> ctl->signal = call_op::on_signal */
inline cancel(i, type) {
  d_step {                     /* ctl->fsm.pin(terminal) */
    cterm = (type == TERMINAL);
    TOUCH_CTL(i);
    if
    :: phase[i] == P_PENDING && !pinned[i] ->
       pinned[i] = 1;
       hasop = 1;
       if
       :: cterm -> tpend[i] = 1
       :: else -> skip
       fi
    :: phase[i] == P_PENDING && pinned[i] && cterm ->   /* another emitter holds the pin */
#ifndef PLANT_DROP_CONCURRENT_TERMINAL
       treq[i] = 1;
#endif
       tpend[i] = 1;
       hasop = 0
    :: else -> hasop = 0
    fi
  };
  if
  :: !hasop -> skip            /* settled: its result is on the way */
  :: else ->
     /* call_op::on_signal, pinned */
     atomic {                  /* channel::withdraw(self) */
       TOUCH_OP(i);
#ifdef PLANT_WITHDRAW_NO_LINKED
       if
       :: linked[i] -> unlink_sender(i)
       :: else -> skip
       fi;
       got = 1;
#else
       if
       :: linked[i] -> unlink_sender(i); got = 1
       :: else -> got = 0
       fi;
#endif
       if
       :: got -> assert(op_has_value[i]); op_has_value[i] = 0   /* std::move(*self->value) */
       :: else -> skip
       fi
     };
     if
     :: !got ->
        atomic {               /* channel::withdraw_buffered(slot() == me, refilled) */
          k = 0;
          do
          :: k < bsize && buf[k] != i -> k++
          :: else -> break
          od;
          if
          :: k < bsize ->
             do
             :: k + 1 < bsize -> buf[k] = buf[k + 1]; k++
             :: else -> break
             od;
             bsize--;
             buf[bsize] = 0;
             got = 1;
             accept_one_locked()
          :: else -> skip
          fi
        }
     :: else -> skip
     fi;
     if
     :: got ->                 /* item->client.release(); ctl->fsm.withdraw(); then */
        d_step {               /* refilled->on_accepted: null for a call_op (no-op) */
          assert(!saw[i]);
          withdrawn[i] = 1;
          assert(resp_live[i]);
          resp_live[i] = 0;
          TOUCH_CTL(i);
          assert(phase[i] == P_PENDING && pinned[i] && !parked[i]);
          phase[i] = P_WITHDRAWN;
          pinned[i] = 0;
          treq[i] = 0;
          tpend[i] = 0         /* acted on: withdrawn */
        };
        finish(i, R_CANCEL_REQ, 1)
     :: !got ->
        /* if (self->returned || self->returning() || !terminal) unpin: the queue's close()
           is handing it back (both flags set under m_, which withdraw just took), or a
           partial cancellation of a delivered call */
#ifndef PLANT_CANCEL_IGNORES_CLOSE
        isret = returning[i];
#else
        isret = 0;
#endif
        do                     /* settle_delivered */
        :: isret || !cterm ->
           if
           :: cterm -> tpend[i] = 0   /* acted on: returning keeps the request */
           :: else -> skip
           fi;
           unpin(i);
           if
           :: rt -> rt = 0; cterm = 1   /* a terminal one came meanwhile */
           :: else -> break
           fi
        :: !isret && cterm -> break
        od;
        if
        :: !isret && cterm ->
           d_step {            /* ctl->fsm.give_up(); on success, still pinned: */
             TOUCH_CTL(i);     /* mark_waiter_gone(), the handler and executor moved out, */
             assert(pinned[i]);  /* metrics->call_completed(mark, cancelled) (this side's */
             if                /* own steps: nobody else reads them, so one step here) */
             :: phase[i] == P_PENDING ->
#ifndef PLANT_NO_GAVE_UP
                phase[i] = P_GAVE_UP;
#endif
                g = 1;
                TOUCH_OP(i);
                waiter_gone[i] = 1;
                assert(!handler_moved[i]);
                handler_moved[i] = 1;
#ifndef PLANT_GIVE_UP_NOT_COUNTED
                mdone[i]++
#else
                skip
#endif
             :: else -> g = 0  /* answered first: parked in the call */
             fi;
             tpend[i] = 0      /* acted on */
           };
           if
           :: !g -> unpin(i)
           :: g ->
              unpin(i);        /* (no watch here: it is watch.pml's) */
#ifdef PLANT_FREE_ON_GIVE_UP
              if
              :: u != U_FREE -> destroy(i)
              :: else -> skip
              fi;
#endif
              complete_handler(i, R_CANCEL, 0)   /* complete_on(ex, cancelled) */
           fi
        :: else -> skip
        fi
     fi
  fi;
  d_step { hasop = 0; got = 0; isret = 0; g = 0; k = 0; cterm = 0 }
}

proctype Caller(byte i) {
  byte st, k, s, ast, fk, pp, u;
  bool got, hasop, isret, g, fb, pn, cterm, rt;

  /* initiate_call: new_op<call_op>, value = {req, responder(op)}, arm cancellation */
  d_step {
    op_alive[i] = 1;
    op_has_value[i] = 1;
    resp_live[i] = 1;
    refs[i] = 2                /* ctl->fsm: pending */
  };
  /* channel::send_or_wait (under m_) */
  atomic {
    TOUCH_OP(i);
    if
    :: closed || send_closed -> st = S_CLOSED
    :: else ->
       if
       :: rlinked ->           /* receivers_.pop_front(); value moved out */
          rlinked = 0;
          op_has_value[i] = 0;
          st = S_DIRECT
       :: else ->
          if
          :: bsize < CAP ->    /* push_locked */
             buf[bsize] = i;
             bsize++;
             op_has_value[i] = 0;
             st = S_SENT
          :: else ->           /* senders_.push_back(node) */
             snd[slen] = i;
             slen++;
             linked[i] = 1;
             st = S_WAIT
          fi
       fi
    fi
  };
  if
  :: st == S_DIRECT ->         /* r->ready(): recv_op::on_ready posts the item to the worker */
     d_step { assert(rdeliv == NONE); rdeliv = i }
  :: st == S_CLOSED ->         /* op->on_closed(op) = return_request */
     d_step { TOUCH_OP(i); assert(op_has_value[i]); op_has_value[i] = 0 };
     fail_undelivered(i)
  :: else -> skip
  fi;
  d_step { initiated++; inited[i] = 1 }   /* initiate_call returned */

  /* the caller's cancellation signal, emitted on the caller's executor */
  if
  :: skip
  :: i < NCANCEL -> cancel(i, TERMINAL)
  :: i < NCANCEL -> cancel(i, PARTIAL)
  :: i < NCANCEL -> cancel(i, PARTIAL); cancel(i, TERMINAL)
  fi;
#ifdef DEADLINE
  ddone[i];                    /* (the Deadline's emit goes through the same slot handler) */
#endif
  release_ctl(i)               /* ~cancel_slot_handler */
}

#ifdef DEADLINE
/* With -DDEADLINE, call 0 also has a deadline: detail::deadline_race emits a terminal
   cancellation from the timer's thread into the same slot handler, concurrently with the
   caller's own emits (Asio forbids two emitters of one signal on two threads; the adapter's
   own signal has two sources, the user's slot and the timer). */
proctype Deadline(byte i) {
  byte k, s, ast, fk, pp, u;
  bool got, hasop, isret, g, fb, pn, cterm, rt;
  inited[i];
  if
  :: skip
  :: cancel(i, TERMINAL)
  fi;
  ddone[i] = 1
}
#endif

/* service_state::close_and_return_queued = channel::close(on_item) */
inline close_and_return_queued() {
  atomic {
    closed = 1;
    k = 0;
    do
    :: k < bsize -> cbuf[k] = buf[k]; returning[buf[k]] = 1; buf[k] = 0; k++  /* mark_returning */
    :: else -> break
    od;
    cbsize = bsize;
    bsize = 0;
    k = 0;
    do                          /* senders_.take(): every node counts as unlinked */
    :: k < slen ->
       csnd[k] = snd[k];
       returning[snd[k]] = 1;   /* n->returned = true */
#ifndef PLANT_TAKE_KEEPS_LINKED
       linked[snd[k]] = 0;
#endif
       snd[k] = 0;
       k++
    :: else -> break
    od;
    cslen = slen;
    slen = 0;
    assert(!rlinked)            /* the worker itself closes: it is not parked */
  };
  j = 0;
  do                            /* on_item: it.client.fail_undelivered(request) */
  :: j < cbsize -> it = cbuf[j]; cbuf[j] = 0; fail_undelivered(it); j++
  :: else -> break
  od;
  j = 0;
  do                            /* senders.drain: on_closed = return_request */
  :: j < cslen ->
     it = csnd[j];
     csnd[j] = 0;
     d_step { TOUCH_OP(it); assert(op_has_value[it]); op_has_value[it] = 0 };
     fail_undelivered(it);
     j++
  :: else -> break
  od;
  cbsize = 0;
  cslen = 0
}

proctype Worker() {
  byte it, k, s, j, ast, fk, pp;
  byte cbuf[CAP], cbsize, csnd[NC], cslen;
  bool ended, early, fb, pn;

  do
  :: ended -> break
  :: !ended ->
     atomic {                   /* receive_or_wait (under m_) */
       if
       :: bsize > 0 ->          /* take_locked: pop_locked + accept_one_locked */
          it = buf[0];
          k = 0;
          do
          :: k + 1 < bsize -> buf[k] = buf[k + 1]; k++
          :: else -> break
          od;
          bsize--;
          buf[bsize] = 0;
          accept_one_locked()
       :: bsize == 0 && AT_END -> it = END
       :: bsize == 0 && !AT_END -> rlinked = 1; it = NONE   /* receivers_.push_back */
       fi
     };
     if
     :: it == NONE ->           /* parked: the posted on_ready completion runs on the strand */
        atomic { rdeliv != NONE -> it = rdeliv; rdeliv = NONE }
     :: else -> skip
     fi;
     if
     :: it == END ->            /* recv() yields the end: the task returns */
        close_and_return_queued();
        ended = 1
     :: it != END ->
        d_step { assert(!withdrawn[it]); saw[it] = 1 };
        if
        :: d_step { assert(resp_live[it]); resp_live[it] = 0 };  /* responder::send */
           on_complete(it, R_REPLY, 0)
        :: d_step { assert(resp_live[it]); resp_live[it] = 0 };  /* ~responder: reset() */
           on_complete(it, R_FETCH, 0)
        :: !early ->            /* the task returns holding it: ~responder, then finish */
           early = 1;
           d_step { assert(resp_live[it]); resp_live[it] = 0 };
           on_complete(it, R_FETCH, 0);
           close_and_return_queued();
           ended = 1
        fi
     fi
  :: !ended && !early ->        /* the task returns between two receives */
     early = 1;
     close_and_return_queued();
     ended = 1
  od
}

proctype Owner() {
  bool tookr;
  if
  :: skip
  :: atomic {                   /* join_handle::drain -> channel::close_for_send */
       send_closed = 1;
       if
       :: AT_END && rlinked -> rlinked = 0; tookr = 1
       :: else -> tookr = 0
       fi
     };
     if
     :: tookr -> d_step { assert(rdeliv == NONE); rdeliv = END }
     :: else -> skip
     fi
  fi;
  initiated == NC;              /* the last caller copy goes: ~caller_core */
  atomic {                      /* channel::mark_no_senders */
    no_senders = 1;
    if
    :: AT_END && rlinked -> rlinked = 0; tookr = 1
    :: else -> tookr = 0
    fi
  };
  if
  :: tookr -> d_step { assert(rdeliv == NONE); rdeliv = END }
  :: else -> skip
  fi
}

init {
  byte i;
  atomic {
    run Worker();
    run Owner();
    for (i : 0 .. NC - 1) {
#ifdef DEADLINE
      ddone[i] = (i != 0);
#else
      ddone[i] = 1;
#endif
      run Caller(i)
    }
#ifdef DEADLINE
    ; run Deadline(0)
#endif
  };
  _nr_pr == 1;                  /* every party has finished */
  for (i : 0 .. NC - 1) {
    assert(runs[i] == 1);
    assert(op_freed[i] && !op_alive[i]);
    assert(refs[i] == 0 && ctl_freed[i]);
    assert(!resp_live[i] && !op_has_value[i]);
    assert(!(saw[i] && withdrawn[i]));
    assert(!req_lost[i]);              /* no request is dropped by the responder side */
    assert(saw[i] || req_back[i]);     /* never delivered -> the error carries it back */
    assert(mdone[i] == 1);             /* call_completed once per call */
  }
  assert(bsize == 0 && slen == 0 && !rlinked && rdeliv == NONE)
}
