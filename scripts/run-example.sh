#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Builds and runs examples/kv_service (the original's HashMap-as-a-Service).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset default -DTENORITE_BUILD_TESTS=OFF -DTENORITE_BUILD_BENCH=OFF >/dev/null
cmake --build --preset default --target kv_service
./build/default/examples/kv_service
