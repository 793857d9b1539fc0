#!/usr/bin/env bash
# Static analysis of the library headers: clang-tidy (bugprone, concurrency, performance,
# a modernize subset; see .clang-tidy) over translation units that instantiate the whole
# public API, and cppcheck over the headers. Any finding in include/tenorite fails.
set -euo pipefail
cd "$(dirname "$0")/.."
flags=(-std=c++2b -stdlib=libc++ -Iinclude -I/usr/src/googletest/googletest/include)
found=0
for tu in examples/kv_service/main.cpp tests/call_forms_test.cpp tests/service_test.cpp; do
  echo "== clang-tidy $tu"
  out=$(clang-tidy-16 --quiet --warnings-as-errors='' "$tu" -- "${flags[@]}" 2>&1 || true)
  if grep -E "include/tenorite/.*(warning|error):" <<<"$out"; then found=1; fi
  if grep -E "error: .*\[clang-diagnostic-error\]" <<<"$out"; then found=1; fi
done
echo "== cppcheck include/tenorite"
cppcheck --std=c++20 --language=c++ --enable=warning,performance,portability --inline-suppr \
  --error-exitcode=1 --suppress=missingIncludeSystem --quiet -I include \
  include/tenorite/*.hpp include/tenorite/detail/*.hpp || found=1
if ((found)); then
  echo "== lint: findings above"
  exit 1
fi
echo "== lint: clean"
