#!/bin/bash
# SPDX-License-Identifier: MIT
#
# run-net-test.sh - a real guest pings through DPDK's vhost-user back-end
# with memory-isolation=on.
#
# Starts dpdk-testpmd (DPDK 22.11, net_vhost PMD, icmpecho forwarding: it
# answers ARP and ICMP echo requests for any address), boots the test guest
# from make-guest.sh (with the virtio_net modules) under TCG in the patched
# QEMU with
#   -netdev vhost-user,...,memory-isolation=on
#   -device virtio-net-pci,...,packed=on
# (QEMU 7.2 under TCG crashes in kvm_virtio_pci_irqfd_use when a vhost-user
# virtio-net-pci uses MSI-X, with or without isolation: vectors=0 there;
# QEMU 10.0 needs no workaround), and inside the guest pings the back-end
# with small and large packets; every echo must come back.
#
# DPDK's vhost library has packed rings, so with isolation on the shadow
# ring is packed whatever the guest's layout (libvuiso picks packed
# whenever the back-end offers it): the host checks, from the adapter's
# trace events (vhost_user_iso_vq_start), that every queue started with
# the guest's layout (packed with --packed, the default; split with
# --split, translated), a packed shadow ring and the packed back-end base
# 0x80008000.
# While the guest pings, the host checks that dpdk-testpmd maps libvuiso's
# isolated region and not the guest RAM memfd.
#
# A stop gives the receive buffers the back-end never took back to the
# guest ring instead of waiting for packets that never come (the two-step
# stop around GET_VRING_BASE): with --pause the QMP stop's time is printed
# and must stay far below the 5 s an isolated net stop used to hold QEMU's
# main loop for.  With isolation on, every queue stop in the trace
# (pause, link down, reboot) must have settled every request: none left in
# flight, so none dropped.
#
# Usage: tests/qemu/run-net-test.sh [options]
#   --qemu PATH      qemu-system-x86_64 (default "cached": the one
#                    qemu-glue/build-qemu.sh built; fails if absent)
#   --split          keep the guest on split rings (default: packed=on)
#   --pause          after the pings, stop and continue the VM over QMP
#                    (every queue stops and restarts without a reset), set
#                    the link off and on (the same, the VM running), then
#                    ping again: the queues must resume where they stopped
#   --isolation M    on (default) or off: with off the same maps check must
#                    find guest RAM mapped in dpdk-testpmd (it can fail)
#   --mtu 9000       the guest's interface at MTU 9000 and 8000-byte echo
#                    requests too (testpmd takes jumbo frames)
#   --boots N        boot the guest N times (default 1): it pings, reports
#                    and reboots itself with pings running (a device reset
#                    of every queue); every boot must ping clean, and the
#                    host quits QEMU after the N-th
#   --count N        echo requests per size (default 20)
#   --interval SEC   between echo requests (default 0.2)
#   --timeout SEC    bound for the guest run (default 240)
#   --keep           keep the work directory for debugging
# Exit status: 0 pass, 1 fail (a missing prerequisite fails too).

set -euo pipefail

VG_NAME=run-net-test
# shellcheck source=tests/qemu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VG_LOGS=(serial.log testpmd.log qemu.log)

QEMU=cached
TESTPMD=${TESTPMD:-dpdk-testpmd}
ACCEL=tcg
MEM=512M
PACKED=1
PAUSE=0
ISOLATION=on
MTU=1500
BOOTS=1
COUNT=20
INTERVAL=0.2
TIMEOUT=240
SIZES="64 1400"

while (($#)); do
	case $1 in
	--qemu) QEMU=$2; shift ;;
	--split) PACKED=0 ;;
	--pause) PAUSE=1 ;;
	--isolation) ISOLATION=$2; shift ;;
	--mtu) MTU=$2; shift ;;
	--boots) BOOTS=$2; shift ;;
	--count) COUNT=$2; shift ;;
	--interval) INTERVAL=$2; shift ;;
	--timeout) TIMEOUT=$2; shift ;;
	--keep) KEEP=1 ;;
	-h | --help) sed -n '3,53p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run-net-test: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

[[ $ISOLATION == on || $ISOLATION == off ]] || { echo "run-net-test: --isolation on|off" >&2; exit 2; }
[[ $MTU == 1500 || $MTU == 9000 ]] || { echo "run-net-test: --mtu 1500|9000" >&2; exit 2; }
((MTU == 1500)) || SIZES="$SIZES 8000"
vg_resolve_qemu
command -v "$TESTPMD" >/dev/null || skip "$TESTPMD not found (Debian package dpdk-dev)"
[[ $(id -u) == 0 ]] || skip "dpdk-testpmd needs root"

