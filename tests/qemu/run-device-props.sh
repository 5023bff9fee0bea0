#!/bin/bash
# SPDX-License-Identifier: MIT
#
# run-device-props.sh - the memory-isolation property on every vhost-user
# device of the patched QEMU (qemu-glue/build-qemu.sh), without a guest.
#
#   1. `-device D,help` lists memory-isolation for vhost-user-blk, -fs,
#      -scsi, -gpio, -i2c, -rng, -vsock, -input, -gpu, and in QEMU 10.0
#      -snd (PCI and virtio-bus variants; -gpu has it only to refuse it),
#      and all but -gpu list iothread and iothread-vq-mapping (QEMU 10.0).
#   2. vhost-user-scsi-pci and vhost-user-input-pci with memory-isolation=on
#      fail to realize with an error and exit status 1 (no crash) against a
#      chardev that does not exist and against a socket whose peer accepts
#      and hangs up at once; the same through QMP device_add (an error
#      reply, twice, and QEMU keeps answering).  (A socket with no peer at
#      all and reconnect=1 is no longer a realize failure in QEMU 10.0:
#      vhost-user-scsi, like -blk, waits for the back-end to appear.)
#      vhost-user-input needs KVM in QEMU 7.2: with a usable /dev/kvm the
#      socket is tried under KVM (-S, no guest code runs), else its
#      "requires kvm" refusal is expected.
#   3. vhost-user-scsi-pci against a live vhost-user peer (a
#      qemu-storage-daemon export; not a SCSI back-end, but it answers the
#      generic vhost-user messages): realize succeeds; with QEMU 10.0
#      `migrate` is accepted with memory-isolation on and off (patch 8);
#      with 7.2 it is refused with the isolation blocker with
#      memory-isolation=on, and not refused for that reason with it off.
#   4. QEMU 10.0, IOThreads: iothread without memory-isolation=on is
#      refused; an iothread-vq-mapping naming a queue the device does not
#      have is refused (vhost-user-scsi against the live peer: 3 queues);
#      with memory-isolation=on and iothread=, or a valid mapping, it
#      realizes against the live peer.
#
# Usage: tests/qemu/run-device-props.sh [--qemu PATH|cached] (default cached)
# Exit status: 0 pass, 1 fail (also when the cached build is missing).

set -euo pipefail

VG_NAME=run-device-props
# shellcheck source=tests/qemu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QEMU=cached
while (($#)); do
	case $1 in
	--qemu) QEMU=$2; shift ;;
	-h | --help) sed -n '3,/^# Exit status/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run-device-props: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
vg_resolve_qemu
command -v "$QSD" >/dev/null || skip "$QSD not found"
vg_workdir vuiso-props
VG_LOGS=(qsd.log)

FAILS=0
ok() { log "ok: $*"; }
bad() { log "FAIL: $*"; FAILS=$((FAILS + 1)); }

BASE=(-nodefaults -display none -no-user-config -L /usr/share/qemu -L /usr/share/seabios)

# --- 1. the property is listed ----------------------------------------------

DEVICES=(vhost-user-blk vhost-user-fs-device vhost-user-scsi vhost-user-gpio-device
	vhost-user-i2c-device vhost-user-rng vhost-user-vsock-device vhost-user-input
	vhost-user-gpu)
# QEMU 10.0: vhost-user-snd, a vhost-user-base device like gpio, i2c, rng
# and input, which all get the property from vhost-user-base.
"$QEMU" -device help 2>&1 | grep -q '"vhost-user-snd"' && DEVICES+=(vhost-user-snd)
# The IOThread properties: QEMU 10.0's series only.
IOT=0
[[ $VG_QEMU_SERIES == 7.2 ]] || IOT=1
for d in "${DEVICES[@]}"; do
	for dev in "$d" "${d%-device}-pci"; do
		"$QEMU" -device "$dev,help" >"$W/help" 2>&1 || true
		if grep -q '^  memory-isolation=<bool>' "$W/help"; then
			ok "$dev lists memory-isolation"
		else
			bad "$dev does not list memory-isolation"
		fi
		if ((IOT == 0)) || [[ $d == vhost-user-gpu ]]; then
			continue
		fi
		if grep -q '^  iothread=<link<iothread>>' "$W/help" &&
			grep -q '^  iothread-vq-mapping=' "$W/help"; then
			ok "$dev lists iothread and iothread-vq-mapping"
		else
			bad "$dev does not list iothread and iothread-vq-mapping"
		fi
	done
