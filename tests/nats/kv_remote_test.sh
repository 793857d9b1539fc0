#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# examples/kv_remote end to end, as the README runs it: a nats-server on a free loopback port,
# `kv_remote serve` in one process, `kv_remote call` in another. Checks every answer the
# caller prints and the server's drain report after SIGINT.
#
# usage: kv_remote_test.sh <kv_remote binary> <nats-server binary>
set -euo pipefail
kv=$1
nats_server=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/tenorite-kv-remote.XXXXXX")
ns_pid="" serve_pid=""
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
  [ -n "$ns_pid" ] && kill -INT "$ns_pid" 2>/dev/null && wait "$ns_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "kv_remote_test: $*" >&2
  exit 1
}

"$nats_server" -a 127.0.0.1 -p -1 -l /dev/null --ports_file_dir "$dir" &
ns_pid=$!
# nats-server writes its ports file once it listens (bounded wait: 10 s).
ports=""
for _ in $(seq 1 200); do
  ports=$(ls "$dir"/*.ports 2>/dev/null || true)
  [ -n "$ports" ] && grep -q nats:// "$ports" && break
  sleep 0.05
done
[ -n "$ports" ] || fail "nats-server did not start"
url=$(grep -o 'nats://[0-9.:]*' "$ports" | head -n 1)

# The server prints its first line once its subscription reached nats-server (serve()
# flushes it): the caller starts only then.
mkfifo "$dir/serve.out"
"$kv" serve "$url" kvtest >"$dir/serve.out" 2>&1 &
serve_pid=$!
exec 3<"$dir/serve.out"
read -r -t 30 line <&3 || fail "kv_remote serve printed nothing"
case "$line" in "serving kv on 'kvtest'"*) ;; *) fail "unexpected: $line" ;; esac

"$kv" call "$url" kvtest >"$dir/call.out" 2>&1 || {
  cat "$dir/call.out"
  fail "kv_remote call failed"
}
cat >"$dir/expected" <<'OUT'
[blocking]  set name      -> ok
[blocking]  get name      -> found "tenorite"
[blocking]  get missing   -> not found
[blocking]  set 'a b'     -> error: invalid key "a b"
[blocking]  del missing   -> error: no such key: missing
[blocking]  del name      -> ok
[deadline]  get lang      -> not found
[coroutine] set lang      -> ok
[coroutine] get lang      -> found "C++"
OUT
diff -u "$dir/expected" "$dir/call.out" || fail "the caller's answers differ"

kill -INT "$serve_pid"
read -r -t 30 line <&3 || fail "kv_remote serve printed no drain report"
[ "$line" = "drained: 9 received, 9 answered, 0 bad requests" ] || fail "unexpected: $line"
wait "$serve_pid" || fail "kv_remote serve exited with $?"
serve_pid=""
echo "kv_remote_test: OK ($url)"
