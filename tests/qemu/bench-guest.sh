#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench-guest.sh - guest throughput with memory-isolation=off, =on with
# the isolated queues in the main loop, and =on with them in an IOThread.
#
# Boots the test guest (make-guest.sh) in the patched QEMU with three
# vhost-user devices:
#   vhost-user-blk-pci  -> qemu-storage-daemon, file-backed raw image
#                          (cache.direct=on, aio=threads)
#   vhost-user-blk-pci  -> qemu-storage-daemon, null-co (read-zeroes=on)
#   vhost-user-fs-pci   -> virtiofsd (cache=none)
# in three modes per round, on all three devices alike:
#   off  memory-isolation=off (the back-ends map guest RAM)
#   on   memory-isolation=on, the queues' data path in the main loop
#   iot  memory-isolation=on plus iothread=iot0 (-object iothread,id=iot0):
#        the data path in one IOThread, off the BQL (not with the cached
#        7.2 build, VUISO_QEMU_SERIES=7.2: its adapter has no IOThreads)
# for --rounds rounds; round r starts the rotation off,on,iot at its r-th
# mode, so a drift of the machine's load hits every mode alike.  Each boot
# gets fresh back-ends.
# Inside the guest busybox dd runs, timed with the guest's monotonic clock:
#   blk-{file,null}-{write,read}-64k  O_DIRECT, --size-mb MiB in 64 KiB blocks
#   blk-{file,null}-{write,read}-4k   O_DIRECT, --small-mb MiB in 4 KiB blocks
#   fs-write-64k                      --fs-mb MiB file, 64 KiB blocks, fsync
#   fs-read-64k                       the same file read back
# Prints a table: workload, median MB/s (10^6 bytes/s) per mode, the
# ratios on/off and iot/off of the medians, and every round's figures.
# While each guest runs, the host checks that the qemu-storage-daemon
# processes map libvuiso's isolated region with isolation on (on, iot) and
# do not with it off, and in iot mode that the IOThread exists (QMP
# query-iothreads) and has used CPU time.
#
# Under TCG (the default) the figures are only relative: both sides run in
# the same emulator on the same loaded machine; absolute numbers say nothing
# about KVM.
#
# Every process is started on temporary sockets in a mktemp -d directory and
# killed by a trap whatever the outcome; every wait is bounded.
#
# Usage: tests/qemu/bench-guest.sh [options]
#   --qemu PATH      qemu-system-x86_64 with the memory-isolation property
#                    (default "cached": the one qemu-glue/build-qemu.sh built)
#   --rounds N       rounds of the three modes (default 3)
#   --size-mb N      MiB per 64 KiB-block blk workload (default 64)
#   --small-mb N     MiB per 4 KiB-block blk workload (default 8)
#   --fs-mb N        MiB of the virtiofs file (default 64)
#   --packed         packed=on on all three devices: with isolation on the
#                    guest drives packed rings that libvuiso translates to
#                    the back-ends' split rings; with it off the back-ends'
#                    lack of RING_PACKED keeps the guest on split rings
#   --kvm            use -accel kvm instead of tcg
#   --timeout SEC    bound for each guest run (default 600)
#   --keep           keep the work directory for debugging
# Exit status: 0 when every workload ran in every boot, 1 otherwise.

set -euo pipefail

VG_NAME=bench-guest
# shellcheck source=tests/qemu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QEMU=cached
ACCEL=tcg
ROUNDS=3
SIZE_MB=64
SMALL_MB=8
FS_MB=64
TIMEOUT=600
KEEP=0
PRIVATE_RAM=0
PACKED=0
MEM=512M
NULL_MB=1024

while (($#)); do
	case $1 in
	--qemu) QEMU=$2; shift ;;
	--rounds) ROUNDS=$2; shift ;;
	--size-mb) SIZE_MB=$2; shift ;;
	--small-mb) SMALL_MB=$2; shift ;;
	--fs-mb) FS_MB=$2; shift ;;
	--packed) PACKED=1 ;;
	--kvm) ACCEL=kvm ;;
	--timeout) TIMEOUT=$2; shift ;;
	--keep) KEEP=1 ;;
	-h | --help) sed -n '3,/^# Exit status/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-guest: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
