# SPDX-License-Identifier: MIT
# Helpers to run real vhost-user back-ends on temporary sockets.  Sourced by
# the integration tests, examples/demo.sh and examples/bench.sh.
#
# Everything started here is recorded and killed by vmm_cleanup, which the
# caller installs with: trap vmm_cleanup EXIT INT TERM

QSD=${QSD:-qemu-storage-daemon}
VIRTIOFSD=${VIRTIOFSD:-/usr/lib/qemu/virtiofsd}
TESTPMD=${TESTPMD:-dpdk-testpmd}

# Optional command prefix for the back-ends, e.g. "taskset -c 1".
BACKEND_WRAP=${BACKEND_WRAP:-}

VMM_PIDS=()
VMM_TMP=

vmm_cleanup() {
	local p
	for p in "${VMM_PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null || true
	done
	for p in "${VMM_PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	VMM_PIDS=()
	if [ -n "$VMM_TMP" ] && [ -d "$VMM_TMP" ]; then
		rm -rf "$VMM_TMP"
	fi
}

vmm_tmpdir() {
	VMM_TMP=$(mktemp -d "${TMPDIR:-/tmp}/vuiso-vmm.XXXXXX")
}

# Fail when a back-end is not installed: scripts/setup.sh installs them, so
# their absence is a broken set-up, never a reason to skip.
vmm_need_backends() {
	command -v "$QSD" >/dev/null || { echo "FAIL: $QSD not installed (run scripts/setup.sh)"; exit 1; }
	[ -x "$VIRTIOFSD" ] || { echo "FAIL: $VIRTIOFSD not installed (run scripts/setup.sh)"; exit 1; }
	command -v "$TESTPMD" >/dev/null || { echo "FAIL: $TESTPMD not installed (package dpdk-dev; run scripts/setup.sh)"; exit 1; }
}

# vmm_listening SOCK: a unix socket listens there (/proc/net/unix flag
# __SO_ACCEPTCON).  The file exists from bind() on, and a connect() before
# listen() is refused.
vmm_listening() {
	local _n _r _p flags _t _s _i path
	while read -r _n _r _p flags _t _s _i path; do
		[ "$path" = "$1" ] && (((16#$flags & 0x10000) != 0)) && return 0
	done </proc/net/unix
	return 1
}

vmm_wait_socket() {
	local sock=$1 pid=$2 i
	# Up to 30 s: testpmd zeroes its 512 MiB at start, slow on a busy
	# machine.
	for i in $(seq 600); do
		[ -S "$sock" ] && vmm_listening "$sock" && return 0
		kill -0 "$pid" 2>/dev/null || { echo "back-end exited before creating $sock"; return 1; }
		sleep 0.05
	done
	echo "timed out waiting for $sock"
	return 1
}

# start_qsd_file SOCK IMAGE QUEUES [WRITABLE]: vhost-user-blk export of a
# raw image, writable unless WRITABLE is off.  Sets QSD_PID.
start_qsd_file() {
	local sock=$1 image=$2 queues=${3:-1} writable=${4:-on}
	$BACKEND_WRAP "$QSD" \
		--blockdev "driver=file,node-name=file0,filename=$image,cache.direct=off" \
		--blockdev driver=raw,node-name=disk0,file=file0 \
		--export "type=vhost-user-blk,id=exp0,addr.type=unix,addr.path=$sock,node-name=disk0,writable=$writable,num-queues=$queues" \
		>"$sock.log" 2>&1 &
	QSD_PID=$!
	VMM_PIDS+=("$QSD_PID")
	vmm_wait_socket "$sock" "$QSD_PID"
}

# start_qsd_null SOCK QUEUES: a null-co device (no storage), for speed.
start_qsd_null() {
	local sock=$1 queues=${2:-1}
	$BACKEND_WRAP "$QSD" \
		--blockdev driver=null-co,node-name=disk0,size=1073741824,read-zeroes=on \
		--export "type=vhost-user-blk,id=exp0,addr.type=unix,addr.path=$sock,node-name=disk0,writable=on,num-queues=$queues" \
		>"$sock.log" 2>&1 &
	QSD_PID=$!
	VMM_PIDS+=("$QSD_PID")
	vmm_wait_socket "$sock" "$QSD_PID"
}

# start_virtiofsd SOCK DIR: virtiofsd 7.2 serves one connection, then exits.
# sandbox=chroot works as root in containers; the default namespace
# sandbox also forks, which would hide the mapping process from
# SO_PEERCRED.  Sets FSD_PID.
start_virtiofsd() {
	local sock=$1 dir=$2
	$BACKEND_WRAP "$VIRTIOFSD" --socket-path="$sock" -o source="$dir" -o cache=none \
		-o sandbox=chroot >"$sock.log" 2>&1 &
	FSD_PID=$!
	VMM_PIDS+=("$FSD_PID")
	vmm_wait_socket "$sock" "$FSD_PID"
}

# start_testpmd SOCK PAIRS MODE: dpdk-testpmd's net_vhost PMD on SOCK,
# forwarding (MODE: io, macswap) what it receives back on the same queue.
# vuiso-vmm --device=net without --socket starts one of its own the same
# way; this one is for cases that need the back-end outside the VMM.
# Sets PMD_PID.
start_testpmd() {
	local sock=$1 pairs=${2:-1} mode=${3:-io}
	# A killed testpmd leaves its socket file, and a new one cannot bind.
	rm -f "$sock"
	# With a stats period testpmd runs until a signal instead of waiting
	# for a line on stdin.
	# Line-buffered, so that its log shows when it starts to forward.
	$BACKEND_WRAP stdbuf -oL "$TESTPMD" -l 0,1 --no-pci --no-huge -m 512 \
		--no-shconf --no-telemetry --file-prefix="vuiso-test-$$-$RANDOM" \
		--vdev "net_vhost0,iface=$sock,queues=$pairs" -- \
		--forward-mode="$mode" --auto-start --total-num-mbufs=8192 \
		--nb-cores=1 --rxq="$pairs" --txq="$pairs" --stats-period=3600 \
		</dev/null >"$sock.log" 2>&1 &
	PMD_PID=$!
	VMM_PIDS+=("$PMD_PID")
	vmm_wait_socket "$sock" "$PMD_PID" || return 1
	# Its port (and socket) is up before it forwards, and it flushes its
	# receive queues when it starts to: wait for the forwarding
	# configuration it prints right after that flush.
	local i
	for i in $(seq 600); do
		grep -q 'packet forwarding - ports=' "$sock.log" && return 0
		kill -0 "$PMD_PID" 2>/dev/null || { echo "dpdk-testpmd exited before forwarding"; return 1; }
		sleep 0.05
	done
	echo "dpdk-testpmd did not start forwarding"
	return 1
}
