/* SPDX-License-Identifier: BSL-1.0 */
/*
 * reserve.pml -- the channel's slot accounting: reservations (permits), senders waiting for
 * room and receivers waiting for items, with one worker or a pool (Promela model of
 * tenorite's queue; check with spin).
 *
 * Source of truth: include/tenorite/channel.hpp (send_or_wait, reserve_or_wait,
 * send_reserved, release_reservation, receive_or_wait, take_locked / accept_one_locked,
 * refill_locked / refill::run, mark_no_senders) and include/tenorite/detail/slots.hpp
 * (slot_ledger: has_room, try_reserve, commit, release, wait, grant — the one place that
 * picks who gets a freed slot, called by accept_one_locked and refill_locked; the model's
 * reserved / slen are its counters).  Follows the headers as of the commit that added this
 * model (the fix of the hang below); the split of the queue into slot_ledger and ring
 * (2026-12-03) moved that code without changing a step.
 *
 * Why: a permit's slot counts against the capacity while the buffer is empty, so a receiver
 * may wait (empty buffer) while a sender waits (no room).  The slot then frees in two ways
 * that no receive sees: the permit's request skips the buffer (handed straight to the
 * waiting receiver), or the permit is dropped.  Before the fix the first left the sender
 * waiting beside a free slot, and the second put the sender's request into the buffer while
 * the receiver slept (the stress test's hang in CI: calls through permits and plain calls
 * to a pool, at the end of a run).  call.pml and recv.pml have no reservations.
 *
 * One Promela step = one critical section under the channel mutex m_ (an atomic block) or
 * one action outside any lock (the callbacks: r->ready hands an item or the end to a waiting
 * receive, on_accepted tells a waiting sender or reservation).
 *
 * Processes
 *   Sender(j)  a call: send_or_wait (hand to the oldest waiting receiver / push / park),
 *              then waits until accepted.  Its request is value j + 1.
 *   Holder(i)  a permit: reserve_or_wait (reserve / park a reservation node until granted),
 *              then either send_reserved (value NS + i + 1) or release_reservation.
 *   Worker(w)  the worker's loop: receive_or_wait (take_locked = pop + accept_one_locked /
 *              the end / park), then handles what it got; ends at the end of the stream.
 *   Owner      the last caller copy goes once every sender and holder is done:
 *              mark_no_senders (the end to every waiting receiver when at_end_locked).
 *
 * What is checked
 *   - every request is received exactly once (got[v] == 1 at the end);
 *   - after every critical section: no receiver waits while an item is buffered, or while a
 *     waiting sender could take a free slot (the invariants at the top of channel.hpp);
 *   - accept_one_locked (the single-slot refill of take / withdraw_buffered) only runs when
 *     no receiver can be waiting;
 *   - no hang: spin's invalid-end-state check (a sender waiting forever beside a free slot,
 *     a worker asleep beside a buffered request).
 *
 * Planted bugs (check.sh --planted): the code before the fix.
 *   DRAIN                          the owner drains (close_for_send) at any point and keeps
 *                                  its caller: the workers must end by the drain alone (a pool
 *                                  drained with a permit outstanding hung before the fix);
 *   PLANT_DRAIN_NO_END             send_reserved does not end the other waiting receivers when
 *                                  it used the last reservation of a drained queue;
 *   PLANT_SEND_RESERVED_NO_REFILL  send_reserved hands the value to a waiting receiver and
 *                                  does not give the freed slot to a waiting sender;
 *   PLANT_RELEASE_INTO_BUFFER      release_reservation moves the oldest waiting sender's value
 *                                  into the buffer even when receivers wait.
 */

#ifndef NS
#define NS 2            /* senders (plain calls) */
#endif
#ifndef NP
#define NP 1            /* permit holders */
#endif
#ifndef NW
#define NW 1            /* workers (a pool when > 1) */
#endif
#ifndef CAP
#define CAP 1
#endif
#define NN (NS + NP)    /* send_waiter nodes: 0..NS-1 senders, NS.. holders' reservations */
#define NV (NS + NP)    /* request values 1..NV */
#define END 255

