#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One integration test case: an example VMM (vuiso-vmm, or vuiso-minimal
# for the minimal-* cases) against a real back-end (qemu-storage-daemon,
# virtiofsd, dpdk-testpmd) started here on a temporary socket and always
# killed on exit (the net cases mostly let vuiso-vmm start and stop its own
# dpdk-testpmd, as a user would run it).
#
# usage: run-case.sh PATH/TO/vuiso-vmm|vuiso-minimal CASE
set -uo pipefail

VMM=$1
CASE=$2
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=backends.sh
. "$HERE/backends.sh"

trap vmm_cleanup EXIT INT TERM
vmm_need_backends
vmm_tmpdir
T=$VMM_TMP
OUT=$T/vmm.out

fail() {
	echo "FAIL [$CASE]: $*"
	echo "---- vmm output ----"
	cat "$OUT" 2>/dev/null
	for l in "$T"/*.log; do
		[ -f "$l" ] && { echo "---- $l ----"; tail -n 20 "$l"; }
	done
	exit 1
}

# run_vmm ARGS...: run the VMM with a hard time limit; sets RC.
run_vmm() {
	timeout -k 5 90 "$VMM" "$@" >"$OUT" 2>&1
	RC=$?
	[ $RC -eq 124 ] && fail "$(basename "$VMM") hung (killed after 90 s)"
	[ $RC -ge 128 ] && fail "$(basename "$VMM") crashed (status $RC)"
	return 0
}

expect() {
	grep -Eq -- "$1" "$OUT" || fail "output lacks /$1/"
}

new_image() {
	truncate -s "${2:-128M}" "$1"
}

# wait_progress PID: wait (up to 60 s) until the VMM has completed requests,
# so that what follows happens mid-workload, however slow the machine.
wait_progress() {
	local _
	for _ in $(seq 600); do
		grep -Eq '^progress: .* [1-9][0-9]* requests' "$OUT" && return 0
		kill -0 "$1" 2>/dev/null || fail "the VMM stopped before it made progress"
		sleep 0.1
	done
	fail "no progress from the VMM within 60 s"
}

# wait_reconnects PID N: wait (up to 60 s) until the VMM has reconnected N
# times.
wait_reconnects() {
	local _
	for _ in $(seq 600); do
		[ "$(grep -c '^vmm: back-end gone, .* reconnected in' "$OUT")" -ge "$2" ] && return 0
		kill -0 "$1" 2>/dev/null || fail "the VMM stopped before reconnect $2"
		sleep 0.1
	done
	fail "no reconnect $2 within 60 s"
}

# wait_failed PID WHAT: after WHAT (the back-end died), the VMM PID must
# exit with status 1, neither hang nor crash; sets RC and TOOK (seconds).
wait_failed() {
	local start
	start=$(date +%s)
	wait "$1"
	RC=$?
	TOOK=$(($(date +%s) - start))
	[ $RC -eq 124 ] && fail "vuiso-vmm hung after $2"
	[ $RC -ge 128 ] && fail "vuiso-vmm crashed (status $RC)"
	[ $RC -eq 1 ] || fail "exit status $RC, expected 1"
}

# check_maps WHO MODE MAPS: the back-end's /proc/PID/maps (MAPS, read by
# the test itself while the VMM ran) against the isolation MODE.
check_maps() {
	local ram region
	ram=$(grep -c '/memfd:vmm-guest-ram' <<<"$3")
	region=$(grep -c '/memfd:vuiso-isolated' <<<"$3")
	echo "$1 maps: guest RAM $ram, isolated region $region"
	if [ "$2" = on ]; then
		[ "$ram" -eq 0 ] || fail "guest RAM is mapped in $1 with isolation on"
		[ "$region" -ge 1 ] || fail "the isolated region is not mapped in $1"
	else
		# The same check must be able to fail.
		[ "$ram" -ge 1 ] || fail "the check did not find guest RAM in $1 with isolation off"
	fi
}

# kill_qsd: SIGKILL the current qemu-storage-daemon and reap it; keep its log.
kill_qsd() {
	kill -9 "$QSD_PID"
	wait "$QSD_PID" 2>/dev/null
	mv "$T/blk.sock.log" "$T/blk.sock.$QSD_PID.log" 2>/dev/null
}

case $CASE in
blk-on | blk-off)
	mode=${CASE#blk-}
	new_image "$T/disk.img"
	start_qsd_file "$T/blk.sock" "$T/disk.img" 4 || fail "qemu-storage-daemon did not start"
	run_vmm --socket="$T/blk.sock" --isolation="$mode" --queues=4 \
		--depth=32 --ops=1500 --image="$T/disk.img" --seed=11
	[ $RC -eq 0 ] || fail "exit status $RC"
	expect 'verify: every read matched'
	expect 'verify: image file .* sectors match'
	expect 'result: OK'
	expect 'sent with ADD_MEM_REG'
	if [ "$mode" = on ]; then
		expect "guest RAM memfd 'vmm-guest-ram' mappings in back-end: 0"
		expect 'ISOLATION PASS'
		# No value in any message lies in a VMM mapping (ASLR).
		expect 'addresses sent in messages: [1-9][0-9]* \(0 not recorded\), 0 inside VMM mappings'
		expect 'ADDRESSES PASS'
	else
		expect "guest RAM memfd 'vmm-guest-ram' mappings in back-end: [1-9]"
		expect 'guest RAM IS MAPPED'
		# The same check must be able to fail: host addresses go out.
		expect 'isolation off: [1-9][0-9]* VMM address\(es\) sent'
	fi
	;;
blk-on-plain-ring)
	# No indirect descriptors, no event idx, SET_MEM_TABLE: the other
	# driver and protocol paths.
	new_image "$T/disk.img" 64M
	start_qsd_file "$T/blk.sock" "$T/disk.img" 2 || fail "qemu-storage-daemon did not start"
	run_vmm --socket="$T/blk.sock" --queues=2 --depth=64 --ops=1500 \
		--no-indirect --no-event-idx --no-mem-slots \
		--image="$T/disk.img" --seed=12
	[ $RC -eq 0 ] || fail "exit status $RC"
	expect 'sent with SET_MEM_TABLE'
	expect 'verify: image file .* sectors match'
	expect 'ISOLATION PASS'
	expect 'ADDRESSES PASS'
	;;
blk-on-budget-backpressure)
	# A 2 MiB bounce pool for 64 requests of up to 1 MiB forces
	# back-pressure, and a budget of 3 chains per call makes libvuiso
	# return 1 ("call again") all the time: guest work that waited for
	# bounce space must resume from vuiso_vq_call_from_backend().
	new_image "$T/disk.img" 64M
	start_qsd_file "$T/blk.sock" "$T/disk.img" 2 || fail "qemu-storage-daemon did not start"
	run_vmm --socket="$T/blk.sock" --queues=2 --depth=64 --ops=1500 \
		--pool-size=2M --budget=3 --stall-timeout=5 \
		--image="$T/disk.img" --seed=12
	[ $RC -eq 0 ] || fail "exit status $RC"
	expect ' [1-9][0-9]* backpressure'
	expect 'verify: image file .* sectors match'
	expect 'ISOLATION PASS'
	;;
blk-on-packed-guest)
	# A packed guest ring on qemu-storage-daemon 7.2, which has only
	# split rings: libvuiso translates, every sector is verified through
	# the device and in the image file.
	new_image "$T/disk.img"
	start_qsd_file "$T/blk.sock" "$T/disk.img" 4 || fail "qemu-storage-daemon did not start"
	run_vmm --socket="$T/blk.sock" --guest-ring=packed --queues=4 \
		--depth=32 --ops=1500 --image="$T/disk.img" --seed=14
	[ $RC -eq 0 ] || fail "exit status $RC"
	expect 'guest driver features 0x0*[4-7c-f][0-9a-f]{8},'
	expect 'guest ring packed, back-end ring split'
	expect 'verify: every read matched'
	expect 'verify: image file .* sectors match'
	expect 'ISOLATION PASS'
	expect 'result: OK'
	;;
blk-on-packed-guest-plain-ring)
	# The packed driver's other paths: chains of descriptors (no
	# indirect tables) that wrap a 64-entry ring, no event idx (event
	# suppression ENABLE/DISABLE only), a budget of 3 and a small pool.
	new_image "$T/disk.img" 64M
	start_qsd_file "$T/blk.sock" "$T/disk.img" 2 || fail "qemu-storage-daemon did not start"
	run_vmm --socket="$T/blk.sock" --guest-ring=packed --queues=2 \
		--queue-size=64 --depth=64 --ops=1500 --no-indirect \
		--no-event-idx --pool-size=2M --budget=3 --stall-timeout=5 \
		--image="$T/disk.img" --seed=15
	[ $RC -eq 0 ] || fail "exit status $RC"
	expect 'guest ring packed, back-end ring split'
	expect 'verify: image file .* sectors match'
	expect 'ISOLATION PASS'
	;;
refuse-packed-ring)
	new_image "$T/disk.img" 64M
	start_qsd_file "$T/blk.sock" "$T/disk.img" 1 || fail "qemu-storage-daemon did not start"
	# qemu-storage-daemon 7.2 offers no packed ring: forcing one fails
	# clearly instead of sending a feature it did not offer.
	run_vmm --socket="$T/blk.sock" --backend-ring=packed --ops=10
	[ $RC -eq 1 ] || fail "exit status $RC, expected 1 for --backend-ring=packed"
	expect 'FAILED: --backend-ring=packed: the back-end does not offer VIRTIO_F_RING_PACKED \(bit 34\)'
	# Without isolation nothing translates: a packed guest needs a packed
	# back-end.
	run_vmm --socket="$T/blk.sock" --isolation=off --guest-ring=packed --ops=10
	[ $RC -eq 1 ] || fail "exit status $RC, expected 1 for a packed guest without isolation"
	expect 'FAILED: --guest-ring=packed: VIRTIO_F_RING_PACKED \(bit 34\) is not offered to the guest'
	# Forcing split for the back-end is what auto picks here; it works.
	run_vmm --socket="$T/blk.sock" --guest-ring=packed --backend-ring=split \
		--ops=200 --image="$T/disk.img"
	[ $RC -eq 0 ] || fail "exit status $RC with --backend-ring=split"
	expect 'back-end features 0x0*[0-3][0-9a-f]{8}$'
	expect 'guest ring packed, back-end ring split'
	;;
fs-on-packed-guest)
	mkdir "$T/share"
	start_virtiofsd "$T/fs.sock" "$T/share" || fail "virtiofsd did not start"
	run_vmm --device=fs --socket="$T/fs.sock" --guest-ring=packed \
		--shared-dir="$T/share" --seed=16
	[ $RC -eq 0 ] || fail "exit status $RC"
	expect 'guest ring packed, back-end ring split'
	expect 'verify: virtio-fs: 8 files'
	expect 'verify: host directory .* matches'
	expect 'ISOLATION PASS'
	;;
fs-on | fs-off)
	mode=${CASE#fs-}
	mkdir "$T/share"
	start_virtiofsd "$T/fs.sock" "$T/share" || fail "virtiofsd did not start"
	run_vmm --device=fs --socket="$T/fs.sock" --isolation="$mode" \
		--shared-dir="$T/share" --seed=13
	[ $RC -eq 0 ] || fail "exit status $RC"
	expect 'verify: virtio-fs: 8 files'
	expect 'verify: host directory .* matches'
	# Independent look at the host directory.
	d=$(find "$T/share" -mindepth 1 -maxdepth 1 -type d -name 'vmm-fs-*')
	[ -n "$d" ] || fail "no test directory in the shared directory"
	[ "$(find "$d" -type f | wc -l)" -eq 4 ] || fail "expected 4 files in $d"
	[ "$(stat -c %s "$d/file-6")" -eq 300000 ] || fail "file-6 has the wrong size"
	[ ! -e "$d/file-1" ] || fail "file-1 was not unlinked"
	if [ "$mode" = on ]; then
		expect 'ISOLATION PASS'
	else
		expect 'guest RAM IS MAPPED'
	fi
	;;
proof-maps-on | proof-maps-off)
	# The test looks at the back-end's /proc/PID/maps itself while the VMM
	# runs, so the proof does not rest on the VMM's own report.
	mode=${CASE#proof-maps-}
	new_image "$T/disk.img" 64M
	start_qsd_file "$T/blk.sock" "$T/disk.img" 1 || fail "qemu-storage-daemon did not start"
	timeout -k 5 60 "$VMM" --socket="$T/blk.sock" --isolation="$mode" \
		--workload=randread --time=4 --quiet >"$OUT" 2>&1 &
	vmm=$!
	VMM_PIDS+=("$vmm")
	sleep 1.5
	maps=$(cat "/proc/$QSD_PID/maps")
	wait "$vmm"
	RC=$?
	[ $RC -eq 0 ] || fail "exit status $RC"
	check_maps "back-end $QSD_PID" "$mode" "$maps"
	;;
killed-on | killed-off)
	mode=${CASE#killed-}
	new_image "$T/disk.img" 64M
	start_qsd_file "$T/blk.sock" "$T/disk.img" 2 || fail "qemu-storage-daemon did not start"
	timeout -k 5 60 "$VMM" --socket="$T/blk.sock" --isolation="$mode" \
		--queues=2 --depth=32 --ops=100000000 >"$OUT" 2>&1 &
	vmm=$!
	VMM_PIDS+=("$vmm")
	sleep 1
	kill -0 "$vmm" 2>/dev/null || fail "the VMM stopped before the back-end was killed"
	kill -9 "$QSD_PID"
	wait_failed "$vmm" "the back-end died"
	expect 'FAILED: .*back-end .* closed the vhost-user connection'
	[ "$TOOK" -le 15 ] || fail "took $TOOK s to notice the dead back-end"
	;;
net-on | net-off)
	# Two queue pairs (MQ, the control queue served by the VMM, one
	# thread per pair), mergeable receive buffers of 512 bytes so that
	# frames span several: every byte of every frame that testpmd sends
	# back is checked, and testpmd's own counters show no drop.
	mode=${CASE#net-}
	run_vmm --device=net --isolation="$mode" --queues=2 --ops=20000 --seed=21
	[ $RC -eq 0 ] || fail "exit status $RC"
	expect 'started dpdk-testpmd \(pid [0-9]+, io forwarding, 2 queue pair'
	expect 'control queue \(split ring, served by the VMM\): VQ_PAIRS_SET 3 refused, VQ_PAIRS_SET 2 ok'
	expect 'verify: every byte of 40000 frame\(s\) that came back matched; [1-9][0-9]* spanned several'
	expect 'net: testpmd counted 40000 received, 40000 sent back, 0 dropped'
	expect 'result: OK'
	if [ "$mode" = on ]; then
		# testpmd offers packed rings: the default shadow is packed.
		expect 'guest ring split, back-end ring packed'
		expect "guest RAM memfd 'vmm-guest-ram' mappings in back-end: 0"
		expect 'ISOLATION PASS'
		expect 'ADDRESSES PASS'
	else
		expect "guest RAM memfd 'vmm-guest-ram' mappings in back-end: [1-9]"
		expect 'guest RAM IS MAPPED'
	fi
	;;
net-on-split-shadow)
	# The same with the shadow ring kept split (--backend-ring=split, what
	# a VMM does for a back-end whose packed rings it does not trust).
	run_vmm --device=net --backend-ring=split --queues=2 --ops=20000 --seed=25
	[ $RC -eq 0 ] || fail "exit status $RC"
	expect 'guest ring split, back-end ring split'
	expect 'verify: every byte of 40000 frame\(s\) that came back matched'
	expect 'net: testpmd counted 40000 received, 40000 sent back, 0 dropped'
	expect 'ISOLATION PASS'
	expect 'result: OK'
	;;
net-on-packed-macswap-no-mrg | net-off-packed-macswap-no-mrg)
	# Packed rings (on: a packed shadow ring, DPDK has packed rings),
	# one buffer per frame, and testpmd swapping the MAC addresses.
	mode=${CASE#net-}
	mode=${mode%%-*}
	run_vmm --device=net --isolation="$mode" --guest-ring=packed \
		--net-fwd=macswap --no-mrg-rxbuf --ops=20000 --seed=22
	[ $RC -eq 0 ] || fail "exit status $RC"
	expect 'guest ring packed, back-end ring packed'
	expect 'control queue \(packed ring'
	expect 'macswap forwarding'
	expect 'verify: every byte of 20000 frame\(s\) that came back matched; 0 spanned'
	expect 'net: testpmd counted 20000 received, 20000 sent back, 0 dropped'
	expect 'result: OK'
	;;
net-on-translated)
	# libvuiso translates both ways: a packed guest on a split shadow
	# ring, then a split guest on a packed shadow ring.
	run_vmm --device=net --guest-ring=packed --backend-ring=split --ops=10000 --seed=23
	[ $RC -eq 0 ] || fail "packed guest, split back-end: exit status $RC"
	expect 'guest ring packed, back-end ring split'
	expect 'verify: every byte of 10000 frame'
	expect 'ISOLATION PASS'
	run_vmm --device=net --guest-ring=split --backend-ring=packed --ops=10000 --seed=24
	[ $RC -eq 0 ] || fail "split guest, packed back-end: exit status $RC"
	expect 'guest ring split, back-end ring packed'
	expect 'verify: every byte of 10000 frame'
	expect 'ISOLATION PASS'
	;;
net-detects-wrong-forwarding)
	# The check must be able to fail: testpmd swaps the MAC addresses,
	# the VMM is told it forwards them as they are.
	start_testpmd "$T/net.sock" 1 macswap || fail "dpdk-testpmd did not start"
	run_vmm --device=net --socket="$T/net.sock" --net-fwd=io --ops=1000
	[ $RC -eq 1 ] || fail "exit status $RC, expected 1"
	expect 'FAILED: net pair 0: a frame came back with a wrong header'
	;;
net-proof-maps-on | net-proof-maps-off)
	# As proof-maps-*, for net: the test reads the maps of the testpmd the
	# VMM started, itself, while frames flow.
	mode=${CASE#net-proof-maps-}
	timeout -k 5 60 "$VMM" --device=net --isolation="$mode" --workload=rate \
		--time=4 >"$OUT" 2>&1 &
	vmm=$!
	VMM_PIDS+=("$vmm")
	wait_progress "$vmm"
	pmd=$(sed -n 's/.*started dpdk-testpmd (pid \([0-9]*\).*/\1/p' "$OUT")
	[ -n "$pmd" ] || fail "no testpmd pid in the output"
	maps=$(cat "/proc/$pmd/maps")
	wait "$vmm"
	RC=$?
	[ $RC -eq 0 ] || fail "exit status $RC"
	check_maps "testpmd $pmd" "$mode" "$maps"
	;;
net-killed-on | net-killed-off)
	# dpdk-testpmd SIGKILLed mid-traffic: the VMM stops at once with a
	# clear error and leaves nothing behind (its testpmd directory, EAL's
	# run directory); then a new VMM with a new testpmd runs clean.
	mode=${CASE#net-killed-}
	timeout -k 5 60 "$VMM" --device=net --isolation="$mode" --workload=rate \
		--time=50 >"$OUT" 2>&1 &
	vmm=$!
	VMM_PIDS+=("$vmm")
	wait_progress "$vmm"
	pmd=$(sed -n 's/.*started dpdk-testpmd (pid \([0-9]*\).*/\1/p' "$OUT")
	dir=$(sed -n 's/.*started dpdk-testpmd .* on \(.*\)\/net.sock$/\1/p' "$OUT")
	[ -n "$pmd" ] && [ -d "$dir" ] || fail "no testpmd pid or directory in the output"
	kill -9 "$pmd"
	wait_failed "$vmm" "testpmd died"
	expect "FAILED: back-end \\(pid $pmd\\) closed the vhost-user connection while queue 0 and its pair had"
	expect "dpdk-testpmd \\(pid $pmd\\) was killed by signal 9"
	[ "$TOOK" -le 15 ] || fail "took $TOOK s to notice the dead back-end"
	[ ! -e "$dir" ] || fail "$dir left behind"
	[ ! -e "/var/run/dpdk/vuiso-vmm-$vmm" ] || fail "/var/run/dpdk/vuiso-vmm-$vmm left behind"
	run_vmm --device=net --isolation="$mode" --ops=5000 --seed=25
	[ $RC -eq 0 ] || fail "a new VMM and testpmd after the kill: exit status $RC"
	expect 'result: OK'
	;;
net-reconnect-on)
	# dpdk-testpmd SIGKILLed mid-traffic twice and started again on the
	# same socket: the VMM replays what the dead one left unfinished and
	# goes on; frames the dead one had taken may be lost (its counters
	# die with it) or come back twice, nothing else; every byte of every
	# frame that comes back is still checked.
	start_testpmd "$T/net.sock" 2 io || fail "dpdk-testpmd did not start"
	timeout -k 5 120 "$VMM" --device=net --socket="$T/net.sock" --reconnect \
		--queues=2 --ops=100000000 --time=12 --seed=26 >"$OUT" 2>&1 &
	vmm=$!
	VMM_PIDS+=("$vmm")
	wait_progress "$vmm"
	for n in 1 2; do
		kill -9 "$PMD_PID"
		wait "$PMD_PID" 2>/dev/null
		mv "$T/net.sock.log" "$T/net.sock.$PMD_PID.log" 2>/dev/null
		start_testpmd "$T/net.sock" 2 io || fail "dpdk-testpmd did not start again"
		wait_reconnects "$vmm" "$n"
		sleep 1
	done
	wait "$vmm"
	RC=$?
	[ $RC -eq 124 ] && fail "vuiso-vmm hung"
	[ $RC -eq 0 ] || fail "exit status $RC"
	expect 'pair 0: .* 0 lost; across 2 back-end restart\(s\)'
	expect 'pair 1: .* 0 lost; across 2 back-end restart\(s\)'
	expect 'verify: every byte of [1-9][0-9]* frame'
	expect 'ISOLATION PASS'
	expect 'result: OK'
	;;
