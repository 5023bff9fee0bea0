#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Packet-rate benchmark: virtio-net through isolation against dpdk-testpmd's
# net_vhost PMD, in one run:
#   off     vuiso-vmm --device=net --workload=rate --isolation=off
#   on      the same with --isolation=on (libvuiso in between; its
#           default shadow ring is packed, as testpmd offers packed rings:
#           the split guest ring is translated)
#   on-split  --isolation=on --backend-ring=split: a split shadow ring
#   anchor  DPDK's own virtio front-end (net_virtio_user in a second
#           testpmd, io forwarding, --tx-first) against the same kind of
#           testpmd back-end: what a user would run instead
# for 64 and 1518-byte frames (without the FCS), one and two queue pairs.
# Every run starts a fresh back-end; a round runs each mode once, and the
# table shows each mode's median (see the regime below).  Gbit/s counts
# frame bytes only (no preamble, gap or FCS).
#
# The regime: on the VM this is measured on, the time one cache line takes
# between CPU 0 and CPU 1 switches between about 50-90 ns and about 325-345 ns
# every few seconds to minutes (the host moves the vCPUs between cores that
# share a cache and cores that do not), and every mode's rate with it, by
# up to half (docs/performance.md, section 4).  bench/vuiso-cpu-pair probes
# that round trip before and after every run; a run counts only when both
# probes were below FAST_NS.  Rounds (one run of each mode, interleaved)
# go on until every mode has REPS counted runs or MAX_ROUNDS were tried;
# the table shows each mode's median over its counted runs.  The regime
# can also change inside a run, so a run's figure is the upper quartile
# of its rates per interval: vuiso-vmm's 0.5 s intervals (the first, the
# ramp-up, left out; "Mpps-p75"), the anchor's 1 s Rx-pps reports (the
# first two left out).  Under each row: every round with its runs and
# probes (slow runs in brackets), and the on/off ratio of each round whose
# off and on runs both counted.
#
# CPUs (the machine has two): every testpmd back-end runs its forwarding
# lcore on CPU 1 (-l 0,1; its main lcore on CPU 0 only waits); the VMM's
# pair threads, or the anchor's forwarding lcore, run on CPU 0.  With two
# pairs both pair threads share CPU 0 and testpmd forwards both queues on
# one lcore.
#
# usage: examples/bench-net.sh [BUILD_DIR] [SECONDS_PER_RUN] [REPS]
#        (defaults: build 5 3)
# environment:
#   FRAMES="64 1518" PAIRS="1 2"   the subsets to run
#   MODES="off on on-split anchor" likewise
#   FAST_NS=150                    the fast regime's bound on the round trip
#   MAX_ROUNDS=$((3 * REPS))       rounds per row at most
# Needs root (testpmd) and dpdk-dev (scripts/setup.sh).
set -uo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
SECS=${2:-5}
REPS=${3:-3}
VMM=$BUILD/examples/vuiso-vmm
# shellcheck source=../tests/integration/backends.sh
. "$SRC/tests/integration/backends.sh"

FRAMES=${FRAMES:-64 1518}
PAIRS=${PAIRS:-1 2}
MODES=${MODES:-off on on-split anchor}

[ -x "$VMM" ] || { echo "bench-net: $VMM not found; build first" >&2; exit 1; }
[ -x "$BUILD/bench/vuiso-cpu-pair" ] || { echo "bench-net: $BUILD/bench/vuiso-cpu-pair not found; build first" >&2; exit 1; }
command -v "$TESTPMD" >/dev/null || { echo "bench-net: $TESTPMD not found (package dpdk-dev; scripts/setup.sh)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench-net: dpdk-testpmd needs root" >&2; exit 1; }
trap vmm_cleanup EXIT INT TERM
vmm_tmpdir
T=$VMM_TMP
# The output of a run that fails is kept here (outside $T, which goes).
KEEP_DIR=$(mktemp -d /tmp/bench-net.XXXXXX)
FAILS=0
NOFAST=0
PAIR=$BUILD/bench/vuiso-cpu-pair
# The fast regime: the host has put the two vCPUs on cores that share a
# cache (round trip about 50-90 ns here; the slow one is about 325-345 ns).
FAST_NS=${FAST_NS:-150}
MAX_ROUNDS=${MAX_ROUNDS:-$((3 * REPS))}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# The upper quartile, as vuiso-vmm computes it: sorted, index 3(n-1)/4.
p75() { sort -g | awk '{ a[NR - 1] = $1 } END { if (NR == 0) print "nan"; else print a[int(3 * (NR - 1) / 4)] }'; }

