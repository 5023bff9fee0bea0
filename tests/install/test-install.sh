#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install libvuiso into a temporary prefix and build a program outside the
# tree against it with pkg-config alone.
set -euo pipefail
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson setup "$tmp/build" "$src" --prefix="$tmp/prefix" --libdir=lib \
	-Dtests=false >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log"; exit 1; }
ninja -C "$tmp/build" install >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
for f in include/vuiso/vuiso.h lib/libvuiso.so lib/libvuiso.so.0 lib/pkgconfig/vuiso.pc; do
	[ -e "$tmp/prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
export PKG_CONFIG_PATH=$tmp/prefix/lib/pkgconfig
flags=$(pkg-config --cflags --libs vuiso)
echo "pkg-config --cflags --libs vuiso: $flags"
# shellcheck disable=SC2086
${CC:-cc} -std=c11 -Wall -Wextra -Werror "$src/tests/install/consumer.c" $flags -o "$tmp/consumer"
LD_LIBRARY_PATH=$tmp/prefix/lib "$tmp/consumer"
# Only the documented API is exported.
nm -D --defined-only "$tmp/prefix/lib/libvuiso.so" | awk '$2 == "T" { print $3 }' |
	sed 's/@.*//' | sort >"$tmp/exported"
if grep -v '^vuiso_' "$tmp/exported"; then
	echo "FAIL: symbols outside the vuiso_ namespace are exported"
	exit 1
fi
echo "ok: $(wc -l <"$tmp/exported") symbols exported, all vuiso_*"
