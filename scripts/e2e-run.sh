#!/bin/bash
# e2e-run.sh GO-TEST-FLAGS...: make e2e's `go test` of tests/e2e, run once
# more for the tests that failed while their guest itself broke down: its
# kernel panicked, or its journal stopped taking lines.
#
# Under TCG with two guests on two cores the emulator now and then panics a
# guest kernel in the middle of a test (seen: a fault at a kernel code
# patching site in a softirq); every later step of that test then fails
# with the agent gone. And now and then a guest's journald takes no line
# from anyone for minutes (seen once: 200 s); every daemon that logs waits on it,
# networkd's DHCP and RA handling with them, and checks that wait for a
# lease time out. The harness (tests/e2e: boot) names such failed tests on
# a line "e2e GUEST KERNEL PANIC: ..." or "e2e GUEST JOURNAL STALLED: ..."
# (the guest's pamvrf-journalwatch noted the stall; the summary above
# quotes it). When every failed test is on one of them, they run once
# more, on fresh guests, and that run decides; a test that failed for any
# other reason fails make e2e at once, and a second failure of any kind
# fails it too. The log says all of it.
set -uo pipefail
GO=${GO:-go}
log=$(mktemp /tmp/pamvrf-e2e.XXXXXX)
trap 'rm -f "$log"' EXIT

"$GO" test -count=1 -tags vm -v "$@" ./tests/e2e/ 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] && exit 0

names() { sed -n "s/^$1: //p" "$log" | tr ' ' '\n' | sed '/^$/d' | sort -u; }
panicked=$(names 'e2e GUEST KERNEL PANIC')
stalled=$(names 'e2e GUEST JOURNAL STALLED')
broke=$(printf '%s\n%s\n' "$panicked" "$stalled" | sed '/^$/d' | sort -u)
failed=$(names 'e2e FAILED')
if [ -z "$broke" ] || [ -z "$failed" ] || [ -n "$(comm -23 <(echo "$failed") <(echo "$broke"))" ]; then
	exit "$rc"
fi

# the same flags, but -run naming only the panicked tests
args=()
while [ $# -gt 0 ]; do
	case "$1" in
	-run) shift 2; continue ;;
	-run=*) shift; continue ;;
	esac
	args+=("$1")
	shift
done
again="^($(echo "$failed" | paste -sd'|'))\$"
echo
[ -z "$panicked" ] || echo "== e2e: the guest kernel panicked (the emulator's, see each test's console tail) in: $(echo $panicked)"
[ -z "$stalled" ] || echo "== e2e: the guest's journal stalled (see the summary's journal stalls) in: $(echo $stalled)"
echo "== e2e: every failed test had its guest break down; running those tests once more on fresh guests: -run '$again'"
"$GO" test -count=1 -tags vm -v "${args[@]}" -run "$again" ./tests/e2e/
rc=$?
echo "== e2e: the second run of $(echo $failed): $([ $rc = 0 ] && echo passed || echo FAILED) (the first run's failures and their guests' breakdowns are above)"
exit $rc