# run_vmm MODE FRAME PAIRS: prints "Mpps vmm_cpu% testpmd_cpu%".  MODE off,
# on (libvuiso's default shadow ring: packed against testpmd) or on-split
# (a split shadow ring, like the guest's).
run_vmm() {
	local out rc mode=(--isolation="$1")
	[ "$1" = on-split ] && mode=(--isolation=on --backend-ring=split)
	out=$(taskset -c 0 "$VMM" --device=net --workload=rate "${mode[@]}" \
		--frame="$2" --queues="$3" --time="$SECS" --quiet 2>&1)
	rc=$?
	if [ $rc -ne 0 ] || ! grep -q '^result: OK' <<<"$out"; then
		FAILS=$((FAILS + 1))
		printf '%s\n' "$out" >"$KEEP_DIR/fail-$FAILS.out"
		echo "bench-net: vuiso-vmm ${mode[*]} --frame=$2 --queues=$3 failed (exit status $rc); output kept in $KEEP_DIR/fail-$FAILS.out" >&2
		echo "nan nan nan"
		return
	fi
	sed -n 's/.* Mpps-p75=\([^ ]*\).*/\1/p' <<<"$out" | tr '\n' ' '
	sed -n 's/^net: cpu vmm=[^(]*(\([0-9]*\)% of one CPU.*testpmd=[^(]*(\([0-9]*\)%.*/\1 \2/p' <<<"$out"
}

# run_anchor FRAME PAIRS: prints "Mpps fe_cpu% be_cpu%".  The front-end
# reports Rx-pps every second; the first two reports (start-up) are
# dropped and the upper quartile of the rest is taken, as for the VMM.
run_anchor() {
	local frame=$1 pairs=$2 sock=$T/anchor.sock fe be c0 c1 t0 t1 hz
	rm -f "$sock"
	start_testpmd "$sock" "$pairs" io || { echo "nan nan nan"; return; }
	be=$PMD_PID
	c0=$(awk '{ print $14 + $15 }' "/proc/$be/stat")
	t0=$(date +%s.%N)
	timeout -s INT $((SECS + 3)) "$TESTPMD" -l 1,0 --main-lcore 1 --no-pci \
		--no-huge -m 512 --no-shconf --no-telemetry \
		--file-prefix="vuiso-anchor-$$" \
		--vdev "virtio_user0,path=$sock,queues=$pairs" -- \
		--forward-mode=io --auto-start --tx-first --nb-cores=1 \
		--rxq="$pairs" --txq="$pairs" --total-num-mbufs=8192 \
		--txpkts="$frame" --stats-period=1 </dev/null >"$T/anchor.log" 2>&1 &
	fe=$!
	VMM_PIDS+=("$fe")
	sleep $((SECS + 2))
	hz=$(getconf CLK_TCK)
	local fecpu fepid
	fepid=$(pgrep -P "$fe" | head -n1) # timeout's child: the front-end
	fecpu=$(awk '{ print $14 + $15 }' "/proc/$fepid/stat" 2>/dev/null || echo 0)
	c1=$(awk '{ print $14 + $15 }' "/proc/$be/stat")
	t1=$(date +%s.%N)
	wait "$fe" 2>/dev/null
	kill "$be" 2>/dev/null
	wait "$be" 2>/dev/null
	rmdir "/var/run/dpdk/vuiso-anchor-$$" 2>/dev/null
	local mpps
	mpps=$(sed -n 's/.*Rx-pps: *\([0-9]*\).*/\1/p' "$T/anchor.log" | tail -n +3 |
		awk '{ print $1 / 1e6 }' | p75)
	awk -v m="$mpps" -v f="$fecpu" -v b0="$c0" -v b1="$c1" -v t0="$t0" -v t1="$t1" -v hz="$hz" -v s="$SECS" \
		'BEGIN { printf "%s %.0f %.0f\n", m, 100 * f / hz / (s + 2), 100 * (b1 - b0) / hz / (t1 - t0) }'
}

# probe: the cache-line round trip between CPU 0 and CPU 1 now, in ns.
probe() { "$PAIR" --seconds 0.2 | awk '{ print $2 }'; }