GUEST_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net"
export GUEST_MODULES
vg_guest
vg_workdir vuiso-net

# --- back-end ---------------------------------------------------------------

# Two lcores (main and forwarding), no hugepages, no PCI devices, no shared
# config or telemetry files; a stats line every second keeps it running
# without a terminal and shows the packets it forwarded.  Jumbo frames need
# mbufs that hold one.
JUMBO=()
((MTU == 1500)) || JUMBO=(--max-pkt-len=9018 --mbuf-size=10240)
"$TESTPMD" -l 0,1 --no-pci --no-huge -m 512 --no-shconf --no-telemetry \
	--file-prefix="vuiso-net-$$" \
	--vdev "net_vhost0,iface=$W/net.sock,queues=1" -- \
	--forward-mode=icmpecho --auto-start --total-num-mbufs=8192 \
	"${JUMBO[@]}" --stats-period 1 </dev/null >"$W/testpmd.log" 2>&1 &
PMD_PID=$!
PIDS+=("$PMD_PID")
wait_socket "$W/net.sock" 60 "$PMD_PID" || fail "dpdk-testpmd did not create its socket"
log "dpdk-testpmd pid $PMD_PID on $W/net.sock"

# --- the guest's test script ------------------------------------------------

cat >"$W/test.sh" <<EOF
#!/bin/sh
PACKED=$PACKED
PAUSE=$PAUSE
MTU=$MTU
COUNT=$COUNT
INTERVAL=$INTERVAL
SIZES="$SIZES"
EOF
cat >>"$W/test.sh" <<'EOF'
fails=0
check() { if [ "$1" = 0 ]; then echo "VUISO-CHECK: ok $2"; else echo "VUISO-CHECK: FAIL $2"; fails=$((fails + 1)); fi; }

