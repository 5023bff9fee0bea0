#!/bin/bash
# SPDX-License-Identifier: MIT
#
# run-guest-test.sh - boot a real guest against real vhost-user back-ends.
#
# Starts qemu-storage-daemon (vhost-user-blk export of a raw image file) and
# virtiofsd (vhost-user-fs on a shared directory), boots the test guest from
# make-guest.sh under TCG with vhost-user-blk-pci and vhost-user-fs-pci, and
# inside the guest
#   - writes random data to /dev/vda with O_DIRECT, reads it back with
#     O_DIRECT and compares checksums,
#   - mounts virtiofs, reads a file the host wrote, creates, writes, reads,
#     lists and deletes files.
# While the devices are live the host reads /proc/PID/maps of every back-end
# process and looks for the guest RAM memfd (matched by inode against QEMU's
# own mapping of it):
#   --isolation off (default): the guest RAM memfd MUST be mapped (baseline,
#                              how vhost-user works today);
#   --isolation on:            it MUST NOT be mapped (memory-isolation=on).
# Afterwards the host checks that the image file holds the guest's data and
# that the shared directory holds what the guest left there.  The guest
# checks that every virtio device has VIRTIO_F_RING_PACKED (feature bit 34)
# negotiated exactly when --packed is given.  With isolation on, QEMU traces
# the adapter (vhost_user_iso_*; vuiso_qemu_* in 7.2) and the host checks every queue start's guest
# and shadow ring layouts and that every queue restarts either fresh or at
# the base its stop handed back, and that every guest kick and back-end
# call of every queue was handled in the thread it belongs to: QEMU's main
# thread, or with --iothreads the IOThread the queue is mapped to (thread
# ids from QMP query-iothreads).
#
# Every process is started on temporary sockets and killed by a trap whatever
# the outcome; every wait is bounded.
#
# Usage: tests/qemu/run-guest-test.sh [options]
#   --qemu PATH         qemu-system-x86_64 to run (default: from PATH);
#                       "cached" means the one qemu-glue/build-qemu.sh built
#                       in $VUISO_CACHE/qemu10/build (qemu/build with
#                       VUISO_QEMU_SERIES=7.2; fails if absent)
#   --isolation on|off  add memory-isolation=on to both devices (default off)
#   --kvm               use -accel kvm instead of tcg
#   --private-ram       plain -m guest RAM, not a shared memfd (only with
#                       --isolation on: the back-ends cannot map it at all;
#                       they must map nothing but libvuiso's region)
#   --packed            packed=on on both devices: the guest drives packed
#                       rings (only with --isolation on: these back-ends
#                       have split rings only, libvuiso translates)
#   --pause             in every boot, between the blk write and read-back,
#                       stop and continue the VM over QMP: vhost stops and
#                       restarts every queue without a device reset, so the
#                       queues resume at the base GET_VRING_BASE handed back
#   --boots N           boot the guest N times (default 1): the guest runs
#                       the test and reboots itself N-1 times in the same
#                       QEMU process (device reset, vhost stop and start),
#                       every boot runs the whole test again
#   --iothreads N       N IOThreads iot0..iotN-1 (only with --isolation on):
#                       vhost-user-blk gets iothread=iot0 (N = 1) or an
#                       iothread-vq-mapping spreading its queues round-robin
#                       over all N; vhost-user-fs gets iothread=iot0
#   --blk-queues Q      num-queues=Q on vhost-user-blk and its export, and
#                       Q guest CPUs; the guest writes and reads its slice
#                       with Q dd processes, one pinned to each CPU, so that
#                       every queue carries I/O (default 1)
#   --io-at-reboot      with --boots N > 1: the guest reboots while four
#                       writers keep virtiofs busy (fsync'd 4 MiB files),
#                       and with isolation on four O_DIRECT writers the
#                       blk device (its last 16 MiB);
#                       every queue stop must still end with nothing in
#                       flight and the next boot's tests pass.  virtiofsd
#                       finishes what it took before it answers
#                       GET_VRING_BASE; qemu-storage-daemon (libvhost-user,
#                       7.2 and 10.0 alike) answers at once, closes the call
#                       fd and vu_panic()s when a request completes later
#                       and notifies; under isolation the stop now turns
#                       the back-end's calls off first and it survives
#                       (run-reconnect-test.sh --stop-wait), but this test
#                       runs isolation off too, where blk writers would
#                       make it fail whenever a reset catches one
#   --timeout SEC       bound for the whole guest run (default 240)
#   --keep              keep the work directory for debugging
# Exit status: 0 pass, 1 fail (a missing prerequisite fails too: scripts/setup.sh
# and qemu-glue/build-qemu.sh provide them all, so absence is a broken set-up).

