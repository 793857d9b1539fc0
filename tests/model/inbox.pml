/* SPDX-License-Identifier: BSL-1.0 */
/*
 * inbox.pml -- completions handed to an io_context by threads that do not run it
 * (include/tenorite/detail/inbox.hpp). Promela model; check with spin (see check.sh).
 *
 * The C++, step by step:
 *   push(n):     do { n->next = old } while (!head.CAS(old, n)); if (old) return;
 *                if (closed) drain(false) else post(drainer)   (or, out of memory, drain(false))
 *   drainer():   drain(true);   its destructor, unrun (the context shuts down): drain(false)
 *   drain(run):  list = head.exchange(null); reverse it; for each, oldest first: fn(n, run)
 *   shutdown():  closed = true; drain(false); then the scheduler destroys the drainers it
 *                still holds (each drains, unrun)
 * One Promela step = one atomic operation of the C++ (the CAS that succeeds, the exchange,
 * the post, one node's fn). The list is kept as a sequence, newest last.
 *
 * Processes: Pusher(p) x NP, each pushing K nodes; Runner(r) x NR, the context's threads,
 * each taking posted drainers; with -DSHUTDOWN, Shutdown, which shuts the context down once
 * the pushes are done (at any point of the drains; the runners stop then, as a destroyed
 * context runs nothing more). With -DPOST_MAY_FAIL a post may run out of memory (the push
 * then destroys what the list holds). Monitor asserts the invariant at every step.
 *
 * Checked:
 *   - every node is run or destroyed unrun exactly once, and without SHUTDOWN or
 *     POST_MAY_FAIL run (never lost, never twice);
 *   - while the list is not empty, a drainer that has not taken it yet is posted or about to
 *     be (the push that found the list empty is between its CAS and its post): no node sits
 *     in the list with nobody coming for it (asserted at every step by a monitor);
 *   - with one runner, the nodes of one pusher run in the order pushed;
 *   - at the end the list is empty and no drainer is left.
 *
 * Planted bugs (check.sh --planted must find each):
 *   PLANT_POST_IF_NONEMPTY  push posts when it found the list non-empty, not empty
 *   PLANT_DRAIN_NEWEST_FIRST drain runs what it took without reversing it
 */
#ifndef NP
#define NP 2
#endif
#ifndef K
#define K 2
#endif
#ifndef NR
#define NR 1
#endif
#define N (NP * K)

byte list[N];       /* head's list, oldest first, newest at list[lsize - 1] (`len` is a keyword) */
byte lsize = 0;
byte posted = 0;    /* drainers posted and not yet running (each counts as work) */
byte posting = 0;   /* pushes between a CAS that found the list empty and their post */
bool closed = false;
bool shut = false;  /* the scheduler shut down: runners take nothing more */
byte runs[N];
byte destroyed[N];
byte last_run[NP];  /* 1 + sequence number of the pusher's last node run */
byte pushes_done = 0;
byte in_drain = 0;  /* drains between their exchange and their last node */
byte starting = 0;  /* drainers running, before their exchange */

/* drain(run): take the whole list, run it oldest first */
inline drain(torun, own) {
  atomic {
    k = 0;
    do
    :: k < lsize -> taken[k] = list[k]; list[k] = 0; k++
    :: else -> break
    od;
    ntaken = lsize;
    lsize = 0;
    in_drain++;
    if
    :: torun -> starting--     /* a drainer the context runs */
    :: own -> posting--        /* the pushing thread's own drain (closed, or no memory) */
    :: else -> skip
    fi
  };
#ifdef PLANT_DRAIN_NEWEST_FIRST
  k = ntaken;
  do
  :: k > 0 ->
     k--;
     node = taken[k];
#else
  k = 0;
  do
  :: k < ntaken ->
     node = taken[k];
     k++;
#endif
     d_step {
       if
       :: torun ->
          runs[node]++;
#if NR == 1
          assert(last_run[node / K] == node % K);   /* this pusher's next in order */
          last_run[node / K] = node % K + 1;
#endif
       :: else -> destroyed[node]++
       fi;
       assert(runs[node] + destroyed[node] == 1)
     }
  :: else -> break
  od;
  in_drain--
}

proctype Pusher(byte p) {
  byte i = 0, node, k, ntaken, taken[N];
  bool was_empty;
  do
  :: i < K ->
     node = p * K + i;
     atomic {                  /* the CAS that succeeds */
       was_empty = (lsize == 0);
       list[lsize] = node;
       lsize++;
#ifdef PLANT_POST_IF_NONEMPTY
       if :: !was_empty -> posting++ :: else -> skip fi
#else
       if :: was_empty -> posting++ :: else -> skip fi
#endif
     };
#ifdef PLANT_POST_IF_NONEMPTY
     if
     :: !was_empty ->
#else
     if
     :: was_empty ->
#endif
        if
        :: closed -> drain(false, true)
        :: atomic { !closed -> posted++; posting-- }    /* post(drainer) */
#ifdef POST_MAY_FAIL
        :: !closed -> drain(false, true)                 /* the post ran out of memory */
#endif
        fi
     :: else -> skip
     fi;
     i++
  :: else -> break
  od;
  pushes_done++
}

proctype Runner(byte r) {
  byte node, k, ntaken, taken[N];
end:
  do
  :: atomic { !shut && posted > 0 -> posted--; starting++ };
     drain(true, false)
  od
}

#ifdef SHUTDOWN
proctype Shutdown() {
  byte node, k, ntaken, taken[N];
  pushes_done == NP;           /* a context is not destroyed under a push (Asio's rule too) */
  closed = true;               /* inbox::shutdown */
  drain(false, false);
  atomic { shut = true };      /* the scheduler's shutdown: its drainers are destroyed */
  do
  :: atomic { posted > 0 -> posted-- };
     drain(false, false)
  :: else -> break
  od
}
#endif

/* No node waits in the list with nobody coming for it. A drain that took the list is not
   counted: what is pushed after its exchange found the list empty and posts anew. */
active proctype Monitor() {
end:
  do
  :: atomic { lsize > 0 && posted + starting + posting == 0 && !closed -> assert(false) }
  od
}

init {
  byte i;
  atomic {
    for (i : 0 .. NP - 1) {
      run Pusher(i)
    }
    for (i : 0 .. NR - 1) {
      run Runner(i)
    }
#ifdef SHUTDOWN
    run Shutdown();
#endif
  };
  pushes_done == NP;
#ifdef SHUTDOWN
  shut;
  posted == 0;
#else
  lsize == 0 && posted == 0;     /* the runners took and ran everything */
#endif
  /* wait until every node is settled, then check */
  atomic {
    (lsize == 0 && in_drain == 0) ->
    for (i : 0 .. N - 1) {
#if defined(SHUTDOWN) || defined(POST_MAY_FAIL)
      assert(runs[i] + destroyed[i] == 1)
#else
      assert(runs[i] == 1 && destroyed[i] == 0)
#endif
    }
  }
}
