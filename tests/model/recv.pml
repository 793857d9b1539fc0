/*
 * recv.pml -- a parked, cancellable receive racing an arriving item, the end of the stream
 * and its own cancellation, including the late cancellation whose item must go back to the
 * front of the queue (Promela model of tenorite's receive path; check with spin).
 *
 * Source of truth: include/tenorite/channel.hpp (send_or_wait, send_blocking,
 * receive_or_wait, take_locked / accept_one_locked, withdraw_receiver, give_back,
 * mark_no_senders, close, recv_op::on_ready / on_cancel / free, initiate_receive) and
 * include/tenorite/detail/cancellation.hpp (cancel_ctl, cancel_slot_handler,
 * arm_cancellation, settle, late_cancel_watch).
 *
 * One Promela step = one critical section under the channel mutex m_ (an atomic block) or
 * one action outside any lock; cancel_ctl::m is a lock variable (ctl_m[r]) because
 * recv_op::on_cancel holds it across withdraw_receiver (an m_ section).
 *
 * Processes and the C++ they mirror
 *   Sender   send_blocking for items 1..K in order: send_or_wait (closed / hand the value to
 *            the parked receiver: receivers_.pop_front, then outside the lock r->ready =
 *            recv_op::on_ready / push_locked / park its send_waiter and wait on its
 *            wake_flag); then ~caller: mark_no_senders (hands "the end" to a parked receiver
 *            when at_end_locked).
 *   Worker   the worker coroutine on its strand, looping `recv() || timer`:
 *            initiate_receive -> receive_or_wait (take_locked: pop + accept_one_locked, the
 *            accepted sender is told after unlocking (on_accepted); or the end; or on_park =
 *            arm_cancellation (cancel_ctl refs = 2, ctl->op = op) + receivers_.push_back).
 *            While parked, everything that runs on the strand is explored in any order
 *            against the other threads: the cancellation signal (the timer won:
 *            cancel_slot_handler -> recv_op::on_cancel: withdraw_receiver, then on_ready(
 *            operation_aborted) or, if an item is already on its way, late = true), the
 *            destruction of the slot handler (cancel_ctl::release), and the posted completion
 *            (the lambda of recv_op::on_ready: late_cancel_watch::requested() && v &&
 *            give_back(v) -> operation_aborted; then the handler; then ~late_cancel_watch).
 *            A receive whose cancellation was emitted lost the race: its group discards its
 *            result, so an item delivered to it would be lost.
 *   Closer   (with -DWITH_CLOSE) channel::close at any time: under m_ closed_, the buffer,
 *            senders_.take(), receivers_.take(); outside the lock on_item for every buffered
 *            item (handed back to the owner), on_closed for the parked sender, the end for
 *            the parked receiver.
 *   recv_op::on_ready runs in whichever process hands the receive its result (the sender, the
 *   closer, mark_no_senders, or the worker itself after a withdrawn cancellation): settle
 *   (ctl->m), late_cancel_watch (refs + 1 when it carries an item), free (delete op, release),
 *   then complete_on posts the lambda to the worker's strand.
 *
 * What is checked
 *   - no item is lost or duplicated: each item 1..K ends exactly once in the worker's handler
 *     (of a receive that won its race) or, with WITH_CLOSE, handed back by close (on_item or
 *     the sender's on_closed); a receive whose cancellation was emitted never delivers an
 *     item to its handler (that item would be dropped by the group);
 *   - order is kept: the worker's handler sees items in strictly increasing order, and without
 *     close exactly 1..K;
 *   - every recv_op is freed exactly once and never touched after (TOUCH_OP); every
 *     cancel_ctl reaches refcount 0 exactly once (slot handler, op, late_cancel_watch) and is
 *     never touched after (TOUCH_CTL) -- the real block is recycled by cancel_ctl_cache, so
 *     each receive gets its own generation r here;
 *   - no deadlock / lost wake-up: spin's invalid-end-state check (the worker parked forever,
 *     a sender waiting on its flag forever, a completion never posted).
 *   With -DSTRICT_GIVE_BACK (and WITH_CLOSE) the model also checks the comment on recv_op
 *   ("a cancelled receive never takes an item with it") when the channel is closed between
 *   the hand-off and the give-back: see the README, it fails.
 *
 * Planted bugs (check.sh --planted):
 *   PLANT_NO_LATE        on_cancel does not set `late` when withdraw_receiver fails;
 *   PLANT_NO_SETTLE      on_ready does not settle (ctl->op stays set after the op is freed);
 *   PLANT_GIVE_BACK_TAIL give_back appends the item at the back instead of the front;
 *   PLANT_WATCH_NO_REF   late_cancel_watch does not take its own reference on the ctl.
 */

