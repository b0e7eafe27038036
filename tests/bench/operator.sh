#!/usr/bin/env bash
# operator.sh [changes, default 10] [pods, default 200]: two measurements on the level-2 test
# cluster (as root; brings one up with scripts/testenv/run.sh unless one is running):
#  1. config delivery: the demo's app pod sends requests through its sidecar while its
#     GostChain is switched between two relays (whose origins answer differently); for each
#     change, the time from `kubectl patch` returning to the first request answered by the new
#     route (p50/p95 over N changes; the kubelet's Secret refresh is made prompt by the
#     operator's pod annotation);
#  2. admission: N pod creations with server-side dry run (the API server runs the mutating
#     webhook, nothing is stored) in the injected namespace and in one without injection; p50/p99
#     of each and of the difference (what the webhook adds).
# Prints figures; asserts nothing (timings vary a lot on shared 2-core machines).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/testenv/lib.sh
changes=${1:-10}
pods=${2:-200}
if [[ -z ${KUBEGOST_TESTENV_KUBECONFIG:-} ]]; then
  scripts/testenv/images.sh pause origin coredns proxy operator >&2
  exec scripts/testenv/run.sh --level 2 -- "$0" "$@"
fi
. scripts/demo-steps.sh
read -r OPERATOR_IMAGE _ <"$IMAGES_DIR/operator.ref"
read -r PROXY_IMAGE _ <"$IMAGES_DIR/proxy.ref"
export KUBECONFIG=$KUBEGOST_TESTENV_KUBECONFIG
KUBECTL=("$KUBEGOST_TESTENV_KUBECTL" --kubeconfig "$KUBECONFIG")
HELM=$KUBEGOST_TESTENV_HELM
PULL_POLICY=Never
demo_run

# a second route: relay2, whose hosts mapper sends hello.internal to origin2
k -n demo-infra get deploy origin -o yaml | sed 's/name: origin$/name: origin2/; s/app: origin$/app: origin2/; s/reached through the GostChain/via the second relay/' |
  grep -v 'resourceVersion\|uid:\|creationTimestamp' | k apply -f - >/dev/null
k -n demo-infra expose deploy origin2 --port 8080 >/dev/null 2>&1 || true
k -n demo-infra rollout status deploy/origin2 --timeout=120s >/dev/null
ip2=$(k -n demo-infra get svc origin2 -o jsonpath='{.spec.clusterIP}')
k -n demo-infra get cm relay -o yaml | sed "s/name: relay$/name: relay2/; s/ip: [0-9.]*}/ip: $ip2}/" |
  grep -v 'resourceVersion\|uid:\|creationTimestamp' | k apply -f - >/dev/null
k -n demo-infra get deploy relay -o yaml | sed 's/name: relay$/name: relay2/; s/app: relay$/app: relay2/' |
  grep -v 'resourceVersion\|uid:\|creationTimestamp' | k apply -f - >/dev/null
k -n demo-infra expose deploy relay2 --port 8443 >/dev/null 2>&1 || true
k -n demo-infra rollout status deploy/relay2 --timeout=120s >/dev/null
pod=$(k -n demo get pod -l app=web -o jsonpath='{.items[0].metadata.name}')
fetch() { k -n demo exec "$pod" -c app -- gost-proxy fetch -T 3 -x http://127.0.0.1:8080 http://hello.internal:8080/ 2>/dev/null || true; }

pct() { # P: percentile of numbers on stdin
  sort -n | awk -v p="$1" '{a[NR]=$1} END {if (NR==0) {print "-"; exit} i=int((NR-1)*p/100)+1; printf "%.0f", a[i]}'
}

say "1. config delivery: $changes GostChain changes, time until the running sidecar uses the new route"
targets=(relay2 relay)
want=("second relay" "reached through the GostChain")
delays=()
for ((i = 0; i < changes; i++)); do
  t=${targets[i % 2]} w=${want[i % 2]}
  k -n demo patch gchain via-relay --type=json \
    -p "[{\"op\":\"replace\",\"path\":\"/spec/hops/0/nodes/0/addr\",\"value\":\"$t.demo-infra.svc.cluster.local:8443\"}]" >/dev/null
  start=$(date +%s%N)
  for _ in $(seq 600); do
    [[ $(fetch) == *"$w"* ]] && break
    sleep 0.1
  done
  ms=$((($(date +%s%N) - start) / 1000000))
  delays+=("$ms")
  printf '  change %2d -> %-6s %6d ms\n' "$((i + 1))" "$t" "$ms"
done
printf 'config delivery over %d changes: p50 %s ms, p95 %s ms (apply -> new route serving, incl. one kubectl exec per probe)\n' \
  "$changes" "$(printf '%s\n' "${delays[@]}" | pct 50)" "$(printf '%s\n' "${delays[@]}" | pct 95)"

say "2. admission latency: $pods pod creations (server-side dry run) with and without the webhook"
api=$KUBEGOST_TESTENV_API
P=$STATE/pki
k create namespace bench-plain --dry-run=client -o yaml | k apply -f - >/dev/null
body='{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"b-","labels":{"app":"web"}},"spec":{"containers":[{"name":"app","image":"x"}]}}'
time_ns() { # NAMESPACE: seconds of one dry-run create
  curl -s -o /dev/null -w '%{time_total}\n' --cacert "$P/ca.crt" --cert "$P/admin.crt" --key "$P/admin.key" \
    -H 'Content-Type: application/json' -X POST --data "$body" "$api/api/v1/namespaces/$1/pods?dryRun=All"
}
for _ in $(seq 10); do time_ns demo >/dev/null; time_ns bench-plain >/dev/null; done # warm up
inj=() plain=()
for ((i = 0; i < pods; i++)); do
  inj+=("$(time_ns demo | awk '{printf "%.0f", $1*1000000}')")
  plain+=("$(time_ns bench-plain | awk '{printf "%.0f", $1*1000000}')")
done
for PCT in 50 99; do
  a=$(printf '%s\n' "${inj[@]}" | pct $PCT) b=$(printf '%s\n' "${plain[@]}" | pct $PCT)
  printf 'admission p%s: %s us with injection, %s us without (webhook adds %s us)\n' "$PCT" "$a" "$b" "$((a - b))"
done
