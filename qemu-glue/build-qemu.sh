#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# build-qemu.sh - build Debian's QEMU with the libvuiso patch series.
#
# Two series, chosen with --series (default: $VUISO_QEMU_SERIES, else 10.0):
#   10.0  Debian 13 (trixie)'s `qemu` source package, whichever 10.0.x the
#         archive serves, through a private deb-src list; the series
#         qemu-glue/patches-10.0/*.patch holds the adapter itself
#         (hw/virtio/vhost-user-iso.c).  QEMU 10.0 needs meson >= 1.5:
#         Debian 12's is 1.0, so trixie's `meson` package (pure Python,
#         arch all) is downloaded and unpacked into the cache, not
#         installed, unless the system meson is new enough.
#   7.2   Debian 12's own `qemu` source package (the version of the
#         installed qemu-system-x86 when the archive still has it), the
#         series qemu-glue/patches/*.patch and the glue sources
#         (qemu-glue/*.c, *.h) copied into hw/virtio/.
# Either way: fetch the source package, apply Debian's patches
# (dpkg-source -x), then the series, configure a minimal x86_64-softmmu
# build and build qemu-system-x86_64 plus the qtest binary
# tests/qtest/qos-test (which holds vhost-user-test).
#
# Everything lives outside the repository, in $VUISO_CACHE/qemu10 for 10.0
# and $VUISO_CACHE/qemu for 7.2 (default VUISO_CACHE=/var/cache/libvuiso):
#   apt/        private sources file and package lists
#   dl/         the downloaded source package (.dsc, tarballs)
#   meson/      10.0 only: trixie's meson, unpacked
#   pristine/   dpkg-source -x output, never modified
#   src/        the tree we build: pristine + our series (+ glue)
#   build/      the meson/ninja build directory
#   stamps/     what src/ and build/ were made from
# A later run re-fetches nothing, re-patches only the files the old or new
# series touch (so unchanged files keep their mtimes), and lets ninja rebuild
# only what changed: the series hash and libvuiso's installed files are the
# cache key.
#
# Usage: qemu-glue/build-qemu.sh [--series 10.0|7.2] [--deps-only]
#                                [--no-deps] [--clean] [--no-vuiso]
#   --series S   which QEMU and series (10.0 or 7.2)
#   --deps-only  install the build dependencies and stop
#   --no-deps    do not run apt-get install (dependencies already present)
#   --clean      remove the cached src/ and build/ first (keeps the download)
#   --no-vuiso   do not build libvuiso: memory-isolation=on is then refused
# Environment:
#   VUISO_CACHE       cache root (default /var/cache/libvuiso)
#   VUISO_QEMU_SERIES default for --series (default 10.0)
#   VUISO_PREFIX      prefix where libvuiso is installed; its pkg-config
#                     directory is put first in PKG_CONFIG_PATH.  Default:
#                     this checkout's libvuiso, built in $CACHE/vuiso-build
#                     and installed to $CACHE/vuiso
#   QEMU_SRC_VERSION  Debian source version to fetch (default: 7.2, the
#                     installed one; 10.0, the newest 10.0.x of trixie)
#   JOBS              ninja -j (default: nproc)
# Prints the paths of the built binaries on success.

set -euo pipefail

msg() { printf 'build-qemu: %s\n' "$*" >&2; }
die() { printf 'build-qemu: error: %s\n' "$*" >&2; exit 1; }

GLUE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
JOBS=${JOBS:-$(nproc)}

SERIES=${VUISO_QEMU_SERIES:-10.0}
DEPS_ONLY=0
NO_DEPS=0
WITH_VUISO=1
CLEAN=0
while (($#)); do
	arg=$1
	shift
	case $arg in
	--series)
		(($#)) || die "--series needs 10.0 or 7.2"
		SERIES=$1
		shift
		;;
	--series=*) SERIES=${arg#--series=} ;;
	--deps-only) DEPS_ONLY=1 ;;
	--no-deps) NO_DEPS=1 ;;
	--clean) CLEAN=1 ;;
	--no-vuiso) WITH_VUISO=0 ;;
	-h | --help)
		sed -n '3,/^# Prints/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument: $arg" ;;
	esac
done

case $SERIES in
10.0)
	CACHE=${VUISO_CACHE:-/var/cache/libvuiso}/qemu10
	PATCH_DIR=$GLUE_DIR/patches-10.0
	;;
