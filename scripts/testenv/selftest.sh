#!/usr/bin/env bash
# selftest.sh [--level 1|2] [--cycles N]: check that up/down can be repeated
# on this machine and that down leaves nothing behind. Takes a snapshot of
# the machine state (our processes, mounts, links, netns, iptables, pod
# cgroups, sysctls), then N times (default 2): up.sh, a kubectl smoke check,
# down.sh, compare with the snapshot. Exits non-zero on the first leak.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
LEVEL=2 CYCLES=2
while (($#)); do
  case $1 in
    --level) LEVEL=$2; shift 2 ;;
    --cycles) CYCLES=$2; shift 2 ;;
    *) die "usage: selftest.sh [--level 1|2] [--cycles N]" ;;
  esac
done
snap=$(mktemp -d)
# a failed cycle leaves no cluster running behind it
trap 'rc=$?; rm -rf "$snap"; if ((rc != 0)); then "$TESTENV_DIR/down.sh" --quiet; fi' EXIT

# our own binaries / container processes still running
our_procs() {
  local p exe comm
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    comm=$(cat "$p/comm" 2>/dev/null) || continue
    case $exe in
      "$CACHE"/* | /usr/bin/containerd* | /usr/sbin/runc | /usr/bin/runc) echo "${p#/proc/} $exe" ;;
      *) case $comm in pause | http-origin | gost-proxy | gost-operator) echo "${p#/proc/} $comm" ;; esac ;;
    esac
  done
}
snapshot() { # DIR
  mkdir -p "$1"
  our_procs | sort >"$1/procs"
  findmnt -rno TARGET | sort >"$1/mounts"
  ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort >"$1/links"
  ip -o addr show | awk '{print $2, $4}' | sort >"$1/addrs"
  ip route show table all | sort >"$1/routes"
  ip netns list 2>/dev/null | sort >"$1/netns"
  iptables_state >"$1/iptables"
  find /sys/fs/cgroup -maxdepth 2 -type d -name 'kubepods*' 2>/dev/null | sort >"$1/cgroups" || true
  # files the components may write outside our own dirs
  find /var/lib/cni /var/lib/kubelet /var/log/pods /var/log/containers /run/containerd \
    /var/run/netns /run/netns /etc/cni /opt/cni /opt/containerd /var/lib/containerd /etc/kubernetes \
    2>/dev/null | sort >"$1/files" || true
  for k in "${SYSCTLS[@]}"; do printf '%s=%s\n' "$k" "$(sysctl -n "$k" 2>/dev/null || echo -)"; done >"$1/sysctls"
}
snapshot "$snap/before"
[[ -s $snap/before/procs ]] && die "test-cluster processes already running: $(cat "$snap/before/procs")"
for ((i = 1; i <= CYCLES; i++)); do
  t=$SECONDS
  kc=$("$TESTENV_DIR/up.sh" --level "$LEVEL")
  log "cycle $i: up --level $LEVEL in $((SECONDS - t))s"
  kubectl=$("$TESTENV_DIR/build-k8s.sh")/kubectl
  "$kubectl" --kubeconfig "$kc" get --raw /readyz >/dev/null
  if [[ $LEVEL == 2 ]]; then
    "$kubectl" --kubeconfig "$kc" get node "$NODE_NAME" -o name >/dev/null
    # run a real pod so down has containers, mounts, veths and cgroups to clean
    img=$(sed -n 's/^KUBEGOST_TESTENV_IMAGE_ORIGIN=//p' "$STATE/env")
    "$kubectl" --kubeconfig "$kc" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: selftest-origin, namespace: default, labels: {app: selftest-origin}}
spec:
  containers:
  - {name: origin, image: "$img", imagePullPolicy: Never, env: [{name: ORIGIN_BODY, value: selftest}]}
YAML
    "$kubectl" --kubeconfig "$kc" wait --for=condition=Ready pod/selftest-origin --timeout=120s >/dev/null
    ip=$("$kubectl" --kubeconfig "$kc" get pod selftest-origin -o jsonpath='{.status.podIP}')
    [[ $ip == 10.244.0.* ]] || die "unexpected pod IP $ip"
    body=$(curl -fsS --max-time 5 "http://$ip:8080/")
    [[ $body == selftest ]] || die "origin pod answered $body"
    log "cycle $i: pod selftest-origin Ready at $ip and answering"
    # a Service through kube-proxy, and its name through CoreDNS
    "$kubectl" --kubeconfig "$kc" expose pod selftest-origin --name selftest-origin --port 8080 >/dev/null
    cip=$("$kubectl" --kubeconfig "$kc" get svc selftest-origin -o jsonpath='{.spec.clusterIP}')
    wait_for "Service $cip answering" 30 - bash -c "[[ \$(curl -fsS --max-time 2 http://$cip:8080/) == selftest ]]"
    name=selftest-origin.default.svc.cluster.local
    wait_for "$name resolving to $cip" 30 - bash -c "busybox nslookup $name 10.96.0.10 | grep -q 'Address: $cip'"
    log "cycle $i: Service $cip ($name) answering through kube-proxy and CoreDNS"
  fi
  t=$SECONDS
  "$TESTENV_DIR/down.sh"
  log "cycle $i: down in $((SECONDS - t))s"
  snapshot "$snap/after"
  leaks=0
  for f in procs mounts links addrs routes netns iptables cgroups sysctls files; do
    # only what is new counts (a stale earlier run may have been cleaned up)
    comm -13 "$snap/before/$f" "$snap/after/$f" >"$snap/new-$f"
    if [[ -s $snap/new-$f ]]; then
      log "LEAK after down ($f):"; sed 's/^/  + /' "$snap/new-$f" >&2; leaks=1
    fi
  done
  ((leaks == 0)) || die "cycle $i: down left state behind"
  log "cycle $i: clean"
done
echo "selftest: $CYCLES up/down cycles at level $LEVEL, nothing left behind"
