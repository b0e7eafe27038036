#!/usr/bin/env bash
# up.sh [--level 1|2]: start the kubegost test cluster.
#   L1: etcd + kube-apiserver (own CA, service-account keys, RBAC, admission
#       webhooks) + kube-controller-manager, all on 127.0.0.1.
#   L2: L1 + kube-scheduler + containerd/runc/CNI + kubelet (node "kgnode") on
#       the bridge kgbr0 (10.244.0.1/24), kube-proxy (iptables mode) for Services
#       and CoreDNS (Service kube-dns, 10.96.0.10) for cluster.local names;
#       images from images.sh imported.
# First cleans anything a previous run left behind (down.sh), then waits
# until everything is healthy, writes $STATE/kubeconfig and $STATE/env and
# prints the kubeconfig path on stdout.
# Needs the binaries from build-etcd.sh / build-k8s.sh / build-helm.sh (and for
# L2 the Debian packages of install-deps.sh): built/installed here if missing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
LEVEL=1
while (($#)); do
  case $1 in
    --level) LEVEL=${2:?}; shift 2 ;;
    --level=*) LEVEL=${1#*=}; shift ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
done
[[ $LEVEL == 1 || $LEVEL == 2 ]] || die "--level must be 1 or 2"
[[ $(id -u) == 0 || $LEVEL == 1 ]] || die "level 2 needs root"
t0=$SECONDS

# ---- tools (no-ops when the cache is warm)
[[ $LEVEL == 2 ]] && "$TESTENV_DIR/install-deps.sh"
ETCD_BIN=$("$TESTENV_DIR/build-etcd.sh")
K8S_BIN=$("$TESTENV_DIR/build-k8s.sh")
HELM_BIN=$("$TESTENV_DIR/build-helm.sh")
[[ $LEVEL == 2 ]] && "$TESTENV_DIR/build-coredns.sh" >/dev/null

# ---- stale state from an earlier run
"$TESTENV_DIR/down.sh" --quiet
avail_mb() { df -Pm "$1" | awk 'NR==2{print $4}'; }
mkdir -p "$STATE"
for d in "$STATE" "$(dirname "$DATA")"; do
  (($(avail_mb "$d") >= 2048)) || die "less than 2 GiB free on $d"
done
mkdir -p "$STATE"/{pid,log,etcd,pki}
echo "$LEVEL" >"$STATE/level"

# ---- save sysctls (restored by down.sh)
: >"$STATE/sysctl.saved"
for k in "${SYSCTLS[@]}"; do
  v=$(sysctl -n "$k" 2>/dev/null) && printf '%s=%s\n' "$k" "$v" >>"$STATE/sysctl.saved"
done

# ---- free ports on loopback
read -r ETCD_PORT PEER_PORT API_PORT KCM_PORT SCHED_PORT KUBELET_HEALTHZ_PORT KUBE_PROXY_HEALTHZ_PORT KUBE_PROXY_METRICS_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(8)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
"$TESTENV_DIR/pki.sh" "$STATE/pki"
P=$STATE/pki

if [[ $LEVEL == 2 ]]; then
  API_HOST=$BRIDGE_IP
  # bridge first: node IP, apiserver bind address and pod gateway
  ip link add "$BRIDGE" type bridge
  ip addr add "$BRIDGE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  touch "$STATE/bridge"
else
  API_HOST=127.0.0.1
fi
API_URL=https://$API_HOST:$API_PORT

# kubeconfig NAME CERTNAME: write $STATE/NAME.kubeconfig using pki/CERTNAME.{crt,key}
kubeconfig() {
  cat >"$STATE/$1.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: kgtest
  cluster:
    server: $API_URL
    certificate-authority-data: $(base64 -w0 "$P/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$P/$2.crt")
    client-key-data: $(base64 -w0 "$P/$2.key")
contexts:
- name: kgtest
  context: {cluster: kgtest, user: $2}
current-context: kgtest
KC
  chmod 600 "$STATE/$1.kubeconfig"
}
kubeconfig admin admin
kubeconfig kcm kcm
kubeconfig scheduler scheduler
kubeconfig kubelet kubelet
kubeconfig kube-proxy kube-proxy
cp "$STATE/admin.kubeconfig" "$STATE/kubeconfig"
KUBECTL=(env -u KUBECONFIG "$K8S_BIN/kubectl" --kubeconfig="$STATE/kubeconfig" --request-timeout=10s)

# ---- etcd
log "starting etcd (127.0.0.1:$ETCD_PORT)"
start_bg etcd "$ETCD_BIN/etcd" --name kgtest --data-dir "$STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
  --initial-cluster "kgtest=http://127.0.0.1:$PEER_PORT" \
  --unsafe-no-fsync --log-level=warn
wait_for "etcd health" 60 etcd curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"

# ---- kube-apiserver
# (commas inside flag values are the flags' own lists)
# shellcheck disable=SC2054
api_args=(
  --etcd-servers="http://127.0.0.1:$ETCD_PORT"
  --bind-address="$API_HOST" --secure-port="$API_PORT"
  --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key"
  --client-ca-file="$P/ca.crt"
  --service-account-issuer=https://kubernetes.default.svc.cluster.local
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key"
  --service-cluster-ip-range="$SERVICE_CIDR"
  --enable-admission-plugins=NamespaceLifecycle,ServiceAccount,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ResourceQuota
  --allow-privileged=true --profiling=false --v=1
)
if [[ $LEVEL == 2 ]]; then
  # shellcheck disable=SC2054
  api_args+=(--advertise-address="$BRIDGE_IP" --authorization-mode=Node,RBAC
    --enable-aggregator-routing=true
    --kubelet-client-certificate="$P/apiserver-kubelet-client.crt"
    --kubelet-client-key="$P/apiserver-kubelet-client.key"
    --kubelet-certificate-authority="$P/ca.crt"
    --kubelet-preferred-address-types=InternalIP)
else
  # loopback only: advertise 127.0.0.1 (never the machine's own interfaces),
  # and publish no endpoints for the kubernetes Service
  api_args+=(--advertise-address=127.0.0.1 --authorization-mode=RBAC --endpoint-reconciler-type=none)
fi
log "starting kube-apiserver ($API_URL)"
start_bg kube-apiserver "$K8S_BIN/kube-apiserver" "${api_args[@]}"
wait_for "kube-apiserver /readyz" 180 kube-apiserver curl -fsS --max-time 5 --cacert "$P/ca.crt" \
  --cert "$P/admin.crt" --key "$P/admin.key" "$API_URL/readyz"

# ---- kube-controller-manager
log "starting kube-controller-manager"
start_bg kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig="$STATE/kcm.kubeconfig" \
  --authentication-kubeconfig="$STATE/kcm.kubeconfig" --authorization-kubeconfig="$STATE/kcm.kubeconfig" \
  --root-ca-file="$P/ca.crt" --service-account-private-key-file="$P/sa.key" \
  --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
  --use-service-account-credentials --controllers='*' --leader-elect=false \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --cert-dir="$STATE/kcm-certs" --v=1
wait_for "kube-controller-manager /healthz" 60 kube-controller-manager \
  curl -fsSk --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz"
wait_for "default ServiceAccount" 60 kube-controller-manager "${KUBECTL[@]}" -n default get serviceaccount default

IMAGE_ENV=()
if [[ $LEVEL == 2 ]]; then
  # ---- network: DNAT for the kubernetes Service IP, no forwarding out of the bridge
  # (chains existing now are never removed by down.sh)
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for t in filter nat mangle; do
      { "$ipt" -w -t "$t" -S 2>/dev/null || true; } | awk -v i="$ipt" -v t="$t" '$1=="-N" {print i, t, $2}'
    done
  done >"$STATE/iptables.before"
  # (Service IPs, the kubernetes Service included, are kube-proxy's, started below)
  iptables -w -N KGTEST-FORWARD
  iptables -w -A KGTEST-FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -j DROP
  iptables -w -I FORWARD 1 -j KGTEST-FORWARD
  touch "$STATE/iptables"

  # ---- images (pause + origin + coredns always; proxy/operator if images.sh built them)
  # (rebuilt here because they are quick; a no-op when the tarballs exist)
  "$TESTENV_DIR/images.sh" pause origin coredns 2>/dev/null
  read -r PAUSE_REF _ <"$IMAGES_DIR/pause.ref"

  # ---- containerd
  mkdir -p "$STATE/cni" "$DATA/containerd" "$RUNDIR/containerd"
  SOCK=$RUNDIR/containerd/containerd.sock
  cat >"$STATE/containerd.toml" <<TOML
version = 2
root = "$DATA/containerd"
state = "$RUNDIR/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$DATA/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_REF"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$RUNDIR/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni"
TOML
  cat >"$STATE/cni/10-kgtest.conflist" <<JSON
{ "cniVersion": "1.0.0", "name": "kgtest",
  "plugins": [
    { "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": { "type": "host-local",
                "ranges": [[{ "subnet": "$POD_CIDR", "gateway": "$BRIDGE_IP" }]],
                "routes": [{ "dst": "$SERVICE_CIDR" }],
                "dataDir": "$DATA/cni-ipam" } } ] }
JSON
  log "starting containerd ($SOCK)"
  start_bg containerd containerd --config "$STATE/containerd.toml"
  CTR=(ctr -a "$SOCK" -n k8s.io)
  wait_for "containerd socket" 60 containerd "${CTR[@]}" version
  for f in "$IMAGES_DIR"/*.ref; do
    read -r ref tar <"$f"
    [[ -f $tar ]] || die "image tarball $tar (from $f) is missing: run images.sh"
    "${CTR[@]}" images import "$tar" >/dev/null
    name=$(basename "$f" .ref)
    IMAGE_ENV+=("KUBEGOST_TESTENV_IMAGE_${name^^}=$ref")
    log "imported $ref"
  done

  # ---- kube-scheduler
  cat >"$STATE/scheduler.yaml" <<YAML
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection: {kubeconfig: $STATE/scheduler.kubeconfig}
leaderElection: {leaderElect: false}
YAML
  log "starting kube-scheduler"
  start_bg kube-scheduler "$K8S_BIN/kube-scheduler" --config="$STATE/scheduler.yaml" \
    --authentication-kubeconfig="$STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --v=1
  wait_for "kube-scheduler /healthz" 60 kube-scheduler curl -fsSk --max-time 2 "https://127.0.0.1:$SCHED_PORT/healthz"

  # ---- kubelet
  : >"$STATE/resolv.conf"
  cat >"$STATE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$SOCK
address: $BRIDGE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $P/kubelet-serving.crt
tlsPrivateKeyFile: $P/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $P/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [10.96.0.10]
resolvConf: $STATE/resolv.conf
oomScoreAdj: 0
evictionHard: {memory.available: "200Mi", nodefs.available: "500Mi", imagefs.available: "500Mi", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 30
rotateCertificates: false
serverTLSBootstrap: false
protectKernelDefaults: false
makeIPTablesUtilChains: false
failSwapOn: false
podLogsDir: $DATA/pod-logs
YAML
  log "starting kubelet (node $NODE_NAME)"
  start_bg kubelet "$K8S_BIN/kubelet" --config="$STATE/kubelet.yaml" --kubeconfig="$STATE/kubelet.kubeconfig" \
    --hostname-override="$NODE_NAME" --node-ip="$BRIDGE_IP" \
    --root-dir="$DATA/kubelet" --cert-dir="$STATE/kubelet-pki" --v=1
  wait_for "node $NODE_NAME Ready" 180 kubelet bash -c \
    "[[ \$(${KUBECTL[*]} get node $NODE_NAME -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}') == True ]]"

  # ---- kube-proxy (iptables mode): Service IPs, the kubernetes Service included
  cat >"$STATE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $BRIDGE_IP
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
nodePortAddresses: [$BRIDGE_IP/32]
oomScoreAdj: 0
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
  log "starting kube-proxy"
  start_bg kube-proxy "$K8S_BIN/kube-proxy" --config="$STATE/kube-proxy.yaml" --v=1
  wait_for "kube-proxy /healthz" 60 kube-proxy curl -fsS --max-time 2 "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz"

  # ---- CoreDNS: cluster.local names of Services and pods; nothing else is answered (no
  # upstream: every packet stays on this machine)
  read -r COREDNS_REF _ <"$IMAGES_DIR/coredns.ref"
  "${KUBECTL[@]}" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kgtest:coredns}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: kgtest:coredns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "kgtest:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:1053 {
        errors
        health 127.0.0.1:8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
        cache 30
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      terminationGracePeriodSeconds: 1
      containers:
      - name: coredns
        image: $COREDNS_REF
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports: [{containerPort: 1053, protocol: UDP, name: dns}, {containerPort: 1053, protocol: TCP, name: dns-tcp}]
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 1}
        securityContext: {runAsNonRoot: true, runAsUser: 65532, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: config, mountPath: /etc/coredns}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: 10.96.0.10
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
YAML
  wait_for "CoreDNS ready" 120 kubelet "${KUBECTL[@]}" -n kube-system wait --for=condition=Available deploy/coredns --timeout=5s
fi

# ---- env file for run.sh and the Rust tests
{
  echo "KUBEGOST_TESTENV_KUBECONFIG=$STATE/kubeconfig"
  echo "KUBEGOST_TESTENV_LEVEL=$LEVEL"
  echo "KUBEGOST_TESTENV_API=$API_URL"
  echo "KUBEGOST_TESTENV_KUBECTL=$K8S_BIN/kubectl"
  [[ -n $HELM_BIN ]] && echo "KUBEGOST_TESTENV_HELM=$HELM_BIN/helm"
  for e in "${IMAGE_ENV[@]}"; do echo "$e"; done
} >"$STATE/env"
log "level $LEVEL up in $((SECONDS - t0))s; env: $STATE/env"
echo "$STATE/kubeconfig"
