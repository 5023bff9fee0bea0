#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every public header compiles alone, as C11 and as C++, warning-free.
set -euo pipefail
cc=${CC:-cc}
cxx=${CXX:-c++}
inc=$1
shift
# Generated headers (<vuiso/version.h>) live in the build tree.
gen=()
[ -n "${VUISO_GENERATED_INCLUDE:-}" ] && gen=(-I"$VUISO_GENERATED_INCLUDE")
status=0
for h in "$@"; do
	rel=${h#"$inc"/}
	if ! printf '#include <%s>\n' "$rel" |
		"$cc" -std=c11 -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$inc" "${gen[@]}" -x c -; then
		echo "FAIL: $rel does not compile alone as C11"
		status=1
	fi
	if command -v "$cxx" >/dev/null &&
		! printf '#include <%s>\n' "$rel" |
		"$cxx" -Wall -Wextra -Werror -fsyntax-only -I"$inc" "${gen[@]}" -x c++ -; then
		echo "FAIL: $rel does not compile alone as C++"
		status=1
	fi
	[ $status -eq 0 ] && echo "ok: $rel"
done
exit $status