done

# --- 2. realize fails cleanly -------------------------------------------------

# expect_fail WHAT PATTERN QEMU-ARGS...: QEMU exits 1 and prints PATTERN.
expect_fail() {
	local what=$1 pat=$2 rc=0
	shift 2
	timeout 60 "$QEMU" "$@" >"$W/out" 2>&1 || rc=$?
	if ((rc == 1)) && grep -q -- "$pat" "$W/out"; then
		ok "$what: exit 1, $(grep -m1 -- "$pat" "$W/out" | sed 's/^qemu-system-x86_64: //')"
	else
		bad "$what: exit $rc, want 1 and '$pat': $(tail -n 3 "$W/out")"
	fi
}

KVM_OK=0
[[ -r /dev/kvm && -w /dev/kvm ]] && KVM_OK=1
# A vhost-user "peer" that accepts every connection and hangs up at once:
# the first message fails, so does realize.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(16)
while True:
    s.accept()[0].close()
' "$W/hangup.sock" &
PIDS+=($!)
wait_socket "$W/hangup.sock" 10 "$!" || fail "the hang-up peer did not create its socket"
for dev in vhost-user-scsi-pci vhost-user-input-pci; do
	expect_fail "$dev memory-isolation=on, missing chardev" "nope" \
		"${BASE[@]}" -machine q35 -accel tcg -device "$dev,chardev=nope,memory-isolation=on"
	accel=tcg pat="vhost_backend_init failed"
	if [[ $dev == vhost-user-input-pci ]]; then
		if ((KVM_OK)); then accel=kvm; else pat="requires kvm"; fi
	fi
	expect_fail "$dev memory-isolation=on, peer hangs up ($accel)" "$pat" \
		"${BASE[@]}" -machine q35 -accel "$accel" -S \
		-chardev "socket,id=c0,path=$W/hangup.sock" \
		-device "$dev,chardev=c0,memory-isolation=on"
done

# QMP device_add of vhost-user-scsi-pci on a socket whose peer hangs up, twice.
{
	echo '{"execute":"qmp_capabilities"}'
	echo '{"execute":"chardev-add","arguments":{"id":"c1","backend":{"type":"socket","data":{"addr":{"type":"unix","data":{"path":"'"$W"'/hangup.sock"}},"server":false}}}}'
	echo '{"execute":"device_add","arguments":{"driver":"vhost-user-scsi-pci","chardev":"c1","memory-isolation":true,"id":"s1"}}'
	echo '{"execute":"device_add","arguments":{"driver":"vhost-user-scsi-pci","chardev":"c1","memory-isolation":true,"id":"s1"}}'
	echo '{"execute":"query-status"}'
	echo '{"execute":"quit"}'
} | timeout 60 "$QEMU" "${BASE[@]}" -machine pc -accel tcg -S -qmp stdio >"$W/qmp.out" 2>&1 && rc=0 || rc=$?
errs=$(grep -c '"error".*vhost_backend_init failed' "$W/qmp.out" || true)
if ((rc == 0 && errs == 2)) && grep -q '"status": "prelaunch"' "$W/qmp.out"; then
	ok "QMP device_add vhost-user-scsi-pci memory-isolation=on, peer hangs up: 2 error replies, QEMU still answers"
else
	bad "QMP device_add: exit $rc, $errs error replies: $(tail -n 5 "$W/qmp.out")"
fi

# --- 3. live peer: realize, migration (10.0) or its blocker (7.2) -----------

