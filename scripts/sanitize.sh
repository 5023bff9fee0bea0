#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Sanitizer runs (issue 4):
#   build-sanitize/  -Db_sanitize=address,undefined: the unit, bench smoke,
#                    fuzz-replay and integration suites, UBSan fatal;
#   build-tsan/      -Db_sanitize=thread: the concurrency test (guest memory
#                    map replaced on one thread while another runs a queue),
#                    with scripts/tsan.supp for liburcu-bp's grace periods;
#   --valgrind       also the unit and fuzz-replay suites of build-sanitize's
#                    plain twin (build-valgrind/) under valgrind memcheck.
#
# Usage: scripts/sanitize.sh [--valgrind]
# Build directories go under $VUISO_SANITIZE_DIR (default: the source tree).
# Exits non-zero when any suite fails.
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${VUISO_SANITIZE_DIR:-$top}
valgrind=0
[ "${1:-}" = "--valgrind" ] && valgrind=1

# Sanitizer reports are failures, never warnings.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$top/scripts/tsan.supp}

failed=0

# setup DIR OPTIONS...: configure once, then build.
setup() {
	local b=$1
	shift
	if [ ! -f "$b/build.ninja" ]; then
		meson setup "$b" "$top" "$@" >/dev/null || return 1
	fi
	ninja -C "$b" >/dev/null
}

suite() {
	local b=$1
	shift
	if ! meson test -C "$b" --print-errorlogs "$@"; then
		failed=$((failed + 1))
	fi
}

echo "=== ASan + UBSan: unit, bench, fuzz replay, integration ($dir/build-sanitize)"
if setup "$dir/build-sanitize" -Db_sanitize=address,undefined \
	-Db_lundef=false; then
	suites=(--suite unit --suite bench --suite fuzz)
	# Not grep -q: it would stop reading, meson would die of SIGPIPE and
	# pipefail would make the test false, silently dropping the suite.
	if meson test -C "$dir/build-sanitize" --list 2>/dev/null |
		grep '^libvuiso:integration' >/dev/null; then
		suites+=(--suite integration)
	fi
	suite "$dir/build-sanitize" "${suites[@]}"
else
	echo "sanitize.sh: the ASan+UBSan build failed" >&2
	failed=$((failed + 1))
fi

echo "=== TSan: concurrency ($dir/build-tsan)"
if setup "$dir/build-tsan" -Db_sanitize=thread -Db_lundef=false; then
	suite "$dir/build-tsan" concurrency
else
	echo "sanitize.sh: the TSan build failed" >&2
	failed=$((failed + 1))
fi

if [ "$valgrind" = 1 ]; then
	echo "=== valgrind memcheck: unit, fuzz replay ($dir/build-valgrind)"
	if setup "$dir/build-valgrind" -Dbuildtype=debug; then
		suite "$dir/build-valgrind" --suite unit --suite fuzz \
			--timeout-multiplier 10 \
			--wrap='valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --quiet'
	else
		failed=$((failed + 1))
	fi
fi

if [ "$failed" -ne 0 ]; then
	echo "sanitize.sh: $failed run(s) failed"
	exit 1
fi
echo "sanitize.sh: all sanitizer runs passed"
