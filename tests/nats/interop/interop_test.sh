#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# tenorite's NATS services (ADR-32) against nats.js, both ways, on a nats-server on a free
# loopback port:
#   part 1  `kv_remote serve <url> kvjson json` (tenorite's kv service in JSON mode), checked by
#           client.js, a nats.js user of it (discovery, every answer, the stats); then the
#           server's drain report after SIGINT;
#   part 2  service.js (the kv service written with nats.js) called by `kv_remote call <url>
#           kvnode json` (tenorite's caller); its output compared with expected_call.txt.
# Needs node (>= 18; $NODE, else node from PATH) and this directory's node_modules
# (`npm ci --prefix tests/nats/interop`, which scripts/setup.sh --tests runs).
#
# usage: interop_test.sh <kv_remote binary> <nats-server binary>
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: interop_test.sh <kv_remote binary> <nats-server binary>" >&2
  exit 2
fi
kv=$1
nats_server=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
node=${NODE:-node}
dir=$(mktemp -d "${TMPDIR:-/tmp}/tenorite-interop.XXXXXX")
ns_pid="" serve_pid="" svc_pid=""

# Every exit path (failure, success, SIGINT/SIGTERM of the harness) stops what it started.
stop() { # stop <pid> <signal>: signal it, give it 5 s, then SIGKILL
  local pid=$1 sig=$2
  kill "-$sig" "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  exec 3<&- 4<&-
  [ -n "$serve_pid" ] && stop "$serve_pid" TERM
  [ -n "$svc_pid" ] && stop "$svc_pid" TERM
  [ -n "$ns_pid" ] && stop "$ns_pid" INT
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fail() {
  echo "interop_test: $*" >&2
  exit 1
}
show() { # show <file>...: what a failed step printed
  for f in "$@"; do
    [ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" >&2
  done
  return 0
}

command -v "$node" >/dev/null || fail "node not found (set NODE or install nodejs)"
"$node" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' ||
  fail "node $("$node" --version) is older than 18"
[ -d "$here/node_modules/@nats-io/services" ] && [ -d "$here/node_modules/@nats-io/transport-node" ] ||
  fail "$here/node_modules is missing: npm ci --prefix $here (or scripts/setup.sh --tests)"
[ -x "$kv" ] || fail "not an executable: $kv"

"$nats_server" -a 127.0.0.1 -p -1 -l /dev/null --ports_file_dir "$dir" &
ns_pid=$!
# nats-server writes its ports file once it listens (bounded wait: 10 s).
ports=""
for _ in $(seq 1 200); do
  ports=$(ls "$dir"/*.ports 2>/dev/null || true)
  [ -n "$ports" ] && grep -q nats:// "$ports" && break
  kill -0 "$ns_pid" 2>/dev/null || fail "nats-server exited"
  sleep 0.05
done
[ -n "$ports" ] || fail "nats-server did not start"
url=$(grep -o 'nats://[0-9.:]*' "$ports" | head -n 1)

# --- part 1: tenorite serves, nats.js calls ------------------------------------------------
# The server prints its first line once its subscriptions reached nats-server: the client
# starts only then.
mkfifo "$dir/serve.out"
"$kv" serve "$url" kvjson json >"$dir/serve.out" 2>&1 &
serve_pid=$!
exec 3<"$dir/serve.out"
read -r -t 30 line <&3 || fail "kv_remote serve printed nothing"
case "$line" in "serving kv on 'kvjson'"*) ;; *) fail "kv_remote serve: unexpected: $line" ;; esac

timeout 60 "$node" "$here/client.js" "$url" kvjson >"$dir/client.out" 2>"$dir/client.err" || {
  tail -n 5 "$dir/client.out" >&2
  show "$dir/client.err"
  fail "client.js (nats.js) found tenorite's kv service wrong"
}
tail -n 1 "$dir/client.out"

kill -INT "$serve_pid"
read -r -t 30 line <&3 || fail "kv_remote serve printed no drain report"
# client.js made 9 calls on the endpoint: 7 reached the worker, 2 were undecodable.
[ "$line" = "drained: 9 received, 7 answered, 2 bad requests" ] || fail "kv_remote serve: unexpected: $line"
rc=0
wait "$serve_pid" || rc=$?
serve_pid=""
exec 3<&-
[ "$rc" = 0 ] || fail "kv_remote serve exited with $rc"

# --- part 2: nats.js serves, tenorite calls ------------------------------------------------
mkfifo "$dir/svc.out"
"$node" "$here/service.js" "$url" kvnode >"$dir/svc.out" 2>"$dir/svc.err" &
svc_pid=$!
exec 4<"$dir/svc.out"
read -r -t 30 line <&4 || { show "$dir/svc.err"; fail "service.js printed nothing"; }
[ "$line" = ready ] || fail "service.js: unexpected: $line"

rc=0
timeout 60 "$kv" call "$url" kvnode json >"$dir/call.out" 2>"$dir/call.err" || rc=$?
[ "$rc" = 0 ] || { show "$dir/call.out" "$dir/call.err" "$dir/svc.err"; fail "kv_remote call exited with $rc"; }

# The same answers as from tenorite's own kv service (tests/nats/kv_remote_test.sh): nats.js's
# errors, read from its headers, are the caller's kv::error values.
expected="$here/expected_call.txt"
diff -u "$expected" "$dir/call.out" || { show "$dir/svc.err"; fail "kv_remote call's answers from service.js differ"; }

kill -TERM "$svc_pid"
rc=0
wait "$svc_pid" || rc=$?
svc_pid=""
[ "$rc" = 0 ] || { show "$dir/svc.err"; fail "service.js exited with $rc"; }
echo "interop_test: OK ($url)"
