#!/bin/sh
# Installs what building and testing pam-vrf needs, from Debian's packages,
# only when something is missing (so a warm machine pays nothing).
# Usage: scripts/install-deps.sh [build|test|vm|deb]...
set -eu
want="gcc make libc6-dev libpam0g-dev iproute2 kmod"
for set in "$@"; do
	case "$set" in
	build) ;;
	# prometheus for promtool: the host and VM tests lint the metrics of
	# vrf-netsetup check --metrics-file with it; nftables and iptables: the
	# firewall check's netns test loads real rulesets
	test) want="$want pamtester prometheus nftables iptables" ;;
	# debian-archive-keyring: debootstrap checks the trixie guest's Release
	# with it; bookworm's has trixie's key from 2023.3+deb12u1 on (below)
	vm) want="$want qemu-system-x86 qemu-utils debootstrap debian-archive-keyring e2fsprogs cpio xz-utils openssh-client prometheus" ;;
	deb) want="$want dpkg-dev debhelper lintian fakeroot" ;;
	*) echo "install-deps: unknown set '$set' (build|test|vm|deb)" >&2; exit 2 ;;
	esac
done
missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
# an older keyring is installed but cannot check trixie: upgrade it
case " $want " in
*" debian-archive-keyring "*)
	[ -e /usr/share/keyrings/debian-archive-trixie-stable.gpg ] || case " $missing " in
		*" debian-archive-keyring "*) ;;
		*) missing="$missing debian-archive-keyring" ;;
		esac ;;
esac
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing (run as root or install them)" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
# prometheus is here for promtool only: do not leave its server running.
case " $missing " in
*" prometheus "*)
	if [ -d /run/systemd/system ]; then
		systemctl disable --now prometheus.service >/dev/null 2>&1 || :
	fi ;;
esac
