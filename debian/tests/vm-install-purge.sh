#!/bin/sh
# Guest-side package test for the pam-vrf test VM (tests/vm): install the
# .debs, enable the PAM profile, log in (placed), refuse a dangerous removal,
# purge, log in again (works, not placed), list what is left behind.
#
# Run as root inside the guest:
#     debian/tests/vm-install-purge.sh [DEBDIR]      (default /root/debs)
# DEBDIR holds libpam-vrf_*.deb and vrf-netsetup_*.deb.
# Environment:
#     WITH_APPLY=1   also run `vrf-netsetup apply` (eth0 into VRF mgmt) and
#                    check that purge leaves the network but removes apply's
#                    own boot unit, settings and state
#     VRF=mgmt  TABLE=1000  IFACE=eth0
#
# Output: one line per assertion, "ok NAME" or "FAIL NAME: detail", plus
# "info ..." lines (leftovers). Exit status 0 if nothing failed, else 1.
# Assumes the test image: users alice and bob, root's key at
# /root/.ssh/id_ed25519 authorized for both, sshd listening on 127.0.0.1.
# Single-quoted $... below is meant for the remote or inner shell.
# shellcheck disable=SC2016
set -u

DEBDIR=${1:-/root/debs}
VRF=${VRF:-mgmt}
TABLE=${TABLE:-1000}
IFACE=${IFACE:-eth0}
KEY=/root/.ssh/id_ed25519
POLICY=/etc/security/pam_vrf.toml
export DEBIAN_FRONTEND=noninteractive

failed=0
ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }
check() { # check NAME DETAIL CMD...: ok if CMD succeeds
	name=$1 detail=$2
	shift 2
	if "$@" >/dev/null 2>&1; then ok "$name"; else fail "$name" "$detail"; fi
}
# login USER CMD: run CMD in a fresh ssh session (PAM service sshd).
login() {
	u=$1
	shift
	ssh -i "$KEY" -o BatchMode=yes -o StrictHostKeyChecking=no \
		-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=10 \
		"$u@127.0.0.1" "$@"
}
vrf_of() { login "$1" 'ip vrf identify' 2>/dev/null; }
pam_names_vrf() { grep -rls '^[^#]*pam_vrf\.so' /etc/pam.d/ >/dev/null 2>&1; }

# ---------------------------------------------------------------- setup ----
for f in "$DEBDIR"/libpam-vrf_*.deb "$DEBDIR"/vrf-netsetup_*.deb; do
	[ -f "$f" ] || { fail precondition "no $f"; exit 1; }
done
for u in alice bob; do
	id "$u" >/dev/null 2>&1 || { fail precondition "no user $u"; exit 1; }
done
check precondition-ssh "ssh alice@127.0.0.1 does not work before the install" login alice true
created_vrf=no
if ! ip -d link show "$VRF" 2>/dev/null | grep -q ' vrf table'; then
	modprobe vrf 2>/dev/null
	ip link add "$VRF" type vrf table "$TABLE" && ip link set "$VRF" up && created_vrf=yes
fi
check precondition-vrf "VRF $VRF missing" sh -c "ip -d link show $VRF | grep -q ' vrf table'"

sum_before=$(md5sum /etc/pam.d/common-session /etc/pam.d/common-session-noninteractive /etc/pam.d/sshd)

# -------------------------------------------------------------- install ----
check install "dpkg -i failed" dpkg -i "$DEBDIR"/libpam-vrf_*.deb "$DEBDIR"/vrf-netsetup_*.deb
check install-leaves-pam "installing changed /etc/pam.d" \
	sh -c "[ \"\$(md5sum /etc/pam.d/common-session /etc/pam.d/common-session-noninteractive /etc/pam.d/sshd)\" = '$sum_before' ]"
