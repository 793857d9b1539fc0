/* SPDX-License-Identifier: BSL-1.0 */
/*
 * recv.pml -- a parked, cancellable receive racing an arriving item, the end of the stream
 * and its own cancellation, including the late cancellation whose item must go back to the
 * front of the queue (Promela model of tenorite's receive path; check with spin).
 *
 * Source of truth: include/tenorite/channel.hpp (send_or_wait, send_blocking,
 * receive_or_wait, take_locked / accept_one_locked, withdraw_receiver, give_back,
 * mark_no_senders, close, recv_op::on_ready / on_cancel / free, initiate_receive) and
 * include/tenorite/detail/cancellation.hpp (cancel_ctl, cancel_slot_handler,
 * arm_cancellation, settle, late_cancel_watch).  Follows the headers as of commit 7e5786a
 * (its changes to channel.hpp on this path are comments; withdraw_buffered is call.pml's).
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
 *            With -DNW=2 two such workers share the channel (a service pool,
 *            service_options::workers): receivers_ is then a real FIFO and give_back may hand
 *            the item straight to the other, parked, worker (r->ready).
 *   Closer   (with -DWITH_CLOSE) channel::close at any time: under m_ closed_, the buffer,
 *            senders_.take(), receivers_.take(); outside the lock on_item for every buffered
 *            item (handed back to the owner), on_closed for the parked sender, the end for
 *            the parked receiver.
 *   recv_op::on_ready runs in whichever process hands the receive its result (the sender, the
 *   closer, mark_no_senders, or the worker itself after a withdrawn cancellation): settle
 *   (ctl->m), late_cancel_watch (adopting the op's reference when it carries an item), free
 *   (delete op, release unless adopted),
 *   then complete_on posts the lambda to the worker's strand.
 *
 * What is checked
 *   - no item is lost or duplicated: each item 1..K ends exactly once in the worker's handler
 *     (of a receive that won its race) or, with WITH_CLOSE, handed back by close (on_item or
 *     the sender's on_closed); a receive whose cancellation was emitted never delivers an
 *     item to its handler (that item would be dropped by the group);
 *   - order is kept: the worker's handler sees items in strictly increasing order, and without
 *     close exactly 1..K (with one worker; a pool has no order across workers, and a
 *     given-back item may reach a worker after a later one, as receiver.hpp documents since
 *     7e5786a: -DPOOL_ORDER checks per-worker order and fails, check.sh --known);
 *   - every recv_op is freed exactly once and never touched after (TOUCH_OP); every
 *     cancel_ctl reaches refcount 0 exactly once (slot handler, op, late_cancel_watch) and is
 *     never touched after (TOUCH_CTL) -- the real block is recycled by cancel_ctl_cache, so
 *     each receive gets its own generation r here;
 *   - no deadlock / lost wake-up: spin's invalid-end-state check (the worker parked forever,
 *     a sender waiting on its flag forever, a completion never posted).
 *   With -DSTRICT_GIVE_BACK (and WITH_CLOSE) the model also requires that a cancelled
 *   receive never takes an item with it, even when the channel is closed between the
 *   hand-off and the give-back.  It fails: a documented limitation (recv_op::on_ready's
 *   comment since 7e5786a: the handler then gets the item; a service closes its queue only
 *   after its worker ended), reproduced by check.sh --known.  Without STRICT_GIVE_BACK
 *   exactly that case is tolerated (lost_closed) and everything else is asserted.
 *
 * Planted bugs (check.sh --planted):
 *   PLANT_NO_LATE        on_cancel does not set `late` when withdraw_receiver fails;
 *   PLANT_NO_SETTLE      on_ready does not settle (ctl->op stays set after the op is freed);
 *   PLANT_GIVE_BACK_TAIL give_back appends the item at the back instead of the front;
 *   PLANT_WATCH_NO_REF   free() releases the op's reference although the watch adopted it.
 */

