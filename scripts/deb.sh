#!/bin/sh
# Builds the Debian package (debian/) from a copy of the tree, so the source tree stays clean:
# dpkg-buildpackage writes into the tree (debian/dsrlb, build/) and its .deb files next to it.
#   scripts/deb.sh OUTDIR [WORKDIR]
# copies the files git tracks or would track (not build/) to WORKDIR/dsrlb-VERSION (a temporary
# directory, removed afterwards, unless WORKDIR is given), runs `dpkg-buildpackage -us -uc -b` there,
# and moves the .deb, .changes and .buildinfo files into OUTDIR. DEB_BUILD_OPTIONS passes through
# (nocheck skips the unit tests of debian/rules).
set -eu
case $# in
1 | 2) ;;
*) echo "usage: $0 OUTDIR [WORKDIR]" >&2; exit 2 ;;
esac
top=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
version=$(cat "$top/VERSION")
if [ $# -eq 2 ]; then
	work=$2
	mkdir -p "$work"
	work=$(cd "$work" && pwd)
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/dsrlb-deb.XXXXXX")
	trap 'rm -rf "$work"' EXIT
fi
src=$work/dsrlb-$version
rm -rf "$src"
mkdir -p "$src"
cd "$top"
git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$src"
(cd "$src" && dpkg-buildpackage -us -uc -b)
for f in "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo; do
	mv -f "$f" "$out"/
	echo "deb: $out/${f##*/}"
done
