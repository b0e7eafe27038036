#!/usr/bin/env bash
# run.sh [--level 1|2] -- CMD [ARG...]
# Bring the test cluster up (up.sh), run CMD with the cluster's variables
# exported (KUBEGOST_TESTENV_KUBECONFIG, _LEVEL, _KUBECTL, _HELM, _IMAGE_*),
# print the last lines of every component log if CMD (or up) failed, bring the
# cluster down (always, via trap) and exit with CMD's status.
# KUBEGOST_TESTENV_KEEP=1 leaves the cluster running (for debugging).
# KUBEGOST_TESTENV_LOG_LINES (default 60) lines of each log are printed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
LEVEL=2
while (($#)); do
  case $1 in
    --level) LEVEL=${2:?}; shift 2 ;;
    --level=*) LEVEL=${1#*=}; shift ;;
    --) shift; break ;;
    *) die "usage: run.sh [--level 1|2] -- CMD [ARG...]" ;;
  esac
done
(($#)) || die "usage: run.sh [--level 1|2] -- CMD [ARG...]"

show_logs() {
  local f n=${KUBEGOST_TESTENV_LOG_LINES:-60}
  for f in "$STATE"/log/*.log; do
    [[ -f $f ]] || continue
    printf '\n===== last %s lines of %s =====\n' "$n" "$f" >&2
    tail -n "$n" "$f" >&2
  done
}
finish() {
  trap - EXIT INT TERM
  if [[ ${KUBEGOST_TESTENV_KEEP:-0} == 1 ]]; then
    log "KUBEGOST_TESTENV_KEEP=1: cluster left running; stop it with $TESTENV_DIR/down.sh"
  else
    # quiet on success, so CMD's own summary stays the last output
    "$TESTENV_DIR/down.sh" --quiet || log "down.sh failed"
  fi
}
cmd_pid=
# on INT/TERM: stop CMD (its own process group), then bring the cluster down
on_signal() {
  [[ -n $cmd_pid ]] && kill -TERM -- "-$cmd_pid" 2>/dev/null
  finish
  exit "$1"
}
trap finish EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# one cluster per machine: concurrent run.sh calls wait for each other
mkdir -p "$CACHE"
exec 8>"$CACHE/.lock-cluster"
if ! flock -n 8; then
  log "another test cluster run is active; waiting for $CACHE/.lock-cluster"
  flock 8
fi
if ! "$TESTENV_DIR/up.sh" --level "$LEVEL" >/dev/null; then
  log "up.sh --level $LEVEL failed"
  show_logs
  exit 1
fi
set -a
# shellcheck disable=SC1091
. "$STATE/env"
set +a
log "running: $*"
# CMD runs in its own process group so that a signal to run.sh can stop it
# (bash defers traps while a foreground child runs, but not during `wait`)
setsid "$@" <&0 &
cmd_pid=$!
wait "$cmd_pid"
rc=$?
cmd_pid=
if ((rc != 0)); then
  log "command failed with status $rc; component logs follow"
  show_logs
fi
exit "$rc"
