#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Builds and runs the whole test suite: GCC, Clang 16 with libc++ (with the libFuzzer run),
# AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer), and ThreadSanitizer;
# after the static analysis (scripts/lint.sh), which runs first.
#   scripts/test.sh [preset...]    (default: default clang asan tsan)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
presets=("$@")
lint=0
if ((${#presets[@]} == 0)); then
  presets=(default clang asan tsan)
  lint=1
fi
# The static analysis first: it takes a minute and fails the run before the long builds.
if ((lint)); then bash scripts/lint.sh; fi
for p in "${presets[@]}"; do
  echo "== tenorite: preset $p"
  cmake --preset "$p" >/dev/null
  cmake --build --preset "$p"
  ctest --preset "$p"
done
echo "== tenorite: all test presets passed (${presets[*]})"
