#!/usr/bin/env bash
# Builds and runs examples/kv_service (the original's HashMap-as-a-Service).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset default -DTENORITE_BUILD_TESTS=OFF -DTENORITE_BUILD_BENCH=OFF >/dev/null
cmake --build --preset default --target kv_service
./build/default/examples/kv_service
