#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Run a libFuzzer campaign over the libvuiso harnesses.
#
#   fuzz/run-campaign.sh [SECONDS] [HARNESS...]
#
# SECONDS defaults to 1800 per harness; HARNESS to "guest backend model".
# Configures (once) a clang build with -Dfuzzing_engine=libfuzzer, runs the
# harnesses at most VUISO_FUZZ_JOBS (default 2) at a time, each from
# fuzz/corpus/<harness>/, then merges the inputs that add coverage back into
# fuzz/corpus/<harness>/ (libFuzzer -merge=1, so the corpus stays minimal)
# and prints execs/s, cov and ft per harness.
#
# A crash, leak or timeout input is copied to fuzz/crashes/<harness>/ (not
# replayed, so the build stays green); once the library is fixed, move it
# into fuzz/corpus/<harness>/ so it stays a regression test.
#
# Environment:
#   VUISO_FUZZ_BUILD  build directory   (default /tmp/vuiso-fuzz-build)
#   VUISO_FUZZ_LOGS   logs, new inputs  (default /tmp/vuiso-fuzz-logs)
#   VUISO_FUZZ_JOBS   harnesses at once (default 2)
#   VUISO_FUZZ_ARGS   extra libFuzzer flags, e.g. -use_value_profile=1
#   VUISO_FUZZ_NO_MERGE=1  leave fuzz/corpus alone
set -euo pipefail

secs=${1:-1800}
[ $# -gt 0 ] && shift
harnesses=${*:-guest backend model}
src=$(cd "$(dirname "$0")/.." && pwd)
build=${VUISO_FUZZ_BUILD:-/tmp/vuiso-fuzz-build}
logs=${VUISO_FUZZ_LOGS:-/tmp/vuiso-fuzz-logs}
jobs=${VUISO_FUZZ_JOBS:-2}
extra=${VUISO_FUZZ_ARGS:-}

case $secs in
'' | *[!0-9]*) echo "usage: $0 [SECONDS] [HARNESS...]" >&2; exit 2 ;;
esac

if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" "$src" -Dfuzzing_engine=libfuzzer \
		-Dbuildtype=debugoptimized >/dev/null
else
	meson configure "$build" -Dfuzzing_engine=libfuzzer >/dev/null
fi
targets=""
for h in $harnesses; do
	targets="$targets fuzz/fuzz-$h"
done
# shellcheck disable=SC2086
ninja -C "$build" $targets >/dev/null

mkdir -p "$logs"
run_one() {
	local h=$1 new="$logs/$h-new"

	rm -rf "$new" "$logs/$h"-crash-* "$logs/$h"-leak-* "$logs/$h"-timeout-*
	mkdir -p "$new"
	# New inputs go to the first directory; the repo corpus seeds it.
	# shellcheck disable=SC2086
	"$build/fuzz/fuzz-$h" -max_total_time="$secs" -print_final_stats=1 \
		-timeout=10 -rss_limit_mb=2048 -artifact_prefix="$logs/$h-" \
		$extra "$new" "$src/fuzz/corpus/$h" >"$logs/$h.log" 2>&1 || true
}

echo "campaign: ${secs}s per harness, $jobs at a time: $harnesses"
echo "logs: $logs/<harness>.log"
running=0
for h in $harnesses; do
	if [ "$running" -ge "$jobs" ]; then
		wait -n || true
		running=$((running - 1))
	fi
	run_one "$h" &
	running=$((running + 1))
done
wait

status=0
printf '%-8s %8s %12s %9s %7s %7s %6s %s\n' harness seconds execs execs/s \
	cov ft corpus findings
for h in $harnesses; do
	log="$logs/$h.log"
	finds=$(find "$logs" -maxdepth 1 \( -name "$h-crash-*" -o \
		-name "$h-leak-*" -o -name "$h-timeout-*" -o -name "$h-oom-*" \) |
		wc -l)
	if [ "$finds" -gt 0 ]; then
		mkdir -p "$src/fuzz/crashes/$h"
		find "$logs" -maxdepth 1 \( -name "$h-crash-*" -o \
			-name "$h-leak-*" -o -name "$h-timeout-*" -o \
			-name "$h-oom-*" \) -exec cp {} "$src/fuzz/crashes/$h/" \;
		status=1
	fi
	if [ -z "${VUISO_FUZZ_NO_MERGE:-}" ] && [ "$finds" -eq 0 ]; then
		"$build/fuzz/fuzz-$h" -merge=1 "$src/fuzz/corpus/$h" \
			"$logs/$h-new" >"$logs/$h-merge.log" 2>&1 || true
	fi
	# The last status line ("#N DONE cov: C ft: F corp: ...") and stats.
	last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(ls "$src/fuzz/corpus/$h" | wc -l)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	printf '%-8s %8s %12s %9s %7s %7s %6s %s\n' "$h" "$secs" \
		"${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "$corp" \
		"$finds"
done
[ "$status" -eq 0 ] || echo "findings copied to fuzz/crashes/<harness>/"
exit "$status"