refuse-net-reconnect-own-testpmd)
	run_vmm --device=net --reconnect
	[ $RC -eq 2 ] || fail "exit status $RC, expected 2"
	expect 'needs --socket'
	;;
blk-reconnect-on | blk-reconnect-twice-packed-guest)
	# The back-end is SIGKILLed mid-workload and a new qemu-storage-daemon
	# comes up on the same socket and image (twice, with a packed guest
	# ring on the daemon's split ring): the requests the dead one had in
	# flight are replayed, every sector still verifies, nothing failed.
	ring=split restarts=1 secs=8
	if [ "$CASE" = blk-reconnect-twice-packed-guest ]; then
		ring=packed restarts=2 secs=15
	fi
	new_image "$T/disk.img" 64M
	start_qsd_file "$T/blk.sock" "$T/disk.img" 2 || fail "qemu-storage-daemon did not start"
	qsds=("$QSD_PID")
	timeout -k 5 100 "$VMM" --socket="$T/blk.sock" --guest-ring=$ring \
		--queues=2 --depth=32 --time=$secs --reconnect \
		--reconnect-timeout=30 --image="$T/disk.img" --seed=17 >"$OUT" 2>&1 &
	vmm=$!
	VMM_PIDS+=("$vmm")
	wait_progress "$vmm"
	for k in $(seq "$restarts"); do
		if [ "$k" -gt 1 ]; then
			# Mid-workload again: after the last reconnect, with
			# the new back-end at work.
			wait_reconnects "$vmm" $((k - 1))
			sleep 1
		fi
		kill -0 "$vmm" 2>/dev/null || fail "the VMM stopped before back-end $k was killed"
		kill_qsd
		# The stale socket goes, so the wait below sees the new
		# one; the VMM retries meanwhile (refused, then no file).
		rm -f "$T/blk.sock"
		sleep 0.5
		start_qsd_file "$T/blk.sock" "$T/disk.img" 2 || fail "qemu-storage-daemon $((k + 1)) did not start"
		qsds+=("$QSD_PID")
	done
	wait "$vmm"
	RC=$?
	[ $RC -eq 124 ] && fail "vuiso-vmm hung across the back-end restart"
	[ $RC -ge 128 ] && fail "vuiso-vmm crashed (status $RC)"
	[ $RC -eq 0 ] || fail "exit status $RC"
	lines=$(grep -E '^vmm: back-end gone, [0-9]+ requests kept; reconnected in [0-9]+ ms, [0-9]+ replayed' "$OUT") ||
		fail "output lacks the reconnect line"
	[ "$(wc -l <<<"$lines")" -eq "$restarts" ] || fail "expected $restarts reconnect(s), got: $lines"
	k=0
	while read -r line; do
		expect "vmm: back-end \\(pid ${qsds[$k]}\\) closed the connection; [0-9]+ request\\(s\\) kept"
		k=$((k + 1))
		kept=$(sed -E 's/.* ([0-9]+) requests kept.*/\1/' <<<"$line")
		replayed=$(sed -E 's/.* ([0-9]+) replayed.*/\1/' <<<"$line")
		[ "$kept" = "$replayed" ] || fail "$kept requests kept but $replayed replayed"
		grep -q "new back-end pid ${qsds[$k]}," <<<"$line" ||
			fail "reconnect $k does not name back-end ${qsds[$k]}: $line"
	done <<<"$lines"
	expect 'verify: every read matched'
	expect 'verify: image file .* sectors match'
	expect 'summary: .* errors=0$'
	expect 'result: OK'
	# Exactly once: on every queue libvuiso completed each request it
	# forwarded once (a duplicate or unknown id would also have failed
	# the guest driver with -EPROTO).
	bad=$(awk '/libvuiso: / { r = $0; sub(/.*libvuiso: /, "", r); split(r, a, " ");
		c = $0; sub(/.* requests, /, "", c); split(c, b, " ");
		if (a[1] != b[1]) print }' "$OUT")
	[ -z "$bad" ] || fail "requests and completions differ: $bad"
	# The proof runs against the last back-end, and every back-end was
	# only ever sent the isolated region.
	expect "isolation proof \\(back-end pid $QSD_PID,"
	expect "fds sent: $((restarts + 1)) memory fd\\(s\\) \\[$((restarts + 1)) isolated region, 0 guest RAM, 0 other\\]"
	expect "guest RAM memfd 'vmm-guest-ram' mappings in back-end: 0"
	expect 'ISOLATION PASS'
	expect 'ADDRESSES PASS'
	grep -E '^vmm: back-end' "$OUT"
	;;
