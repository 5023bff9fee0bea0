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
# the base its stop handed back.
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
	-h | --help) sed -n '3,55p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

vg_check_prereqs
vg_guest
vg_workdir vuiso-guest

# --- back-ends --------------------------------------------------------------

mkdir -p "$W/shared"
truncate -s 64M "$W/disk.img"
echo "hello from the host $$" >"$W/shared/host-file.txt"
HOST_SHA=$(sha256sum <"$W/shared/host-file.txt" | cut -d' ' -f1)

vg_start_qsd "$W/blk.sock" "$W/qsd.log" \
	"driver=file,node-name=disk0,filename=$W/disk.img,cache.direct=on,aio=threads"
log "qemu-storage-daemon pid $QSD_PID on $W/blk.sock"

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

# vhost-user-blk: every boot writes its own DATA_MB MiB slice of the disk.
[ -b /dev/vda ]; check $? "blk: /dev/vda present"
dd if=/dev/urandom of=/tmp/rand bs=1M count=$DATA_MB status=none
want=$(sha256sum /tmp/rand | cut -d' ' -f1)
seek=$(( (n - 1) * DATA_MB ))
dd if=/tmp/rand of=/dev/vda bs=1M seek=$seek count=$DATA_MB oflag=direct conv=notrunc,fsync status=none
check $? "blk: O_DIRECT write of $DATA_MB MiB at $seek MiB"
if [ $PAUSE = 1 ]; then
	# The host stops and continues the VM, then answers through virtiofs,
	# whose queues must have resumed for the answer to arrive.
	echo "VUISO-GUEST: pause me $n"
	i=0
	while [ ! -e /mnt/resumed-$n ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
	[ -e /mnt/resumed-$n ]; check $? "VM stopped and continued by the host"
fi
dd if=/dev/vda of=/tmp/back bs=1M skip=$seek count=$DATA_MB iflag=direct status=none
check $? "blk: O_DIRECT read of $DATA_MB MiB"
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
	echo "VUISO-GUEST: rebooting"
	sync
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
QEMU_EXTRA=()
if [[ $ISOLATION == on ]]; then
	DEV_OPT=",memory-isolation=on"
	# The adapter's trace events: every queue start and stop with both
	# ring layouts and bases, in qemu.log (check_trace).
	QEMU_EXTRA+=("${VG_TRACE_ARGS[@]}")
fi
((PACKED)) && DEV_OPT+=",packed=on"
((PAUSE)) && QEMU_EXTRA+=(-qmp "unix:$W/qmp.sock,server=on,wait=off")

vg_qemu_args
QEMU_ARGS+=(
	-chardev "socket,id=blk0,path=$W/blk.sock"
	-device "vhost-user-blk-pci,chardev=blk0,num-queues=1$DEV_OPT"
	-chardev "socket,id=fs0,path=$W/fs.sock"
	-device "vhost-user-fs-pci,chardev=fs0,tag=vfs$DEV_OPT"
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
if [[ $ISOLATION == on ]]; then
	check_trace >&2 || fail "the adapter's trace does not show the expected queue starts and stops"
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
log "PASS (isolation $ISOLATION, $( ((PACKED)) && echo packed || echo split ) guest rings$( ((PAUSE)) && echo ", stop/cont" ), $BOOTS boot(s), accel $ACCEL)"