net=""
for d in /sys/bus/virtio/devices/*; do
	[ "$(cat $d/device)" = 0x0001 ] || continue
	packed=$(cut -c35 $d/features)
	echo "VUISO-GUEST: net features $(cat $d/features)"
	[ "$packed" = "$PACKED" ]; check $? "net: VIRTIO_F_RING_PACKED (bit 34) negotiated: $packed, want $PACKED"
	net=$(ls $d/net)
done
[ -n "$net" ]; check $? "net: interface present ($net)"
ip link set lo up
ip addr add 10.0.2.15/24 dev $net
ip link set $net mtu $MTU; check $? "net: $net mtu $MTU"
ip link set $net up; check $? "net: $net up"
echo "VUISO-GUEST: net up"
pings() {
	for s in $SIZES; do
		out=$(ping -c $COUNT -i $INTERVAL -s $s -W 5 10.0.2.2 2>&1)
		echo "$out" | sed -n 's/^\(.*packets transmitted.*\)$/VUISO-PING '"$1 $s"': \1/p'
		echo "$out" | grep -q "$COUNT packets transmitted, $COUNT packets received, 0% packet loss"
		check $? "net: $1: $COUNT echo requests of $s bytes, every reply back"
	done
}
pings first
if [ $PAUSE = 1 ]; then
	# The host stops the VM within this sleep and continues it.
	echo "VUISO-GUEST: pause me"
	sleep 5
	echo "VUISO-GUEST: pinging after the pause"
	pings after-pause
fi
echo "VUISO-RESULT: $fails failures"
# The host counts these and quits QEMU after the last boot; until then
# each boot ends in a reboot (a reset of every queue).
echo "VUISO-GUEST: boot done"
if [ $fails = 0 ]; then
	# Reboot with traffic running: echo requests every 20 ms.
	ping -i 0.02 -s 1400 10.0.2.2 >/dev/null 2>&1 &
	sleep 1
	reboot -f
	sleep 30
fi
[ $fails = 0 ]
EOF
vg_initrd "$W/test.sh" "$W/initrd.img"

# --- QEMU -------------------------------------------------------------------

DEV_OPT=""
((PACKED)) && DEV_OPT=",packed=on"
# QEMU 7.2 under TCG crashes with MSI-X on a vhost-user virtio-net-pci.
[[ $VG_QEMU_SERIES != 7.2 ]] || DEV_OPT+=",vectors=0"
vg_qemu_args
QEMU_ARGS+=(
	-chardev "socket,id=net0,path=$W/net.sock"
	-netdev "vhost-user,id=n0,chardev=net0,memory-isolation=$ISOLATION"
	# romfile= : no iPXE option ROM driving the NIC before Linux
	-device "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,romfile=$DEV_OPT"
	"${VG_TRACE_ARGS[@]}"
	-qmp "unix:$W/qmp.sock,server=on,wait=off"
)
vg_qemu_boot_args "$W/initrd.img" "$W/serial.log"

: >"$W/serial.log"
MAPS=""
check_maps() {
	local ram isolated
	[[ -z $MAPS ]] || return 0
	grep -q 'VUISO-GUEST: net up' "$W/serial.log" || return 0
	ram=$(awk '$6 ~ /memory-backend-memfd/ { print $5; exit }' "/proc/$QEMU_PID/maps")
	isolated=$(awk '$6 ~ /^\/memfd:vuiso-isolated/ { print $5; exit }' "/proc/$PMD_PID/maps")
	if [[ -z $ram ]]; then
		MAPS="no guest RAM memfd in QEMU"
	elif [[ $ISOLATION == off ]]; then
		# The same check must be able to fail.
		if awk -v i="$ram" '$5 == i { f = 1 } END { exit !f }' "/proc/$PMD_PID/maps"; then
			MAPS=ok
			log "maps: isolation off: dpdk-testpmd maps guest RAM (inode $ram)"
		else
			MAPS="isolation off, and the check did not find guest RAM (inode $ram) in dpdk-testpmd"
		fi
	elif awk -v i="$ram" '$5 == i { f = 1 } END { exit !f }' "/proc/$PMD_PID/maps"; then
		MAPS="dpdk-testpmd maps guest RAM (inode $ram) despite memory-isolation=on"
	elif [[ -z $isolated ]]; then
		MAPS="dpdk-testpmd does not map libvuiso's isolated region"
	else
		MAPS=ok
		log "maps: dpdk-testpmd maps memfd:vuiso-isolated (inode $isolated), not guest RAM (inode $ram)"
	fi
}
PAUSE_STATE=none
# When the guest asks for it: stop the VM (its queues stop: drain,
# GET_VRING_BASE), continue it (they restart at the base handed back).
poll_pause() {
	[[ $PAUSE_STATE == none ]] || return 0
	grep -q 'VUISO-GUEST: pause me' "$W/serial.log" || return 0
	log "stopping the VM"
	if ! vg_qmp "$W/qmp.sock" stop query-status >"$W/qmp.log" 2>&1; then
		PAUSE_STATE="QMP stop failed: $(cat "$W/qmp.log")"
		return 0
	fi
	stop_ms=$(awk '$1 == "stop" {print $(NF - 1)}' "$W/qmp.log")
	log "QMP stop answered in ${stop_ms:-?} ms"
	# Not a speed test: 2.5 s only tells a stop that waits for the
	# back-end (5 s and more) from one that does not (milliseconds).
	if [[ -z $stop_ms ]] || ((stop_ms >= 2500)); then
		PAUSE_STATE="QMP stop took ${stop_ms:-?} ms: it waited for the back-end"
		return 0
	fi
	if grep -q 'pinging after the pause' "$W/serial.log"; then
		PAUSE_STATE="the guest was not stopped within its 5 s sleep"
	fi
	if ! vg_qmp "$W/qmp.sock" cont query-status >>"$W/qmp.log" 2>&1; then
		PAUSE_STATE="QMP cont failed: $(cat "$W/qmp.log")"
		return 0
	fi
	log "VM stopped and continued"
	# The link down and up: the queues stop and start again, the same
	# stop as above with the VM running.
	if ! vg_qmp "$W/qmp.sock" '{"execute": "set_link", "arguments": {"name": "n0", "up": false}}' \
		'{"execute": "set_link", "arguments": {"name": "n0", "up": true}}' >"$W/qmp-link.log" 2>&1; then
		PAUSE_STATE="QMP set_link failed: $(cat "$W/qmp-link.log")"
		return 0
	fi
	cat "$W/qmp-link.log" >>"$W/qmp.log"
	link_ms=$(awk '$1 == "set_link" {print $(NF - 1); exit}' "$W/qmp-link.log")
	log "QMP set_link off answered in ${link_ms:-?} ms"
	if [[ -z $link_ms ]] || ((link_ms >= 2500)); then
		PAUSE_STATE="QMP set_link off took ${link_ms:-?} ms: it waited for the back-end"
		return 0
	fi
	[[ $PAUSE_STATE != none ]] || PAUSE_STATE=ok
}
# After the last boot's report: quit (the guest reboots after each).
QUIT=""
poll_boots() {
	[[ -z $QUIT ]] || return 0
	(($(grep -c 'VUISO-GUEST: boot done' "$W/serial.log") >= BOOTS)) || return 0
	QUIT=$(vg_qmp "$W/qmp.sock" quit 2>&1) || QUIT="QMP quit failed: $QUIT"
}
poll() {
	check_maps
	((PAUSE == 0)) || poll_pause
	poll_boots
}
vg_run_qemu "$TIMEOUT" poll
log "QEMU exited with status $QEMU_STATUS"
tr -d '\r' <"$W/serial.log" | sed -n 's/^\(VUISO-.*\)$/  guest: \1/p' >&2
((QEMU_STATUS == 0)) || fail "QEMU failed: $(tail -n 5 "$W/qemu.log")"
results=$(grep -c 'VUISO-RESULT: 0 failures' "$W/serial.log" || true)
((results >= BOOTS)) || fail "guest test failed ($results clean boot(s) of $BOOTS)"
[[ $MAPS == ok ]] || fail "maps: ${MAPS:-the guest never brought the link up}"
((PAUSE == 0)) || [[ $PAUSE_STATE == ok ]] || fail "pause: $PAUSE_STATE"

# What dpdk-testpmd counted (its last stats block before we stop it).
vg_stop "$PMD_PID"
grep -E 'RX-packets|TX-packets' "$W/testpmd.log" | tail -n 2 | sed 's/^ */  testpmd: /' >&2 || true

