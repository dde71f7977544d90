#!/bin/sh
# Installs the Debian packages dsrlb needs to build, test, fuzz, benchmark and run its demo, and nothing else.
# Only packages that are missing are installed; on a machine that has them all this does nothing.
set -eu
pkgs="gcc make pkg-config libev-dev libsodium-dev libprotobuf-c-dev protobuf-c-compiler libinih-dev libnftables-dev
libcmocka-dev python3 python3-pytest python3-scapy iproute2 nftables tcpdump netsniff-ng procps bird2
clang libclang-rt-14-dev"
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
