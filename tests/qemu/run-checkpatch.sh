#!/bin/bash
# SPDX-License-Identifier: MIT
#
# run-checkpatch.sh - QEMU's scripts/checkpatch.pl, from the QEMU 10.0
# source qemu-glue/build-qemu.sh fetched, on every patch of
# qemu-glue/patches-10.0: 0 errors and 0 warnings each.  The one message
# ignored is the missing Signed-off-by: the series carries no sign-off, the
# person who submits it adds theirs.
#
# Usage: tests/qemu/run-checkpatch.sh [PATCH...]  (default: the 10.0 series)
# Exit status: 0 pass, 1 fail (also when the cached QEMU source is missing).

set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRC=${VUISO_CACHE:-/var/cache/libvuiso}/qemu10/pristine
CHECKPATCH=$SRC/scripts/checkpatch.pl
[[ -f $CHECKPATCH ]] || {
	echo "run-checkpatch: FAIL: no $CHECKPATCH: run qemu-glue/build-qemu.sh" >&2
	exit 1
}
if (($#)); then
	PATCHES=("$@")
else
	PATCHES=("$top"/qemu-glue/patches-10.0/*.patch)
fi
[[ -f ${PATCHES[0]} ]] || {
	echo "run-checkpatch: FAIL: no patches" >&2
	exit 1
}

rc=0
for p in "${PATCHES[@]}"; do
	# checkpatch.pl looks at MAINTAINERS and friends in the current directory.
	out=$(cd "$SRC" && perl "$CHECKPATCH" --no-color "$p" 2>&1) || true
	problems=$(printf '%s\n' "$out" | grep -E '^(ERROR|WARNING):' |
		grep -v '^ERROR: Missing Signed-off-by: line(s)$' || true)
	if [[ -n $problems ]]; then
		echo "FAIL: $(basename "$p")"
		printf '%s\n' "$out" | sed 's/^/    /'
		rc=1
	else
		echo "ok: $(basename "$p"): $(printf '%s\n' "$out" | grep -m1 '^total:' |
			sed 's/, [0-9]* lines checked//') (Missing Signed-off-by aside)"
	fi
done
exit "$rc"