blk-reconnect-gives-up)
	# No new back-end comes: the VMM says so and exits 1 within the
	# timeout, instead of hanging or retrying for ever.
	new_image "$T/disk.img" 64M
	start_qsd_file "$T/blk.sock" "$T/disk.img" 2 || fail "qemu-storage-daemon did not start"
	timeout -k 5 100 "$VMM" --socket="$T/blk.sock" --queues=2 --depth=32 \
		--time=60 --reconnect --reconnect-timeout=3 >"$OUT" 2>&1 &
	vmm=$!
	VMM_PIDS+=("$vmm")
	wait_progress "$vmm"
	kill_qsd
	wait_failed "$vmm" "the back-end died"
	expect 'vmm: back-end \(pid [0-9]+\) closed the connection; [0-9]+ request\(s\) kept; reconnecting to .*blk.sock for up to 3 s'
	expect 'FAILED: back-end \(pid [0-9]+\) gone and no new back-end took over on .*blk.sock within 3 s \(--reconnect-timeout; [0-9]+ attempt\(s\), last: cannot connect to vhost-user back-end socket'
	# 3 s of retries; the rest is slack for a loaded machine.
	[ "$TOOK" -ge 2 ] || fail "gave up after $TOOK s, before the 3 s timeout"
	[ "$TOOK" -le 30 ] || fail "took $TOOK s to give up with a 3 s timeout"
	;;