#ifndef K
#define K 3             /* items sent */
#endif
#ifndef CAP
#define CAP 1
#endif
#ifndef NCAN
#define NCAN 2          /* cancellations emitted in a run */
#endif
#define MAXR (K + NCAN + 2)   /* receive operations in a run */
#define BUFMAX (K)            /* give_back may go above the capacity */

#define EC_OK 0
#define EC_ABORTED 1

/* ---- channel<int> (guarded by m_) ---- */
byte buf[BUFMAX];
byte bsize;
bool slinked;           /* the sender's send_waiter is parked in senders_ */
byte sval;              /* its value */
byte sflag;             /* its wake_flag: 0 not set, 1 accepted, 2 closed */
bool closed, no_senders;
bool rlinked;           /* a recv_op is parked in receivers_ */
byte rop;               /* which one */

#define AT_END (closed || (no_senders && bsize == 0 && !slinked))

/* ---- recv_op and cancel_ctl, one generation per receive ---- */
bool op_alive[MAXR];
bool op_freed[MAXR];
bool armed[MAXR];       /* op->ctl set (parked receive with a cancellation slot) */
bool ctl_op[MAXR];      /* ctl->op == op */
byte ctl_m[MAXR];
byte refs[MAXR];
bool ctl_freed[MAXR];
bool late[MAXR];

/* ---- the completion posted to the worker's strand ---- */
bool pend;
byte pend_v;            /* 0: empty optional */
byte pend_ec;
bool pend_watch;
byte pend_r;

/* ---- bookkeeping ---- */
byte got[K + 1];        /* delivered to the worker's handler */
byte returned[K + 1];   /* handed back by close (on_item / on_closed / send closed) */
byte lost_closed[K + 1];/* given to a cancelled receive because give_back found it closed */
byte last;              /* last item the worker's handler saw */
bool sender_done;

#define TOUCH_OP(r)  assert(op_alive[r] && !op_freed[r])
#define TOUCH_CTL(r) assert(refs[r] > 0 && !ctl_freed[r])

inline release_ctl(r) {
  d_step {
    TOUCH_CTL(r);
    refs[r]--;
    if
    :: refs[r] == 0 -> ctl_freed[r] = 1
    :: else -> skip
    fi
  }
}

/* recv_op::on_ready(n, ec, v), run by whoever hands the receive its result */
inline on_ready(r, ec, v) {
  /* settle(self->ctl): under ctl->m, ctl->op = nullptr */
  if
  :: armed[r] ->
#ifndef PLANT_NO_SETTLE
     atomic { ctl_m[r] == 0 -> TOUCH_OP(r); TOUCH_CTL(r); ctl_op[r] = 0 }
#else
     TOUCH_OP(r)
#endif
  :: else -> TOUCH_OP(r)
  fi;
  /* late_cancel_watch watch(v ? self->ctl : nullptr) */
  if
  :: armed[r] && v != 0 ->
#ifndef PLANT_WATCH_NO_REF
     d_step { TOUCH_CTL(r); refs[r]++ };
#endif
     pw = 1
  :: else -> pw = 0
  fi;
  /* h, ex moved out; free(self): delete_op(self); c->release() */
  d_step { TOUCH_OP(r); op_alive[r] = 0; op_freed[r] = 1 };
  if
  :: armed[r] -> release_ctl(r)
  :: else -> skip
  fi;
  /* complete_on: the lambda is posted to the worker's strand */
  d_step {
    assert(!pend);
    pend = 1;
    pend_v = v;
    pend_ec = ec;
    pend_watch = pw;
    pend_r = r
  }
}

