#!/bin/bash
# SPDX-License-Identifier: MIT
#
# run-hotplug-test.sh - memory hot-plug and hot-unplug under load on an
# isolated vhost-user-blk device.
#
# Boots the test guest with -m 512M,slots=2,maxmem=2G in the patched QEMU,
# with vhost-user-blk-pci,memory-isolation=on against qemu-storage-daemon
# (a raw image file).  In the guest a background loop writes, reads back
# and compares 4 KiB O_DIRECT pages without pause (tests/qemu/guest-io.c,
# linked statically here).  Meanwhile the host hot-adds 1 GiB
# (memory-backend-memfd + pc-dimm over QMP); the guest brings it online
# (memhp_default_state=online_movable), and a second process allocates
# until it holds 2048 pages whose guest physical addresses lie in the new
# memory (/proc/self/pagemap), writes them to the disk with O_DIRECT and
# reads them back into other pages there: the I/O buffers are the hot-added
# RAM, which libvuiso must translate.  Then the guest offlines the memory,
# the host unplugs it (device_del, the guest ejects it), and the loop goes
# on until it is stopped.
#
# Checked on the host: every guest check passed; qemu-storage-daemon's
# /proc/PID/maps holds the isolated region and no QEMU guest RAM memfd
# before the hot-add, after it and after the unplug; QEMU sent the back-end
# exactly one memory table (vhost_user_write trace: one SET_MEM_TABLE or
# ADD_MEM_REG per connection, none for the hot-plug); and the image file
# holds exactly the pages written from hot-added memory.
#
# Usage: tests/qemu/run-hotplug-test.sh [--qemu PATH] [--keep] [--timeout S]
# Exit status: 0 pass, 1 fail (a missing prerequisite fails too).

set -euo pipefail

VG_NAME=run-hotplug-test
# shellcheck source=tests/qemu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VG_LOGS=(serial.log qsd.log qemu.log qmp.log)

QEMU=cached
ACCEL=tcg
TIMEOUT=300
HOT_OFF_MB=64  # where the pages from hot-added memory go on the disk
HOT_PAGES=2048

while (($#)); do
	case $1 in
	--qemu) QEMU=$2; shift ;;
	--timeout) TIMEOUT=$2; shift ;;
	--keep) KEEP=1 ;;
	-h | --help) sed -n '3,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run-hotplug-test: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

vg_resolve_qemu
command -v "$QSD" >/dev/null || skip "$QSD not found"

GUEST_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk"
export GUEST_MODULES
vg_guest
vg_workdir vuiso-hotplug

vg_guest_io

# --- back-end ---------------------------------------------------------------

truncate -s 128M "$W/disk.img"
vg_start_qsd "$W/blk.sock" "$W/qsd.log" \
	"driver=file,node-name=disk0,filename=$W/disk.img,cache.direct=off" 1
log "qemu-storage-daemon pid $QSD_PID"

# --- the guest --------------------------------------------------------------

cat >"$W/test.sh" <<EOF
#!/bin/sh
HOT_OFF_MB=$HOT_OFF_MB
HOT_PAGES=$HOT_PAGES
EOF
cat >>"$W/test.sh" <<'EOF'
fails=0
check() { if [ "$1" = 0 ]; then echo "VUISO-CHECK: ok $2"; else echo "VUISO-CHECK: FAIL $2"; fails=$((fails + 1)); fi; }
wait_for() { # SECONDS COMMAND...: until COMMAND succeeds
	n=$(($1 * 10)); shift
	while ! "$@"; do
		n=$((n - 1)); [ $n -gt 0 ] || return 1
		sleep 0.1
	done
}
M=/sys/devices/system/memory
bs=$((0x$(cat $M/block_size_bytes)))
blocks() { ls -d $M/memory[0-9]* | sort; }

[ -b /dev/vda ]; check $? "blk: /dev/vda present"
/guest-io loop /dev/vda 0 32 /tmp/stop >/tmp/loop.out 2>&1 &
bg=$!
blocks >/tmp/before
echo "VUISO-GUEST: memory blocks of $bs bytes: $(wc -l </tmp/before); hot-add now"
new_blocks() { blocks | grep -vxF -f /tmp/before >/tmp/new; [ -s /tmp/new ]; }
wait_for 120 new_blocks; check $? "hotplug: new memory blocks appeared"
# All of the DIMM's blocks, online.
wait_for 30 sh -c '[ $(wc -l </tmp/new) -ge 2 ] && ! grep -q offline $(sed "s|$|/state|" /tmp/new)' 2>/dev/null
blocks | grep -vxF -f /tmp/before >/tmp/new
lo= hi=
for b in $(cat /tmp/new); do
	i=$(cat $b/phys_index); i=$((0x$i))
	[ "$(cat $b/state)" = online ] || echo "VUISO-GUEST: $b is $(cat $b/state)"
	s=$((i * bs)); e=$(((i + 1) * bs))
	[ -z "$lo" ] || [ $s -lt $lo ] && lo=$s
	[ -z "$hi" ] || [ $e -gt $hi ] && hi=$e
