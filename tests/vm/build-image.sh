#!/bin/bash
# build-image.sh: build (or reuse from the cache) the pam-vrf test VM image.
# Usage: build-image.sh [SUITE]   (or PAMVRF_VM_SUITE=SUITE; default bookworm)
# SUITE is a Debian suite with a package list guest/packages.list (bookworm)
# or guest/packages.SUITE.list (e.g. trixie).
#
# Output (stdout, last line):  IMAGE_DIR=<dir> BUILT=<0|1> [DEBOOTSTRAP=<0|1>]
# <dir> holds: disk.img (raw ext4, no partition table), vmlinuz, initrd.img,
#              id_ed25519{,.pub} (key for root/alice/bob), info (guest facts).
# Logs go to stderr. Needs root, debootstrap, e2fsprogs (mke2fs -d).
#
# Cache: ${PAMVRF_VM_CACHE:-$HOME/.cache/pam-vrf/vm}
#   rootfs-<pkghash>/  debootstrap result, keyed by suite + package list only
#   image-<hash>/      final image, keyed by this script + everything in guest/
#   (other suites than bookworm: rootfs-SUITE-<hash>/, image-SUITE-<hash>/,
#   so each suite keeps its own entries and the cache trim below only ever
#   drops entries of the suite being built)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${PAMVRF_VM_CACHE:-$HOME/.cache/pam-vrf/vm}
MIRROR=${PAMVRF_VM_MIRROR:-http://deb.debian.org/debian}
SUITE=${1:-${PAMVRF_VM_SUITE:-bookworm}}
DISK_SIZE=${PAMVRF_VM_DISK_SIZE:-4G}

log() { printf '[build-image %(%T)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot)"
for t in debootstrap mke2fs chroot flock sha256sum cpio gzip xz ssh-keygen; do
	command -v "$t" >/dev/null || die "missing tool: $t"
done

# bookworm keeps the unsuffixed names (list, cache entries, log) it always
# had, so its cached debootstrap root stays valid
PKGLIST=$HERE/guest/packages.list PFX= BLOG=debootstrap.log
if [ "$SUITE" != bookworm ]; then
	[[ "$SUITE" =~ ^[a-z]+$ ]] || die "bad suite name '$SUITE'"
	PKGLIST=$HERE/guest/packages.$SUITE.list PFX=$SUITE- BLOG=debootstrap-$SUITE.log
fi
[ -f "$PKGLIST" ] || die "no package list for suite $SUITE ($PKGLIST)"
# debootstrap checks the suite's Release signature against the host's keyring
# (bookworm's debian-archive-keyring has trixie's key since 2023.3+deb12u1)
[ "$SUITE" = bookworm ] || [ -e "/usr/share/keyrings/debian-archive-$SUITE-stable.gpg" ] ||
	die "the host's debian-archive-keyring does not know $SUITE: apt-get install debian-archive-keyring (scripts/install-deps.sh vm)"
mapfile -t PKGS < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$PKGLIST" | grep -v '^$')

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

pkghash=$( { echo "$SUITE $MIRROR minbase"; printf '%s\n' "${PKGS[@]}"; } | sha256sum | cut -c1-16)
# the image follows its own rootfs (pkghash), not other suites' lists
imghash=$( { echo "$SUITE $pkghash"; cat "$0" "$HERE/initramfs-init"; cd "$HERE/guest" && find . -type f ! -name 'packages*.list' | LC_ALL=C sort | while read -r f; do echo "== $f"; cat "$f"; done; } | sha256sum | cut -c1-16)
ROOTFS=$CACHE/rootfs-$PFX$pkghash
OUT=$CACHE/image-$PFX$imghash

if [ -f "$OUT/ready" ]; then
	echo "IMAGE_DIR=$OUT BUILT=0"
	exit 0
fi

t0=$(date +%s)
DEBOOTSTRAPPED=0

# ---- stage 1: debootstrap (cached by package list) ----
if [ ! -f "$ROOTFS/.complete" ]; then
	log "debootstrap $SUITE ($MIRROR) -> $ROOTFS"
	rm -rf "$ROOTFS" "$ROOTFS.tmp"
	mkdir -p "$ROOTFS.tmp"
	inc=$(IFS=,; echo "${PKGS[*]}")
	if ! debootstrap --variant=minbase --components=main --include="$inc" \
		"$SUITE" "$ROOTFS.tmp" "$MIRROR" >"$CACHE/$BLOG" 2>&1; then
		tail -n 30 "$CACHE/$BLOG" >&2
		die "debootstrap failed (full log: $CACHE/$BLOG)"
	fi
	touch "$ROOTFS.tmp/.complete"
	DEBOOTSTRAPPED=1
	mv "$ROOTFS.tmp" "$ROOTFS"
	log "debootstrap done in $(( $(date +%s) - t0 ))s"
else
	log "reusing $ROOTFS"
fi

# ---- stage 2: configure a copy, build the ext4 image ----
WORK=$CACHE/work-$PFX$imghash
R=$WORK/root
cleanup() {
	for m in dev/pts dev proc sys; do
		mountpoint -q "$R/$m" 2>/dev/null && umount -l "$R/$m" || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
rm -rf "$WORK"
mkdir -p "$WORK"
log "copying root"
cp -a "$ROOTFS" "$R"
rm -f "$R/.complete"

mount -t proc proc "$R/proc"
mount -t sysfs sys "$R/sys"
mount --bind /dev "$R/dev"
mount --bind /dev/pts "$R/dev/pts"
inroot() { LC_ALL=C DEBIAN_FRONTEND=noninteractive chroot "$R" "$@"; }

log "installing guest files"
(cd "$HERE/guest" && find . -type f ! -name 'packages*.list' | while read -r f; do
	install -D -m 0644 "$f" "$R/${f#./}"
done)
chmod 0755 "$R"/usr/local/sbin/*
# the test mirror serves the Release of the guest's own suite (vm.MirrorReleaseFor)
if [ "$SUITE" != bookworm ]; then
	rm -r "$R/srv/mirror/dists/bookworm"
	install -d "$R/srv/mirror/dists/$SUITE"
	printf 'Origin: pam-vrf-test\nLabel: pam-vrf test mirror\nSuite: %s\nCodename: %s\n' "$SUITE" "$SUITE" >"$R/srv/mirror/dists/$SUITE/Release"
fi

log "hostname, fstab, machine-id, resolver"
echo pamvrf-guest >"$R/etc/hostname"
cat >"$R/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
127.0.1.1	pamvrf-guest
::1		localhost ip6-localhost ip6-loopback
HOSTS
echo '/dev/vda / ext4 rw,errors=remount-ro 0 0' >"$R/etc/fstab"
# fixed machine id: deterministic DHCP/DUID, and survives reboots of the overlay
echo 8d3c1c5e0f2a4b7e9a1d6c0b5e4f3a21 >"$R/etc/machine-id"
ln -sf /run/systemd/resolve/stub-resolv.conf "$R/etc/resolv.conf"
# root: no password on the serial console only (sshd refuses empty passwords)
inroot passwd -d root >/dev/null

log "users and ssh key"
inroot useradd -m -s /bin/bash -c "alice (mgmt)" alice
inroot useradd -m -s /bin/bash -c "bob (no rule)" bob
mkdir -p "$WORK/key"
ssh-keygen -q -t ed25519 -N '' -C pamvrf-test -f "$WORK/key/id_ed25519"
for u in root alice bob; do
	h=$(inroot getent passwd "$u" | cut -d: -f6)
	install -d -m 0700 "$R$h/.ssh"
	install -m 0600 "$WORK/key/id_ed25519.pub" "$R$h/.ssh/authorized_keys"
	inroot chown -R "$u:" "$h/.ssh"
done
# the ssh client used from the upstream namespace (inside the guest) uses the same key
install -m 0600 "$WORK/key/id_ed25519" "$R/root/.ssh/id_ed25519"
install -m 0644 "$WORK/key/id_ed25519.pub" "$R/root/.ssh/id_ed25519.pub"
cat >"$R/root/.ssh/config" <<'SSHCFG'
Host *
	IdentityFile /root/.ssh/id_ed25519
	StrictHostKeyChecking no
	UserKnownHostsFile /dev/null
	LogLevel ERROR
	BatchMode yes
	ConnectTimeout 10
SSHCFG
chmod 0600 "$R/root/.ssh/config"

log "enabling units"
inroot systemctl enable -q systemd-networkd systemd-resolved ssh \
	pamvrf-agent pamvrf-upstream pamvrf-dnsmasq pamvrf-httpd pamvrf-journalwatch
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
	chrony.service rsyslog.service NetworkManager.service NetworkManager-wait-online.service; do
	inroot systemctl disable -q "$u" 2>/dev/null || true
done
inroot systemctl mask -q systemd-networkd-wait-online.service 2>/dev/null || true
# boot speed under TCG: nothing below is needed by the tests
for u in getty@tty1.service kmod-static-nodes.service systemd-pstore.service \
	modprobe@drm.service modprobe@dm_mod.service modprobe@efi_pstore.service \
	modprobe@fuse.service modprobe@loop.service modprobe@configfs.service \
	sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount \
	sys-fs-fuse-connections.mount dev-hugepages.mount dev-mqueue.mount \
	proc-sys-fs-binfmt_misc.automount systemd-binfmt.service \
	dpkg-db-backup.timer systemd-tmpfiles-clean.timer; do
	ln -sf /dev/null "$R/etc/systemd/system/$u"
done
mkdir -p "$R/etc/systemd/system-generators"
for g in systemd-gpt-auto-generator systemd-cryptsetup-generator systemd-integritysetup-generator \
	systemd-veritysetup-generator systemd-hibernate-resume-generator systemd-sysv-generator \
	systemd-rc-local-generator systemd-run-generator systemd-system-update-generator \
	systemd-debug-generator systemd-bless-boot-generator; do
	ln -sf /dev/null "$R/etc/systemd/system-generators/$g"
done

log "initramfs (busybox + virtio modules; initramfs-tools' udev-based initrd is ~2 s slower under TCG)"
KVER=$(cd "$R/lib/modules" && ls | sort -V | tail -n 1)
[ -n "$KVER" ] || die "no kernel in $R/lib/modules"
IR=$WORK/initramfs
mkdir -p "$IR"/{bin,dev,proc,sys,root,mods}
cp "$R/bin/busybox" "$IR/bin/busybox"
: >"$IR/modules.list"
for m in virtio_pci virtio_blk; do
	inroot modprobe -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
	# busybox insmod takes plain .ko only; trixie's kernel ships .ko.xz
	b=$(basename "$ko")
	case "$b" in
	*.ko.xz) xz -dc "$R$ko" >"$IR/mods/${b%.xz}"; b=${b%.xz} ;;
	*.ko.zst) zstd -qdc "$R$ko" >"$IR/mods/${b%.zst}"; b=${b%.zst} ;;
	*) cp "$R$ko" "$IR/mods/" ;;
	esac
	echo "$b" >>"$IR/modules.list"
done
cp "$HERE/initramfs-init" "$IR/init"
chmod 0755 "$IR/init"
(cd "$IR" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet --owner=0:0) | gzip -1 >"$WORK/initrd.img"

log "facts"
{
	echo "suite=$SUITE"
	echo "kernel=$KVER"
	echo "systemd=$(inroot dpkg-query -W -f='${Version}' systemd)"
	echo "openssh=$(inroot dpkg-query -W -f='${Version}' openssh-server)"
	echo "iproute2=$(inroot dpkg-query -W -f='${Version}' iproute2)"
	echo "vrf_ko=$(find "$R/lib/modules/$KVER" -name 'vrf.ko*' -printf '%P\n' | head -n 1)"
	echo "built=$(date -u +%FT%TZ)"
} >"$WORK/info"
[ -n "$(grep '^vrf_ko=.' "$WORK/info")" ] || die "kernel $KVER has no vrf.ko"

mkdir -p "$WORK/out"
cp "$R/boot/vmlinuz-$KVER" "$WORK/out/vmlinuz"
mv "$WORK/initrd.img" "$WORK/out/initrd.img"

log "slimming"
for m in dev/pts dev proc sys; do umount -l "$R/$m"; done
rm -rf "$R"/boot/* "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/info/* \
	"$R"/usr/share/locale/* "$R"/var/cache/apt/* "$R"/var/lib/apt/lists/* \
	"$R"/var/cache/debconf/*-old "$R"/var/log/*.log "$R"/dev/*
find "$R/tmp" "$R/var/tmp" -mindepth 1 -delete

log "mke2fs -d ($DISK_SIZE)"
mke2fs -q -t ext4 -L pamvrf-root -d "$R" "$WORK/out/disk.img" "$DISK_SIZE" >&2
mv "$WORK/key/id_ed25519" "$WORK/key/id_ed25519.pub" "$WORK/info" "$WORK/out/"
touch "$WORK/out/ready"
rm -rf "$OUT"
mv "$WORK/out" "$OUT"

# keep the cache bounded: drop other images older than a day
# of this suite only (16 hex digits after the prefix: bookworm's pattern
# does not match image-trixie-...)
H='????????????????'
find "$CACHE" -maxdepth 1 -name "image-$PFX$H" ! -path "$OUT" -mtime +1 -exec rm -rf {} + 2>/dev/null || true
find "$CACHE" -maxdepth 1 -name "rootfs-$PFX$H" ! -path "$ROOTFS" -mtime +1 -exec rm -rf {} + 2>/dev/null || true

log "image ready in $(( $(date +%s) - t0 ))s: $OUT"
sed 's/^/[build-image]   /' "$OUT/info" >&2
echo "IMAGE_DIR=$OUT BUILT=1 DEBOOTSTRAP=$DEBOOTSTRAPPED"