proctype Sender() {
  byte v = 1, st, r, pw;
  bool tookr;
  do
  :: v > K -> break
  :: v <= K ->
     atomic {                   /* channel::send_or_wait (under m_) */
       if
       :: closed -> st = 4
       :: !closed && rlinked -> rlinked = 0; r = rop; st = 2   /* receivers_.pop_front */
       :: !closed && !rlinked && bsize < CAP -> buf[bsize] = v; bsize++; st = 1
       :: !closed && !rlinked && bsize >= CAP -> slinked = 1; sval = v; sflag = 0; st = 3
       fi
     };
     if
     :: st == 2 -> on_ready(r, EC_OK, v)        /* r->ready(r, {}, v) outside the lock */
     :: st == 3 ->              /* n.flag.wait(); accepted, or the value comes back */
        atomic {
          sflag != 0 ->
          if
          :: sflag == 2 -> returned[v]++
          :: else -> skip
          fi;
          sflag = 0
        }
     :: st == 4 -> returned[v]++                /* closed: value returned */
     :: st == 1 -> skip
     fi;
     st = 0;
     r = 0;
     v++
  od;
  atomic {                      /* ~caller_core -> channel::mark_no_senders */
    no_senders = 1;
    if
    :: AT_END && rlinked -> rlinked = 0; r = rop; tookr = 1
    :: else -> tookr = 0
    fi
  };
  if
  :: tookr -> on_ready(r, EC_OK, 0)             /* the end of the stream */
  :: else -> skip
  fi;
  sender_done = 1
}

#ifdef WITH_CLOSE
proctype Closer() {
  byte cbuf[BUFMAX], cbsize, k, r, pw;
  bool tooks, tookr;
  atomic {                      /* channel::close (under m_) */
    closed = 1;
    k = 0;
    do
    :: k < bsize -> cbuf[k] = buf[k]; buf[k] = 0; k++
    :: else -> break
    od;
    cbsize = bsize;
    bsize = 0;
    tooks = slinked;            /* senders_.take() */
    slinked = 0;
    tookr = rlinked;            /* receivers_.take() */
    r = rop;
    rlinked = 0
  };
  k = 0;
  do                            /* on_item(item): handed back to the owner */
  :: k < cbsize -> returned[cbuf[k]]++; cbuf[k] = 0; k++
  :: else -> break
  od;
  if                            /* on_closed(sender): its value stays with it */
  :: tooks -> sflag = 2
  :: else -> skip
  fi;
  if                            /* r->ready(r, {}, nullopt) */
  :: tookr -> on_ready(r, EC_OK, 0)
  :: else -> skip
  fi
}
#endif

