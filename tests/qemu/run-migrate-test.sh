#!/bin/bash
# SPDX-License-Identifier: MIT
#
# run-migrate-test.sh - live migration of a guest doing I/O on an isolated
# vhost-user-blk device.
#
# One qemu-storage-daemon exports the same image node twice (two sockets).
# A source QEMU (the patched 10.0 build, vhost-user-blk-pci with
# memory-isolation=on on the first socket) boots the test guest, which
# runs tests/qemu/guest-io.c "dmaread": 240 rounds over 24 s, each writing
# 1 MiB of the disk with that round's pattern and reading it back with
# O_DIRECT into a buffer of its own, which the CPU wrote once at the start.
# While it does, the source migrates (precopy at 100 MB/s, over a unix
# socket, so that it takes seconds) to a destination QEMU started with
# -incoming on the second socket; the guest goes on there.  At the end the
# guest checks every buffer again: the buffers filled during the migration
# were written by the device (libvuiso, in QEMU, copies each completion
# into guest RAM) after the CPU's last write, so only the dirty log of
# those writes can have brought them over (the adapter's log_write
# callback; the back-end keeps no log, it writes only the isolated
# region).  With the callback made a no-op the test fails.
#
# Checked on the host: the migration completed while the guest did I/O,
# with logging of the library's writes on (the adapter's trace); every
# guest check passed on the destination; qemu-storage-daemon never mapped
# either QEMU's guest RAM; the image holds the guest's last round.
#
# Usage: tests/qemu/run-migrate-test.sh [--qemu PATH] [--keep] [--seconds S]
# Exit status: 0 pass, 1 fail (a missing prerequisite fails too).

set -euo pipefail

VG_NAME=run-migrate-test
# shellcheck source=tests/qemu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VG_LOGS=(serial-src.log serial-dst.log qsd.log qemu-src.log qemu-dst.log qmp.log)

QEMU=cached
ACCEL=tcg
MEM=512M
SECONDS_IO=24
OFF_KB=16384
LEN_KB=1024
NBUF=240

while (($#)); do
	case $1 in
	--qemu) QEMU=$2; shift ;;
	--seconds) SECONDS_IO=$2; shift ;;
	--keep) KEEP=1 ;;
	-h | --help) sed -n '3,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run-migrate-test: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

vg_resolve_qemu
command -v "$QSD" >/dev/null || skip "$QSD not found"
[[ $VG_QEMU_SERIES != 7.2 ]] || { log "SKIP: the 7.2 series blocks migration"; exit 77; }

GUEST_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk"
export GUEST_MODULES
vg_guest
vg_workdir vuiso-migrate

vg_guest_io

# --- back-end: one daemon, one node, two exports ---------------------------

truncate -s 64M "$W/disk.img"
"$QSD" \
	--blockdev "driver=file,node-name=file0,filename=$W/disk.img,cache.direct=off" \
	--blockdev driver=raw,node-name=disk0,file=file0 \
	--export "type=vhost-user-blk,id=src,addr.type=unix,addr.path=$W/src.sock,node-name=disk0,writable=on" \
	--export "type=vhost-user-blk,id=dst,addr.type=unix,addr.path=$W/dst.sock,node-name=disk0,writable=on" \
	>"$W/qsd.log" 2>&1 &
QSD_PID=$!
PIDS+=("$QSD_PID")
wait_socket "$W/dst.sock" 10 "$QSD_PID" || fail "qemu-storage-daemon did not create its sockets"
log "qemu-storage-daemon pid $QSD_PID, exports src and dst of one node"

# --- the guest --------------------------------------------------------------

cat >"$W/test.sh" <<EOF
#!/bin/sh
OFF_KB=$OFF_KB LEN_KB=$LEN_KB NBUF=$NBUF SECONDS_IO=$SECONDS_IO
EOF
cat >>"$W/test.sh" <<'EOF'
fails=0
check() { if [ "$1" = 0 ]; then echo "VUISO-CHECK: ok $2"; else echo "VUISO-CHECK: FAIL $2"; fails=$((fails + 1)); fi; }
[ -b /dev/vda ]; check $? "blk: /dev/vda present"
echo "VUISO-GUEST: I/O for $SECONDS_IO s; migrate me"
/guest-io dmaread /dev/vda $OFF_KB $LEN_KB $NBUF $SECONDS_IO
check $? "dmaread: every round read back, every buffer still holds it"
echo "VUISO-RESULT: $fails failures"
[ $fails = 0 ]
EOF
vg_initrd "$W/test.sh" "$W/initrd.img" "$W/guest-io"

# --- QEMU: source and destination ------------------------------------------

# qemu_args SIDE: the same machine on both sides, each on its own export.
qemu_args() {
	vg_qemu_args
	QEMU_ARGS+=(
		-chardev "socket,id=blk0,path=$W/$1.sock"
		-device "vhost-user-blk-pci,chardev=blk0,memory-isolation=on,id=vblk"
		-qmp "unix:$W/qmp-$1.sock,server=on,wait=off"
		"${VG_TRACE_ARGS[@]}"
		-no-reboot
	)
	vg_qemu_boot_args "$W/initrd.img" "$W/serial-$1.log"
}

# qmp SOCK COMMAND...: vg_qmp, the replies to qmp.log.
qmp() { vg_qmp "$@" >>"$W/qmp.log" 2>&1; }

