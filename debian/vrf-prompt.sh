# shellcheck shell=sh
# /usr/share/pam-vrf/vrf-prompt.sh - show the session's VRF in the prompt:
#
#     alice@host:mgmt:~$        (in VRF mgmt)
#     alice@host:~$             (default VRF: prompt unchanged)
#
# Opt-in. To enable it for every login shell (bash and POSIX sh):
#
#     ln -s /usr/share/pam-vrf/vrf-prompt.sh /etc/profile.d/pam-vrf-prompt.sh
#
# For interactive non-login bash shells as well (e.g. `ip vrf exec mgmt bash`),
# add to /etc/bash.bashrc (or ~/.bashrc):
#
#     [ -r /usr/share/pam-vrf/vrf-prompt.sh ] && . /usr/share/pam-vrf/vrf-prompt.sh
#
# The VRF is what `ip vrf identify` prints, read without running ip: the
# "0::" line of /proc/self/cgroup ends in /vrf/NAME when pam_vrf (or
# `ip vrf exec`) placed the shell. Only shell builtins are used, so nothing
# is forked per prompt.
#
# bash: PROMPT_COMMAND refreshes $PAM_VRF before each prompt and, once, adds
# ${PAM_VRF:+:$PAM_VRF} after the first \h of PS1 - also when ~/.bashrc sets
# its own PS1 after this file ran.
# POSIX sh (dash): PS1 is set once, to user@host[:vrf]:$PWD$ .

# pam_vrf_identify: set PAM_VRF to the VRF of this shell ("" = default VRF).
pam_vrf_identify() {
	PAM_VRF=
	# The shell itself reads the file (no subshell): /proc/self is the shell.
	while IFS= read -r pam_vrf_line; do
		case $pam_vrf_line in
		0::*/vrf/*)
			PAM_VRF=${pam_vrf_line#*/vrf/}
			PAM_VRF=${PAM_VRF%%/*}
			;;
		esac
	done </proc/self/cgroup 2>/dev/null
	unset pam_vrf_line
}

case $- in
*i*)
	pam_vrf_identify
	if [ -n "${BASH_VERSION-}" ]; then
		# Only bash gets here: ${var/pat/rep} is fine (SC3060), and the
		# single quotes keep ${PAM_VRF...} for PS1's own expansion (SC2016).
		# shellcheck disable=SC3060,SC2016
		pam_vrf_prompt() {
			pam_vrf_identify
			case $PS1 in
			*'${PAM_VRF:+:$PAM_VRF}'*) ;;
			*'\h'*)
				PS1=${PS1/'\h'/'\h${PAM_VRF:+:$PAM_VRF}'}
				;;
			esac
		}
		case ${PROMPT_COMMAND-} in
		*pam_vrf_prompt*) ;;
		'') PROMPT_COMMAND=pam_vrf_prompt ;;
		*) PROMPT_COMMAND="pam_vrf_prompt;${PROMPT_COMMAND}" ;;
		esac
	else
		pam_vrf_host=
		read -r pam_vrf_host </proc/sys/kernel/hostname 2>/dev/null || :
		pam_vrf_host=${pam_vrf_host%%.*}
		# shellcheck disable=SC2016
		PS1='${USER:-$LOGNAME}@'"${pam_vrf_host:-localhost}${PAM_VRF:+:$PAM_VRF}"':$PWD$ '
		[ "$(id -u 2>/dev/null)" = 0 ] && PS1=${PS1%'$ '}'# '
		unset pam_vrf_host
	fi
	;;
esac
