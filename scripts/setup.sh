#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Installs what tenorite's build needs on Debian 12, only what is missing.
#   scripts/setup.sh            compiler, CMake, Ninja, Boost 1.81 (enough for the example)
#   scripts/setup.sh --tests    plus GoogleTest, Clang 16 + libc++ (the whole test suite)
set -euo pipefail

packages=(g++ cmake ninja-build libboost1.81-dev)
if [[ "${1:-}" == "--tests" ]]; then
  packages+=(libgtest-dev googletest clang-16 libc++-16-dev libc++abi-16-dev libclang-rt-16-dev
             clang-tidy-16 cppcheck spin)
  # The optional NATS component (tenorite::nats) and its tests: a real nats-server.
  packages+=(nats-server libnats-dev pkg-config openssl)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
