#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The main job, as the README's quick start runs it: install and build
# (scripts/setup.sh), then run the example VMM's verifying block workload
# with memory isolation on against a real qemu-storage-daemon, and print
# the verification result, the isolation proof and the throughput; then the
# verifying net workload against dpdk-testpmd.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$top/scripts/setup.sh" build
exec "$top/examples/demo.sh" "$top/build"