check install-module "module not at the multiarch path" test -f /usr/lib/x86_64-linux-gnu/security/pam_vrf.so
check install-module-core "the module's Go part is not beside it" test -f /usr/lib/x86_64-linux-gnu/security/pam_vrf/core.so
check install-conffile "policy conffile missing" test -f "$POLICY"
check install-profile "pam-auth-update profile missing" test -f /usr/share/pam-configs/vrf
check unit-enabled "pam-vrf-netsetup.service not enabled" systemctl is-enabled --quiet pam-vrf-netsetup.service
check unit-inert "unit ran without /etc/pam-vrf/netsetup.toml" \
	sh -c '[ -e /etc/pam-vrf/netsetup.toml ] || { systemctl start pam-vrf-netsetup.service; [ "$(systemctl show -P ConditionResult pam-vrf-netsetup.service)" = no ]; }'
r=$(vrf_of alice)
if [ -z "$r" ]; then ok login-not-placed-before-enable; else fail login-not-placed-before-enable "alice in '$r'"; fi

# --------------------------------------------------------------- enable ----
# on_error = "deny": this site confines users by VRF, so bob's session is
# refused while his VRF is missing (the default would let him in unbound).
cat >"$POLICY" <<EOF
on_error = "deny"

[user.alice]
vrf = "$VRF"

[user.bob]
vrf = "nosuchvrf"
EOF
check enable "pam-auth-update --enable vrf failed" pam-auth-update --enable vrf
check enable-order "pam_vrf.so is not after pam_systemd.so in common-session" sh -c '
	s=$(grep -n "^[^#]*pam_systemd\.so" /etc/pam.d/common-session | cut -d: -f1)
	v=$(grep -n "^[^#]*pam_vrf\.so" /etc/pam.d/common-session | cut -d: -f1)
	[ -n "$s" ] && [ -n "$v" ] && [ "$v" -gt "$s" ]'
check enable-interactive-only "pam_vrf.so in common-session-noninteractive" \
	sh -c '! grep -q "^[^#]*pam_vrf\.so" /etc/pam.d/common-session-noninteractive'