7.2)
	CACHE=${VUISO_CACHE:-/var/cache/libvuiso}/qemu
	PATCH_DIR=$GLUE_DIR/patches
	;;
*) die "unknown series '$SERIES' (10.0 or 7.2)" ;;
esac
msg "series $SERIES: $PATCH_DIR, cache $CACHE"

# Build dependencies.  Keep in sync with scripts/setup.sh.
BUILD_DEPS=(
	build-essential dpkg-dev pkg-config ninja-build meson python3-venv
	flex bison libglib2.0-dev libfdt-dev libpixman-1-dev zlib1g-dev
)

install_deps() {
	local missing=() p
	for p in "${BUILD_DEPS[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing+=("$p")
	done
	if ((${#missing[@]} == 0)); then
		msg "build dependencies present"
		return
	fi
	msg "installing build dependencies: ${missing[*]}"
	[[ $(id -u) == 0 ]] || die "need root to apt-get install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		"${missing[@]}" >&2
}

((NO_DEPS)) || install_deps
((DEPS_ONLY)) && exit 0

mkdir -p "$CACHE"/{apt/lists/partial,dl,stamps}

if ((CLEAN)); then
	msg "removing $CACHE/src $CACHE/build"
	rm -rf "$CACHE/src" "$CACHE/build" "$CACHE"/stamps/{src,series,config}
fi

# --- 1. fetch the source package -------------------------------------------

APT_OPTS=(
	-o "Dir::Etc::SourceList=$CACHE/apt/deb-src.sources"
	-o "Dir::Etc::SourceParts=/dev/null"
	-o "Dir::State::Lists=$CACHE/apt/lists"
	-o "APT::Sandbox::User=root"
)

# Write the private sources file: 7.2 from this machine's own suites as
# deb-src, 10.0 from trixie.
write_sources() {
	if [[ $SERIES == 10.0 ]]; then
		printf '%s\n' "Types: deb-src" "URIs: http://deb.debian.org/debian" \
			"Suites: trixie" "Components: main" >"$CACHE/apt/deb-src.sources"
		return
	fi
	[[ -f /etc/apt/sources.list.d/debian.sources ]] ||
		die "/etc/apt/sources.list.d/debian.sources not found"
	sed 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
		>"$CACHE/apt/deb-src.sources"
}

fetch_source() {
	local want=${QEMU_SRC_VERSION:-} dsc newest
	if [[ -z $want && $SERIES == 7.2 ]]; then
		want=$(dpkg-query -W -f='${source:Version}' qemu-system-x86 2>/dev/null || true)
	fi
	# Already downloaded?  (10.0 without a pinned version: whatever 10.0.x
	# was downloaded first; --clean keeps it, rm -r $CACHE/dl refreshes.)
	if [[ -n $want ]]; then
		dsc=$CACHE/dl/qemu_${want#*:}.dsc
	else
		dsc=$(ls -t "$CACHE"/dl/qemu_10.0.*.dsc 2>/dev/null | head -n1 || true)
	fi
	if [[ -n $dsc && -f $dsc ]]; then
		echo "$dsc"
		return
	fi

	write_sources
	msg "apt-get update (deb-src, private lists in $CACHE/apt/lists)"
	apt-get "${APT_OPTS[@]}" update >&2 || die "apt-get update of deb-src failed"

	local spec=qemu
	if [[ -n $want ]] &&
		apt-get "${APT_OPTS[@]}" source --download-only --print-uris "qemu=$want" \
			>/dev/null 2>&1; then
		spec=qemu=$want
	elif [[ $SERIES == 10.0 ]]; then
		newest=$(apt-cache "${APT_OPTS[@]}" showsrc qemu 2>/dev/null |
			sed -n 's/^Version: //p' | sort -V | tail -n1)
		[[ $newest == 1:10.0.* ]] ||
			die "trixie serves qemu '${newest:-?}', not a 10.0.x: update the series"
		spec=qemu=$newest
	else
		msg "source version '${want:-?}' not in the archive, taking the newest"
	fi
	msg "apt-get source --download-only $spec"
	(cd "$CACHE/dl" && apt-get "${APT_OPTS[@]}" source --download-only "$spec" >&2) ||
		die "apt-get source failed"
	dsc=$(ls -t "$CACHE"/dl/qemu_*.dsc | head -n1)
	[[ -f $dsc ]] || die "no .dsc downloaded"
	echo "$dsc"
}

DSC=$(fetch_source)
msg "source package: $(basename "$DSC")"

# --- 2. pristine tree (dpkg-source -x applies Debian's patches) -------------

if [[ $(cat "$CACHE/stamps/pristine" 2>/dev/null) != "$(basename "$DSC")" ]]; then
	msg "extracting $(basename "$DSC") to $CACHE/pristine"
	rm -rf "$CACHE/pristine" "$CACHE/pristine.tmp" "$CACHE/src" "$CACHE"/stamps/{src,series}
	# apt-get already checked the files against the signed Release file.
	dpkg-source --no-check -x "$DSC" "$CACHE/pristine.tmp" >&2 ||
		die "dpkg-source -x failed"
	mv "$CACHE/pristine.tmp" "$CACHE/pristine"
	basename "$DSC" >"$CACHE/stamps/pristine"
fi
PRISTINE=$CACHE/pristine
SRC=$CACHE/src

# --- 3. working tree: pristine + series + glue ------------------------------

if [[ ! -f $CACHE/stamps/src ]]; then
	msg "copying pristine tree to $SRC"
	rm -rf "$SRC" "$CACHE/stamps/series"
	cp -a "$PRISTINE" "$SRC.tmp"
	mv "$SRC.tmp" "$SRC"
	date -u +%FT%TZ >"$CACHE/stamps/src"
	: >"$CACHE/stamps/series-files"
fi

shopt -s nullglob
PATCHES=("$PATCH_DIR"/*.patch)
GLUE_FILES=()
# 7.2 only: the adapter is outside its series.  10.0's series holds it.
[[ $SERIES == 7.2 ]] && GLUE_FILES=("$GLUE_DIR"/*.c "$GLUE_DIR"/*.h)
shopt -u nullglob
((${#PATCHES[@]})) || die "no patches in $PATCH_DIR"

series_hash() {
	{
		for p in "${PATCHES[@]}"; do
			basename "$p"
			sha256sum <"$p"
		done
	} | sha256sum | cut -d' ' -f1
}

# Files a patch creates, modifies or deletes (paths relative to the tree).
patch_files() {
	sed -n -e 's#^--- a/\([^[:space:]]*\).*#\1#p' \
		-e 's#^+++ b/\([^[:space:]]*\).*#\1#p' "$@" | sort -u
}

NEW_HASH=$(series_hash)
if [[ $(cat "$CACHE/stamps/series" 2>/dev/null) != "$NEW_HASH" ]]; then
	msg "patch series changed (${#PATCHES[@]} patches): re-patching affected files"
	STAGE=$CACHE/stage
	rm -rf "$STAGE"
	mkdir -p "$STAGE"
	# Files touched by the old series or the new one.
	mapfile -t TOUCHED < <({
		cat "$CACHE/stamps/series-files" 2>/dev/null || true
		((${#PATCHES[@]} == 0)) || patch_files "${PATCHES[@]}"
	} | sort -u)
	for f in "${TOUCHED[@]}"; do
		if [[ -e $PRISTINE/$f ]]; then
			mkdir -p "$STAGE/$(dirname "$f")"
			cp -p "$PRISTINE/$f" "$STAGE/$f"
		fi
	done
	for p in "${PATCHES[@]}"; do
		msg "  applying $(basename "$p")"
		patch -d "$STAGE" -p1 --batch --forward --no-backup-if-mismatch \
			-r - -s <"$p" >&2 || die "patch $(basename "$p") does not apply"
	done
	for f in "${TOUCHED[@]}"; do
		if [[ -e $STAGE/$f ]]; then
			if ! cmp -s "$STAGE/$f" "$SRC/$f"; then
				mkdir -p "$SRC/$(dirname "$f")"
				cp "$STAGE/$f" "$SRC/$f"
				msg "  updated $f"
			fi
		elif [[ -e $SRC/$f ]]; then
			rm -f "$SRC/$f"
			msg "  removed $f"
		fi
	done
	rm -rf "$STAGE"
	if ((${#PATCHES[@]})); then
		patch_files "${PATCHES[@]}" >"$CACHE/stamps/series-files"
	else
		: >"$CACHE/stamps/series-files"
	fi
	echo "$NEW_HASH" >"$CACHE/stamps/series"
else
	msg "patch series unchanged (${#PATCHES[@]} patches)"
fi

for g in "${GLUE_FILES[@]}"; do
	dst=$SRC/hw/virtio/$(basename "$g")
	if ! cmp -s "$g" "$dst"; then
		cp "$g" "$dst"
		msg "glue: updated hw/virtio/$(basename "$g")"
	fi
done

# --- 4. configure -----------------------------------------------------------

# libvuiso: build this checkout's library and install it into the cache,
# unless VUISO_PREFIX points at an installed one or --no-vuiso was given.
if ((WITH_VUISO)) && [[ -z ${VUISO_PREFIX:-} ]]; then
	VUISO_SRC=$(cd "$GLUE_DIR/.." && pwd)
	VUISO_BUILD=$CACHE/vuiso-build
	VUISO_PREFIX=$CACHE/vuiso
	# The cached build dir belongs to one checkout; another checkout (a CI
	# clone) must not silently get the first one's library.
	if [[ -f $VUISO_BUILD/build.ninja &&
		$(cat "$CACHE/stamps/vuiso-src" 2>/dev/null) != "$VUISO_SRC" ]]; then
		msg "libvuiso build was configured from another checkout: reconfiguring"
		rm -rf "$VUISO_BUILD"
	fi
	if [[ ! -f $VUISO_BUILD/build.ninja ]]; then
		msg "configuring libvuiso from $VUISO_SRC in $VUISO_BUILD"
		meson setup "$VUISO_BUILD" "$VUISO_SRC" -Dtests=false \
			--prefix="$VUISO_PREFIX" --libdir=lib --buildtype=debugoptimized >&2 ||
			die "libvuiso: meson setup failed"
		mkdir -p "$CACHE/stamps"
		printf '%s\n' "$VUISO_SRC" >"$CACHE/stamps/vuiso-src"
	fi
	msg "building and installing libvuiso into $VUISO_PREFIX"
	meson compile -C "$VUISO_BUILD" vuiso >&2 || die "libvuiso: build failed"
	meson install -C "$VUISO_BUILD" --no-rebuild --quiet >&2 ||
		die "libvuiso: install failed"
fi

if [[ -n ${VUISO_PREFIX:-} ]]; then
	for d in "$VUISO_PREFIX"/lib/*/pkgconfig "$VUISO_PREFIX"/lib/pkgconfig; do
		[[ -d $d ]] && PKG_CONFIG_PATH=$d${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
	done
	export PKG_CONFIG_PATH
	msg "PKG_CONFIG_PATH=$PKG_CONFIG_PATH"
fi

# QEMU 10.0 needs meson >= 1.5, and its -ds source has no python/wheels to
# install one from.  Use trixie's meson package, unpacked here: its
# mesonbuild module and metadata go on PYTHONPATH for configure, and a .pth
# file puts them in the build's pyvenv for later regenerations.
MESON_PYTHONPATH=
meson_for_10() {
	local root=$CACHE/meson pydir have deb
	have=$(meson --version 2>/dev/null || echo 0)
	if [[ $(printf '%s\n' 1.5.0 "$have" | sort -V | head -n1) == 1.5.0 ]]; then
		msg "system meson $have is new enough"
		return
	fi
	pydir=$root/usr/lib/python3/dist-packages
	if [[ ! -d $pydir/mesonbuild ]]; then
		mkdir -p "$CACHE/apt/bin-lists/partial" "$CACHE/apt/bin-cache/archives/partial"
		printf '%s\n' "Types: deb" "URIs: http://deb.debian.org/debian" \
			"Suites: trixie" "Components: main" "Architectures: amd64" \
			>"$CACHE/apt/bin.sources"
		local bopts=(
			-o "Dir::Etc::SourceList=$CACHE/apt/bin.sources"
			-o "Dir::Etc::SourceParts=/dev/null"
			-o "Dir::State::Lists=$CACHE/apt/bin-lists"
			-o "Dir::Cache=$CACHE/apt/bin-cache"
			-o "APT::Sandbox::User=root"
		)
		msg "system meson $have < 1.5: fetching trixie's meson package"
		apt-get "${bopts[@]}" update >&2 || die "apt-get update (trixie binaries) failed"
		(cd "$CACHE/dl" && apt-get "${bopts[@]}" download meson >&2) ||
			die "apt-get download meson failed"
		deb=$(ls -t "$CACHE"/dl/meson_*_all.deb | head -n1)
		rm -rf "$root"
		dpkg-deb -x "$deb" "$root" || die "dpkg-deb -x $deb failed"
		[[ -d $pydir/mesonbuild ]] || die "no mesonbuild in $deb"
	fi
	MESON_PYTHONPATH=$pydir
	msg "meson: $(PYTHONPATH=$pydir python3 -c 'import mesonbuild.coredata as c; print(c.version)') from $root"
}
[[ $SERIES == 10.0 ]] && meson_for_10

CONFIGURE_OPTS=(
	--target-list=x86_64-softmmu
	--without-default-features
	--enable-kvm --enable-tcg
	--enable-vhost-user --enable-vhost-kernel
	# the vhost-user netdev, which tests/qtest/vhost-user-test.c drives
	--enable-vhost-net
	--enable-fdt=system
	--disable-install-blobs
	--disable-docs
	--disable-werror
	# the -dfsg source has no firmware blobs: use Debian's, as its qemu does
	--firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
)
if [[ $SERIES == 7.2 ]]; then
	# 7.2's configure checks submodules; 10.0 uses meson subprojects.
	CONFIGURE_OPTS+=(--with-git-submodules=ignore)
fi
if [[ $SERIES == 10.0 ]]; then
	# Debian's python3, whatever python3 comes first in PATH.
	[[ -x /usr/bin/python3 ]] && CONFIGURE_OPTS+=(--python=/usr/bin/python3)
	if [[ -n ${VUISO_PREFIX:-} ]]; then
		CONFIGURE_OPTS+=(--enable-vuiso)
	else
		CONFIGURE_OPTS+=(--disable-vuiso)
	fi
fi
if [[ -n ${VUISO_PREFIX:-} ]]; then
	# find libvuiso.so at run time without LD_LIBRARY_PATH
	CONFIGURE_OPTS+=(--extra-ldflags="-Wl,-rpath,$VUISO_PREFIX/lib")
fi
CONFIG_HASH=$( (printf '%s\n' "${CONFIGURE_OPTS[@]}" "${PKG_CONFIG_PATH:-}") | sha256sum | cut -d' ' -f1)
BUILD=$CACHE/build

if [[ ! -f $BUILD/build.ninja || $(cat "$CACHE/stamps/config" 2>/dev/null) != "$CONFIG_HASH" ]]; then
	msg "configuring in $BUILD: ${CONFIGURE_OPTS[*]}"
	rm -f "$CACHE/stamps/config"
	mkdir -p "$BUILD"
	(cd "$BUILD" && PYTHONPATH=$MESON_PYTHONPATH${PYTHONPATH:+:$PYTHONPATH} \
		"$SRC/configure" "${CONFIGURE_OPTS[@]}" >&2) ||
		die "configure failed (see $BUILD/meson-logs/meson-log.txt)"
	if [[ -n $MESON_PYTHONPATH ]]; then
		for d in "$BUILD"/pyvenv/lib/python3*/site-packages; do
			echo "$MESON_PYTHONPATH" >"$d/debian-trixie-meson.pth"
		done
	fi
	echo "$CONFIG_HASH" >"$CACHE/stamps/config"
else
	msg "configuration unchanged, reusing $BUILD"
fi

# --- 5. build ---------------------------------------------------------------

TARGETS=(qemu-system-x86_64 tests/qtest/qos-test)
msg "ninja -j$JOBS ${TARGETS[*]}"
ninja -C "$BUILD" -j"$JOBS" "${TARGETS[@]}" >&2 || die "build failed"

# Run from the build tree, QEMU relocates --firmwarepath into
# $BUILD/qemu-bundle; point those directories at Debian's firmware.
for d in /usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu; do
	link=$BUILD/qemu-bundle$d
	if [[ -d $d && ! -e $link ]]; then
		mkdir -p "$(dirname "$link")"
		ln -s "$d" "$link"
	fi
done

for t in "${TARGETS[@]}"; do
	[[ -x $BUILD/$t ]] || die "$BUILD/$t was not built"
	echo "$BUILD/$t"
done
msg "done"
