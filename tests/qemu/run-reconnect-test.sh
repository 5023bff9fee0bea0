#!/bin/bash
# SPDX-License-Identifier: MIT
#
# run-reconnect-test.sh - a qemu-storage-daemon killed and restarted under
# an isolated vhost-user-blk device, with requests in flight.
#
# Boots the test guest in the patched QEMU with
# vhost-user-blk-pci,memory-isolation=on on a chardev with reconnect-ms=
# against qemu-storage-daemon, whose export goes through a throttle
# filter: requests wait in the daemon, so the guest always has some in
# flight there.  In the guest, four processes write, read back and compare
# 4 KiB O_DIRECT pages, each in its own 1 MiB of the disk
# (tests/qemu/guest-io.c), round after round.  Meanwhile the host kills
# the daemon with SIGKILL, starts a new one on the same socket and image,
# and QEMU reconnects; the guest goes on for a while and stops its loops.
#
# Checked: every loop of the guest ended with every page matched and no
# I/O error (a lost request hangs a loop until the timeout, a request
# completed twice or failed makes it fail); QEMU kept the requests the
# dead daemon had in flight and replayed them to the new one (trace
# vhost_user_iso_vq_keep / _vq_replay, at least one request); the new
# daemon maps the isolated region and no QEMU guest RAM; the image holds
# each loop's last round.
#
# --reset-while-away: after the kill the guest reboots before a new daemon
# starts: the device reset must drop the kept requests (trace
# vhost_user_iso_vq_drop, no replay), since the driver that made them is
# gone; the next boot's loops (one round each) pass against the new daemon.
#
# --stop-wait: a device stop that waits for requests the daemon took and
# has not finished.  The daemon's disk is an NBD export of a second
# qemu-storage-daemon, which the host SIGSTOPs: requests hang in the
# first daemon, which still answers GET_VRING_BASE.  A QMP stop then
# waits (from the event loop, at most 5 s) until the NBD server gets
# SIGCONT 1.5 s later: the stop takes 1-4.5 s and loses nothing; after
# a cont, the same again, but the first daemon is SIGKILLed 1 s into the
# wait: the stop must end at once (under 3 s), the requests are kept and
# replayed to a new daemon.
#
# --reboot-under-io: no kill; the guest reboots while its requests wait in
# the (throttled) daemon: the reset's stop waits for them from the event
# loop (trace vhost_user_iso_vq_waited, all finished) and loses none; the
# next boot's loops pass.
#
# Usage: tests/qemu/run-reconnect-test.sh [--qemu PATH] [--keep]
#            [--timeout S]
#            [--kills N | --reset-while-away | --stop-wait | --reboot-under-io]
# Exit status: 0 pass, 1 fail (a missing prerequisite fails too).

set -euo pipefail

VG_NAME=run-reconnect-test
# shellcheck source=tests/qemu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VG_LOGS=(serial.log qsd.log qemu.log)

QEMU=cached
ACCEL=tcg
TIMEOUT=240
KILLS=2
LOOPS=4
IOPS=200 # the throttle: requests queue in the daemon
RESET=0
STOPWAIT=0
REBOOT=0

while (($#)); do
	case $1 in
	--qemu) QEMU=$2; shift ;;
	--timeout) TIMEOUT=$2; shift ;;
	--kills) KILLS=$2; shift ;;
	--reset-while-away) RESET=1 ;;
	--stop-wait) STOPWAIT=1 ;;
	--reboot-under-io) REBOOT=1 ;;
	--keep) KEEP=1 ;;
	-h | --help) sed -n '3,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run-reconnect-test: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
[[ $KILLS =~ ^[1-9][0-9]*$ ]] || { echo "run-reconnect-test: --kills wants a positive number" >&2; exit 2; }
((RESET || STOPWAIT)) && KILLS=1
((REBOOT)) && KILLS=0

vg_resolve_qemu
command -v "$QSD" >/dev/null || skip "$QSD not found"

GUEST_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk"
export GUEST_MODULES
vg_guest
vg_workdir vuiso-reconnect
vg_guest_io

# --- back-end ---------------------------------------------------------------

