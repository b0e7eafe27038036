#!/usr/bin/env bash
# restart.sh NAME [DOWN_SECONDS]: stops one component of the running test cluster (TERM,
# KILL after 10 s), keeps it down for DOWN_SECONDS (default 0), starts it again with the
# command line up.sh gave it ($STATE/cmd/NAME) and waits until it is healthy again
# (kube-apiserver: /readyz; others: still running after 2 s). The log continues in
# $STATE/log/NAME.log. Used by the operator's failure-mode tests (API server restarted in the
# middle of reconciles).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
name=${1:?usage: restart.sh NAME [DOWN_SECONDS]}
down_for=${2:-0}
[[ -f $STATE/cmd/$name ]] || die "no command recorded for $name in $STATE/cmd (cluster not up, or not started by up.sh)"
alive "$name" || die "$name is not running"
mapfile -d '' cmd <"$STATE/cmd/$name"
read -r pid st <"$STATE/pid/$name"
log "restart $name: stopping pid $pid"
kill -TERM "$pid" 2>/dev/null || true
for ((i = 0; i < 100; i++)); do
  [[ $(proc_start "$pid") == "$st" ]] || break
  sleep 0.1
done
if [[ $(proc_start "$pid") == "$st" ]]; then
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.2
fi
echo "--- restart.sh: stopped at $(date +%H:%M:%S.%N), down for ${down_for}s" >>"$STATE/log/$name.log"
sleep "$down_for"
start_bg "$name" "${cmd[@]}"
case $name in
  kube-apiserver)
    api=$(sed -n 's/^KUBEGOST_TESTENV_API=//p' "$STATE/env")
    P=$STATE/pki
    wait_for "kube-apiserver /readyz after restart" 180 kube-apiserver curl -fsS --max-time 5 \
      --cacert "$P/ca.crt" --cert "$P/admin.crt" --key "$P/admin.key" "$api/readyz"
    ;;
  *)
    sleep 2
    alive "$name" || die "$name exited after restart (log: $STATE/log/$name.log)"
    ;;
esac
# the rest of the cluster rode out the outage (nothing else may have exited)
for f in "$STATE"/pid/*; do
  other=$(basename "$f")
  alive "$other" || die "$other exited during the $name restart (log: $STATE/log/$other.log)"
done
log "restart $name: up again (pid $(cut -d' ' -f1 "$STATE/pid/$name"))"