# Every queue start: the guest layout asked for, and a packed shadow ring
# (libvuiso picks packed whenever the back-end offers it, as testpmd does).
layout=split
((PACKED)) && layout=packed
shadow=packed base=0x80008000
# The back-end's own view: the features it negotiated (SET_FEATURES).
# Without isolation it drives the guest's own ring.
want_packed=$PACKED
[[ $ISOLATION == on ]] && want_packed=1
features=$(sed -n 's/.*negotiated Virtio features: \(0x[0-9a-f]*\).*/\1/p' "$W/testpmd.log" | tail -n 1)
[[ -n $features ]] || fail "no negotiated Virtio features in testpmd.log"
(((features >> 34 & 1) == want_packed)) ||
	fail "dpdk-testpmd negotiated features $features: RING_PACKED is $((features >> 34 & 1)), want $want_packed"
log "dpdk-testpmd negotiated features $features (RING_PACKED $((features >> 34 & 1)))"
[[ $ISOLATION == on ]] || { log "PASS (isolation off, $BOOTS boot(s), pings of $SIZES bytes at MTU $MTU, accel $ACCEL)"; exit 0; }
awk -v layout=$layout -v shadow=$shadow -v base=$base -v boots="$BOOTS" -v start_re="$VG_TRACE_START" -v stop_re="$VG_TRACE_STOP" '
function bad(m) { print "trace: " m ": " $0; err = 1 }
$1 ~ start_re {
	# vhost_user_iso_vq_start NAME: queue I size N guest G shadow S guest base B back-end base C
	starts++
	if ($8 != layout) bad("guest ring is " $8 ", want " layout)
	if ($10 != shadow) bad("shadow ring is " $10 ", want " shadow)
	if ($16 != base) bad("back-end base " $16 ", want " base)
}
$1 ~ stop_re {
	# vhost_user_iso_vq_stop NAME: queue I stopped: R guest base B in flight F
	# Every stop (pause, link down, the reboots with pings running)
	# settles every request: none dropped, no used entry lost.
	stops++
	if ($6 != 0 || $NF != 0) bad("a stop left requests in flight")
}
END {
	printf "trace: %d queue starts, guest %s, shadow %s, back-end base %s; %d stops, none with requests in flight\n", starts, layout, shadow, base, stops
	if (starts < 2 * boots) { print "trace: want the rx and tx queues started on every boot"; err = 1 }
	exit err
}' "$W/qemu.log" >&2 || fail "the adapter's trace does not show a $layout guest ring, a $shadow shadow ring and clean stops"
log "PASS ($layout guest ring, $shadow shadow ring, $BOOTS boot(s), pings of $SIZES bytes at MTU $MTU, accel $ACCEL)"