refuse-reconnect)
	# Without isolation nothing keeps the requests; a new virtiofsd has
	# no FUSE session.  Both are refused before connecting.
	run_vmm --socket="$T/none.sock" --isolation=off --reconnect
	[ $RC -eq 2 ] || fail "exit status $RC, expected 2 for --isolation=off --reconnect"
	expect '^vuiso-vmm: --reconnect needs --isolation=on: without libvuiso nothing keeps the requests'
	run_vmm --socket="$T/none.sock" --device=fs --reconnect
	[ $RC -eq 2 ] || fail "exit status $RC, expected 2 for --device=fs --reconnect"
	expect '^vuiso-vmm: --reconnect is for --device=blk'
	;;
refuse-feature)
	new_image "$T/disk.img" 64M
	start_qsd_file "$T/blk.sock" "$T/disk.img" 1 || fail "qemu-storage-daemon did not start"
	# virtio-blk over libvhost-user never offers packed rings.
	run_vmm --socket="$T/blk.sock" --require-features=ring-packed
	[ $RC -eq 1 ] || fail "exit status $RC, expected 1"
	expect 'FAILED: back-end does not offer required feature ring-packed \(bit 34\)'
	# A single-queue export refuses multiqueue.
	run_vmm --socket="$T/blk.sock" --queues=4 --ops=10
	[ $RC -eq 1 ] || fail "exit status $RC, expected 1 for --queues=4"
	expect 'FAILED: .*(device has 1 queues, 4 requested|supports 1 queue)'
	# The back-end is still usable afterwards.
	run_vmm --socket="$T/blk.sock" --ops=200 --image="$T/disk.img"
	[ $RC -eq 0 ] || fail "exit status $RC after the refused runs"
	;;