set -euo pipefail

VG_NAME=run-guest-test
# shellcheck source=tests/qemu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QEMU=qemu-system-x86_64
ISOLATION=off
ACCEL=tcg
BOOTS=1
TIMEOUT=240
KEEP=0
PRIVATE_RAM=0
PACKED=0
PAUSE=0
MEM=512M
DATA_MB=8
IOTHREADS=0
QUEUES=1
IO_AT_REBOOT=0

while (($#)); do
	case $1 in
	--qemu) QEMU=$2; shift ;;
	--isolation) ISOLATION=$2; shift ;;
	--kvm) ACCEL=kvm ;;
	--private-ram) PRIVATE_RAM=1 ;;
	--boots) BOOTS=$2; shift ;;
	--timeout) TIMEOUT=$2; shift ;;
	--keep) KEEP=1 ;;
	--packed) PACKED=1 ;;
	--pause) PAUSE=1 ;;
	--iothreads) IOTHREADS=$2; shift ;;
	--blk-queues) QUEUES=$2; shift ;;
	--io-at-reboot) IO_AT_REBOOT=1 ;;
	-h | --help) sed -n '3,/^# Exit status/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run-guest-test: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
[[ $ISOLATION == on || $ISOLATION == off ]] || { echo "--isolation on|off" >&2; exit 2; }
if ((PRIVATE_RAM)) && [[ $ISOLATION != on ]]; then
	echo "--private-ram needs --isolation on (vhost-user needs shared RAM otherwise)" >&2
	exit 2
fi
if ((PACKED)) && [[ $ISOLATION != on ]]; then
	echo "--packed needs --isolation on (the back-ends have no packed rings)" >&2
	exit 2
fi
[[ $IOTHREADS =~ ^[0-9]$ && $QUEUES =~ ^[1-8]$ ]] ||
	{ echo "--iothreads 0-9, --blk-queues 1-8" >&2; exit 2; }
if ((IOTHREADS)) && [[ $ISOLATION != on ]]; then
	echo "--iothreads needs --isolation on (the isolated queues run there)" >&2
	exit 2
fi
((DATA_MB % QUEUES == 0)) || { echo "--blk-queues must divide $DATA_MB" >&2; exit 2; }
if ((IO_AT_REBOOT && BOOTS < 2)); then
	echo "--io-at-reboot needs --boots 2 or more" >&2
	exit 2
fi

