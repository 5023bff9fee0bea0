#!/bin/bash
# SPDX-License-Identifier: MIT
#
# run-qtest.sh - QEMU's own vhost-user qtests (tests/qtest/vhost-user-test.c,
# extended by the last patch of qemu-glue/patches-10.0, or 0002 of the 7.2
# series) against the QEMU that qemu-glue/build-qemu.sh built: the stock
# tests with isolation off, and vhost-user-isolated/* (no-guest-mem,
# no-qemu-address, migrate-not-blocked (7.2: migrate-blocked), reconnect,
# connect-fail, flags-mismatch, multiqueue) with memory-isolation=on.
# VUISO_QEMU_SERIES=7.2 tests the 7.2 build.
# Exit status: 0 pass, 1 fail (also when the cached build is missing).

set -euo pipefail

VG_NAME=run-qtest
# shellcheck source=tests/qemu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BUILD=$VG_QEMU_BUILD
[[ -x $BUILD/tests/qtest/qos-test && -x $BUILD/qemu-system-x86_64 ]] || {
	echo "run-qtest: FAIL: no cached QEMU $VG_QEMU_SERIES build: run qemu-glue/build-qemu.sh --series $VG_QEMU_SERIES" >&2
	exit 1
}
NET=/x86_64/pc/i440FX-pcihost/pci-bus-pc/pci-bus/virtio-net-pci/virtio-net/virtio-net-tests
cd "$BUILD"
export QTEST_QEMU_BINARY=./qemu-system-x86_64
rc=0
for p in "$NET/vhost-user" "$NET/vhost-user/read-guest-mem/memfile" \
	"$NET/vhost-user/read-guest-mem/memfd" "$NET/vhost-user-isolated"; do
	timeout 300 tests/qtest/qos-test --tap -k -p "$p" || rc=1
done
exit "$rc"
