#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Static analysis of the library headers: clang-tidy (bugprone, concurrency, performance,
# a modernize subset; see .clang-tidy) over translation units that instantiate the whole
# public API (the NATS component's too, when nats.c is installed), and cppcheck over the headers. Any finding in include/tenorite fails.
set -euo pipefail
cd "$(dirname "$0")/.."
flags=(-std=c++2b -stdlib=libc++ -Iinclude -I/usr/src/googletest/googletest/include)
found=0
for tu in examples/kv_service/main.cpp tests/call_forms_test.cpp tests/service_test.cpp \
  tests/testing_test.cpp; do
  echo "== clang-tidy $tu"
  out=$(clang-tidy-16 --quiet --warnings-as-errors='' "$tu" -- "${flags[@]}" 2>&1 || true)
  if grep -E "include/tenorite/.*(warning|error):" <<<"$out"; then found=1; fi
  if grep -E "error: .*\[clang-diagnostic-error\]" <<<"$out"; then found=1; fi
done
headers=(include/tenorite/*.hpp include/tenorite/detail/*.hpp)
# The NATS component, when nats.c's headers are installed (scripts/setup.sh --tests does).
if [[ -f /usr/include/nats/nats.h ]]; then
  tu=tests/nats/nats_remote_test.cpp
  echo "== clang-tidy $tu"
  out=$(clang-tidy-16 --quiet --warnings-as-errors='' "$tu" -- "${flags[@]}" -Itests/nats \
    -DTENORITE_NATS_SERVER_BIN='"nats-server"' -DTENORITE_NATS_TEST_SERVER_BIN='"x"' 2>&1 || true)
  if grep -E "include/tenorite/.*(warning|error):" <<<"$out"; then found=1; fi
  if grep -E "error: .*\[clang-diagnostic-error\]" <<<"$out"; then found=1; fi
  headers+=(include/tenorite/nats/*.hpp)
fi
echo "== cppcheck include/tenorite"
cppcheck --std=c++20 --language=c++ --enable=warning,performance,portability --inline-suppr \
  --error-exitcode=1 --suppress=missingIncludeSystem --quiet -I include "${headers[@]}" || found=1
if ((found)); then
  echo "== lint: findings above"
  exit 1
fi
echo "== lint: clean"