# wait_migration SOCK: until the migration completed (0) or failed (1),
# up to 180 s; prints its status, times and RAM figures.
wait_migration() {
	vg_qmp_until "$1" 180 query-migrate \
		'r.get("status") in ("completed", "failed", "cancelled")' >"$W/query-migrate.json" ||
		{ echo "status=timeout"; return 1; }
	python3 - "$W/query-migrate.json" <<'PY'
import json, sys

info = json.load(open(sys.argv[1]))
ram = info.get("ram", {})
print("status=%s total-ms=%s downtime-ms=%s dirty-syncs=%s transferred=%s error=%s" % (
    info["status"], info.get("total-time"), info.get("downtime"),
    ram.get("dirty-sync-count"), ram.get("transferred"),
    info.get("error-desc", "")))
sys.exit(0 if info["status"] == "completed" else 1)
PY
}

check_maps() {
	local pid ino
	for pid in "$@"; do
		for ino in $(awk '$6 ~ /^\/memfd:/ && $6 !~ /vuiso-isolated/ { print $5 }' "/proc/$pid/maps" | sort -u); do
			if awk -v i="$ino" '$5 == i { f = 1 } END { exit !f }' "/proc/$QSD_PID/maps"; then
				MAPS_FAIL+="qemu-storage-daemon maps memfd inode $ino of QEMU pid $pid; "
			fi
		done
	done
}

: >"$W/serial-src.log"
: >"$W/serial-dst.log"
qemu_args dst
"$QEMU" "${QEMU_ARGS[@]}" -incoming "unix:$W/mig.sock" >"$W/qemu-dst.log" 2>&1 &
DST_PID=$!
PIDS+=("$DST_PID")
qemu_args src
log "$QEMU ${QEMU_ARGS[*]}"
"$QEMU" "${QEMU_ARGS[@]}" >"$W/qemu-src.log" 2>&1 &
SRC_PID=$!
PIDS+=("$SRC_PID")

deadline=$(($(date +%s) + 120))
until grep -q 'migrate me' "$W/serial-src.log"; do
	kill -0 "$SRC_PID" 2>/dev/null || fail "source QEMU exited: $(tail -n 5 "$W/qemu-src.log")"
	(($(date +%s) < deadline)) || fail "the guest did not start its I/O within 120 s"
	sleep 0.2
done
sleep 3 # let the I/O run
MAPS_FAIL=""
check_maps "$SRC_PID" "$DST_PID"
log "migrating while the guest does I/O"
t0=$(date +%s)
qmp "$W/qmp-src.sock" \
	'{"execute": "migrate-set-parameters", "arguments": {"max-bandwidth": 104857600, "downtime-limit": 1000}}' \
	"{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:$W/mig.sock\"}}" ||
	fail "migrate refused: $(tail -n 1 "$W/qmp.log")"
wait_migration "$W/qmp-src.sock" >"$W/migrate.out" || fail "migration: $(cat "$W/migrate.out")"
log "migration: $(cat "$W/migrate.out") ($(($(date +%s) - t0)) s)"
check_maps "$DST_PID"
grep -q 'VUISO-CHECK: ok dmaread' "$W/serial-src.log" "$W/serial-dst.log" &&
	fail "the guest finished its I/O before the migration completed: raise --seconds"
qmp "$W/qmp-src.sock" '{"execute": "quit"}' >/dev/null 2>&1 || true
vg_stop "$SRC_PID"

# The guest goes on in the destination and powers off there.
deadline=$(($(date +%s) + SECONDS_IO + 240))
while kill -0 "$DST_PID" 2>/dev/null; do
	(($(date +%s) < deadline)) || fail "the guest did not finish on the destination"
	sleep 0.5
done
wait "$DST_PID" && st=0 || st=$?
tr -d '\r' <"$W/serial-src.log" | sed -n 's/^\(VUISO-.*\)$/  guest (source): \1/p' >&2
tr -d '\r' <"$W/serial-dst.log" | sed -n 's/^\(VUISO-.*\)$/  guest (destination): \1/p' >&2
((st == 0)) || fail "destination QEMU failed: $(tail -n 5 "$W/qemu-dst.log")"
grep -q 'VUISO-GUEST-EXIT: 0' "$W/serial-dst.log" || fail "guest test failed on the destination"
[[ -z $MAPS_FAIL ]] || fail "maps: $MAPS_FAIL"

# The source logged the library's writes while it migrated, and the
# destination's queue started from the migrated guest index.
grep -q 'vhost_user_iso_logging .*dirty logging of guest writes 1' "$W/qemu-src.log" ||
	fail "the source never turned on the logging of libvuiso's writes"
starts=$(awk -v re="$VG_TRACE_START" '$1 ~ re { n++ } END { print n + 0 }' "$W/qemu-dst.log")
((starts > 0)) || fail "no isolated queue started on the destination"
log "source: $(grep -c 'dirty logging of guest writes 1' "$W/qemu-src.log") logging start(s); destination: $starts queue start(s)"

vg_stop "$QSD_PID"
last=$(sed -n 's/.*last round \([0-9]*\).*/\1/p' "$W/serial-dst.log" | tail -n 1)
[[ -n $last ]] || fail "no last round in the guest's output"
vg_check_pattern "$W/disk.img" $((OFF_KB << 10)) $((LEN_KB << 10)) "$last" >&2 ||
	fail "image check"
log "PASS (migrated under I/O with memory-isolation=on; every buffer the device wrote arrived; image correct)"