vg_check_prereqs
# The per-handler trace events and the IOThread properties are the 10.0
# series' (patch 7); the 7.2 adapter runs in the main loop only.
SERIES_IOT=1
[[ $VG_QEMU_SERIES == 7.2 && $QEMU == "$VG_QEMU_BUILD"/* ]] && SERIES_IOT=0
if ((IOTHREADS && !SERIES_IOT)); then
	log "SKIP: --iothreads needs the 10.0 series; the 7.2 adapter has no IOThreads"
	exit 77
fi
vg_guest
vg_workdir vuiso-guest

# --- back-ends --------------------------------------------------------------

mkdir -p "$W/shared"
truncate -s 64M "$W/disk.img"
echo "hello from the host $$" >"$W/shared/host-file.txt"
HOST_SHA=$(sha256sum <"$W/shared/host-file.txt" | cut -d' ' -f1)

vg_start_qsd "$W/blk.sock" "$W/qsd.log" \
	"driver=file,node-name=disk0,filename=$W/disk.img,cache.direct=on,aio=threads" \
	"$QUEUES"
log "qemu-storage-daemon pid $QSD_PID on $W/blk.sock ($QUEUES queue(s))"

vg_start_virtiofsd "$W/shared" "$W/fs.sock" "$W/virtiofsd.log"
log "virtiofsd pid $VFS_PID ($VFS_SANDBOX sandbox) on $W/fs.sock"

# --- the guest's test script ------------------------------------------------

cat >"$W/test.sh" <<EOF
#!/bin/sh
# Runs inside the guest as /test.sh (appended to the initramfs).
DATA_MB=$DATA_MB
HOST_SHA=$HOST_SHA
BOOTS=$BOOTS
PACKED=$PACKED
PAUSE=$PAUSE
QUEUES=$QUEUES
IO_AT_REBOOT=$IO_AT_REBOOT
ISOLATION=$ISOLATION
EOF
cat >>"$W/test.sh" <<'EOF'
fails=0
check() { if [ "$1" = 0 ]; then echo "VUISO-CHECK: ok $2"; else echo "VUISO-CHECK: FAIL $2"; fails=$((fails + 1)); fi; }

# vhost-user-fs first: the shared directory counts the boots.
mount -t virtiofs vfs /mnt; check $? "fs: mount virtiofs"
n=$(( $(cat /mnt/boots 2>/dev/null | wc -l) + 1 ))
echo "boot $n" >>/mnt/boots
echo "VUISO-GUEST: boot $n of $BOOTS"

# The features file is one 0/1 character per feature bit, bit 0 first.
for d in /sys/bus/virtio/devices/*; do
	id=$(cat $d/device)
	case $id in 0x0002) dev=blk ;; 0x001a) dev=fs ;; *) continue ;; esac
	packed=$(cut -c35 $d/features)
	echo "VUISO-GUEST: $dev ($id) features $(cat $d/features)"
	[ "$packed" = "$PACKED" ]; check $? "$dev: VIRTIO_F_RING_PACKED (bit 34) negotiated: $packed, want $PACKED"
done
[ "$(sha256sum /mnt/host-file.txt | cut -d' ' -f1)" = "$HOST_SHA" ]
check $? "fs: host file reads back"
mkdir -p /mnt/dir; check $? "fs: mkdir"
dd if=/dev/urandom of=/tmp/f bs=64k count=16 status=none
cp /tmp/f /mnt/dir/guest-file-$n.bin; check $? "fs: write 1 MiB file"
sync
fsha=$(sha256sum /mnt/dir/guest-file-$n.bin | cut -d' ' -f1)
[ "$fsha" = "$(sha256sum /tmp/f | cut -d' ' -f1)" ]; check $? "fs: file reads back"
echo "VUISO-FS-SHA $n: $fsha"
echo temp >/mnt/dir/to-delete; check $? "fs: create"
ls /mnt/dir | grep -q to-delete; check $? "fs: list shows new file"
rm /mnt/dir/to-delete; check $? "fs: delete"
! ls /mnt/dir | grep -q to-delete; check $? "fs: list no longer shows it"

# blk_dd write|read SEEK: move the slice between /tmp/rand (/tmp/back) and
# the disk, in QUEUES parts at once, part k by a dd pinned to CPU k: the
# guest's blk-mq maps CPU k to queue k, so every queue carries I/O.
blk_dd() {
	part=$((DATA_MB / QUEUES)) k=0 pids= rc=0
	while [ $k -lt $QUEUES ]; do
		if [ $1 = write ]; then
			taskset -c $k dd if=/tmp/rand of=/dev/vda bs=1M skip=$((k * part)) \
				seek=$(($2 + k * part)) count=$part oflag=direct conv=notrunc,fsync status=none &
		else
			taskset -c $k dd if=/dev/vda of=/tmp/back.$k bs=1M skip=$(($2 + k * part)) \
				count=$part iflag=direct status=none &
		fi
		pids="$pids $!"
		k=$((k + 1))
	done
	for p in $pids; do wait $p || rc=1; done
	if [ $1 = read ]; then
		k=0
		: >/tmp/back
		while [ $k -lt $QUEUES ]; do cat /tmp/back.$k >>/tmp/back; rm -f /tmp/back.$k; k=$((k + 1)); done
	fi
	return $rc
}

# vhost-user-blk: every boot writes its own DATA_MB MiB slice of the disk.
[ -b /dev/vda ]; check $? "blk: /dev/vda present"
if [ $QUEUES -gt 1 ]; then
	nq=$(ls -d /sys/block/vda/mq/* 2>/dev/null | wc -l)
	[ "$nq" = $QUEUES ]; check $? "blk: guest uses $nq of $QUEUES queues"
fi
dd if=/dev/urandom of=/tmp/rand bs=1M count=$DATA_MB status=none
want=$(sha256sum /tmp/rand | cut -d' ' -f1)
seek=$(( (n - 1) * DATA_MB ))
blk_dd write $seek
check $? "blk: O_DIRECT write of $DATA_MB MiB at $seek MiB ($QUEUES dd)"
if [ $PAUSE = 1 ]; then
	# The host stops and continues the VM, then answers through virtiofs,
	# whose queues must have resumed for the answer to arrive.
	echo "VUISO-GUEST: pause me $n"
	i=0
	while [ ! -e /mnt/resumed-$n ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
	[ -e /mnt/resumed-$n ]; check $? "VM stopped and continued by the host"
fi
blk_dd read $seek
check $? "blk: O_DIRECT read of $DATA_MB MiB ($QUEUES dd)"
got=$(sha256sum /tmp/back | cut -d' ' -f1)
[ "$want" = "$got" ]; check $? "blk: read-back checksum $got"
echo "VUISO-BLK-SHA $n: $want"
rm -f /tmp/rand /tmp/back /tmp/f

# Tell the host the devices are live, wait until it has read the back-ends'
# /proc/PID/maps (it answers through the shared directory).
echo "VUISO-GUEST: devices live $n"
i=0
while [ ! -e /mnt/maps-checked ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
[ -e /mnt/maps-checked ]; check $? "host read the back-ends' maps"
rm -f /mnt/maps-checked
umount /mnt; check $? "fs: umount"
echo "VUISO-RESULT $n: $fails failures"
if [ $fails = 0 ] && [ $n -lt $BOOTS ]; then
	sync
	if [ $IO_AT_REBOOT = 1 ]; then
		# Four writers into files of the shared directory, over and
		# over; reboot while they run.  With isolation, four O_DIRECT
		# writers into the blk device's last 16 MiB too (without, see
		# --io-at-reboot in the header).
		mount -t virtiofs vfs /mnt
		for k in 0 1 2 3; do
			( while :; do dd if=/dev/zero of=/mnt/reboot-io-$k bs=64k count=64 conv=fsync status=none; done ) &
			ddpid=$!
			if [ $ISOLATION = on ]; then
				( while :; do dd if=/dev/zero of=/dev/vda bs=64k count=64 seek=$((768 + k * 64)) oflag=direct status=none; done ) &
			fi
		done
		sleep 1
		if kill -0 $ddpid 2>/dev/null; then
			echo "VUISO-GUEST: rebooting with I/O in flight $n"
		else
			echo "VUISO-GUEST: the write ended before the reboot $n"
		fi
	else
		echo "VUISO-GUEST: rebooting"
	fi
	reboot -f
	sleep 10
fi
[ $fails = 0 ]
EOF
vg_initrd "$W/test.sh" "$W/initrd.img"

# --- maps check -------------------------------------------------------------

# All processes in the tree rooted at $1 (virtiofsd forks into its sandbox).
proc_tree() {
	local root=$1 p
	echo "$root"
	for p in $(ps -o pid= --ppid "$root" 2>/dev/null); do
		proc_tree "$p"
	done
}

# memfd mappings of pid $1 as "inode name" lines.
memfd_maps() {
	awk '$6 ~ /^\/memfd:/ { print $5, $6 }' "/proc/$1/maps" 2>/dev/null | sort -u
}

check_maps() {
	local ram name pid verdict=ok
	if ((PRIVATE_RAM)); then
		# Guest RAM is anonymous memory no other process can map; the
		# back-ends must map no memfd but libvuiso's isolated region.
		for name in qemu-storage-daemon:$QSD_PID virtiofsd:$VFS_PID; do
			local other=""
			for pid in $(proc_tree "${name#*:}"); do
				other+=$(memfd_maps "$pid" | awk '$2 !~ /^\/memfd:vuiso/ { printf " %s(%s)", $2, $1 }')
			done
			if [[ -n $other ]]; then
				log "maps: ${name%%:*} maps other memfds:$other"
				verdict=fail
			else
				log "maps: ${name%%:*} maps only libvuiso's region (private guest RAM)"
			fi
		done
		[[ $verdict == ok ]]
		return
	fi
	ram=$(memfd_maps "$QEMU_PID" | awk '$2 ~ /memory-backend-memfd/ { print $1; exit }')
	[[ -n $ram ]] || fail "no memory-backend-memfd mapping in QEMU (pid $QEMU_PID)"
	log "guest RAM memfd inode $ram"
	for name in qemu-storage-daemon:$QSD_PID virtiofsd:$VFS_PID; do
		local mapped=0 memfds=""
		for pid in $(proc_tree "${name#*:}"); do
			memfd_maps "$pid" | awk -v i="$ram" '$1 == i { found = 1 } END { exit !found }' && mapped=1
			memfds+=$(memfd_maps "$pid" | awk '{ printf " %s(%s)", $2, $1 }')
		done
		log "${name%%:*} memfd mappings:${memfds:- none}"
		if [[ $ISOLATION == off ]]; then
			if ((mapped)); then
				log "maps: ${name%%:*} maps guest RAM (expected with isolation off)"
			else
				log "maps: ${name%%:*} does NOT map guest RAM, expected it to"
				verdict=fail
			fi
		else
			if ((mapped)); then
				log "maps: ${name%%:*} maps guest RAM despite memory-isolation=on"
				verdict=fail
			else
				log "maps: ${name%%:*} does not map guest RAM (isolated)"
			fi
		fi
	done
	[[ $verdict == ok ]]
}

# --- QEMU -------------------------------------------------------------------

DEV_OPT=""
FS_OPT=""
QEMU_EXTRA=()
if [[ $ISOLATION == on ]]; then
	DEV_OPT=",memory-isolation=on"
	# The adapter's trace events: every queue start and stop with both
	# ring layouts and bases, in qemu.log (check_trace).
	QEMU_EXTRA+=("${VG_TRACE_ARGS[@]}")
fi
((PACKED)) && DEV_OPT+=",packed=on"
((PAUSE || IOTHREADS)) && QEMU_EXTRA+=(-qmp "unix:$W/qmp.sock,server=on,wait=off")
for ((i = 0; i < IOTHREADS; i++)); do
	QEMU_EXTRA+=(-object "iothread,id=iot$i")
done
# vhost-user-blk's IOThreads: one for all queues through the iothread link,
# or a round-robin iothread-vq-mapping over all of them (a list property:
# only the JSON form of -device can give it).
BLK_DEV="vhost-user-blk-pci,chardev=blk0,num-queues=$QUEUES$DEV_OPT"
if ((IOTHREADS == 1)); then
	BLK_DEV+=",iothread=iot0"
elif ((IOTHREADS > 1)); then
	BLK_DEV=$(python3 -c '
import json, sys
driver, *opts = sys.argv[1].split(",")
dev = {"driver": driver}
for kv in opts:
    k, v = kv.split("=", 1)
    dev[k] = int(v) if v.isdigit() else {"on": True, "off": False}.get(v, v)
dev["iothread-vq-mapping"] = [{"iothread": "iot%d" % i} for i in range(int(sys.argv[2]))]
print(json.dumps(dev))' "$BLK_DEV" "$IOTHREADS")
fi
((IOTHREADS)) && FS_OPT=",iothread=iot0"

SMP=$QUEUES
vg_qemu_args
QEMU_ARGS+=(
	-chardev "socket,id=blk0,path=$W/blk.sock"
	-device "$BLK_DEV"
	-chardev "socket,id=fs0,path=$W/fs.sock"
	-device "vhost-user-fs-pci,chardev=fs0,tag=vfs$DEV_OPT$FS_OPT"
	"${QEMU_EXTRA[@]}"
)
vg_qemu_boot_args "$W/initrd.img" "$W/serial.log"
# With one boot, a guest reboot or panic ends QEMU; with more, the guest's
# own reboot is what we test and a panic runs into the timeout.
((BOOTS > 1)) || QEMU_ARGS+=(-no-reboot)

: >"$W/serial.log"
MAPS_OK=1
maps_done=0
# Each time the guest reports live devices, check the back-ends' maps and
# tell it through the shared directory.
poll_maps() {
	local live
	live=$(grep -c 'VUISO-GUEST: devices live' "$W/serial.log" || true)
	if ((live > maps_done)); then
		maps_done=$live
		log "boot $live: guest devices live, checking back-end maps"
		check_maps || MAPS_OK=0
		touch "$W/shared/maps-checked"
	fi
}
# The IOThreads' thread ids, from QMP once the guest runs: "iotN TID" lines.
IOT_TIDS=""
poll_iothreads() {
	[[ -z $IOT_TIDS ]] || return 0
	grep -q 'VUISO-GUEST: boot 1 of' "$W/serial.log" || return 0
	vg_qmp "$W/qmp.sock" query-iothreads >"$W/qmp-iothreads.log" 2>&1 ||
		fail "QMP query-iothreads failed: $(cat "$W/qmp-iothreads.log")"
	IOT_TIDS=$(sed -n 's/^query-iothreads \(.*\) [0-9]* ms$/\1/p' "$W/qmp-iothreads.log" |
		python3 -c 'import json, sys
for t in json.load(sys.stdin)["return"]:
    print(t["id"], t["thread-id"])')
	log "IOThreads (id thread-id): $(tr '\n' ' ' <<<"$IOT_TIDS")"
}
PAUSE_OK=1
paused=0
# Each time the guest asks for it, stop the VM (every vhost queue stops:
# drain, GET_VRING_BASE), look, continue it (every queue restarts at the
# base handed back) and tell the guest.
poll_pause() {
	local want
	want=$(grep -c 'VUISO-GUEST: pause me' "$W/serial.log" || true)
	if ((want > paused)); then
		paused=$want
		log "boot $want: stopping the VM"
		if vg_qmp "$W/qmp.sock" stop query-status cont query-status >"$W/qmp-$want.log" 2>&1 &&
			grep -q '^query-status .*"status": "paused"' "$W/qmp-$want.log" &&
			grep -q '^query-status .*"status": "running"' "$W/qmp-$want.log"; then
			log "boot $want: VM stopped and continued"
		else
			log "boot $want: QMP stop/cont failed: $(cat "$W/qmp-$want.log")"
			PAUSE_OK=0
		fi
		touch "$W/shared/resumed-$want"
	fi
}
poll() {
	poll_maps
	((PAUSE == 0)) || poll_pause
	((IOTHREADS == 0)) || poll_iothreads
}
vg_run_qemu "$TIMEOUT" poll
status=$QEMU_STATUS
log "QEMU exited with status $status"
tr -d '\r' <"$W/serial.log" | sed -n 's/^\(VUISO-.*\)$/  guest: \1/p' >&2
((status == 0)) || fail "QEMU failed: $(tail -n 5 "$W/qemu.log")"
grep -q 'VUISO-GUEST-EXIT: 0' "$W/serial.log" || fail "guest test failed"
((maps_done == BOOTS)) || fail "guest reported live devices $maps_done times, want $BOOTS"
((MAPS_OK)) || fail "/proc/PID/maps check failed (isolation $ISOLATION)"
((PAUSE_OK)) || fail "QMP stop/cont failed"
((PAUSE == 0 || paused == BOOTS)) || fail "guest asked for $paused pauses, want $BOOTS"
if ((IO_AT_REBOOT)); then
	inflight=$(grep -c 'VUISO-GUEST: rebooting with I/O in flight' "$W/serial.log" || true)
	((inflight == BOOTS - 1)) ||
		fail "the guest rebooted with I/O in flight $inflight times, want $((BOOTS - 1))"
	# How many stops found requests in flight (vhost_user_iso_vq_drain):
	# the reset races the writers, so this may be 0 in a run.
	busy=$(awk '$1 == "vhost_user_iso_vq_drain" && $7 > 0' "$W/qemu.log" | wc -l)
	waits=$(grep -c 'vhost_user_iso_vq_waited .*wait ended: 0 ' "$W/qemu.log" || true)
	log "$busy queue stop(s) began with requests in flight; $waits waited for requests the back-end had taken until it finished them"
fi

# The adapter's trace (isolation on): every queue start has the expected
# guest layout and a split shadow (qemu-storage-daemon and virtiofsd 7.2
# have no packed ring); every stop completed everything in flight; every
# start is fresh (after a device reset) or resumes at the base the queue's
# last stop handed back, and with --pause at least one resumes mid-ring.
# SeaBIOS drives virtio-blk on split rings before Linux boots: with
# --packed, one fresh split start of blk0 per boot is the firmware's.
check_trace() {
	local guest=split fresh=0x0
	((PACKED)) && guest=packed fresh=0x80008000
	awk -v guest=$guest -v fresh=$fresh -v pause=$PAUSE -v boots="$BOOTS" \
		-v start_re="$VG_TRACE_START" -v stop_re="$VG_TRACE_STOP" '
	function bad(m) { print "trace: " m ": " $0; err = 1 }
	$1 ~ start_re {
		# vhost_user_iso_vq_start NAME: queue I size N guest G shadow S guest base B back-end base C
		q = $2 $4; starts++
		if ($10 != "split") bad("shadow ring is " $10 ", want split")
		if ($8 != guest) {
			if ($2 == "blk0:" && $8 == "split" && $13 == "0x0" && ++firmware <= boots) next
			bad("guest ring is " $8 ", want " guest)
		}
		if ($16 != "0x0") bad("back-end base " $16 ", want 0x0 for a split shadow")
		if ($13 == fresh) fresh_starts++
		else if (q in stopped && stopped[q] == $13) resumed++
		else bad("start at base " $13 ", neither fresh " fresh " nor the last stop base " stopped[q])
	}
	$1 ~ stop_re {
		# vhost_user_iso_vq_stop NAME: queue I stopped: R guest base B in flight F
		q = $2 $4; stops++
		stopped[q] = $9
		if ($6 != "0" || $12 != "0") bad("stop did not complete everything")
	}
	END {
		printf "trace: %d queue starts (%d fresh, %d resumed mid-ring, %d split by the firmware), %d stops, guest %s, shadow split\n", starts, fresh_starts, resumed, firmware, stops, guest
		if (starts == 0) { print "trace: no vq_start trace event"; err = 1 }
		if (pause && resumed == 0) { print "trace: --pause, but no queue resumed mid-ring"; err = 1 }
		exit err
	}' "$W/qemu.log"
}
# Where every queue's data path ran (isolation on): each guest kick and
# back-end call traces the thread that handled it.  Without --iothreads
# that is QEMU's main thread (its pid); with them, blk0's queue q runs in
# iot(q mod N) (iothread=iot0 for N = 1, the round-robin mapping
# otherwise) and fs0's queues in iot0.  Every blk0 queue must have seen
# guest kicks and back-end calls: the guest really used each one.
check_threads() {
	local expect="main $QEMU_PID"
	((IOTHREADS)) && expect=$IOT_TIDS
	[[ -n $expect ]] || { echo "threads: no IOThread thread ids from QMP"; return 1; }
	awk -v niot="$IOTHREADS" -v nq="$QUEUES" -v expect="$expect" '
	BEGIN {
		n = split(expect, e, /[ \n]/)
		for (i = 1; i < n; i += 2) tid[e[i]] = e[i + 1]
	}
	function bad(m) { print "threads: " m ": " $0; err = 1 }
	$1 ~ /^vhost_user_iso_(guest_kick|backend_call)$/ {
		# NAME: queue I guest kick in thread T / NAME: queue I back-end call in thread T
		dev = $2; q = $4; t = $NF
		if (niot == 0) want = "main"
		else if (dev == "blk0:") want = "iot" (q % niot)
		else want = "iot0"
		if (t != tid[want]) bad(dev " queue " q " ran in thread " t ", want " want " (" tid[want] ")")
		kind = ($1 ~ /kick/) ? "kick" : "call"
		seen[dev " " q " " kind]++
		total++
	}
	END {
		for (q = 0; q < nq; q++) {
			for (k = 0; k < 2; k++) {
				kind = k ? "call" : "kick"
				if (!(("blk0: " q " " kind) in seen)) {
					print "threads: blk0 queue " q " has no " kind " handled"
					err = 1
				}
			}
		}
		if (!(("fs0: 1 kick") in seen)) { print "threads: fs0 request queue has no kick handled"; err = 1 }
		printf "threads: %d handler runs, each in its queue'"'"'s thread (%s)\n", total, niot ? niot " IOThread(s)" : "main loop"
		exit err
	}' "$W/qemu.log"
}
if [[ $ISOLATION == on ]]; then
	check_trace >&2 || fail "the adapter's trace does not show the expected queue starts and stops"
	((SERIES_IOT == 0)) || check_threads >&2 ||
		fail "a queue's handlers did not run in the thread it belongs to"
fi

# Host-side checks of what every boot left behind.
for ((n = 1; n <= BOOTS; n++)); do
	blk_sha=$(tr -d '\r' <"$W/serial.log" | sed -n "s/^VUISO-BLK-SHA $n: \([0-9a-f]*\)$/\1/p")
	img_sha=$(dd if="$W/disk.img" bs=1M skip=$(((n - 1) * DATA_MB)) count=$DATA_MB status=none |
		sha256sum | cut -d' ' -f1)
	[[ -n $blk_sha && $img_sha == "$blk_sha" ]] ||
		fail "boot $n: image file does not hold the guest's data"
	log "boot $n: image file matches the guest's checksum $blk_sha"
	fs_sha=$(tr -d '\r' <"$W/serial.log" | sed -n "s/^VUISO-FS-SHA $n: \([0-9a-f]*\)$/\1/p")
	[[ -n $fs_sha && $(sha256sum <"$W/shared/dir/guest-file-$n.bin" | cut -d' ' -f1) == "$fs_sha" ]] ||
		fail "boot $n: shared dir does not hold the guest's file"
	log "boot $n: shared directory holds the guest's file $fs_sha"
done
[[ ! -e $W/shared/dir/to-delete ]] || fail "deleted file still on the host"
[[ $(wc -l <"$W/shared/boots") == "$BOOTS" ]] || fail "boot count in shared dir is not $BOOTS"
log "PASS (isolation $ISOLATION, $( ((PACKED)) && echo packed || echo split ) guest rings$( ((PAUSE)) && echo ", stop/cont" ), $QUEUES blk queue(s), $IOTHREADS IOThread(s)$( ((IO_AT_REBOOT)) && echo ", reboots with I/O in flight" ), $BOOTS boot(s), accel $ACCEL)"
