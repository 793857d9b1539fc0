#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Installs what tenorite's build needs on Debian 12, only what is missing.
#   scripts/setup.sh            compiler, CMake, Ninja, Boost 1.81 (enough for the example)
#   scripts/setup.sh --tests    plus GoogleTest, Clang 16 + libc++ (the whole test suite), and
#                               Node + the pinned nats.js packages of tests/nats/interop, and
#                               Chromium + the pinned playwright-core of tests/console (the
#                               console's browser test)
set -euo pipefail

packages=(g++ cmake ninja-build libboost1.81-dev)
if [[ "${1:-}" == "--tests" ]]; then
  packages+=(libgtest-dev googletest clang-16 libc++-16-dev libc++abi-16-dev libclang-rt-16-dev
             clang-tidy-16 cppcheck spin)
  # The optional NATS component (tenorite::nats) and its tests: a real nats-server.
  packages+=(nats-server libnats-dev pkg-config openssl)
  # The console's browser test (tests/console) drives Debian's Chromium headless.
  packages+=(chromium)
  # The interop test against nats.js (tests/nats/interop) needs Node 18 or newer and npm: Debian's
  # nodejs and npm only when either is missing from PATH. A machine with nodesource's node has
  # nodesource's npm (and a package named nodejs): Debian's npm would conflict with it.
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    packages+=(nodejs npm)
  fi
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

# The pinned npm packages of the tests that need Node (tests/nats/interop: nats.js; tests/console:
# playwright-core), exactly as each package-lock.json has them: again whenever the lockfile is
# newer than the installed tree.
if [[ "${1:-}" == "--tests" ]]; then
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  for dir in "$root/tests/nats/interop" "$root/tests/console"; do
    if [[ -d "$dir/node_modules" && ! "$dir/package-lock.json" -nt "$dir/node_modules" ]]; then
      continue
    fi
    echo "setup: npm ci in $dir"
    # npm trusts the system's certificate store too (Debian's ca-certificates, with any CA the
    # machine adds, such as a registry mirror's), not only Node's bundled one.
    ca=/etc/ssl/certs/ca-certificates.crt
    cafile=()
    if [[ -r "$ca" ]]; then
      export NODE_EXTRA_CA_CERTS="${NODE_EXTRA_CA_CERTS:-$ca}"
      if [[ "$(npm config get cafile 2>/dev/null)" == null ]]; then cafile=(--cafile "$ca"); fi
    fi
    if npm ci --no-audit --no-fund "${cafile[@]}" --prefix "$dir" </dev/null; then
      touch "$dir/node_modules"
    else
      # No registry (offline, or a TLS proxy whose CA this machine does not trust): the rest
      # of the suite still runs; CMake then says which Node tests are not registered.
      rm -rf "$dir/node_modules"
      echo "setup: WARNING: npm ci failed (above): the tests of $dir will not run" >&2
    fi
  done
fi