proctype Worker() {
  byte r, v, ec, k, pw, ncan, gr;
  bool done, parked, refilled, cancelled, slot, hasop, wd, lw, req, gb, direct;

  do
  :: done -> break
  :: !done ->
     assert(r < MAXR);
     op_alive[r] = 1;           /* initiate_receive: new_op<recv_op> */
     atomic {                   /* receive_or_wait (under m_) */
       if
       :: bsize > 0 ->          /* take_locked = pop_locked + accept_one_locked */
          v = buf[0];
          k = 0;
          do
          :: k + 1 < bsize -> buf[k] = buf[k + 1]; k++
          :: else -> break
          od;
          bsize--;
          buf[bsize] = 0;
          if
          :: slinked && bsize < CAP -> buf[bsize] = sval; bsize++; slinked = 0; refilled = 1
          :: else -> refilled = 0
          fi;
          parked = 0
       :: bsize == 0 && AT_END -> v = 0; parked = 0
       :: bsize == 0 && !AT_END ->   /* on_park = arm_cancellation, then push_back */
          armed[r] = 1;
          refs[r] = 2;
          ctl_op[r] = 1;
          slot = 1;
          rlinked = 1;
          rop = r;
          parked = 1
       fi
     };
     if
     :: !parked ->
        if                      /* refilled->on_accepted(refilled): the sender's flag */
        :: refilled -> sflag = 1; refilled = 0
        :: else -> skip
        fi;
        /* node->ready(node, {}, v) at once: no ctl, handler resumed inline */
        d_step { TOUCH_OP(r); op_alive[r] = 0; op_freed[r] = 1 };
        if
        :: v != 0 -> d_step { assert(v > last); last = v; got[v]++ }
        :: else -> done = 1
        fi
     :: parked ->
        cancelled = 0;
        do
        :: slot && !cancelled && ncan < NCAN ->
           /* the other branch won: cancel_slot_handler::operator() */
           ncan++;
           cancelled = 1;
           atomic { ctl_m[r] == 0 -> TOUCH_CTL(r); ctl_m[r] = _pid + 1; hasop = ctl_op[r] };
           if
           :: !hasop -> d_step { late[r] = 1; ctl_m[r] = 0 }
           :: hasop ->          /* recv_op::on_cancel */
              atomic {          /* chan->withdraw_receiver(self) */
                TOUCH_OP(r);
                if
                :: rlinked && rop == r -> rlinked = 0; wd = 1
                :: else -> wd = 0
                fi
              };
              if
              :: !wd ->         /* an item or the end is on its way */
                 d_step {
                   TOUCH_OP(r);
#ifndef PLANT_NO_LATE
                   late[r] = 1;
#endif
                   ctl_m[r] = 0
                 }
              :: wd ->
                 d_step { TOUCH_OP(r); ctl_op[r] = 0; ctl_m[r] = 0 };
                 on_ready(r, EC_ABORTED, 0)
              fi
           fi
        :: slot ->              /* ~cancel_slot_handler */
           slot = 0;
           release_ctl(r)
        :: atomic { pend && pend_r == r ->   /* the posted completion runs */
             v = pend_v; ec = pend_ec; lw = pend_watch;
             pend = 0; pend_v = 0; pend_ec = 0; pend_watch = 0; pend_r = 0 };
           /* watch.requested() && v && ch->give_back(*v) */
           if
           :: lw -> d_step { TOUCH_CTL(r); req = late[r] }
           :: else -> req = 0
           fi;
           gb = 0;
           if
           :: req && v != 0 ->
              atomic {          /* channel::give_back (under m_) */
                if
                :: closed -> gb = 0
                :: !closed && bsize == 0 && rlinked -> rlinked = 0; gr = rop; direct = 1; gb = 1
                :: !closed && !(bsize == 0 && rlinked) ->
#ifndef PLANT_GIVE_BACK_TAIL
                   k = bsize;
                   do
                   :: k > 0 -> buf[k] = buf[k - 1]; k--
                   :: else -> break
                   od;
                   buf[0] = v;
#else
                   buf[bsize] = v;
#endif
                   bsize++;
                   gb = 1
                fi
              };
              if
              :: direct -> direct = 0; assert(0)  /* a second receiver: not in an MPSC service */
              :: else -> skip
              fi;
              if
              :: gb -> v = 0; ec = EC_ABORTED
              :: else -> skip
              fi
           :: else -> skip
           fi;
           /* std::move(h)(ec, v) */
           if
           :: cancelled ->      /* the group already has its winner: this result is dropped */
              if
              :: v != 0 ->
#ifdef STRICT_GIVE_BACK
                 assert(0);
#endif
                 assert(req && !gb && closed);   /* only when give_back found it closed */
                 lost_closed[v]++
              :: else -> skip
              fi
           :: !cancelled ->
              assert(ec == EC_OK);
              if
              :: v != 0 -> d_step { assert(v > last); last = v; got[v]++ }
              :: else -> done = 1
              fi
           fi;
           if                   /* ~late_cancel_watch */
           :: lw -> release_ctl(r)
           :: else -> skip
           fi;
           break
        od;
        if                      /* the slot handler goes with the finished operation */
        :: slot -> slot = 0; release_ctl(r)
        :: else -> skip
        fi
     fi;
     v = 0; ec = 0; lw = 0; req = 0; gb = 0; wd = 0; hasop = 0; cancelled = 0; parked = 0;
     r++
  od
}

init {
  byte i;
  atomic {
    run Worker();
    run Sender();
#ifdef WITH_CLOSE
    run Closer();
#endif
  };
  _nr_pr == 1;
  for (i : 1 .. K) {
    assert(got[i] + returned[i] + lost_closed[i] == 1);
#ifndef WITH_CLOSE
    assert(got[i] == 1);
#endif
  }
  for (i : 0 .. MAXR - 1) {
    assert(!op_alive[i]);
    assert(!armed[i] || (ctl_freed[i] && refs[i] == 0))
  }
  assert(!pend && !rlinked && !slinked && bsize == 0 || closed)
}
