#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# The self-check of client.js, without tenorite: client.js run against nats.js's own service
# (service.js, named "kv" here), with --reference (nats.js's documented departures from the
# contract accepted and reported as "relaxed" lines). Proves client.js's checks against the
# reference implementation before they judge tenorite.
#
# usage: self_check.sh <nats-server binary>
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: self_check.sh <nats-server binary>" >&2
  exit 2
fi
nats_server=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
node=${NODE:-node}
dir=$(mktemp -d "${TMPDIR:-/tmp}/tenorite-interop-self.XXXXXX")
ns_pid="" svc_pid=""
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
  exec 3<&-
  [ -n "$svc_pid" ] && stop "$svc_pid" TERM
  [ -n "$ns_pid" ] && stop "$ns_pid" INT
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fail() {
  echo "self_check: $*" >&2
  exit 1
}

command -v "$node" >/dev/null || fail "node not found (set NODE or install nodejs)"
[ -d "$here/node_modules/@nats-io/services" ] ||
  fail "$here/node_modules is missing: npm ci --prefix $here (or scripts/setup.sh --tests)"

"$nats_server" -a 127.0.0.1 -p -1 -l /dev/null --ports_file_dir "$dir" &
ns_pid=$!
ports=""
for _ in $(seq 1 200); do
  ports=$(ls "$dir"/*.ports 2>/dev/null || true)
  [ -n "$ports" ] && grep -q nats:// "$ports" && break
  kill -0 "$ns_pid" 2>/dev/null || fail "nats-server exited"
  sleep 0.05
done
[ -n "$ports" ] || fail "nats-server did not start"
url=$(grep -o 'nats://[0-9.:]*' "$ports" | head -n 1)

mkfifo "$dir/svc.out"
"$node" "$here/service.js" "$url" kvself kv >"$dir/svc.out" 2>"$dir/svc.err" &
svc_pid=$!
exec 3<"$dir/svc.out"
read -r -t 30 line <&3 || { cat "$dir/svc.err" >&2; fail "service.js printed nothing"; }
[ "$line" = ready ] || fail "service.js: unexpected: $line"

timeout 60 "$node" "$here/client.js" "$url" kvself --reference || fail "client.js failed against nats.js's own service"

kill -TERM "$svc_pid"
rc=0
wait "$svc_pid" || rc=$?
svc_pid=""
[ "$rc" = 0 ] || { cat "$dir/svc.err" >&2; fail "service.js exited with $rc"; }
echo "self_check: OK ($url)"
