#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every C file of the project (qemu-glue/ follows QEMU's style instead) is
# clang-formatted and carries an SPDX line.
set -euo pipefail
cd "$1"
status=0
if ! command -v clang-format >/dev/null; then
	echo "FAIL: clang-format is not installed (scripts/setup.sh installs it)"
	exit 1
fi
files=$(git ls-files '*.c' '*.h' 2>/dev/null | grep -v '^qemu-glue/' || true)
[ -n "$files" ] || files=$(find . -name '*.[ch]' -not -path './build*' -not -path './qemu-glue/*')
for f in $files; do
	[ -f "$f" ] || continue
	if ! clang-format --dry-run --Werror "$f" 2>/dev/null; then
		echo "FAIL: $f is not clang-formatted (clang-format -i $f)"
		status=1
	fi
	if ! head -n 2 "$f" | grep -q 'SPDX-License-Identifier'; then
		echo "FAIL: $f has no SPDX line"
		status=1
	fi
done
for f in $(git ls-files 'qemu-glue/*.c' 'qemu-glue/*.h' 2>/dev/null || true); do
	head -n 2 "$f" | grep -q 'SPDX-License-Identifier: GPL-2.0-or-later' ||
		{ echo "FAIL: $f must be GPL-2.0-or-later"; status=1; }
done
[ $status -eq 0 ] && echo "ok: $(echo "$files" | wc -w) files formatted, SPDX present"
exit $status
