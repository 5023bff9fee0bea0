# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# shellcheck disable=SC2034  # globals (QEMU_STATUS, VFS_SANDBOX, ...) are for the caller
#
# lib.sh - shared by the qemu suite's scripts (sourced, not run).
#
# Set VG_NAME (the log prefix) before sourcing.  Provides: logging (log,
# fail, skip), prerequisite checks, the guest (make-guest.sh), a work
# directory whose processes a trap kills whatever happens, the back-ends
# (qemu-storage-daemon, virtiofsd), the guest initrd with a /test.sh, the
# common QEMU command line, a bounded QEMU run and QMP commands.

VG_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
QSD=${QSD:-qemu-storage-daemon}
VIRTIOFSD=${VIRTIOFSD:-/usr/lib/qemu/virtiofsd}
# Files of $W the EXIT trap shows when the script fails.
VG_LOGS=(serial.log qsd.log virtiofsd.log qemu.log)
KEEP=${KEEP:-0}
PIDS=()
VG_QSD_ARGS=()
MAPS_FAIL=""
# The patched QEMU the `qemu` suite tests: qemu-glue/build-qemu.sh's build
# of the series $VUISO_QEMU_SERIES (10.0 by default, 7.2 on request).
VG_QEMU_SERIES=${VUISO_QEMU_SERIES:-10.0}
case $VG_QEMU_SERIES in
7.2) VG_QEMU_BUILD=${VUISO_CACHE:-/var/cache/libvuiso}/qemu/build ;;
*) VG_QEMU_BUILD=${VUISO_CACHE:-/var/cache/libvuiso}/qemu10/build ;;
esac
# Its adapter's trace events: vhost_user_iso_* (10.0), vuiso_qemu_* (7.2).
# Both patterns are given to -trace (a pattern that matches nothing is not
# an error) and the checks accept either name.
VG_TRACE_ARGS=(-trace "vhost_user_iso_*" -trace "vuiso_qemu_*")
VG_TRACE_START='^(vhost_user_iso|vuiso_qemu)_vq_start$'
VG_TRACE_STOP='^(vhost_user_iso|vuiso_qemu)_vq_stop$'

T0=${EPOCHREALTIME/./}
log() {
	local us=$((${EPOCHREALTIME/./} - T0))
	printf '%s [%3d.%02ds]: %s\n' "$VG_NAME" $((us / 1000000)) $((us % 1000000 / 10000)) "$*" >&2
}
fail() { log "FAIL: $*"; exit 1; }
skip() { log "FAIL: missing prerequisite: $*"; exit 1; }

# QEMU=cached means the one qemu-glue/build-qemu.sh built: resolve it to a
# path, and fail when that QEMU (or the one named) is missing.
vg_resolve_qemu() {
	if [[ $QEMU == cached ]]; then
		QEMU=$VG_QEMU_BUILD/qemu-system-x86_64
		[[ -x $QEMU ]] || skip "no cached QEMU $VG_QEMU_SERIES build: run qemu-glue/build-qemu.sh --series $VG_QEMU_SERIES"
	fi
	command -v "$QEMU" >/dev/null || skip "$QEMU not found"
}

# Resolves QEMU, then checks qemu-storage-daemon, virtiofsd and root; a
# missing one fails.
vg_check_prereqs() {
	vg_resolve_qemu
	command -v "$QSD" >/dev/null || skip "$QSD not found"
	[[ -x $VIRTIOFSD ]] || skip "$VIRTIOFSD not found"
	[[ $(id -u) == 0 ]] || skip "virtiofsd needs root"
}

# KERNEL and INITRD of the cached test guest.
vg_guest() {
	eval "$("$VG_HERE/make-guest.sh")"
	[[ -f $KERNEL && -f $INITRD ]] || fail "make-guest.sh gave no guest"
}