truncate -s 64M "$W/disk.img"
FILE_NODE="driver=file,node-name=file0,filename=$W/disk.img,cache.direct=off"
if ((STOPWAIT)); then
	# The image behind an NBD server the host can freeze.
	"$QSD" --blockdev "$FILE_NODE" \
		--nbd-server "addr.type=unix,addr.path=$W/nbd.sock" \
		--export type=nbd,id=nbd0,node-name=file0,writable=on \
		>"$W/nbd.log" 2>&1 &
	NBD_PID=$!
	PIDS+=("$NBD_PID")
	wait_socket "$W/nbd.sock" 10 "$NBD_PID" || fail "the NBD server did not start"
	VG_LOGS+=(nbd.log)
fi
# The daemon, started again on the same socket and image after each kill.
start_qsd() {
	if ((STOPWAIT)); then
		VG_QSD_ARGS=()
		vg_start_qsd "$W/blk.sock" "$W/qsd.log" \
			"driver=nbd,node-name=disk0,server.type=unix,server.path=$W/nbd.sock,export=file0" 1
	else
		VG_QSD_ARGS=(--object "throttle-group,id=tg0,x-iops-total=$IOPS" --blockdev "$FILE_NODE")
		vg_start_qsd "$W/blk.sock" "$W/qsd.log" \
			"driver=throttle,node-name=disk0,throttle-group=tg0,file=file0" 1
	fi
	log "qemu-storage-daemon pid $QSD_PID"
}
start_qsd

# --- the guest --------------------------------------------------------------

cat >"$W/test.sh" <<EOF
#!/bin/sh
LOOPS=$LOOPS
KILLS=$KILLS
RESET=$RESET
STOPWAIT=$STOPWAIT
REBOOT=$REBOOT
EOF
cat >>"$W/test.sh" <<'EOF'
fails=0
check() { if [ "$1" = 0 ]; then echo "VUISO-CHECK: ok $2"; else echo "VUISO-CHECK: FAIL $2"; fails=$((fails + 1)); fi; }
[ -b /dev/vda ]; check $? "blk: /dev/vda present"
# The first sector says which boot this is (--reset-while-away boots twice).
boot=1
dd if=/dev/vda bs=512 count=1 2>/dev/null | grep -q VUISO-BOOT1 && boot=2
echo "VUISO-GUEST: boot $boot"
if [ $boot = 1 ]; then
	echo VUISO-BOOT1 | dd of=/dev/vda bs=512 count=1 conv=sync oflag=direct 2>/dev/null
fi
pids=
i=0
while [ $i -lt $LOOPS ]; do
	/guest-io loop /dev/vda $((i + 1)) 1 /tmp/stop >/tmp/loop$i.out 2>&1 &
	pids="$pids $!"
	i=$((i + 1))
done
sleep 3
if [ $REBOOT = 1 ] && [ $boot = 1 ]; then
	echo "VUISO-GUEST: rebooting with requests in flight"
	reboot -f
	sleep 60
fi
if [ $RESET = 1 ] && [ $boot = 1 ]; then
	# The host kills the daemon and starts no new one until we rebooted.
	echo "VUISO-GUEST: kill 1 now"
	sleep 5
	echo "VUISO-GUEST: rebooting with requests in flight"
	reboot -f
	sleep 60
fi
# The host stops the VM while requests hang in the daemon.
if [ $STOPWAIT = 1 ]; then
	echo "VUISO-GUEST: stop 1 now"
	sleep 8
fi
# The host kills the daemon and starts a new one after each of these.
k=1
while [ $RESET = 0 ] && [ $REBOOT = 0 ] && [ $k -le $KILLS ]; do
	echo "VUISO-GUEST: kill $k now"
	sleep 12
	k=$((k + 1))
done
touch /tmp/stop
i=0
for p in $pids; do
	wait $p; check $? "loop $i: every page written, read back and matched across the restarts"
	sed "s/^/VUISO-GUEST: loop $i: /" /tmp/loop$i.out
	i=$((i + 1))
done
if dmesg | grep -i 'I/O error'; then check 1 "no I/O error in the guest's log"; else check 0 "no I/O error in the guest's log"; fi
echo "VUISO-RESULT: $fails failures"
[ $fails = 0 ]
EOF
vg_initrd "$W/test.sh" "$W/initrd.img" "$W/guest-io"

# --- QEMU -------------------------------------------------------------------

MEM=512M
vg_qemu_args
QEMU_ARGS+=(
	-chardev "socket,id=blk0,path=$W/blk.sock,reconnect-ms=500"
	-device "vhost-user-blk-pci,chardev=blk0,memory-isolation=on"
	-qmp "unix:$W/qmp.sock,server=on,wait=off"
	"${VG_TRACE_ARGS[@]}"
)
# The guest reboots itself only with --reset-while-away / --reboot-under-io.
((RESET || REBOOT)) || QEMU_ARGS+=(-no-reboot)
vg_qemu_boot_args "$W/initrd.img" "$W/serial.log"

