#!/usr/bin/env bash
# Builds and runs the whole test suite: GCC, Clang 16 with libc++, AddressSanitizer +
# UndefinedBehaviorSanitizer (+ LeakSanitizer), and ThreadSanitizer.
#   scripts/test.sh [preset...]    (default: default clang asan tsan)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
presets=("$@")
((${#presets[@]})) || presets=(default clang asan tsan)
for p in "${presets[@]}"; do
  echo "== tenorite: preset $p"
  cmake --preset "$p" >/dev/null
  cmake --build --preset "$p"
  ctest --preset "$p"
done
echo "== tenorite: all test presets passed (${presets[*]})"