/* ---- channel<int> (guarded by m_) ---- */
byte buf[CAP];
byte bsize;
byte reserved;
byte sq[NN];            /* senders_: waiting nodes, oldest first */
byte slen;
byte rq[NW];            /* receivers_: waiting workers, oldest first */
byte rlen;
bool no_senders;
bool send_closed;       /* DRAIN: join_handle::drain (close_for_send) */

#define HAS_ROOM (bsize + reserved < CAP)
#define AT_END ((no_senders || send_closed) && bsize == 0 && reserved == 0 && slen == 0)
#define INV assert(!(rlen > 0 && (bsize > 0 || (HAS_ROOM && slen > 0))))

/* ---- outside the lock ---- */
byte deliv[NW];         /* handed to worker w by r->ready (value, END, 0: nothing yet) */
bool told[NN];          /* on_accepted ran for node n */
byte got[NV + 1];
byte producers_done;

inline push(v) { buf[bsize] = v; bsize++ }

inline pop(v) {
  v = buf[0];
  k = 0;
  do
  :: k + 1 < bsize -> buf[k] = buf[k + 1]; k++
  :: else -> break
  od;
  bsize--;
  buf[bsize] = 0
}

inline sq_push(n) { sq[slen] = n; slen++ }

inline sq_pop(n) {
  n = sq[0];
  k = 0;
  do
  :: k + 1 < slen -> sq[k] = sq[k + 1]; k++
  :: else -> break
  od;
  slen--;
  sq[slen] = 0
}

inline rq_pop(w) {
  w = rq[0];
  k = 0;
  do
  :: k + 1 < rlen -> rq[k] = rq[k + 1]; k++
  :: else -> break
  od;
  rlen--;
  rq[rlen] = 0
}

/* refill_locked: every free slot goes to the oldest waiting sender; a value goes straight
 * to a waiting receiver (pairs in hw/hn), else into the buffer; nodes to tell in tl. */
inline refill() {
  do
  :: HAS_ROOM && slen > 0 ->
     sq_pop(n);
     if
     :: n >= NS -> reserved++; tl[nt] = n; nt++
     :: else ->
        if
        :: rlen > 0 -> rq_pop(w); hw[nh] = w; hn[nh] = n; nh++
        :: else -> push(n + 1); tl[nt] = n; nt++
        fi
     fi
  :: else -> break
  od
}

/* accept_one_locked: one slot, one sender, into the buffer (no receiver can be waiting). */
inline accept_one() {
  assert(rlen == 0);
  if
  :: HAS_ROOM && slen > 0 ->
     sq_pop(n);
     if
     :: n >= NS -> reserved++
     :: else -> push(n + 1)
     fi;
     tl[nt] = n; nt++
  :: else -> skip
  fi
}

/* refill::run, outside the lock: hand each pair's value, then tell the accepted nodes. */
inline run_refill() {
  j = 0;
  do
  :: j < nh -> told[hn[j]] = 1; deliv[hw[j]] = hn[j] + 1; j++
  :: else -> break
  od;
  j = 0;
  do
  :: j < nt -> told[tl[j]] = 1; j++
  :: else -> break
  od;
  nh = 0;
  nt = 0
}

#define REFILL_LOCALS byte n, w, k, j, nh, nt; byte hw[NW], hn[NW], tl[NN]

proctype Sender(byte me) {
  REFILL_LOCALS;
  bool direct, parked, refused;
  atomic {
    if
    :: send_closed -> refused = 1
    :: !send_closed && rlen > 0 -> rq_pop(w); direct = 1
    :: else ->
       if
       :: HAS_ROOM -> push(me + 1)
       :: else -> sq_push(me); parked = 1
       fi
    fi;
    INV
  }
  if
  :: direct -> deliv[w] = me + 1
  :: refused -> got[me + 1]++  /* send_failure: the request comes back to its caller */
  :: else -> skip
  fi;
  if
  :: parked -> told[me]
  :: else -> skip
  fi;
  producers_done++
}

