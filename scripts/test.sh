#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Builds and runs the whole test suite, after the static analysis (scripts/lint.sh, first: it
# fails the run before the long builds):
#   Debian 12 (this machine): presets default (GCC 12, with the spin models), asan (Clang 16 +
#     libc++ with AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer, and the
#     libFuzzer runs) and tsan (GCC 12, ThreadSanitizer)
#   Debian 13 (trixie, a debootstrap root: scripts/debian13.sh): GCC 14 with the whole default
#     suite, Clang 19 + libc++ with the public API's tests, the consumer on Boost 1.83. The
#     root is made (or found cached) in the background while the Debian 12 presets build, so
#     its download costs no build time.
#
#   scripts/test.sh                 lint, default, asan, tsan, trixie (what CI, .ci/run, runs)
#   scripts/test.sh <preset>...     those presets only, in turn (no lint); the name `trixie`
#                                   stands for the whole Debian 13 environment:
#   scripts/test.sh trixie          only the Debian 13 environment
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
presets=("$@")
lint=0
if ((${#presets[@]} == 0)); then
  presets=(default asan tsan trixie)
  lint=1
fi
start=$SECONDS
as_root() { if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo "$@"; fi; }
root_pid=
root_log=build/trixie-root.log
if [[ " ${presets[*]} " == *" trixie "* && ${#presets[@]} -gt 1 ]]; then
  mkdir -p build
  echo "== tenorite: making the Debian 13 root in the background (log: $root_log)"
  as_root bash scripts/debian13.sh --root >"$root_log" 2>&1 </dev/null &
  root_pid=$!
  # A failing step ends the run: let the root finish (about a minute) rather than leave it
  # half made with its mounts in place.
  trap '[[ -n "$root_pid" ]] && wait "$root_pid" 2>/dev/null' EXIT
fi
if ((lint)); then
  bash scripts/lint.sh
  echo "== tenorite: lint done at $((SECONDS - start)) s"
fi
for p in "${presets[@]}"; do
  if [[ "$p" == trixie ]]; then
    if [[ -n "$root_pid" ]]; then
      if ! wait "$root_pid"; then
        cat "$root_log" >&2
        echo "== tenorite: making the Debian 13 root failed (above)" >&2
        exit 1
      fi
      root_pid=
      cat "$root_log"
    fi
    echo "== tenorite: Debian 13 environment (scripts/debian13.sh)"
    as_root bash scripts/debian13.sh
  else
    echo "== tenorite: preset $p"
    cmake --preset "$p" >/dev/null
    cmake --build --preset "$p"
    ctest --preset "$p"
  fi
  echo "== tenorite: $p done at $((SECONDS - start)) s"
done
echo "== tenorite: all passed (${presets[*]}) in $((SECONDS - start)) s"
