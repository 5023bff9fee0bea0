#!/bin/bash
# SPDX-License-Identifier: MIT
#
# make-guest.sh - build a tiny test guest from Debian packages.
#
# The guest is the Debian kernel (linux-image-amd64) and an initramfs with
# busybox-static, the virtio modules the tests need, and an /init that
#   1. mounts proc, sys, devtmpfs,
#   2. insmods the modules in dependency order (list in /etc/modules.order),
#   3. runs /test.sh if present (run-guest-test.sh appends it as a second
#      cpio archive, so no 9p or network is needed to pass the test in),
#   4. prints "VUISO-GUEST-EXIT: <status>" on the serial console and powers
#      the machine off.
#
# Output is cached in $VUISO_CACHE/guest/<key>/ (default
# /var/cache/libvuiso/guest), keyed by kernel version, busybox version,
# module list and this script, so a second run costs nothing.
#
# Usage: tests/qemu/make-guest.sh
# Environment:
#   VUISO_CACHE     cache root (default /var/cache/libvuiso)
#   GUEST_KVER      kernel version (default: the one linux-image-amd64 depends on)
#   GUEST_MODULES   modules to load (default: the virtio blk/fs set below)
# Prints two lines, KERNEL=<path> and INITRD=<path>.

set -euo pipefail

msg() { printf 'make-guest: %s\n' "$*" >&2; }
die() { printf 'make-guest: error: %s\n' "$*" >&2; exit 1; }

CACHE=${VUISO_CACHE:-/var/cache/libvuiso}/guest
MODULES=${GUEST_MODULES:-virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk fuse virtiofs}

# --- kernel -----------------------------------------------------------------

KVER=${GUEST_KVER:-}
if [[ -z $KVER ]]; then
	# linux-image-amd64 depends on linux-image-<kver> (or -unsigned).
	KVER=$(dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null |
		tr ',|' '\n\n' | sed -n 's/^ *linux-image-\([0-9][^ ]*\).*/\1/p' |
		sed 's/-unsigned$//' | head -n1 || true)
fi
if [[ -z $KVER ]]; then
	KVER=$(ls /lib/modules | sort -V | tail -n1)
fi
[[ -n $KVER ]] || die "no kernel found: apt-get install linux-image-amd64"

KROOT=/
if [[ ! -r /boot/vmlinuz-$KVER || ! -d /lib/modules/$KVER ]]; then
	# Not installed (or /boot not readable): unpack the package instead.
	KROOT=${VUISO_CACHE:-/var/cache/libvuiso}/kernel/$KVER
	if [[ ! -r $KROOT/boot/vmlinuz-$KVER ]]; then
		msg "unpacking linux-image-$KVER into $KROOT"
		tmp=$(mktemp -d)
		(cd "$tmp" && apt-get download "linux-image-$KVER" >&2 ||
			apt-get download "linux-image-$KVER-unsigned" >&2) ||
			die "cannot download linux-image-$KVER"
		rm -rf "$KROOT"
		mkdir -p "$KROOT"
		dpkg-deb -x "$tmp"/linux-image-*.deb "$KROOT"
		rm -rf "$tmp"
	fi
fi
VMLINUZ=$KROOT/boot/vmlinuz-$KVER
MODDIR=$KROOT/lib/modules/$KVER

BUSYBOX=$(dpkg -L busybox-static 2>/dev/null | grep -m1 '/bin/busybox$' || true)
[[ -x $BUSYBOX ]] || die "busybox-static not installed: apt-get install busybox-static"
BBVER=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)

# --- modules in dependency order --------------------------------------------

declare -A SEEN=()
ORDER=()
add_module() {
	local m=${1//-/_} dep deps
	[[ -n ${SEEN[$m]:-} ]] && return
	SEEN[$m]=1
	local file
	file=$(modinfo -b "$KROOT" -k "$KVER" -F filename "$m" 2>/dev/null || true)
	if [[ -z $file || $file == "(builtin)" ]]; then
		msg "module $m is built in or absent in $KVER, skipping"
		return
	fi
	deps=$(modinfo -b "$KROOT" -k "$KVER" -F depends "$m" 2>/dev/null || true)
	for dep in ${deps//,/ }; do
		add_module "$dep"
	done
	ORDER+=("$m:$file")
}
for m in $MODULES; do
	add_module "$m"
done

KEY=$( {
	echo "$KVER" "$BBVER"
	printf '%s\n' "${ORDER[@]}"
	sha256sum <"${BASH_SOURCE[0]}"
} | sha256sum | cut -c1-16)
OUT=$CACHE/$KVER-$KEY

if [[ -f $OUT/initramfs.cpio.gz && -f $OUT/vmlinuz ]]; then
	msg "cached guest $OUT"
	echo "KERNEL=$OUT/vmlinuz"
	echo "INITRD=$OUT/initramfs.cpio.gz"
	exit 0
fi

msg "building guest for kernel $KVER, busybox $BBVER"
msg "modules: ${ORDER[*]%%:*}"
ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT

mkdir -p "$ROOT"/{bin,sbin,etc,proc,sys,dev,tmp,mnt,run,lib/modules,usr/bin,usr/sbin}
cp "$BUSYBOX" "$ROOT/bin/busybox"
for applet in $("$BUSYBOX" --list); do
	[[ $applet == busybox ]] && continue
	ln -sf busybox "$ROOT/bin/$applet"
done
# The kernel opens /dev/console before /init runs; devtmpfs is not yet mounted.
mknod -m 600 "$ROOT/dev/console" c 5 1
mknod -m 666 "$ROOT/dev/null" c 1 3

: >"$ROOT/etc/modules.order"
for entry in "${ORDER[@]}"; do
	m=${entry%%:*}
	f=${entry#*:}
	case $f in
	*.ko) cp "$f" "$ROOT/lib/modules/$m.ko" ;;
	*.ko.xz) xz -dc "$f" >"$ROOT/lib/modules/$m.ko" ;;
	*.ko.zst) zstd -dcq "$f" >"$ROOT/lib/modules/$m.ko" ;;
	*.ko.gz) gzip -dc "$f" >"$ROOT/lib/modules/$m.ko" ;;
	*) die "unknown module file type: $f" ;;
	esac
	echo "$m" >>"$ROOT/etc/modules.order"
done

cat >"$ROOT/init" <<'EOF'
#!/bin/sh
# /init of the libvuiso test guest (tests/qemu/make-guest.sh).
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
echo "VUISO-GUEST: kernel $(uname -r) up"
while read -r m; do
	insmod "/lib/modules/$m.ko" || echo "VUISO-GUEST: insmod $m failed"
done </etc/modules.order
if [ -x /test.sh ]; then
	echo "VUISO-GUEST: running /test.sh"
	/test.sh
	rc=$?
else
	echo "VUISO-GUEST: no /test.sh"
	rc=127
fi
sync
echo "VUISO-GUEST-EXIT: $rc"
poweroff -f
EOF
chmod 755 "$ROOT/init"

mkdir -p "$OUT.tmp"
(cd "$ROOT" && find . -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc --owner=0:0 --quiet) | gzip -9n >"$OUT.tmp/initramfs.cpio.gz"
cp "$VMLINUZ" "$OUT.tmp/vmlinuz"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
msg "built $OUT ($(du -sh "$OUT/initramfs.cpio.gz" | cut -f1) initramfs)"
echo "KERNEL=$OUT/vmlinuz"
echo "INITRD=$OUT/initramfs.cpio.gz"
