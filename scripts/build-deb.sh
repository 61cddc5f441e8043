#!/bin/sh
# Build the Debian packages (libpam-vrf, vrf-netsetup) into dist/ and run
# lintian on them.
#
# The build runs in a clean temporary copy of the working tree (tracked and
# untracked files, minus build/, dist/ and ignored files), so that neither the
# tree nor a running `make` is disturbed, and so that what is packaged is
# what is in the tree now, committed or not.
#
# Usage: scripts/build-deb.sh [--keep] [--no-lintian]
#   --keep        keep the temporary build directory (its path is printed)
#   --no-lintian  skip lintian
# Environment: DEB_BUILD_OPTIONS (e.g. nocheck) is passed on.
# Exit status: 0 built (lintian findings are printed, not fatal), 1 failure.
set -eu

keep=0
lint=1
for a in "$@"; do
	case "$a" in
	--keep) keep=1 ;;
	--no-lintian) lint=0 ;;
	-h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "build-deb: unknown argument '$a'" >&2; exit 2 ;;
	esac
done

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
dist="$top/dist"

"$top/scripts/install-deps.sh" deb

# The Go toolchain: /usr/local/go first, as debian/rules does.
PATH=/usr/local/go/bin:$PATH
export PATH
command -v go >/dev/null || { echo "build-deb: no go on PATH or in /usr/local/go/bin" >&2; exit 1; }

# Reuse the caller's Go caches (warm module cache: no download; warm build
# cache: fast), whatever HOME dpkg-buildpackage ends up with.
GOCACHE=$(go env GOCACHE)
GOMODCACHE=$(go env GOMODCACHE)
export GOCACHE GOMODCACHE
[ -n "${GOPATH:-}" ] || { GOPATH=$(go env GOPATH); export GOPATH; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pam-vrf-deb.XXXXXX")
cleanup() {
	if [ "$keep" = 1 ]; then
		echo "build-deb: build directory kept: $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT INT TERM

# A clean copy: git's view of the tree (tracked + untracked, not ignored).
src="$tmp/pam-vrf"
mkdir -p "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard |
		grep -zv -e '^build/' -e '^dist/' -e '^debian/\.go/' |
		(cd "$top" && xargs -0 -r sh -c 'for f; do [ -e "$f" ] || [ -L "$f" ] && printf "%s\0" "$f"; done' sh) |
		tar -C "$top" --null -T - -cf - | tar -C "$src" -xf -
else
	tar -C "$top" --exclude=./build --exclude=./dist --exclude=./.git -cf - . | tar -C "$src" -xf -
fi

echo "build-deb: building in $src"
log="$tmp/build.log"
if ! (cd "$src" && dpkg-buildpackage -us -uc -b) >"$log" 2>&1; then
	tail -n 60 "$log" >&2
	echo "build-deb: dpkg-buildpackage failed (full log: $log)" >&2
	keep=1
	exit 1
fi

mkdir -p "$dist"
# dpkg-buildpackage writes the results next to the source directory.
moved=""
for f in "$tmp"/*.deb "$tmp"/*.buildinfo "$tmp"/*.changes; do
	[ -e "$f" ] || continue
	mv -f "$f" "$dist/"
	moved="$moved $dist/$(basename "$f")"
done
cp "$log" "$dist/build.log"
echo "build-deb: built:"
for f in $moved; do echo "  ${f#"$top"/}"; done

if [ "$lint" = 1 ]; then
	changes=$(ls -t "$dist"/pam-vrf_*_*.changes | head -n 1)
	echo "build-deb: lintian $(basename "$changes"):"
	# --profile debian; info (-I) and pedantic (-E --pedantic) tags are shown.
	# Lintian's exit status is not fatal: the findings are for reading.
	if lintian -I -E --pedantic --tag-display-limit 0 "$changes" >"$tmp/lintian.txt" 2>&1; then :; fi
	if [ -s "$tmp/lintian.txt" ]; then
		sed 's/^/  /' "$tmp/lintian.txt"
	else
		echo "  (clean)"
	fi
	cp "$tmp/lintian.txt" "$dist/lintian.txt"
fi