done
echo "VUISO-GUEST: hot-added memory online: $(wc -l </tmp/new) blocks, $(printf 0x%x $lo)-$(printf 0x%x $hi)"
echo "VUISO-GUEST: $(grep -E 'MemTotal|MemFree' /proc/meminfo | tr -s ' ' | tr '\n' ' ')"
/guest-io hot /dev/vda $HOT_OFF_MB $HOT_PAGES $lo $hi
check $? "hotplug: $HOT_PAGES pages of hot-added memory used as O_DIRECT buffers, data matched"
# Unplug: offline every new block, then the host ejects the DIMM.
off=0
for b in $(cat /tmp/new); do
	echo offline >$b/state || off=1
done
check $off "hotplug: hot-added memory offlined"
echo "VUISO-GUEST: unplug now"
gone() { ! blocks | grep -qxF -f /tmp/new; }
wait_for 120 gone; check $? "hotplug: the blocks went away after the unplug"
sleep 2 # the loop goes on after the unplug
touch /tmp/stop
wait $bg; check $? "loop: every page written during hot-add and unplug read back matched"
sed 's/^/VUISO-GUEST: /' /tmp/loop.out
echo "VUISO-RESULT: $fails failures"
[ $fails = 0 ]
EOF
vg_initrd "$W/test.sh" "$W/initrd.img" "$W/guest-io"

# --- QEMU -------------------------------------------------------------------

MEM="512M,slots=2,maxmem=2G"
# shellcheck disable=SC2054  # commas are QEMU option syntax
QEMU_ARGS=(
	-accel "$ACCEL" -machine q35 -cpu max -smp 1 -m "$MEM"
	-object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem
	-nodefaults -display none -no-user-config
	-chardev "socket,id=blk0,path=$W/blk.sock"
	-device "vhost-user-blk-pci,chardev=blk0,memory-isolation=on"
	-qmp "unix:$W/qmp.sock,server=on,wait=off"
	"${VG_TRACE_ARGS[@]}" -trace vhost_user_write
	-no-reboot
)
VG_APPEND=memhp_default_state=online_movable
vg_qemu_boot_args "$W/initrd.img" "$W/serial.log"

# qmp SOCK COMMAND...: vg_qmp, the replies to qmp.log.
qmp() { vg_qmp "$@" >>"$W/qmp.log" 2>&1; }

STATE=boot
HOTPLUG_FAIL=""
poll() {
	case $STATE in
	boot)
		grep -q 'hot-add now' "$W/serial.log" || return 0
		vg_check_qsd_maps "before the hot-add"
		log "hot-adding 1 GiB (memory-backend-memfd + pc-dimm) while the guest does I/O"
		qmp "$W/qmp.sock" \
			'{"execute": "object-add", "arguments": {"qom-type": "memory-backend-memfd", "id": "hp0", "size": 1073741824, "share": true}}' \
			'{"execute": "device_add", "arguments": {"driver": "pc-dimm", "id": "dimm0", "memdev": "hp0"}}' ||
			HOTPLUG_FAIL="QMP hot-add failed"
		STATE=added
		;;
	added)
		grep -q 'VUISO-GUEST: unplug now' "$W/serial.log" || return 0
		vg_check_qsd_maps "after the hot-add, the I/O from it done"
		log "unplugging the DIMM"
		if qmp "$W/qmp.sock" '{"execute": "device_del", "arguments": {"id": "dimm0"}}' &&
			vg_qmp_until "$W/qmp.sock" 60 query-memory-devices \
				'not any(d["data"].get("id") == "dimm0" for d in r)' >>"$W/qmp.log" 2>&1 &&
			qmp "$W/qmp.sock" '{"execute": "object-del", "arguments": {"id": "hp0"}}'; then
			log "DIMM unplugged and its memory backend deleted"
		else
			HOTPLUG_FAIL="QMP unplug failed"
		fi
		vg_check_qsd_maps "after the unplug"
		STATE=removed
		;;
	esac
}
: >"$W/serial.log"
vg_run_qemu "$TIMEOUT" poll
log "QEMU exited with status $QEMU_STATUS"
tr -d '\r' <"$W/serial.log" | sed -n 's/^\(VUISO-.*\)$/  guest: \1/p' >&2
((QEMU_STATUS == 0)) || fail "QEMU failed: $(tail -n 5 "$W/qemu.log")"
[[ -z $HOTPLUG_FAIL ]] || fail "$HOTPLUG_FAIL: $(tail -n 5 "$W/qmp.log")"
grep -q 'VUISO-GUEST-EXIT: 0' "$W/serial.log" || fail "guest test failed"
[[ $STATE == removed ]] || fail "the guest never got to the unplug"
[[ -z $MAPS_FAIL ]] || fail "maps: $MAPS_FAIL"

# One memory table per connection (QEMU reconnects nothing here): a
# hot-plug changed libvuiso's map, not the back-end's.
tables=$(awk '$1 ~ /vhost_user_write/ && ($0 ~ /req:? *5[^0-9]/ || $0 ~ /req:? *37[^0-9]/) { n++ } END { print n + 0 }' "$W/qemu.log")
log "memory tables sent to the back-end (vhost_user_write req 5 or 37): $tables"
((tables == 1)) || fail "QEMU sent $tables memory tables; the hot-plug must send none"

vg_stop "$QSD_PID"
# The pages written from hot-added memory are in the image, byte for byte.
vg_check_pattern "$W/disk.img" $((HOT_OFF_MB << 20)) $((HOT_PAGES * 4096)) 0 >&2 ||
	fail "image check"
log "PASS (1 GiB hot-added under I/O, $HOT_PAGES pages of it used as I/O buffers, unplugged; the back-end mapped only the isolated region throughout)"
