#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End-to-end benchmark: isolation on vs off in one run, against real
# back-ends.  qemu-storage-daemon with a null-co device (read-zeroes=on):
# 4 KiB random reads at QD32, 64 KiB sequential reads and writes at QD32;
# virtiofsd: 1 MiB reads at QD8 from a 64 MiB file.  Runs alternate
# off/on, REPS times each; the table shows medians.
#
# usage: examples/bench.sh [BUILD_DIR] [SECONDS_PER_RUN] [REPS]
#        (defaults: build 5 3)
# environment:
#   PIN=none|same|split  none (default): let the scheduler place the VMM and
#                        the back-end; same: both on CPU 1; split: back-end
#                        on CPU 0, VMM on CPU 1
#   WORKLOADS="blk4k blk64r blk64w fs"   the subset to run (default all)
#   BACKEND=null|file    null (default): null-co device; file: a 1 GiB
#                        sparse raw image (page cache) instead
set -uo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
SECS=${2:-5}
REPS=${3:-3}
VMM=$BUILD/examples/vuiso-vmm
# shellcheck source=../tests/integration/backends.sh
. "$SRC/tests/integration/backends.sh"

PIN=${PIN:-none}
WORKLOADS=${WORKLOADS:-blk4k blk64r blk64w fs}
VMM_WRAP=
case $PIN in
none) ;;
same) BACKEND_WRAP="taskset -c 1" VMM_WRAP="taskset -c 1" ;;
split) BACKEND_WRAP="taskset -c 0" VMM_WRAP="taskset -c 1" ;;
*) echo "bench: PIN must be none, same or split" >&2; exit 2 ;;
esac

[ -x "$VMM" ] || { echo "bench: $VMM not found; build first" >&2; exit 1; }
vmm_need_backends
trap vmm_cleanup EXIT INT TERM
vmm_tmpdir
T=$VMM_TMP

BACKEND=${BACKEND:-null}
if [ "$BACKEND" = file ]; then
	truncate -s 1G "$T/disk.img"
	start_qsd_file "$T/null.sock" "$T/disk.img" 1 || { cat "$T/null.sock.log"; exit 1; }
else
	start_qsd_null "$T/null.sock" 1 || { cat "$T/null.sock.log"; exit 1; }
fi

# field NAME < summary line
field() { sed -n "s|.* $1=\([^ ]*\).*|\1|p"; }
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

run_blk() { # mode args...
	local mode=$1
	shift
	$VMM_WRAP "$VMM" --socket="$T/null.sock" --isolation="$mode" --time="$SECS" \
		--quiet "$@" | grep '^summary'
}

run_fs() { # mode
	local mode=$1 sock
	sock=$T/fs-$mode-$RANDOM.sock
	mkdir -p "$T/share"
	start_virtiofsd "$sock" "$T/share" >/dev/null || return 1
	$VMM_WRAP "$VMM" --device=fs --socket="$sock" --isolation="$mode" \
		--workload=read --bs=1M --depth=8 --time="$SECS" --quiet |
		grep '^summary'
	# virtiofsd exits when the VMM disconnects; make sure of it.
	kill "$FSD_PID" 2>/dev/null
	wait "$FSD_PID" 2>/dev/null
	return 0
}

printf '%s\n' "vuiso-vmm benchmark: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $SECS s per run, median of $REPS, PIN=$PIN, BACKEND=${BACKEND:-null}"
printf '%s\n' "$(qemu-storage-daemon --version | head -1)"
printf '\n%-34s %12s %9s %12s %9s %7s %7s\n' workload "off IOPS" "off GB/s" \
	"on IOPS" "on GB/s" "on/off" "(GB/s)"

bench() { # label kind args...
	local label=$1 kind=$2
	shift 2
	local m r i
	declare -A iops gbs
	for i in $(seq "$REPS"); do
		for m in off on; do
			if [ "$kind" = blk ]; then
				r=$(run_blk "$m" "$@")
			else
				r=$(run_fs "$m")
			fi
			[ -n "$r" ] || { echo "bench: $label isolation=$m failed" >&2; exit 1; }
			iops[$m]+="$(field IOPS <<<"$r") "
			gbs[$m]+="$(field GB/s <<<"$r") "
		done
	done
	local oi og ni ng
	oi=$(tr ' ' '\n' <<<"${iops[off]}" | grep . | median)
	og=$(tr ' ' '\n' <<<"${gbs[off]}" | grep . | median)
	ni=$(tr ' ' '\n' <<<"${iops[on]}" | grep . | median)
	ng=$(tr ' ' '\n' <<<"${gbs[on]}" | grep . | median)
	awk -v l="$label" -v oi="$oi" -v og="$og" -v ni="$ni" -v ng="$ng" 'BEGIN {
		printf "%-34s %12.0f %9.3f %12.0f %9.3f %7.2f %7.2f\n",
			l, oi, og, ni, ng, (oi > 0 ? ni / oi : 0), (og > 0 ? ng / og : 0) }'
}

for w in $WORKLOADS; do
	case $w in
	blk4k) bench "blk 4 KiB random read, QD32" blk --workload=randread --bs=4k --depth=32 ;;
	blk64r) bench "blk 64 KiB sequential read, QD32" blk --workload=seqread --bs=64k --depth=32 ;;
	blk64w) bench "blk 64 KiB sequential write, QD32" blk --workload=seqwrite --bs=64k --depth=32 ;;
	fs) bench "fs 1 MiB read, QD8" fs ;;
	*) echo "bench: unknown workload $w" >&2; exit 2 ;;
	esac
done