detects-mismatch)
	# The checker must be able to fail: a second verify run with another
	# seed finds the first run's data where it expects zeroes.
	new_image "$T/disk.img" 64M
	start_qsd_file "$T/blk.sock" "$T/disk.img" 1 || fail "qemu-storage-daemon did not start"
	run_vmm --socket="$T/blk.sock" --ops=300 --seed=21
	[ $RC -eq 0 ] || fail "first run: exit status $RC"
	run_vmm --socket="$T/blk.sock" --ops=300 --seed=22
	[ $RC -eq 1 ] || fail "second run: exit status $RC, expected 1"
	expect 'FAILED: DATA MISMATCH: queue 0 read of sector [0-9]+'
	;;
no-socket)
	run_vmm --socket="$T/does-not-exist.sock" --ops=10
	[ $RC -eq 1 ] || fail "exit status $RC, expected 1"
	expect 'FAILED: vhost-user: cannot connect to vhost-user back-end socket .*does-not-exist.sock: No such file or directory'
	;;
minimal)
	new_image "$T/disk.img" 64M
	start_qsd_file "$T/blk.sock" "$T/disk.img" 1 || fail "qemu-storage-daemon did not start"
	run_vmm "$T/blk.sock"
	[ $RC -eq 0 ] || fail "exit status $RC"
	expect '^vuiso-minimal: OK: 128 sectors written at sector 2048 and read back identical'
	# Independently of the example's own comparison: the pattern is in
	# the image, at the sectors it names (16 lines of 32 bytes a sector).
	n=$(grep -ac 'vuiso-minimal sector 00000' "$T/disk.img")
	[ "$n" -eq $((128 * 16)) ] || fail "image has $n pattern lines, expected $((128 * 16))"
	for s in 2048 2175; do
		line=$(dd if="$T/disk.img" bs=512 skip=$s count=1 status=none | head -c 31)
		[ "$line" = "$(printf 'vuiso-minimal sector %010u' $s)" ] ||
			fail "sector $s of the image holds '$line'"
	done
	echo "image: $n pattern lines, sectors 2048 and 2175 in place"
	;;
minimal-no-socket)
	run_vmm "$T/does-not-exist.sock"
	[ $RC -eq 1 ] || fail "exit status $RC, expected 1"
	expect '^vuiso-minimal: FAILED: cannot connect to vhost-user back-end socket .*does-not-exist.sock: No such file or directory'
	;;
minimal-read-only)
	# A read-only export fails the write: the device's status byte is
	# checked, not assumed.
	new_image "$T/disk.img" 64M
	start_qsd_file "$T/blk.sock" "$T/disk.img" 1 off || fail "qemu-storage-daemon did not start"
	run_vmm "$T/blk.sock"
	[ $RC -eq 1 ] || fail "exit status $RC, expected 1"
	expect '^vuiso-minimal: FAILED: write of sectors 2048-2175: status 1, not 0 \(VIRTIO_BLK_S_OK\)'
	;;
*)
	echo "unknown case $CASE"
	exit 2
	;;
esac
grep -E '^(vuiso-vmm: FAILED|vuiso-minimal|  ISOLATION|  guest RAM|summary|verify|result)' "$OUT" || true
echo "PASS [$CASE]"
exit 0