echo "bench-net: $(nproc) CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1)"
echo "bench-net: $SECS s per run; rounds (one run per mode) until every mode has $REPS runs in the fast regime, at most $MAX_ROUNDS; $(dpkg-query -W -f '${Package} ${Version}' dpdk-dev 2>/dev/null)"
echo "bench-net: a run counts when the CPU 0 <-> 1 cache-line round trip is below $FAST_NS ns before and after it; a run's figure is the upper quartile of its per-interval rates; the table shows medians of counted runs"
printf '%-6s %-5s %9s %9s %9s %9s %7s %7s %8s %8s %8s %8s  %s\n' frame pairs "off Mpps" "on Mpps" "on-s Mpps" "anchor" "on/off" "on-s/off" "off Gb/s" "on Gb/s" "on-s Gb/s" "anc Gb/s" "CPU% vmm|testpmd off, on, on-s; anchor fe|be"
for frame in $FRAMES; do
	for pairs in $PAIRS; do
		declare -A mpps=() cpu=() nfast=()
		rounds="" ratios="" pratios="" tried=0
		for mode in $MODES; do nfast[$mode]=0; done
		while [ "$tried" -lt "$MAX_ROUNDS" ]; do
			short=0
			for mode in $MODES; do
				[ "${nfast[$mode]}" -lt "$REPS" ] && short=1
			done
			[ "$short" = 1 ] || break
			tried=$((tried + 1))
			declare -A got=() ok=()
			line=""
			for mode in $MODES; do
				before=$(probe)
				# Not in a subshell: what they start must reach
				# VMM_PIDS, which the exit trap kills.
				if [ "$mode" = anchor ]; then
					run_anchor "$frame" "$pairs" >"$T/res"
				else
					run_vmm "$mode" "$frame" "$pairs" >"$T/res"
				fi
				after=$(probe)
				read -r m a b <"$T/res"
				got[$mode]=$m
				ok[$mode]=0
				if [ "${before:-999999}" -lt "$FAST_NS" ] 2>/dev/null &&
					[ "${after:-999999}" -lt "$FAST_NS" ] 2>/dev/null; then
					ok[$mode]=1
					nfast[$mode]=$((nfast[$mode] + 1))
					mpps[$mode]+="$m "
					cpu[$mode]="$a|$b"
					line+=" $mode $m ($before/$after ns)"
				else
					line+=" $mode [$m] ($before/$after ns, slow)"
				fi
			done
			rounds+="$(printf '\n%-12s round %d:%s' '' "$tried" "$line")"
			if [ "${ok[off]:-0}" = 1 ] && [ "${ok[on]:-0}" = 1 ]; then
				ratios+=" $(awk -v a="${got[off]}" -v b="${got[on]}" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "nan" }')"
			fi
			if [ "${ok[off]:-0}" = 1 ] && [ "${ok[on-split]:-0}" = 1 ]; then
				pratios+=" $(awk -v a="${got[off]}" -v b="${got[on-split]}" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "nan" }')"
			fi
			unset got ok
		done
		off=$(tr ' ' '\n' <<<"${mpps[off]:-}" | grep . | median)
		on=$(tr ' ' '\n' <<<"${mpps[on]:-}" | grep . | median)
		onp=$(tr ' ' '\n' <<<"${mpps[on-split]:-}" | grep . | median)
		anc=$(tr ' ' '\n' <<<"${mpps[anchor]:-}" | grep . | median)
		awk -v f="$frame" -v p="$pairs" -v off="$off" -v on="$on" -v onp="$onp" -v anc="$anc" \
			-v c="${cpu[off]:-}, ${cpu[on]:-}, ${cpu[on-split]:-}; ${cpu[anchor]:-}" \
			'function g(m) { return (m == "nan") ? "nan" : sprintf("%.2f", m * f * 8 / 1000) }
			function r(a, b) { return (b > 0 && b != "nan" && a != "nan") ? sprintf("%.2f", a / b) : "nan" }
			BEGIN { printf "%-6s %-5s %9s %9s %9s %9s %7s %7s %8s %8s %8s %8s  %s\n", f, p,
				off, on, onp, anc, r(on, off), r(onp, off),
				g(off), g(on), g(onp), g(anc), c }'
		counts=""
		for mode in $MODES; do counts+=" $mode ${nfast[$mode]}"; done
		printf '%-12s %d rounds; runs in the fast regime:%s (slow runs in [brackets], not counted)%s\n' '' "$tried" "$counts" "$rounds"
		printf '%-12s on/off of the rounds whose off and on both counted:%s\n' '' "$ratios"
		printf '%-12s on-split/off, likewise:%s\n' '' "$pratios"
		for mode in $MODES; do
			[ "${nfast[$mode]}" -gt 0 ] || { NOFAST=$((NOFAST + 1)); break; }
		done
		unset mpps cpu nfast
	done
done
echo "targets (benchmark, not tests): on/off >= 0.7 at 64 B, >= 0.8 at 1518 B (on: the default, packed shadow ring; on-s: a split one)"
if [ "$NOFAST" -gt 0 ]; then
	echo "bench-net: $NOFAST row(s) had a mode with no run in the fast regime (nan): the CPUs' round trip stayed at or above $FAST_NS ns; run again later" >&2
fi
if [ "$FAILS" -gt 0 ]; then
	echo "bench-net: $FAILS run(s) failed; their output is in $KEEP_DIR" >&2
	exit 1
fi
rmdir "$KEEP_DIR"
