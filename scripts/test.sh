#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The whole test suite, as the README's quick start and CI run it:
#   1. install missing Debian packages and build (scripts/setup.sh), and
#      build the patched QEMU into its cache (qemu-glue/build-qemu.sh);
#   2. every meson suite of the normal build;
#   3. scripts/sanitize.sh: the unit, bench, fuzz-replay and integration
#      suites under ASan+UBSan, and the concurrency test under TSan.
# Ends with one "N passed, M failed" line; exits non-zero on any failure.
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
"$top/scripts/setup.sh" build || exit 1

passed=0
failed=0

# The patched QEMU (10.0, qemu-glue/patches-10.0) for the `qemu` suite:
# cached outside the tree, so this is seconds when nothing changed and about
# 7 minutes on a fresh 2-core machine.
echo "=== qemu-glue/build-qemu.sh (log: build/qemu-build.log)"
if ! "$top/qemu-glue/build-qemu.sh" >build/qemu-build.log 2>&1; then
	tail -n 40 build/qemu-build.log
	echo "test.sh: building the patched QEMU failed; the qemu suite will fail" >&2
fi

# Run meson test in $1 with the remaining arguments; add up its counts.
run_suite() {
	local dir=$1 log
	shift
	log=$(mktemp)
	meson test -C "$dir" --print-errorlogs "$@" 2>&1 | tee "$log"
	local ok fail timeout
	ok=$(awk '/^Ok:/ {print $2}' "$log" | tail -n1)
	fail=$(awk '/^Fail:/ {print $2}' "$log" | tail -n1)
	timeout=$(awk '/^Timeout:/ {print $2}' "$log" | tail -n1)
	rm -f "$log"
	passed=$((passed + ${ok:-0}))
	failed=$((failed + ${fail:-0} + ${timeout:-0}))
	if [ -z "$ok" ]; then
		echo "test.sh: meson test in $dir did not run" >&2
		failed=$((failed + 1))
	fi
}

echo "=== all suites (build/)"
run_suite build

echo "=== sanitizers: scripts/sanitize.sh (ASan+UBSan, TSan)"
log=$(mktemp)
"$top/scripts/sanitize.sh" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
ok=$(awk '/^Ok:/ {n += $2} END {print n + 0}' "$log")
bad=$(awk '/^(Fail|Timeout):/ {n += $2} END {print n + 0}' "$log")
rm -f "$log"
passed=$((passed + ok))
failed=$((failed + bad))
if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
	echo "test.sh: scripts/sanitize.sh failed (exit $rc)" >&2
	failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
