# shellcheck shell=bash
# Common helpers for scripts/testenv/*.sh. Source it; do not run it.
# (its variables are for the scripts that source it)
# shellcheck disable=SC2034
TESTENV_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$TESTENV_DIR/../.." && pwd)
# shellcheck source=versions.env
. "$TESTENV_DIR/versions.env"
CACHE=${KUBEGOST_CACHE:-/var/cache/kubegost-testenv}
STATE=${KUBEGOST_TESTENV_DIR:-/tmp/kubegost-testenv-$(id -u)}

log() { printf '[testenv %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[testenv] ERROR: %s\n' "$*" >&2; exit 1; }

# Every script that sources this file says which step failed: under `set -e`, a failing
# command prints its script, line, function and the command itself before the script exits
# (errtrace: also inside functions, subshells and command substitutions). Scripts without
# `set -e` (down.sh, run.sh) handle failures themselves and print nothing here.
# KG_STEP, when set by the script, names the step in progress.
kg_on_err() {
  local rc=$1 line=$2 cmd=$3
  [[ $- == *e* ]] || return 0
  printf '[%s] FAILED (exit %s) at %s:%s%s: %s%s\n' "$(basename "${BASH_SOURCE[1]:-$0}")" "$rc" \
    "${BASH_SOURCE[1]:-$0}" "$line" "${FUNCNAME[1]:+ in ${FUNCNAME[1]}()}" "$cmd" \
    "${KG_STEP:+ (step: $KG_STEP)}" >&2
}
set -o errtrace
trap 'kg_on_err $? "$LINENO" "$BASH_COMMAND"' ERR

# Short hash of the given files: part of every cache key, so editing a build
# script invalidates what it built.
script_hash() { cat "$@" | sha256sum | cut -c1-10; }

# cache_lock NAME: take an exclusive flock on $CACHE/.lock-NAME (fd 9), waiting
# for any concurrent build of the same thing.
cache_lock() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock-$1"
  if ! flock -n 9; then
    log "waiting for another build holding $CACHE/.lock-$1"
    flock 9
  fi
}

# net_retry CMD...: runs a command that fetches from a package registry, up to 4 attempts
# 5, 15 and 45 s apart: one DNS or connection hiccup must not fail a cold run (a failed
# attempt inside the `until` does not fire the ERR trap; the last one's status is returned).
net_retry() {
  local n=1 delay=5 rc
  while true; do
    "$@" && return 0
    rc=$?
    if ((n >= 4)); then
      log "giving up after $n attempts (exit $rc): $*"
      return "$rc"
    fi
    log "attempt $n failed (exit $rc): $*; retrying in ${delay}s"
    sleep "$delay"
    n=$((n + 1)) delay=$((delay * 3))
  done
}

# Go environment for building published Go modules into the cache.
go_env() {
  command -v go >/dev/null || die "go not found in PATH"
  export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build
  export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local}
  export GOPATH=$CACHE/go/path
  unset GOBIN
}

# Host-wide locations used by L2 (all removed by down.sh).
DATA=${KUBEGOST_TESTENV_DATA:-/var/lib/kubegost-testenv-$(id -u)}
RUNDIR=${KUBEGOST_TESTENV_RUN:-/run/kubegost-testenv-$(id -u)}
IMAGES_DIR=${KUBEGOST_TESTENV_IMAGES_DIR:-$CACHE/images}
BRIDGE=kgbr0
BRIDGE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/12
NODE_NAME=kgnode
# sysctls up.sh saves and down.sh restores (kubelet and the bridge plugin change them)
SYSCTLS=(net.ipv4.ip_forward net.ipv4.conf.all.forwarding net.ipv4.conf.default.forwarding
  net.ipv6.conf.all.forwarding net.ipv6.conf.default.forwarding
  vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes
  net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  net.ipv4.conf.all.route_localnet)

# start_bg NAME CMD...: start CMD detached (own session), log to $STATE/log/NAME.log,
# record "PID STARTTIME" in $STATE/pid/NAME so down.sh kills exactly that process.
# The command line goes to $STATE/cmd/NAME (NUL-separated) so restart.sh can run it again.
start_bg() {
  local name=$1; shift
  mkdir -p "$STATE/cmd"
  printf '%s\0' "$@" >"$STATE/cmd/$name"
  setsid "$@" >>"$STATE/log/$name.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid $(proc_start "$pid")" >"$STATE/pid/$name"
}
# proc_start PID: the process start time (field 22 of /proc/PID/stat), "" if gone
# fd_counts PID: "<descriptors other than pipes> <pipe descriptors>". gost-proxy's splice path
# keeps up to SPLICE_POOL_FDS pipe descriptors (32 empty pipes) for reuse, a bounded pool, not a
# leak, so leak checks count them apart and cap them at that.
SPLICE_POOL_FDS=64
fd_counts() {
  local links
  links=$(find "/proc/$1/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null || true)
  [[ -n $links ]] || { echo "0 0"; return; }
  printf '%s %s\n' "$(grep -vc '^pipe:' <<<"$links" || true)" "$(grep -c '^pipe:' <<<"$links" || true)"
}
proc_start() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null || true; }
# alive NAME: true while the process recorded for NAME is still that process
alive() {
  local f=$STATE/pid/$1 pid st
  [[ -f $f ]] || return 1
  read -r pid st <"$f"
  [[ -n $pid && $(proc_start "$pid") == "$st" ]]
}
# wait_for DESC SECONDS PROC CMD...: poll CMD every 0.5 s until it succeeds;
# fail if PROC (a start_bg name, or -) died or SECONDS passed.
wait_for() {
  local desc=$1 secs=$2 proc=$3; shift 3
  local deadline=$((SECONDS + secs))
  while ! "$@" >/dev/null 2>&1; do
    if [[ $proc != - ]] && ! alive "$proc"; then
      tail -n 40 "$STATE/log/$proc.log" >&2 || true
      die "$proc exited while waiting for $desc (log: $STATE/log/$proc.log)"
    fi
    if ((SECONDS >= deadline)); then
      [[ $proc != - ]] && { tail -n 40 "$STATE/log/$proc.log" >&2 || true; }
      die "timed out after ${secs}s waiting for $desc"
    fi
    sleep 0.5
  done
}

# iptables_state: the machine's iptables and ip6tables rules as stable lines
# "FAMILY TABLE RULE", for leak checks. Only state someone added counts: rules
# (-A), user-defined chains, and built-in chains whose policy is not ACCEPT.
# The empty tables and built-in chains that the first use of iptables loads
# (`*filter`, `:INPUT ACCEPT`, `COMMIT`) are not state, and a machine with no
# rules at all (a fresh one) prints nothing and succeeds.
iptables_state() {
  local fam save
  for fam in ip4 ip6; do
    save=iptables-save; [[ $fam == ip6 ]] && save=ip6tables-save
    command -v "$save" >/dev/null || continue
    { "$save" 2>/dev/null || true; } | awk -v fam="$fam" '
      /^\*/ { table = substr($0, 2); next }
      /^:/ {
        name = substr($1, 2); policy = $2
        if (policy == "-") print fam, table, "chain", name
        else if (policy != "ACCEPT") print fam, table, "policy", name, policy
        next
      }
      /^-A / { print fam, table, $0 }'
  done | sort
}