BLOCKER="memory-isolation=on does not support migration"
for iso in on off; do
	rm -f "$W/peer.sock"
	# vhost-user-scsi has 3 queues here (control, event, one request queue).
	vg_start_qsd "$W/peer.sock" "$W/qsd.log" "driver=null-co,node-name=n0,size=1048576" 3
	{
		echo '{"execute":"qmp_capabilities"}'
		echo '{"execute":"query-status"}'
		echo '{"execute":"migrate","arguments":{"uri":"exec:cat >/dev/null"}}'
		echo '{"execute":"quit"}'
	} | timeout 60 "$QEMU" "${BASE[@]}" -machine q35 -accel tcg -S \
		-chardev "socket,id=c0,path=$W/peer.sock" \
		-device "vhost-user-scsi-pci,chardev=c0,memory-isolation=$iso" \
		-qmp stdio >"$W/live.out" 2>&1 && rc=0 || rc=$?
	vg_stop "$QSD_PID"
	if ((rc != 0)) || ! grep -q '"status": "prelaunch"' "$W/live.out"; then
		bad "vhost-user-scsi-pci memory-isolation=$iso against a live peer did not realize: exit $rc: $(tail -n 5 "$W/live.out")"
		continue
	fi
	if grep -q "$BLOCKER" "$W/live.out"; then blocked=on; else blocked=off; fi
	if ((IOT)); then
		# 10.0 (patch 8): migration under isolation, no blocker, and
		# QMP's migrate is accepted.
		if [[ $blocked == off ]] && ! grep -q '"error"' "$W/live.out"; then
			ok "vhost-user-scsi-pci memory-isolation=$iso realizes against a live peer; migrate accepted"
		else
			bad "memory-isolation=$iso: migrate refused: $(tail -n 5 "$W/live.out")"
		fi
		continue
	fi
	if [[ $iso == on && $blocked == on ]]; then
		ok "vhost-user-scsi-pci memory-isolation=on realizes against a live peer; migrate refused: $BLOCKER"
	elif [[ $iso == off && $blocked == off ]]; then
		ok "vhost-user-scsi-pci memory-isolation=off realizes against a live peer; no isolation blocker"
	else
		bad "memory-isolation=$iso: isolation blocker $blocked: $(tail -n 5 "$W/live.out")"
	fi
done

# --- 4. IOThreads ------------------------------------------------------------

if ((IOT)); then
	expect_fail "vhost-user-scsi-pci iothread= without memory-isolation" \
		"need memory-isolation=on" \
		"${BASE[@]}" -machine q35 -accel tcg -S -object iothread,id=i0 \
		-chardev "socket,id=c0,path=$W/hangup.sock" \
		-device "vhost-user-scsi-pci,chardev=c0,iothread=i0"
	# live_scsi NAME DEVICE-JSON: realize against the live peer, quit.
	live_scsi() {
		rm -f "$W/peer.sock"
		vg_start_qsd "$W/peer.sock" "$W/qsd.log" "driver=null-co,node-name=n0,size=1048576" 3
		{
			echo '{"execute":"qmp_capabilities"}'
			echo '{"execute":"query-status"}'
			echo '{"execute":"quit"}'
		} | timeout 60 "$QEMU" "${BASE[@]}" -machine q35 -accel tcg -S \
			-object iothread,id=i0 -object iothread,id=i1 \
			-chardev "socket,id=c0,path=$W/peer.sock" -device "$1" \
			-qmp stdio >"$W/live.out" 2>&1 && rc=0 || rc=$?
		vg_stop "$QSD_PID"
	}
	live_scsi '{"driver":"vhost-user-scsi-pci","chardev":"c0","memory-isolation":true,"iothread-vq-mapping":[{"iothread":"i0","vqs":[0,1]},{"iothread":"i1","vqs":[2,5]}]}'
	if ((rc == 1)) && grep -q "vq index 5 for IOThread \"i1\" must be less than num_queues 3" "$W/live.out"; then
		ok "vhost-user-scsi-pci iothread-vq-mapping with queue 5 of 3: refused, exit 1"
	else
		bad "vhost-user-scsi-pci bad iothread-vq-mapping: exit $rc: $(tail -n 3 "$W/live.out")"
	fi
	for dev in '{"driver":"vhost-user-scsi-pci","chardev":"c0","memory-isolation":true,"iothread":"i0"}' \
		'{"driver":"vhost-user-scsi-pci","chardev":"c0","memory-isolation":true,"iothread-vq-mapping":[{"iothread":"i0"},{"iothread":"i1"}]}'; do
		live_scsi "$dev"
		if ((rc == 0)) && grep -q '"status": "prelaunch"' "$W/live.out"; then
			ok "realizes against a live peer: $dev"
		else
			bad "does not realize against a live peer: $dev: exit $rc: $(tail -n 3 "$W/live.out")"
		fi
	done
fi

((FAILS == 0)) || fail "$FAILS check(s) failed"
log "PASS"