#ifndef K
#define K 3             /* items sent */
#endif
#ifndef CAP
#define CAP 1
#endif
#ifndef NCAN
#define NCAN 2          /* cancellations emitted in a run (all workers together) */
#endif
#ifndef NW
#define NW 1            /* workers receiving from the channel (a pool when > 1) */
#endif
#define MAXR (K + NCAN + 2)   /* receive operations of one worker in a run */
#define NR (NW * MAXR)        /* generations: worker w uses w*MAXR .. w*MAXR + MAXR-1 */
#define OWNER(r) ((r) / MAXR)
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
byte rq[NW];            /* receivers_: parked recv_ops (generations), oldest first */
byte rlen;
bool rlinked[NR];       /* recv_waiter::linked */

#define AT_END (closed || (no_senders && bsize == 0 && !slinked))

/* ---- recv_op and cancel_ctl, one generation per receive ---- */
bool op_alive[NR];
bool op_freed[NR];
bool armed[NR];         /* op->ctl set (parked receive with a cancellation slot) */
bool ctl_op[NR];        /* ctl->op == op */
byte ctl_m[NR];
byte refs[NR];
bool ctl_freed[NR];
bool late[NR];

/* ---- the completion posted to each worker's strand ---- */
bool pend[NW];
byte pend_v[NW];        /* 0: empty optional */
byte pend_ec[NW];
bool pend_watch[NW];
byte pend_r[NW];

/* ---- bookkeeping ---- */
byte got[K + 1];        /* delivered to a worker's handler */
byte returned[K + 1];   /* handed back by close (on_item / on_closed / send closed) */
byte lost_closed[K + 1];/* given to a cancelled receive because give_back found it closed */
byte last[NW];          /* last item each worker's handler saw */
byte glast;             /* last item any worker's handler saw */
byte ncan;              /* cancellations emitted so far */
bool cancelled_recv_kept_item;

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

/* fifo::pop_front of receivers_ (under m_) */
inline rq_pop(out) {
  out = rq[0];
  k = 0;
  do
  :: k + 1 < rlen -> rq[k] = rq[k + 1]; k++
  :: else -> break
  od;
  rlen--;
  rq[rlen] = 0;
  rlinked[out] = 0
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
  /* late_cancel_watch watch(v ? exchange(self->ctl, nullptr) : nullptr, adopt): with an
   * item the watch takes over the operation's reference (so it is released where the
   * completion runs) */
  if
  :: armed[r] && v != 0 -> pw = 1
  :: else -> pw = 0
  fi;
  /* h, ex moved out; free(self): delete_op(self); c->release() unless the watch adopted it */
  d_step { TOUCH_OP(r); op_alive[r] = 0; op_freed[r] = 1 };
  if
  :: armed[r] && !pw -> release_ctl(r)
#ifdef PLANT_WATCH_NO_REF
  :: armed[r] && pw -> release_ctl(r)  /* released although the watch adopted it */
#endif
  :: else -> skip
  fi;
  /* complete_on: the lambda is posted to the strand of the worker that owns r */
  d_step {
    assert(!pend[OWNER(r)]);
    pend[OWNER(r)] = 1;
    pend_v[OWNER(r)] = v;
    pend_ec[OWNER(r)] = ec;
    pend_watch[OWNER(r)] = pw;
    pend_r[OWNER(r)] = r
  }
}

/* hands "the end" to every receiver taken from receivers_ (tr[0 .. tn-1]) */
inline end_taken_receivers() {
  j = 0;
  do
  :: j < tn -> r = tr[j]; tr[j] = 0; on_ready(r, EC_OK, 0); j++
  :: else -> break
  od;
  tn = 0
}

/* receivers_.take() (under m_) */
inline take_receivers() {
  tn = 0;
  do
  :: rlen > 0 -> rq_pop(r); tr[tn] = r; tn++
  :: else -> break
  od
}

