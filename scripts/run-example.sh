#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Builds and runs examples/kv_service (the original's HashMap-as-a-Service).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Its own build directory (preset `example`: no tests, no benchmark), so that it never changes
# what the test presets' build directories build.
cmake --preset example >/dev/null
cmake --build --preset example --target kv_service
./build/example/examples/kv_service