r=$(vrf_of alice)
if [ "$r" = "$VRF" ]; then ok login-placed; else fail login-placed "alice in '$r', want $VRF"; fi
cg=$(login alice 'cat /proc/self/cgroup' 2>/dev/null | grep '^0::')
case $cg in
0::/*/session-*.scope/vrf/"$VRF") ok login-placed-cgroup ;;
*) fail login-placed-cgroup "cgroup '$cg', want <session scope>/vrf/$VRF" ;;
esac
out=$(login bob true 2>&1)
rc=$?
if [ $rc -ne 0 ] && printf '%s' "$out" | grep -q 'pam_vrf: VRF nosuchvrf is not available: the VRF device does not exist; session refused'; then
	ok login-denied-missing-vrf
else
	fail login-denied-missing-vrf "rc=$rc out=$out"
fi
r=$(vrf_of root)
if [ -z "$r" ]; then ok login-unmatched-not-placed; else fail login-unmatched-not-placed "root in '$r'"; fi

# prompt snippet (opt-in)
ln -sf /usr/share/pam-vrf/vrf-prompt.sh /etc/profile.d/pam-vrf-prompt.sh
host=$(hostname -s)
p=$(login alice 'bash -lic '\''pam_vrf_prompt; printf "%s\n" "${PS1@P}"'\''' 2>/dev/null | tail -n 1)
case $p in
*"alice@$host:$VRF:"*) ok prompt-bash ;;
*) fail prompt-bash "prompt '$p'" ;;
esac
p=$(login alice 'sh -ic ". /usr/share/pam-vrf/vrf-prompt.sh; echo \"\$PS1\""' 2>/dev/null | tail -n 1)
case $p in
*"@$host:$VRF:"*) ok prompt-sh ;;
*) fail prompt-sh "PS1 '$p'" ;;
esac
rm -f /etc/profile.d/pam-vrf-prompt.sh

# ------------------------------------------------------------- upgrade ----
check reinstall "dpkg -i (same version) failed" dpkg -i "$DEBDIR"/libpam-vrf_*.deb "$DEBDIR"/vrf-netsetup_*.deb
check reinstall-keeps-enabled "profile disabled by a reinstall" grep -q '^[^#]*pam_vrf\.so' /etc/pam.d/common-session
check reinstall-keeps-policy "policy conffile replaced" grep -q nosuchvrf "$POLICY"

# -------------------------------------------------------------- apply ----
if [ "${WITH_APPLY:-}" = 1 ]; then
	if [ "$created_vrf" = yes ]; then ip link del "$VRF"; created_vrf=no; fi
	check apply "vrf-netsetup apply failed" vrf-netsetup apply --vrf "$VRF" --table "$TABLE" --iface "$IFACE"
	check apply-check "vrf-netsetup check failed" vrf-netsetup check
	r=$(vrf_of alice)
	if [ "$r" = "$VRF" ]; then ok apply-login-placed; else fail apply-login-placed "alice in '$r'"; fi
fi

# ------------------------------------------------- refused removal ----
printf 'session required pam_vrf.so\n' >>/etc/pam.d/sshd
if dpkg -r libpam-vrf >/tmp/vm-install-purge.out 2>&1; then
	fail remove-refused-hand-line "removal went through with a hand-added pam_vrf.so line"
else
	if grep -q '/etc/pam.d/sshd' /tmp/vm-install-purge.out; then ok remove-refused-hand-line; else fail remove-refused-hand-line "message does not name the file"; fi
fi
check remove-refused-keeps-module "module gone after a refused removal" test -f /usr/lib/x86_64-linux-gnu/security/pam_vrf.so
check remove-refused-keeps-profile "profile disabled after a refused removal" grep -q '^[^#]*pam_vrf\.so' /etc/pam.d/common-session
r=$(vrf_of alice)
if [ "$r" = "$VRF" ]; then ok remove-refused-login-placed; else fail remove-refused-login-placed "alice in '$r'"; fi
sed -i '/^session required pam_vrf\.so$/d' /etc/pam.d/sshd

# ---------------------------------------------------------------- purge ----
check purge "dpkg -P failed" dpkg -P libpam-vrf vrf-netsetup
check purge-pam-clean "a PAM file still names pam_vrf.so" sh -c '! grep -rls "^[^#]*pam_vrf\.so" /etc/pam.d/'
check purge-pam-restored "/etc/pam.d differs from before the install" \
	sh -c "[ \"\$(md5sum /etc/pam.d/common-session /etc/pam.d/common-session-noninteractive /etc/pam.d/sshd)\" = '$sum_before' ]"
check purge-debconf "pam-auth-update still lists vrf" \
	sh -c '! debconf-show libpam-runtime 2>/dev/null | grep "libpam-runtime/profiles" | grep -qw vrf'
out=$(login alice 'ip vrf identify; echo rc=$?' 2>&1)
case $out in
rc=0) ok purge-login-works-not-placed ;;
*) fail purge-login-works-not-placed "out='$out'" ;;
esac
check purge-login-bob "bob cannot log in after purge" login bob true
for f in "$POLICY" /usr/share/pam-configs/vrf /usr/lib/x86_64-linux-gnu/security/pam_vrf.so \
	/usr/sbin/vrf-netsetup /lib/systemd/system/pam-vrf-netsetup.service \
	/etc/systemd/system/multi-user.target.wants/pam-vrf-netsetup.service \
	/etc/systemd/system/pam-vrf-netsetup.service /etc/pam-vrf /var/lib/pam-vrf /usr/share/pam-vrf; do
	if [ -e "$f" ] || [ -L "$f" ]; then fail "purge-removed $f" "still there"; else ok "purge-removed $f"; fi
done
if [ "${WITH_APPLY:-}" = 1 ]; then
	check purge-leaves-network "VRF $VRF gone after purge (network must be left as is)" \
		sh -c "ip -d link show $VRF | grep -q ' vrf table'"
fi

# Everything with the project's names that is left on the system.
find / -xdev \( -path /proc -o -path /sys -o -path /run/user \) -prune -o \
	\( -name '*pam_vrf*' -o -name '*pam-vrf*' -o -name '*vrf-netsetup*' \) -print 2>/dev/null |
	grep -v -e '^/root/debs/' -e '^/tmp/vm-install-purge' -e "^$DEBDIR/" |
	sed 's/^/info leftover /'

# --------------------------------------------------------------- cleanup ----
if [ "$created_vrf" = yes ]; then ip link del "$VRF" 2>/dev/null; fi
rm -f /tmp/vm-install-purge.out
[ "$failed" = 0 ]