proctype Sender() {
  byte v = 1, st, r, pw, k, j, tn;
  byte tr[NW];
  do
  :: v > K -> break
  :: v <= K ->
     atomic {                   /* channel::send_or_wait (under m_) */
       if
       :: closed -> st = 4
       :: !closed && rlen > 0 -> rq_pop(r); st = 2           /* receivers_.pop_front */
       :: !closed && rlen == 0 && bsize < CAP -> buf[bsize] = v; bsize++; st = 1
       :: !closed && rlen == 0 && bsize >= CAP -> slinked = 1; sval = v; sflag = 0; st = 3
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
    :: AT_END -> take_receivers()
    :: else -> tn = 0
    fi
  };
  end_taken_receivers()         /* the end of the stream */
}

#ifdef WITH_CLOSE
proctype Closer() {
  byte cbuf[BUFMAX], cbsize, k, j, r, pw, tn;
  byte tr[NW];
  bool tooks;
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
    take_receivers()            /* receivers_.take() */
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
  end_taken_receivers()         /* r->ready(r, {}, nullopt) */
}
#endif

/* the worker's handler receives item v (its receive won its race) */
inline handle_item(v) {
  d_step {
#if NW == 1 || defined(POOL_ORDER)
    assert(v > last[w]);
#endif
    last[w] = v;
    if
    :: v > glast -> glast = v
    :: else -> skip
    fi;
    got[v]++
  }
}

proctype Worker(byte w) {
  byte r, v, ec, k, j, pw, gr;
  bool done, parked, refilled, cancelled, slot, hasop, wd, lw, req, gb, direct;

  r = w * MAXR;
  do
  :: done -> break
  :: !done ->
     assert(r < (w + 1) * MAXR);
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
          rq[rlen] = r;
          rlen++;
          rlinked[r] = 1;
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
        :: v != 0 -> handle_item(v)
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
                :: rlinked[r] ->
                   k = 0;
                   do
                   :: rq[k] != r -> k++
                   :: else -> break
                   od;
                   do
                   :: k + 1 < rlen -> rq[k] = rq[k + 1]; k++
                   :: else -> break
                   od;
                   rlen--;
                   rq[rlen] = 0;
                   rlinked[r] = 0;
                   wd = 1
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
        :: atomic { pend[w] ->  /* the posted completion runs on this worker's strand */
             assert(pend_r[w] == r);
             v = pend_v[w]; ec = pend_ec[w]; lw = pend_watch[w];
             pend[w] = 0; pend_v[w] = 0; pend_ec[w] = 0; pend_watch[w] = 0; pend_r[w] = 0 };
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
                :: !closed && bsize == 0 && rlen > 0 -> rq_pop(gr); direct = 1; gb = 1
                :: !closed && !(bsize == 0 && rlen > 0) ->
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
              if                /* r->ready(r, {}, v): the oldest parked receiver gets it */
              :: direct -> direct = 0; on_ready(gr, EC_OK, v); gr = 0
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
              :: v != 0 ->         /* the cancelled receive took an item with it */
                 cancelled_recv_kept_item = 1;
#ifdef STRICT_GIVE_BACK
                 assert(!cancelled_recv_kept_item);
#endif
                 /* tolerated only when give_back found the channel closed (README) */
                 assert(req && !gb && closed);
                 lost_closed[v]++
              :: else -> skip
              fi
           :: !cancelled ->
              assert(ec == EC_OK);
              if
              :: v != 0 -> handle_item(v)
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
    for (i : 0 .. NW - 1) {
      run Worker(i)
    };
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
  for (i : 0 .. NR - 1) {
    assert(!op_alive[i]);
    assert(!armed[i] || (ctl_freed[i] && refs[i] == 0))
  }
  for (i : 0 .. NW - 1) {
    assert(!pend[i])
  }
  assert(rlen == 0 && (!slinked && bsize == 0 || closed))
}