# Stop the given processes (TERM, at most 5 s each, then KILL) and reap them.
vg_stop() {
	local pid p keep=()
	for pid in "$@"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "$@"; do
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		for pid in "$@"; do
			[[ $p == "$pid" ]] && continue 2
		done
		keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

vg_cleanup() {
	local rc=$? f
	vg_stop "${PIDS[@]}"
	if ((rc != 0)); then
		for f in "${VG_LOGS[@]}"; do
			[[ -s $W/$f ]] || continue
			echo "----- $f (last 40 lines) -----" >&2
			tail -n 40 "$W/$f" >&2
		done
	fi
	if ((KEEP)); then
		echo "$VG_NAME: kept $W" >&2
	else
		rm -rf "$W"
	fi
	exit "$rc"
}

# W: a fresh work directory (sockets, logs, images); every process in PIDS
# is killed and W removed on exit, whatever the outcome.
vg_workdir() {
	W=$(mktemp -d "/tmp/$1.XXXXXX")
	trap vg_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# Whether a unix socket listens at $1 (/proc/net/unix flag __SO_ACCEPTCON):
# the file exists from bind() on, and a connect() before listen() is
# refused.
listening() {
	local _n _r _p flags _t _s _i path
	while read -r _n _r _p flags _t _s _i path; do
		[[ $path == "$1" ]] && (((16#$flags & 0x10000) != 0)) && return 0
	done </proc/net/unix
	return 1
}

# Wait until a socket listens at $1, at most $2 seconds, while pid $3 lives.
wait_socket() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[[ -S $1 ]] && listening "$1" && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# vg_start_qsd SOCK LOG BLOCKDEV-OPTIONS [NUM-QUEUES]: a vhost-user-blk
# export of the node named in BLOCKDEV-OPTIONS on SOCK (1 queue unless
# NUM-QUEUES), after the options in VG_QSD_ARGS (objects, the nodes
# BLOCKDEV-OPTIONS builds on); sets QSD_PID.
vg_start_qsd() {
	local sock=$1 logf=$2 blockdev=$3 nq=${4:-1} node
	node=$(sed -n 's/.*node-name=\([^,]*\).*/\1/p' <<<"$blockdev")
	"$QSD" "${VG_QSD_ARGS[@]}" \
		--blockdev "$blockdev" \
		--export "type=vhost-user-blk,id=exp0,addr.type=unix,addr.path=$sock,node-name=$node,writable=on,num-queues=$nq" \
		>"$logf" 2>&1 &
	QSD_PID=$!
	PIDS+=("$QSD_PID")
	wait_socket "$sock" 10 "$QSD_PID" || fail "qemu-storage-daemon did not create its socket"
}

# vg_check_qsd_maps WHEN: qemu-storage-daemon ($QSD_PID) maps the isolated
# region and no memfd of QEMU's ($QEMU_PID, which must have one: its guest
# RAM); what is wrong is appended to MAPS_FAIL, prefixed with WHEN.
vg_check_qsd_maps() {
	local when=$1 inodes ino
	grep -q '/memfd:vuiso-isolated' "/proc/$QSD_PID/maps" ||
		MAPS_FAIL+="$when: qemu-storage-daemon does not map the isolated region; "
	inodes=$(awk '$6 ~ /^\/memfd:/ && $6 !~ /vuiso-isolated/ { print $5 }' "/proc/$QEMU_PID/maps" | sort -u)
	[[ -n $inodes ]] || MAPS_FAIL+="$when: no guest RAM memfd in QEMU; "
	for ino in $inodes; do
		if awk -v i="$ino" '$5 == i { f = 1 } END { exit !f }' "/proc/$QSD_PID/maps"; then
			MAPS_FAIL+="$when: qemu-storage-daemon maps QEMU memfd inode $ino; "
		fi
	done
	log "maps $when: QEMU memfds ${inodes//$'\n'/ }, none in qemu-storage-daemon ${QSD_PID}; isolated region mapped"
}

# vg_start_virtiofsd SHARED-DIR SOCK LOG: sets VFS_PID and VFS_SANDBOX.
# The namespace sandbox needs unshare(CLONE_NEWPID|NEWNS|NEWNET); fall back
# to chroot where a container forbids it.
vg_start_virtiofsd() {
	local dir=$1 sock=$2 logf=$3 sb
	for sb in namespace chroot; do
		"$VIRTIOFSD" --socket-path="$sock" -o source="$dir" \
			-o cache=none -o sandbox="$sb" --thread-pool-size=1 \
			>"$logf" 2>&1 &
		VFS_PID=$!
		if wait_socket "$sock" 10 "$VFS_PID"; then
			VFS_SANDBOX=$sb
			PIDS+=("$VFS_PID")
			return 0
		fi
		kill -KILL "$VFS_PID" 2>/dev/null || true
		wait "$VFS_PID" 2>/dev/null || true
		rm -f "$sock"
	done
	fail "virtiofsd did not start (see log)"
}

# vg_initrd SCRIPT OUT [FILE...]: the guest initramfs with SCRIPT appended
# as /test.sh, and each FILE as /<its name>.
vg_initrd() {
	local ov script=$1 out=$2 f
	shift 2
	ov=$(mktemp -d "$W/overlay.XXXXXX")
	cp "$script" "$ov/test.sh"
	chmod 755 "$ov/test.sh"
	for f in "$@"; do
		cp "$f" "$ov/"
	done
	(cd "$ov" && ls | cpio -o -H newc --owner=0:0 --quiet) | gzip -n >"$ov.cpio.gz"
	cat "$INITRD" "$ov.cpio.gz" >"$out"
	rm -rf "$ov" "$ov.cpio.gz"
}

# vg_guest_io: tests/qemu/guest-io.c linked statically as $W/guest-io, for
# the guest (vg_initrd ... "$W/guest-io").
vg_guest_io() {
	command -v gcc >/dev/null || skip "gcc not found"
	gcc -static -O2 -Wall -o "$W/guest-io" "$VG_HERE/guest-io.c" ||
		fail "cannot link guest-io statically (libc6-dev)"
}

# vg_check_pattern IMAGE OFFSET LENGTH ROUND: the bytes guest-io wrote for
# ROUND are in the image (offsets and lengths in bytes).
vg_check_pattern() {
	python3 - "$@" <<'PY'
import struct, sys

M = (1 << 64) - 1


def pattern(off, rnd):
    z = ((off * 0x9e3779b97f4a7c15) & M) ^ rnd ^ 0x5655494f
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M
    return z ^ (z >> 31)


path, base, length, rnd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with open(path, "rb") as f:
    f.seek(base)
    data = f.read(length)
if len(data) != length:
    print("image: short read at 0x%x" % base)
    sys.exit(1)
words = struct.unpack("<%dQ" % (length // 8), data)
for j, w in enumerate(words):
    if w != pattern(base + 8 * j, rnd):
        print("image: byte 0x%x is not round %d's pattern" % (base + 8 * j, rnd))
        sys.exit(1)
print("image: %d KiB at 0x%x hold round %d's pattern" % (length >> 10, base, rnd))
PY
}

vg_qemu_args() {
	QEMU_ARGS=(-accel "$ACCEL" -machine q35 -cpu max -smp "${SMP:-1}" -m "$MEM")
	# shellcheck disable=SC2054  # commas are QEMU option syntax
	((${PRIVATE_RAM:-0})) ||
		QEMU_ARGS+=(-object "memory-backend-memfd,id=mem,size=$MEM,share=on" -numa node,memdev=mem)
	QEMU_ARGS+=(-nodefaults -display none -no-user-config)
}

# vg_qemu_boot_args INITRD-IMAGE SERIAL-LOG: kernel, initrd, console
# ($VG_APPEND: more kernel parameters).
vg_qemu_boot_args() {
	QEMU_ARGS+=(
		-kernel "$KERNEL" -initrd "$1"
		-append "console=ttyS0 panic=-1 quiet${VG_APPEND:+ $VG_APPEND}"
		-chardev "file,id=ser0,path=$2" -serial chardev:ser0
	)
	# A QEMU built with --disable-install-blobs (qemu-glue/build-qemu.sh)
	# finds SeaBIOS and linuxboot_dma.bin in Debian's seabios and
	# qemu-system-data.
	local d
	for d in /usr/share/qemu /usr/share/seabios; do
		[[ -d $d ]] && QEMU_ARGS+=(-L "$d")
	done
	return 0
}

# vg_qmp SOCKET COMMAND...: connect to QEMU's QMP unix socket, run each
# COMMAND in turn (a name, or a whole command as JSON: {"execute": ...,
# "arguments": ...}) and print "NAME <reply as JSON> <time> ms" lines;
# fails on an error reply or after 60 s.
#
# vg_qmp_until SOCKET SECONDS COMMAND CONDITION: run COMMAND every 0.2 s
# until the Python expression CONDITION holds for its "return" value r;
# prints that value as JSON; fails after SECONDS or on an error reply.
vg_qmp_until() {
	VG_QMP_WAIT=$2 VG_QMP_UNTIL=$4 vg_qmp "$1" "$3"
}

vg_qmp() {
	timeout $((${VG_QMP_WAIT:-0} + 60)) python3 - "$@" <<'PY'
import json, os, socket, sys, time

until = os.environ.get("VG_QMP_UNTIL")
wait = float(os.environ.get("VG_QMP_WAIT", "0"))
sock = socket.socket(socket.AF_UNIX)
sock.settimeout(wait + 55)
sock.connect(sys.argv[1])
f = sock.makefile("rw")


def execute(cmd):
    f.write(json.dumps(cmd) + "\n")
    f.flush()
    while True:
        reply = json.loads(f.readline())
        if "return" in reply or "error" in reply:
            return reply


json.loads(f.readline())  # greeting
execute({"execute": "qmp_capabilities"})
if until:
    # vg_qmp_until: the one command, again and again until the condition
    # holds for its "return" (r) or the wait is over.
    cmd = json.loads(sys.argv[2]) if sys.argv[2].startswith("{") else {"execute": sys.argv[2]}
    deadline = time.monotonic() + wait
    while True:
        reply = execute(cmd)
        if "error" in reply:
            print(cmd["execute"], json.dumps(reply))
            sys.exit(1)
        if eval(until, {}, {"r": reply["return"]}):
            print(json.dumps(reply["return"]))
            sys.exit(0)
        if time.monotonic() >= deadline:
            print(json.dumps(reply["return"]))
            sys.exit(1)
        time.sleep(0.2)
for arg in sys.argv[2:]:
    cmd = json.loads(arg) if arg.startswith("{") else {"execute": arg}
    name = cmd["execute"]
    t0 = time.monotonic()
    reply = execute(cmd)
    ms = (time.monotonic() - t0) * 1000
    print(name, json.dumps(reply), "%.0f ms" % ms)
    if "error" in reply:
        sys.exit(1)
PY
}

# vg_run_qemu TIMEOUT [HOOK]: run $QEMU "${QEMU_ARGS[@]}" (output in
# $W/qemu.log), call HOOK every 0.2 s while it runs, fail after TIMEOUT
# seconds.  Sets QEMU_PID and QEMU_STATUS (the exit status).
vg_run_qemu() {
	local timeout=$1 hook=${2:-true} deadline
	log "$QEMU ${QEMU_ARGS[*]}"
	"$QEMU" "${QEMU_ARGS[@]}" >"$W/qemu.log" 2>&1 &
	QEMU_PID=$!
	PIDS+=("$QEMU_PID")
	deadline=$(($(date +%s) + timeout))
	while kill -0 "$QEMU_PID" 2>/dev/null; do
		"$hook"
		if (($(date +%s) > deadline)); then
			fail "guest did not finish within ${timeout}s"
		fi
		sleep 0.2
	done
	wait "$QEMU_PID" && QEMU_STATUS=0 || QEMU_STATUS=$?
	vg_stop "$QEMU_PID"
}
