#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Install what libvuiso needs on Debian 12, from Debian's packages, and
# configure the build directory.  Idempotent: packages already present are
# not reinstalled, and apt-get runs only when something is missing.
#
# usage: scripts/setup.sh [BUILD_DIR]      (default: build)
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}

packages=(
	# build
	gcc clang meson ninja-build pkg-config
	libcmocka-dev liburcu-dev
	# style check
	clang-format
	# real vhost-user back-ends: qemu-storage-daemon, virtiofsd, dpdk-testpmd
	qemu-system-common qemu-utils dpdk-dev
	# QEMU adapter and guest tests (qemu-glue/, tests/qemu/)
	qemu-system-x86 qemu-system-data seabios busybox-static
	linux-image-amd64 cpio kmod procps
	build-essential dpkg-dev libglib2.0-dev libfdt-dev libpixman-1-dev
	zlib1g-dev python3-venv flex bison
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing+=("$p")
	fi
done

if ((${#missing[@]})); then
	echo "setup: installing ${missing[*]}"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cd "$top"
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" >/dev/null
fi
ninja -C "$build" >/dev/null
echo "setup: built in $top/$build"