proctype Holder(byte i) {
  REFILL_LOCALS;
  byte node = NS + i;
  byte v = NS + i + 1;
  byte rw;  /* the receiver the reserved value goes to (refill's pairs use w) */
  bool granted, direct, refused;
  byte ends[NW], ne;
  atomic {
    if
    :: send_closed -> refused = 1
    :: !send_closed && HAS_ROOM -> reserved++; granted = 1
    :: else -> sq_push(node)
    fi;
    INV
  }
  if
  :: refused -> got[v]++  /* reserve fails: nothing to send */
  :: !refused && !granted -> told[node]
  :: else -> skip
  fi;
  if
  :: refused -> skip
  :: !refused; /* permit.send_request: send_reserved */
     atomic {
       reserved--;
       if
       :: rlen > 0 ->
          rq_pop(rw);
          direct = 1;
#ifndef PLANT_SEND_RESERVED_NO_REFILL
          refill();
#endif
#ifndef PLANT_DRAIN_NO_END
          /* the last reservation of a drained queue: the other receivers see the end */
          if
          :: AT_END ->
             do
             :: rlen > 0 -> rq_pop(w); ends[ne] = w; ne++
             :: else -> break
             od
          :: else -> skip
          fi
#else
          skip
#endif
       :: else -> push(v)
       fi;
       INV
     };
     if
     :: direct -> deliv[rw] = v
     :: else -> skip
     fi;
     run_refill();
     j = 0;
     do
     :: j < ne -> deliv[ends[j]] = END; j++
     :: else -> break
     od
  :: !refused; /* the permit dropped unused: release_reservation */
     got[v]++;  /* its value is never sent: count it as accounted for */
     atomic {
       reserved--;
#ifndef PLANT_RELEASE_INTO_BUFFER
       refill();
#else
       if
       :: HAS_ROOM && slen > 0 ->
          sq_pop(n);
          if
          :: n >= NS -> reserved++
          :: else -> push(n + 1)
          fi;
          tl[nt] = n; nt++
       :: else -> skip
       fi;
#endif
       /* at_end_locked: only a drain can make it hold here (this permit keeps a caller) */
       assert(!no_senders);
       if
       :: AT_END ->
          do
          :: rlen > 0 -> rq_pop(w); ends[ne] = w; ne++
          :: else -> break
          od
       :: else -> skip
       fi;
       INV
     };
     run_refill();
     j = 0;
     do
     :: j < ne -> deliv[ends[j]] = END; j++
     :: else -> break
     od
  fi;
  producers_done++
}

proctype Worker(byte me) {
  REFILL_LOCALS;
  byte v;
  bool took, ended;
  do
  :: atomic {
       took = 0;
       if
       :: bsize > 0 -> pop(v); accept_one(); took = 1
       :: else ->
          if
          :: AT_END -> ended = 1
          :: else -> rq[rlen] = me; rlen++
          fi
       fi;
       INV
     };
     run_refill();
     if
     :: ended -> break
     :: took -> got[v]++
     :: else ->
        deliv[me] != 0;
        if
        :: deliv[me] == END -> deliv[me] = 0; break
        :: else -> got[deliv[me]]++; deliv[me] = 0
        fi
     fi
  od
}

proctype Owner() {
  byte w, k;
  byte ends[NW], ne, j;
#ifdef DRAIN
  /* join_handle::drain() at any point; the last caller stays: the drain alone must end it */
  atomic {
    send_closed = 1;
#else
  producers_done == NN;
  atomic {
    no_senders = 1;
#endif
    if
    :: AT_END ->
       do
       :: rlen > 0 -> rq_pop(w); ends[ne] = w; ne++
       :: else -> break
       od
    :: else -> skip
    fi;
    INV
  };
  j = 0;
  do
  :: j < ne -> deliv[ends[j]] = END; j++
  :: else -> break
  od
}

init {
  byte i;
  atomic {
    i = 0;
    do
    :: i < NS -> run Sender(i); i++
    :: else -> break
    od;
    i = 0;
    do
    :: i < NP -> run Holder(i); i++
    :: else -> break
    od;
    i = 0;
    do
    :: i < NW -> run Worker(i); i++
    :: else -> break
    od;
    run Owner()
  };
  /* every process has ended: every request received exactly once */
  (_nr_pr == 1);
  i = 1;
  do
  :: i <= NV -> assert(got[i] == 1); i++
  :: else -> break
  od
}
