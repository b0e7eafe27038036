#!/usr/bin/env bash
# check-leakcheck.sh: proves the leak check's iptables snapshot (iptables_state in
# lib.sh, used by selftest.sh) from the state of a fresh CI machine, where no
# iptables table has ever been loaded. It runs inside a network namespace it
# creates (a new netns has no tables at all, whatever the host has) and checks:
#  1. no tables: the snapshot succeeds and is empty (iptables-save prints nothing);
#  2. tables loaded by a first use of iptables, chains removed again: still empty,
#     since the empty tables and built-in chains are not state anybody left behind;
#  3. a user chain, a rule in a built-in chain and a DROP policy left behind: each
#     is reported, and the diff selftest.sh computes shows exactly them;
#  4. the same for ip6tables.
# Needs root (ip netns). Prints one line per check; exits non-zero on the first failure.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[[ $(id -u) == 0 ]] || die "check-leakcheck.sh needs root (ip netns)"
command -v iptables-save >/dev/null || die "iptables-save not found (scripts/testenv/install-deps.sh installs it)"
ns=kgleak-$$
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
in_ns() { ip netns exec "$ns" "$@"; }
snap() { in_ns bash -c '. "$1"; iptables_state' _ "$TESTENV_DIR/lib.sh"; }
ok() { printf 'check-leakcheck: ok: %s\n' "$*"; }
fail() { printf 'check-leakcheck: FAILED: %s\n' "$*" >&2; exit 1; }

# 1. nothing loaded
[[ -z $(in_ns iptables-save) ]] || fail "a new network namespace already has iptables tables"
before=$(snap) || fail "snapshot of a namespace without tables exited non-zero"
[[ -z $before ]] || fail "snapshot of a namespace without tables is not empty: $before"
ok "no tables loaded: snapshot empty, exit 0"

# 2. first use loads *filter and *nat with their built-in chains; removing our chains
#    leaves them loaded and empty
for ipt in iptables ip6tables; do
  command -v "$ipt" >/dev/null || continue
  in_ns "$ipt" -w -t nat -N KGLEAK-PROBE
  in_ns "$ipt" -w -N KGLEAK-PROBE
  in_ns "$ipt" -w -t nat -X KGLEAK-PROBE
  in_ns "$ipt" -w -X KGLEAK-PROBE
done
grep -q '^\*filter' <(in_ns iptables-save) || fail "iptables did not load the filter table"
after=$(snap) || fail "snapshot exited non-zero"
[[ -z $after ]] || fail "empty tables loaded by a first use are reported as state: $after"
[[ -z $(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d') ]] || fail "first use counted as a leak"
ok "tables loaded by the first use of iptables/ip6tables: snapshot still empty (no false LEAK)"

# 3. real leftovers are reported
in_ns iptables -w -t nat -N KGLEAK-LEFT
in_ns iptables -w -t nat -A PREROUTING -j KGLEAK-LEFT
in_ns iptables -w -P FORWARD DROP
after=$(snap)
leak=$(comm -13 <(echo "$before" | sed '/^$/d') <(echo "$after"))
want=$(printf '%s\n' "ip4 filter policy FORWARD DROP" "ip4 nat -A PREROUTING -j KGLEAK-LEFT" \
  "ip4 nat chain KGLEAK-LEFT" | sort)
[[ $leak == "$want" ]] || fail "leftovers reported as:
$leak
expected:
$want"
ok "a chain, a rule and a DROP policy left behind: all three reported"

# 4. ip6tables
if command -v ip6tables >/dev/null; then
  in_ns ip6tables -w -N KGLEAK-LEFT6
  grep -qx 'ip6 filter chain KGLEAK-LEFT6' <(snap) || fail "an ip6tables chain left behind is not reported"
  ok "an ip6tables chain left behind: reported"
fi
echo "check-leakcheck: the leak check works from a machine state with no iptables rules"
