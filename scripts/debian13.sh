#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# The second CI environment: Debian 13 (trixie), GCC 14, Clang 19 + libc++, Boost 1.88,
# nats.c 3.10 and nats-server 2.10, in a root made with debootstrap from the machine's own
# Debian mirror. Run it as root on a Debian (or Ubuntu) machine:
#
#   bash scripts/debian13.sh           build and test this checkout in the trixie root:
#                                       1. preset trixie-gcc: GCC 14, the whole default suite
#                                          at -O0 (NATS tests included, no benchmark),
#                                          BOOST_ASIO_NO_DEPRECATED
#                                       2. the consumer test (find_package, both components)
#                                          compiled and run against Boost 1.83's headers
#                                       3. preset trixie-clang: Clang 19 + libc++, the tests of
#                                          the public API (call forms, headers) and the examples
#   bash scripts/debian13.sh --root    only make (or check) the cached root
#   bash scripts/debian13.sh --shell   a shell in the root, with the checkout mounted
#
# The root is made once per machine and kept, with its packages installed, in
# /var/tmp/tenorite-trixie-<key>/ (the key changes with the package list below; an older
# one is removed when a new one is made): a second run skips debootstrap and apt-get.
# TENORITE_TRIXIE_CACHE=<dir> puts it elsewhere. The checkout is bind-mounted at its own path
# inside the root, so the builds land in build/trixie-gcc and build/trixie-clang of the
# checkout, apart from the host's build/*. /proc and /dev are mounted for the run and
# unmounted on exit, also on failure. Needs root, and a machine that allows mounts (a
# container or chroot without CAP_SYS_ADMIN does not: the script says so and stops).
set -euo pipefail

# What the root holds. A change here (or to `revision`) makes a new root on the next run.
revision=1
packages=(g++ gcc clang-19 libc++-19-dev libc++abi-19-dev cmake ninja-build libboost1.88-dev
          libgtest-dev googletest nats-server libnats-dev pkg-config openssl)
# libboost1.83-dev cannot be installed beside 1.88: its .deb is unpacked into this prefix.
boost183=/opt/boost1.83

say() { echo "== debian13: $*"; }
die() { echo "debian13: $*" >&2; exit 1; }

src=$(cd "$(dirname "$0")/.." && pwd)

