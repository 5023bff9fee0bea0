#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The libvuiso demo: an unmodified qemu-storage-daemon serves a file-backed
# vhost-user-blk disk; the example VMM runs its verifying block workload with
# memory isolation on, and prints the verification result, the isolation
# proof and the throughput.  Then the net device: the VMM starts DPDK's
# dpdk-testpmd (net_vhost PMD) itself and checks every frame it sends back
# (needs root; skipped, and said so, without).
#
# usage: examples/demo.sh [BUILD_DIR]      (default: build)
set -uo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
VMM=$BUILD/examples/vuiso-vmm
# shellcheck source=../tests/integration/backends.sh
. "$SRC/tests/integration/backends.sh"

if [ ! -x "$VMM" ]; then
	echo "demo: $VMM not found; build first: meson setup build && ninja -C build" >&2
	exit 1
fi
command -v "$QSD" >/dev/null || { echo "demo: qemu-storage-daemon missing (apt-get install qemu-system-common)" >&2; exit 1; }

trap vmm_cleanup EXIT INT TERM
vmm_tmpdir
IMG=$VMM_TMP/disk.img
SOCK=$VMM_TMP/blk.sock
truncate -s 256M "$IMG"

echo "== starting qemu-storage-daemon: vhost-user-blk on $SOCK, 256 MiB image, 2 queues"
start_qsd_file "$SOCK" "$IMG" 2 || { cat "$SOCK.log"; exit 1; }
echo "   back-end pid $QSD_PID ($(qemu-storage-daemon --version | head -1))"
echo

echo "== 1. verifying workload, isolation on: random writes/reads/flush/discard/write-zeroes,"
echo "      512 B - 1 MiB, 2 queues x depth 32, then every sector read back and the image compared"
"$VMM" --socket="$SOCK" --isolation=on --queues=2 --depth=32 --ops=3000 \
	--image="$IMG" 2>&1 | grep -v '^progress:' | tee "$VMM_TMP/verify.out"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
	echo "demo: FAILED (exit status $rc)"
	exit "$rc"
fi
echo

echo "== 2. throughput, isolation on (3 s each)"
"$VMM" --socket="$SOCK" --isolation=on --workload=randread --bs=4k \
	--depth=32 --time=3 --quiet | grep -E '^summary' | tee "$VMM_TMP/rr.out"
"$VMM" --socket="$SOCK" --isolation=on --workload=seqread --bs=64k \
	--depth=32 --time=3 --quiet | grep -E '^summary' | tee "$VMM_TMP/sr.out"
echo

echo "== 3. net: virtio-net through isolation against dpdk-testpmd (started by the VMM),"
echo "      2 queue pairs, mergeable receive buffers, every byte of 20000 frames per pair checked"
if [ "$(id -u)" = 0 ] && command -v dpdk-testpmd >/dev/null; then
	"$VMM" --device=net --isolation=on --queues=2 --ops=20000 2>&1 |
		grep -v '^progress:' | tee "$VMM_TMP/net.out"
	rc=${PIPESTATUS[0]}
	if [ "$rc" -ne 0 ]; then
		echo "demo: FAILED (net, exit status $rc)"
		exit "$rc"
	fi
else
	echo "   skipped: dpdk-testpmd needs root and the dpdk-dev package" | tee "$VMM_TMP/net.out"
fi
echo

echo "== demo result"
grep -E '^verify:' "$VMM_TMP/verify.out" | sed 's/^/   /'
grep -E 'ISOLATION|mappings in back-end|fds sent' "$VMM_TMP/verify.out" | sed 's/^ */   /'
awk '/^summary/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	printf "   %s: %s IOPS, %s GB/s\n", label, v["IOPS"], v["GB/s"] }' \
	label="4 KiB random read, QD32" "$VMM_TMP/rr.out"
awk '/^summary/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	printf "   %s: %s IOPS, %s GB/s\n", label, v["IOPS"], v["GB/s"] }' \
	label="64 KiB sequential read, QD32" "$VMM_TMP/sr.out"
grep -E '^verify: every byte|^net: testpmd|ISOLATION PASS|skipped' "$VMM_TMP/net.out" |
	sed -e 's/^ *//' -e 's/^net: //' -e 's/^/   net: /'
echo "   RESULT: OK (data verified, back-end never saw guest RAM)"