for v in ROUNDS SIZE_MB SMALL_MB FS_MB TIMEOUT; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "bench-guest: bad ${v,,}: ${!v}" >&2; exit 2; }
done
((SIZE_MB < NULL_MB && SMALL_MB < NULL_MB)) || { echo "bench-guest: sizes must be < $NULL_MB MiB" >&2; exit 2; }

vg_check_prereqs
vg_guest
vg_workdir vuiso-bench
VG_LOGS=(serial.log qsd-file.log qsd-null.log virtiofsd.log qemu.log)

# The image is one MiB larger than the largest workload, the null device
# NULL_MB: the guest tells them apart by size.
IMG_MB=$(((SIZE_MB > SMALL_MB ? SIZE_MB : SMALL_MB) + 1))
truncate -s "${IMG_MB}M" "$W/disk.img"
mkdir -p "$W/shared"

WORKLOADS=(
	blk-file-write-64k blk-file-read-64k blk-file-write-4k blk-file-read-4k
	blk-null-write-64k blk-null-read-64k blk-null-write-4k blk-null-read-4k
	fs-write-64k fs-read-64k
)

# --- the guest's benchmark script -------------------------------------------

cat >"$W/test.sh" <<EOF
#!/bin/sh
# Runs inside the guest as /test.sh (appended to the initramfs).
SIZE_MB=$SIZE_MB
SMALL_MB=$SMALL_MB
FS_MB=$FS_MB
FILE_SECTORS=$((IMG_MB * 2048))
NULL_SECTORS=$((NULL_MB * 2048))
EOF
cat >>"$W/test.sh" <<'EOF'
fails=0
# Monotonic nanoseconds: /proc/timer_list ("now at N nsecs"), else
# /proc/uptime (10 ms).
now() {
	t=$(sed -n '/^now at /{s/^now at \([0-9]*\) nsecs$/\1/p;q}' /proc/timer_list 2>/dev/null)
	if [ -z "$t" ]; then
		read -r up _ </proc/uptime
		t=$(( (${up%.*} * 100 + 1${up#*.} - 100) * 10000000 ))
	fi
	echo "$t"
}
# bench NAME BYTES DD-ARGS...
bench() {
	name=$1 bytes=$2
	shift 2
	t0=$(now)
	if dd "$@" 2>/tmp/dd.err; then
		t1=$(now)
		echo "VUISO-BENCH: $name $bytes $((t1 - t0))"
	else
		echo "VUISO-BENCH-FAIL: $name: $(tail -n 1 /tmp/dd.err)"
		fails=$((fails + 1))
	fi
}
file= null=
for s in /sys/block/vd*; do
	[ -e "$s/size" ] || continue
	case $(cat "$s/size") in
	$FILE_SECTORS) file=${s##*/} ;;
	$NULL_SECTORS) null=${s##*/} ;;
	esac
done
# Ring layout per device: RING_PACKED is feature bit 34.
rings=""
for d in /sys/bus/virtio/devices/*; do
	rings="$rings $(cut -c35 $d/features)"
done
echo "VUISO-GUEST: packed rings:$rings"
echo "VUISO-GUEST: bench start (file=/dev/$file null=/dev/$null)"
for kd in file:$file null:$null; do
	k=${kd%%:*} d=/dev/${kd#*:}
	if [ ! -b "$d" ]; then
		echo "VUISO-BENCH-FAIL: blk-$k: no device"
		fails=$((fails + 1))
		continue
	fi
	bench blk-$k-write-64k $((SIZE_MB << 20)) if=/dev/zero of=$d bs=64k count=$((SIZE_MB * 16)) oflag=direct conv=notrunc
	bench blk-$k-read-64k $((SIZE_MB << 20)) if=$d of=/dev/null bs=64k count=$((SIZE_MB * 16)) iflag=direct
	bench blk-$k-write-4k $((SMALL_MB << 20)) if=/dev/zero of=$d bs=4k count=$((SMALL_MB * 256)) oflag=direct conv=notrunc
	bench blk-$k-read-4k $((SMALL_MB << 20)) if=$d of=/dev/null bs=4k count=$((SMALL_MB * 256)) iflag=direct
done
if mount -t virtiofs vfs /mnt; then
	bench fs-write-64k $((FS_MB << 20)) if=/dev/zero of=/mnt/bench.bin bs=64k count=$((FS_MB * 16)) conv=fsync
	echo 3 >/proc/sys/vm/drop_caches
	bench fs-read-64k $((FS_MB << 20)) if=/mnt/bench.bin of=/dev/null bs=64k
	rm -f /mnt/bench.bin
	umount /mnt
else
	echo "VUISO-BENCH-FAIL: fs: mount"
	fails=$((fails + 1))
fi
echo "VUISO-GUEST: bench done, $fails failures"
[ $fails = 0 ]
EOF
vg_initrd "$W/test.sh" "$W/initrd.img"

# --- one boot ---------------------------------------------------------------

# memfd mappings of the qemu-storage-daemons, checked once the guest runs.
MAPS_SEEN=0
MAPS_VERDICT=""
IOT_TID=""
poll_maps() {
	((MAPS_SEEN)) && return 0
	grep -q 'VUISO-GUEST: bench start' "$W/serial.log" || return 0
	MAPS_SEEN=1
	local pid iso
	for pid in "$QSD_FILE_PID" "$QSD_NULL_PID"; do
		if grep -q 'memfd:vuiso' "/proc/$pid/maps" 2>/dev/null; then iso=on; else iso=off; fi
		MAPS_VERDICT+=" $iso"
	done
	[[ $MODE == iot ]] || return 0
	vg_qmp "$W/qmp.sock" query-iothreads >"$W/qmp.log" 2>&1 || return 0
	IOT_TID=$(sed -n 's/^query-iothreads \(.*\) [0-9]* ms$/\1/p' "$W/qmp.log" |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["return"][0]["thread-id"])' 2>/dev/null || true)
}
# CPU time (utime + stime, clock ticks) of QEMU's thread $1.
thread_ticks() {
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$QEMU_PID/task/$1/stat" 2>/dev/null || echo 0
}
poll_iot() {
	poll_maps
	[[ -n $IOT_TID ]] && IOT_TICKS=$(thread_ticks "$IOT_TID")
	return 0
}

declare -A RES=()
MODES=(off on iot)
# The 7.2 series has no IOThreads: off and on only (iot's column stays "-").
[[ $VG_QEMU_SERIES == 7.2 && $QEMU == "$VG_QEMU_BUILD"/* ]] && MODES=(off on)
# boot ROUND off|on|iot
boot() {
	local round=$1 opt="" iso=on name bytes ns mbs extra=()
	MODE=$2
	case $MODE in
	off) iso=off ;;
	on) opt=",memory-isolation=on" ;;
	iot)
		opt=",memory-isolation=on,iothread=iot0"
		# shellcheck disable=SC2054  # commas are QEMU option syntax
		extra=(-object iothread,id=iot0 -qmp "unix:$W/qmp.sock,server=on,wait=off")
		;;
	esac
	((PACKED)) && opt+=",packed=on"
	rm -f "$W"/*.sock
	vg_start_qsd "$W/blk-file.sock" "$W/qsd-file.log" \
		"driver=file,node-name=file0,filename=$W/disk.img,cache.direct=on,aio=threads"
	QSD_FILE_PID=$QSD_PID
	vg_start_qsd "$W/blk-null.sock" "$W/qsd-null.log" \
		"driver=null-co,node-name=null0,size=$((NULL_MB << 20)),read-zeroes=on"
	QSD_NULL_PID=$QSD_PID
	vg_start_virtiofsd "$W/shared" "$W/fs.sock" "$W/virtiofsd.log"

	vg_qemu_args
	QEMU_ARGS+=(
		-chardev "socket,id=blk0,path=$W/blk-file.sock"
		-device "vhost-user-blk-pci,chardev=blk0,num-queues=1$opt"
		-chardev "socket,id=blk1,path=$W/blk-null.sock"
		-device "vhost-user-blk-pci,chardev=blk1,num-queues=1$opt"
		-chardev "socket,id=fs0,path=$W/fs.sock"
		-device "vhost-user-fs-pci,chardev=fs0,tag=vfs$opt"
		"${extra[@]}"
	)
	vg_qemu_boot_args "$W/initrd.img" "$W/serial.log"
	QEMU_ARGS+=(-no-reboot)
	: >"$W/serial.log"
	MAPS_SEEN=0
	MAPS_VERDICT=""
	IOT_TID=""
	IOT_TICKS=0
	log "round $round, mode $MODE"
	vg_run_qemu "$TIMEOUT" poll_iot
	vg_stop "$QSD_FILE_PID" "$QSD_NULL_PID" "$VFS_PID"
	tr -d '\r' <"$W/serial.log" | sed -n 's/^\(VUISO-BENCH.*\)$/  guest: \1/p' >&2
	((QEMU_STATUS == 0)) || fail "QEMU failed: $(tail -n 5 "$W/qemu.log")"
	grep -q 'VUISO-GUEST-EXIT: 0' "$W/serial.log" || fail "guest benchmark failed"
	[[ $MAPS_VERDICT == " $iso $iso" ]] ||
		fail "qemu-storage-daemon isolated-region mappings:$MAPS_VERDICT, want $iso for both"
	if [[ $MODE == iot ]]; then
		# The IOThread ran the data path: it used CPU time (sampled
		# every 0.2 s while the guest ran).
		[[ -n $IOT_TID ]] || fail "iot mode: no IOThread in QMP query-iothreads"
		((IOT_TICKS > 0)) || fail "iot mode: the IOThread (thread $IOT_TID) used no CPU time"
		log "iot mode: IOThread thread $IOT_TID used $IOT_TICKS clock ticks"
	fi
	# Only an isolated device can have packed rings on these back-ends.
	local want=0 rings
	((PACKED)) && [[ $iso == on ]] && want=1
	rings=$(tr -d '\r' <"$W/serial.log" | sed -n 's/^VUISO-GUEST: packed rings://p')
	[[ $rings == " $want $want $want" ]] ||
		fail "RING_PACKED per device:${rings:- none}, want $want for all three"
	while read -r _ name bytes ns; do
		mbs=$(awk -v b="$bytes" -v n="$ns" 'BEGIN { printf "%.1f", (n > 0 ? b * 1000 / n : 0) }')
		RES[$name,$MODE]+="$mbs "
	done < <(tr -d '\r' <"$W/serial.log" | grep '^VUISO-BENCH: ')
}

log "$ROUNDS round(s), accel $ACCEL, ${SIZE_MB} MiB at 64 KiB, ${SMALL_MB} MiB at 4 KiB, fs ${FS_MB} MiB"
for ((r = 1; r <= ROUNDS; r++)); do
	for ((m = 0; m < ${#MODES[@]}; m++)); do
		boot "$r" "${MODES[(r - 1 + m) % ${#MODES[@]}]}"
	done
done

# --- table ------------------------------------------------------------------

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "# bench-guest: $(date -u +%FT%TZ), $ROUNDS round(s), accel $ACCEL, $(basename "$QEMU") $("$QEMU" --version | head -n1 | sed 's/.*version //')$( ((PACKED)) && echo ", packed=on (isolation on: packed guest rings on split back-ends)")"
if [[ $ACCEL == tcg ]]; then
	echo "# TCG: figures are only relative (the three modes in the same run, same"
	echo "# emulator, same machine load); absolute MB/s say nothing about KVM."
fi
echo "# MB/s = 10^6 bytes/s, median over rounds; off: memory-isolation=off; on: =on,"
echo "# data path in the main loop; iot: =on, data path in an IOThread (iothread=iot0)"
printf '%-20s %9s %9s %9s %7s %7s   %s\n' workload "off MB/s" "on MB/s" "iot MB/s" "on/off" "iot/off" "rounds off | on | iot"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
missing=0
for wl in "${WORKLOADS[@]}"; do
	off=$(median <<<"${RES[$wl,off]:-}")
	on=$(median <<<"${RES[$wl,on]:-}")
	iot=$(median <<<"${RES[$wl,iot]:-}")
	r_on=$(ratio "$on" "$off")
	r_iot=$(ratio "$iot" "$off")
	[[ $r_on == - ]] && missing=1
	[[ $r_iot == - && ${MODES[*]} == *iot* ]] && missing=1
	offs=${RES[$wl,off]:-} ons=${RES[$wl,on]:-} iots=${RES[$wl,iot]:-}
	printf '%-20s %9s %9s %9s %7s %7s   %s | %s | %s\n' "$wl" "$off" "$on" "$iot" "$r_on" "$r_iot" "${offs% }" "${ons% }" "${iots% }"
done
((missing == 0)) || fail "some workloads have no figures"
log "done"