# ---- inside the root: the builds and tests (run by the part below, through chroot) ----
if [[ "${1:-}" == "--inside" ]]; then
  cd "$src"
  t0=$SECONDS
  failed=()  # a failing step does not hide the others: all run, the last line names them
  say "GCC $(g++ -dumpfullversion), $(cmake --version | head -1), Boost $(sed -n \
's/^#define BOOST_LIB_VERSION "\(.*\)"/\1/p' /usr/include/boost/version.hpp), nats.c \
$(pkg-config --modversion libnats), $(nats-server --version)"
  say "preset trixie-gcc (GCC 14, the default suite)"
  cmake --preset trixie-gcc >/dev/null
  # The project's own targets must build without Asio's deprecated names.
  grep -q -- "-D *BOOST_ASIO_NO_DEPRECATED" build/trixie-gcc/build.ninja ||
    die "BOOST_ASIO_NO_DEPRECATED is not on the compile lines of build/trixie-gcc"
  grep -q "^Boost_DIR:PATH=.*Boost-1\.88" build/trixie-gcc/CMakeCache.txt ||
    die "build/trixie-gcc did not find Boost 1.88: $(grep '^Boost_DIR' build/trixie-gcc/CMakeCache.txt)"
  cmake --build --preset trixie-gcc
  ctest --preset trixie-gcc || failed+=("trixie-gcc tests")
  say "trixie-gcc done at $((SECONDS - t0)) s"

  say "consumer test against Boost 1.83's headers ($boost183)"
  boost183_dir=$(ls -d $boost183/usr/lib/*/cmake/Boost-1.83.0)
  cmake -DWAY=find_package -DNATS=1 -DSOURCE_DIR="$src" -DBINARY_DIR="$src/build/trixie-gcc" \
        -DWORK_DIR="$src/build/trixie-gcc/consumer_boost183" -DCXX=g++ -DGENERATOR=Ninja \
        -DPKG_CONFIG=pkg-config -DBOOST_DIR="$boost183_dir" -DEXPECT_BOOST_VERSION=108300 \
        -P tests/consumer/run.cmake || failed+=("consumer on Boost 1.83")
  say "consumer on Boost 1.83 done at $((SECONDS - t0)) s"

  say "preset trixie-clang (Clang 19 + libc++: call forms, headers, the testing kit, examples)"
  cmake --preset trixie-clang >/dev/null
  if cmake --build --preset trixie-clang; then
    ctest --preset trixie-clang || failed+=("trixie-clang tests")
  else
    failed+=("trixie-clang build")
  fi
  if ((${#failed[@]})); then
    say "FAILED after $((SECONDS - t0)) s: $(IFS=,; echo "${failed[*]}")"
    exit 1
  fi
  say "all passed in $((SECONDS - t0)) s"
  exit 0
fi

# ---- on the host: the root (cached), the mounts, the chroot ----
[[ "$(id -u)" == 0 ]] || die "run as root (debootstrap, chroot and mounts need it)"
mode=${1:-test}
case "$mode" in test | --root | --shell) ;; *) die "usage: $0 [--root | --shell]" ;; esac

key=$(printf '%s\n' "$revision" "${packages[@]}" "$boost183" | sha256sum | cut -c1-12)
cache=${TENORITE_TRIXIE_CACHE:-/var/tmp}
dir=$cache/tenorite-trixie-$key
root=$dir/root

# The Debian mirror this machine uses (as ../shared/tools/fresh-machine finds it).
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[[ -n "$mirror" ]] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[[ -n "$mirror" ]] || mirror=http://deb.debian.org/debian

mounts=()
cleanup() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null ||
      echo "debian13: could not unmount ${mounts[i]}" >&2
  done
  mounts=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mount_in() {  # mount_in <root> <what> <where inside> <mount args...>
  local r=$1 what=$2 where=$1$3
  shift 3
  mkdir -p "$where"
  mount "$@" "$what" "$where" || die "cannot mount $what on $where: this machine does not \
allow mounts here (a container or chroot without CAP_SYS_ADMIN?), so the Debian 13 \
environment cannot run on it"
  mounts+=("$where")
}
in_root() {  # in_root <root> <command...>: a clean environment, no stdin
  local r=$1
  shift
  chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive CI="${CI:-}" TERM="${TERM:-dumb}" "$@"
}

make_root() {
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap \
      >/dev/null || die "cannot install debootstrap with apt-get"
  fi
  [[ -e /usr/share/debootstrap/scripts/trixie ]] ||
    die "this debootstrap ($(dpkg-query -W -f='${Version}' debootstrap 2>/dev/null)) does not know trixie"
  mkdir -p "$cache"
  local build
  build=$(mktemp -d "$cache/tenorite-trixie-build.XXXXXX")
  say "making the Debian 13 root once (debootstrap from $mirror, then apt-get: a few minutes)"
  if ! debootstrap --variant=minbase trixie "$build/root" "$mirror" >"$build/debootstrap.log" 2>&1; then
    tail -n 20 "$build/debootstrap.log" >&2
    die "debootstrap trixie from $mirror failed (log: $build/debootstrap.log)"
  fi
  cp /etc/resolv.conf "$build/root/etc/resolv.conf"
  mount_in "$build/root" proc /proc -t proc
  mount_in "$build/root" /dev /dev --bind
  # Packages only: services are not started in the root, and no documentation is kept.
  printf '#!/bin/sh\nexit 101\n' >"$build/root/usr/sbin/policy-rc.d"
  chmod +x "$build/root/usr/sbin/policy-rc.d"
  printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n' \
    >"$build/root/etc/dpkg/dpkg.cfg.d/01-tenorite-nodoc"
  in_root "$build/root" apt-get update -q >"$build/apt.log" 2>&1 ||
    { tail -n 20 "$build/apt.log" >&2; die "apt-get update in the root failed"; }
  in_root "$build/root" apt-get install -y -q --no-install-recommends "${packages[@]}" \
    >>"$build/apt.log" 2>&1 ||
    { tail -n 20 "$build/apt.log" >&2; die "apt-get install in the root failed (log: $build/apt.log)"; }
  # Boost 1.83's headers (and CMake config) beside 1.88: the .deb unpacked, not installed.
  in_root "$build/root" bash -c "cd /tmp && apt-get download -q libboost1.83-dev && \
    mkdir -p $boost183 && dpkg-deb -x libboost1.83-dev_*.deb $boost183 && rm libboost1.83-dev_*.deb" \
    >>"$build/apt.log" 2>&1 ||
    { tail -n 20 "$build/apt.log" >&2; die "unpacking libboost1.83-dev in the root failed"; }
  in_root "$build/root" apt-get clean
  cleanup
  rm -rf "$build/root/var/lib/apt/lists/"*
  printf '%s\n' "${packages[@]}" >"$build/root/.tenorite-trixie-ready"
  # Older roots of this script go; this one takes its place whole (a failed run leaves none).
  local old
  for old in "$cache"/tenorite-trixie-*; do
    [[ "$old" =~ /tenorite-trixie-[0-9a-f]{12}$ && -d "$old" ]] && rm -rf "$old"
  done
  mv "$build" "$dir"
  say "root ready: $dir ($(du -sh "$root" | cut -f1))"
}

# One run at a time uses a root (its mounts); another waits here.
mkdir -p "$cache"
exec 9>"$cache/tenorite-trixie.lock"
flock 9
if [[ ! -e "$root/.tenorite-trixie-ready" ]]; then
  make_root
else
  say "cached root: $dir"
fi
[[ "$mode" == --root ]] && exit 0

cp /etc/resolv.conf "$root/etc/resolv.conf"
mount_in "$root" proc /proc -t proc
mount_in "$root" /dev /dev --bind
mount_in "$root" "$src" "$src" --bind
if [[ "$mode" == --shell ]]; then
  say "shell in $root (checkout at $src); exit to unmount"
  in_root "$root" bash -c "cd '$src' && exec bash -i"
  exit
fi
in_root "$root" bash "$src/scripts/debian13.sh" --inside </dev/null
