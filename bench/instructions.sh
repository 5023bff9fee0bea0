#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Library instructions per request, counted by callgrind: only what runs
# inside vuiso_vq_kick_from_guest() and vuiso_vq_call_from_backend() of
# vuiso-microbench (the engine, both ring layers, the pool, the copies),
# not the simulated guest and back-end around them.  Unlike requests/s
# this does not move with the machine's load or clock, so it is the figure
# to compare ring layouts and changes by; it says nothing about cache
# misses or memory bandwidth (see vuiso-microbench for those).
#
#   bench/instructions.sh [BUILD_DIR] [SIZE...]     default: build 64 1500 4096
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$top/build}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(64 1500 4096)
bench=$build/bench/vuiso-microbench

if [ ! -x "$bench" ]; then
	echo "instructions.sh: no $bench (build first: meson setup $build && ninja -C $build)" >&2
	exit 2
fi
if ! command -v valgrind >/dev/null; then
	echo "instructions.sh: needs valgrind (apt-get install valgrind)" >&2
	exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

printf '%-7s %-7s %8s %12s %14s\n' guest backend size requests instr/request
for size in "${sizes[@]}"; do
	for guest in split packed; do
		for backend in split packed; do
			valgrind --tool=callgrind --callgrind-out-file="$tmp/cg" \
				--collect-atstart=no \
				--toggle-collect=vuiso_vq_kick_from_guest \
				--toggle-collect=vuiso_vq_call_from_backend \
				"$bench" --json --seconds 0.3 --size "$size" \
				--guest-ring "$guest" --backend-ring "$backend" \
				>"$tmp/out" 2>"$tmp/err" || {
				cat "$tmp/err" >&2
				exit 1
			}
			req=$(grep -o '"requests": [0-9]*' "$tmp/out" | awk '{print $2}')
			ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$tmp/cg")
			if [ -z "$req" ] || [ "$req" -eq 0 ] || [ -z "$ir" ]; then
				echo "instructions.sh: no figures for $guest/$backend $size B" >&2
				exit 1
			fi
			printf '%-7s %-7s %8s %12s %14d\n' "$guest" "$backend" \
				"$size" "$req" $((ir / req))
		done
	done
done
