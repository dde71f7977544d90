#!/bin/sh
# Installs the Debian packages dsrlb needs to build, test, fuzz, benchmark and run its demo, and nothing else.
# Only packages that are missing are installed; on a machine that has them all this does nothing.
# prometheus: its prometheus and promtool binaries, run by tests/lab/test_metrics.py in the lab's own
# namespaces (a prometheus.service the package may start on the host is not used).
# `deps.sh pkg` also installs what building and checking the Debian package needs (make deb, make
# deb-check): debhelper and lintian pull in about 140 packages (perl and its modules) that nothing else
# needs, hence a list of their own; libmnl-dev is in debian/control's Build-Depends.
set -eu
pkgs="gcc make pkg-config libev-dev libsodium-dev libprotobuf-c-dev protobuf-c-compiler libinih-dev libnftables-dev libmnl-dev
libcmocka-dev python3 python3-pytest python3-scapy iproute2 nftables tcpdump netsniff-ng procps bird2
clang libclang-rt-14-dev mandoc
prometheus"
pkg_pkgs="debhelper dpkg-dev fakeroot lintian libmnl-dev"
[ "${1:-}" = pkg ] && pkgs="$pkgs $pkg_pkgs"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