# stop_waiting NAME HOLD-S ACTION: freeze the NBD server, QMP stop, after
# HOLD-S seconds do ACTION (cont-nbd: let the NBD server go on; kill-qsd:
# SIGKILL the vhost-user daemon); sets STOP_MS, how long the stop took.
STOP_MS=0
stop_waiting() {
	local name=$1 hold=$2 action=$3 qpid
	kill -STOP "$NBD_PID"
	sleep 0.5 # the guest's next requests reach the daemon and hang there
	vg_qmp "$W/qmp.sock" stop >"$W/qmp-$name.log" 2>&1 &
	qpid=$!
	sleep "$hold"
	case $action in
	cont-nbd) kill -CONT "$NBD_PID" ;;
	kill-qsd)
		log "SIGKILL to qemu-storage-daemon $QSD_PID while the VM stop waits for it"
		kill -KILL "$QSD_PID"
		;;
	esac
	{ wait "$qpid"; } 2>/dev/null || RESTART_FAIL+="QMP stop ($name) failed: $(cat "$W/qmp-$name.log"); "
	STOP_MS=$(sed -n 's/^stop .* \([0-9]*\) ms$/\1/p' "$W/qmp-$name.log")
	STOP_MS=${STOP_MS:-0}
	log "QMP stop ($name): $STOP_MS ms"
}

KILLED=0
STOPPED=0
RESTART_FAIL=""
poll() {
	local next=$((KILLED + 1)) old
	if ((STOPWAIT && !STOPPED)) && grep -q 'VUISO-GUEST: stop 1 now' "$W/serial.log"; then
		STOPPED=1
		sleep 0.5
		# The daemon lives and finishes its requests once the NBD server
		# goes on: the stop waits that long, no longer, and loses nothing.
		stop_waiting slow 1.5 cont-nbd
		((STOP_MS >= 1000 && STOP_MS < 4500)) ||
			RESTART_FAIL+="the stop with a slow daemon took $STOP_MS ms, want 1000 to 4500; "
		vg_qmp "$W/qmp.sock" cont >>"$W/qmp-slow.log" 2>&1 || RESTART_FAIL+="QMP cont failed; "
		return 0
	fi
	((next <= KILLS)) || return 0
	grep -q "VUISO-GUEST: kill $next now" "$W/serial.log" || return 0
	sleep 1
	old=$QSD_PID
	if ((STOPWAIT)); then
		# The daemon dies while the stop waits for it: the wait ends at
		# once, not at its 5 s bound.
		stop_waiting gone 1 kill-qsd
		((STOP_MS >= 500 && STOP_MS < 3000)) ||
			RESTART_FAIL+="the stop whose daemon died 1 s in took $STOP_MS ms, want under 3000; "
		kill -CONT "$NBD_PID"
	else
		log "SIGKILL to qemu-storage-daemon $old with the guest's I/O in flight"
		kill -KILL "$old"
	fi
	{ vg_stop "$old"; } 2>/dev/null # no "Killed" job notice
	sleep 1
	if ((RESET)); then
		# The device reset happens while no daemon listens.
		for _ in $(seq 300); do
			grep -q 'rebooting with requests in flight' "$W/serial.log" && break
			sleep 0.1
		done
		sleep 3
	fi
	start_qsd
	# QEMU reconnects within reconnect-ms and starts the queue again.
	for _ in $(seq 100); do
		grep -q '/memfd:vuiso-isolated' "/proc/$QSD_PID/maps" 2>/dev/null && break
		sleep 0.1
	done
	vg_check_qsd_maps "after restart $next"
	[[ -z $MAPS_FAIL ]] || RESTART_FAIL+="restart $next: $MAPS_FAIL"
	if ((STOPWAIT)); then
		vg_qmp "$W/qmp.sock" cont >>"$W/qmp-gone.log" 2>&1 || RESTART_FAIL+="QMP cont after the restart failed; "
	fi
	KILLED=$next
}
: >"$W/serial.log"
vg_run_qemu "$TIMEOUT" poll
log "QEMU exited with status $QEMU_STATUS"
tr -d '\r' <"$W/serial.log" | sed -n 's/^\(VUISO-.*\)$/  guest: \1/p' >&2
((QEMU_STATUS == 0)) || fail "QEMU failed: $(tail -n 5 "$W/qemu.log")"
((KILLED == KILLS)) || fail "the guest never got to kill $((KILLED + 1))"
((!STOPWAIT || STOPPED)) || fail "the guest never got to the stop"
grep -q 'VUISO-GUEST-EXIT: 0' "$W/serial.log" || fail "guest test failed"
[[ -z $RESTART_FAIL ]] || fail "$RESTART_FAIL"

