#!/bin/sh
# install-deps.sh: install what sigilfs needs to build, run and test, from Debian 12's packages.
# Run as root. Installs nothing that is already there.
set -eu
pkgs="build-essential autoconf automake libtool pkg-config
libfuse3-dev fuse3 liblmdb-dev lmdb-utils libnng-dev libgit2-dev libcmocka-dev
libsystemd-dev libinih-dev
git vim rsync tar attr acl perl python3 procps psmisc util-linux coreutils
clang libclang-rt-14-dev openssl iproute2 btrfs-progs e2fsprogs"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
	echo "install-deps: everything is installed"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing:$missing; run as root to install them" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