# The mechanism, not luck: requests were kept and replayed at each restart
# (with --reset-while-away: kept, then dropped by the reset).
kept=$(grep -c 'vhost_user_iso_vq_keep .*[1-9][0-9]* request(s) kept' "$W/qemu.log" || true)
replays=$(sed -n 's/.*vhost_user_iso_vq_replay .*: \([0-9-]*\) request(s) replayed.*/\1/p' "$W/qemu.log")
drops=$(grep -c 'vhost_user_iso_vq_drop .*kept requests dropped' "$W/qemu.log" || true)
log "restarts: $KILLS; queues that kept requests: $kept; replayed: ${replays//$'\n'/ }; dropped by a reset: $drops"
if ((REBOOT)); then
	grep -q 'rebooting with requests in flight' "$W/serial.log" || fail "the guest did not reboot"
	grep 'vhost_user_iso_vq_wait' "$W/qemu.log" | sed 's/^[0-9]*@[0-9.]*://' >&2
	grep -q 'vhost_user_iso_vq_waited .*wait ended: 0 back-end gone 0' "$W/qemu.log" ||
		fail "the reset's stop did not wait for requests in the daemon"
	if ((kept != 0)) || [[ -n $replays ]]; then fail "requests kept or replayed without a restart"; fi
fi
((REBOOT || kept >= 1)) || fail "no restart found requests in flight to keep (the throttle should have queued some)"
if ((RESET)); then
	((drops == kept)) || fail "the reset dropped $drops queue(s)' kept requests, want $kept"
	[[ -z $replays ]] || fail "requests of the driver before the reset were replayed: $replays"
fi
for n in $replays; do
	((n >= 1)) || fail "a replay to the new back-end gave $n"
done
((RESET)) || [[ $(wc -w <<<"$replays") == "$kept" ]] || fail "$kept queue(s) kept requests but $(wc -w <<<"$replays") replayed"
if grep -E 'memory isolation: .*(dropped|cannot|stopped)' "$W/qemu.log" >&2; then
	fail "QEMU reported lost requests"
fi
if ((STOPWAIT)); then
	# One wait ended with everything done, one because the daemon hung up.
	grep 'vhost_user_iso_vq_wait' "$W/qemu.log" | sed 's/^[0-9]*@[0-9.]*://' >&2
	grep -q 'vhost_user_iso_vq_waited .*wait ended: 0 back-end gone 0' "$W/qemu.log" ||
		fail "no stop waited for the slow daemon to finish"
	grep -q 'vhost_user_iso_vq_waited .*wait ended: -110 back-end gone 1' "$W/qemu.log" ||
		fail "no stop saw the daemon hang up"
fi

vg_stop "$QSD_PID"
((STOPWAIT)) && vg_stop "$NBD_PID"
# Each loop's 1 MiB holds its last round.
i=0
while read -r rounds; do
	vg_check_pattern "$W/disk.img" $(((i + 1) << 20)) $((1 << 20)) "$rounds" >&2 ||
		fail "image check of loop $i"
	i=$((i + 1))
done < <(tr -d '\r' <"$W/serial.log" | sed -n 's/^VUISO-GUEST: loop [0-9]*: VUISO-IO: loop: \([0-9]*\) rounds.*/\1/p')
((i == LOOPS)) || fail "found the rounds of $i loops, not $LOOPS"
((REBOOT)) && log "PASS (the guest rebooted with requests waiting in the daemon: the reset's stop waited for them and lost none; the next boot's I/O verified)" && exit 0
((STOPWAIT)) && log "PASS (a VM stop waited for a slow daemon and lost nothing; a stop whose daemon died 1 s in ended at once, the requests kept and replayed to a new daemon; every page verified)" && exit 0
((RESET)) && log "PASS (qemu-storage-daemon killed with I/O in flight, the guest rebooted before a new one started: the kept requests were dropped, not replayed, and the next boot's I/O verified)" && exit 0
log "PASS ($KILLS qemu-storage-daemon kills with I/O in flight, requests kept and replayed each time, every page verified in the guest and in the image)"
