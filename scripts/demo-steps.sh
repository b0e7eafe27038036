# shellcheck shell=bash
# The steps both demos run on a cluster (scripts/demo.sh on the project's own level-2 cluster,
# scripts/kind-demo.sh on kind): install the chart, put a relay (a gost-proxy chain node whose
# hosts mapper alone knows the origin's name) and an origin in namespace demo-infra, opt
# namespace demo in to injection, apply a GostChain and a GostService, start an app, and send
# a request from the app through its injected sidecar and the chain. Source it and call
# demo_run with: KUBECTL (command array), HELM, OPERATOR_IMAGE, PROXY_IMAGE, PULL_POLICY.

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
k() { "${KUBECTL[@]}" "$@"; }

demo_run() {
  local chart
  chart=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/charts/kubegost
  say "helm install kubegost (operator $OPERATOR_IMAGE, sidecar $PROXY_IMAGE)"
  "$HELM" upgrade --install kubegost "$chart" -n kubegost-system --create-namespace \
    --set image.repository="${OPERATOR_IMAGE%:*}" --set image.tag="${OPERATOR_IMAGE##*:}" \
    --set image.pullPolicy="$PULL_POLICY" \
    --set proxy.image.repository="${PROXY_IMAGE%:*}" --set proxy.image.tag="${PROXY_IMAGE##*:}" \
    --set proxy.image.pullPolicy="$PULL_POLICY" --set replicas=1
  k -n kubegost-system rollout status deploy/kubegost-operator --timeout=180s

  say "an origin, and a relay that alone resolves its name (hello.internal)"
  k create namespace demo-infra --dry-run=client -o yaml | k apply -f -
  k -n demo-infra apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: origin}
spec:
  selector: {matchLabels: {app: origin}}
  template:
    metadata: {labels: {app: origin}}
    spec:
      containers:
      - name: httpd
        image: $PROXY_IMAGE
        imagePullPolicy: $PULL_POLICY
        command: [/bin/sh, -c, 'echo "hello from the origin, reached through the GostChain" > /tmp/index.html && exec httpd -f -p 8080 -h /tmp']
---
apiVersion: v1
kind: Service
metadata: {name: origin}
spec: {selector: {app: origin}, ports: [{port: 8080}]}
YAML
  k -n demo-infra rollout status deploy/origin --timeout=120s
  local origin_ip
  origin_ip=$(k -n demo-infra get svc origin -o jsonpath='{.spec.clusterIP}')
  k -n demo-infra apply -f - <<YAML
apiVersion: v1
kind: ConfigMap
metadata: {name: relay}
data:
  gost.yaml: |
    hosts:
    - name: only-here
      mappings: [{hostname: hello.internal, ip: $origin_ip}]
    services:
    - {name: relay, addr: ":8443", hosts: only-here, handler: {type: relay}, listener: {type: tcp}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: relay}
spec:
  selector: {matchLabels: {app: relay}}
  template:
    metadata: {labels: {app: relay}}
    spec:
      containers:
      - name: relay
        image: $PROXY_IMAGE
        imagePullPolicy: $PULL_POLICY
        args: [-C, /etc/relay/gost.yaml]
        volumeMounts: [{name: c, mountPath: /etc/relay}]
      volumes: [{name: c, configMap: {name: relay}}]
---
apiVersion: v1
kind: Service
metadata: {name: relay}
spec: {selector: {app: relay}, ports: [{port: 8443}]}
YAML
  k -n demo-infra rollout status deploy/relay --timeout=120s

  say "namespace demo: injection on, a GostChain through the relay, a GostService, an app"
  k create namespace demo --dry-run=client -o yaml | k apply -f -
  k label namespace demo kubegost.io/injection=enabled --overwrite
  k -n demo apply -f - <<YAML
apiVersion: kubegost.io/v1alpha1
kind: GostChain
metadata: {name: via-relay}
spec:
  hops:
  - name: hop-0
    nodes: [{name: relay, addr: "relay.demo-infra.svc.cluster.local:8443", connector: {type: relay}}]
---
apiVersion: kubegost.io/v1alpha1
kind: GostService
metadata: {name: web-egress}
spec:
  selector: {matchLabels: {app: web}}
  chain: via-relay
  services:
  - {name: http-proxy, addr: "127.0.0.1:8080", handler: {type: http}}
YAML
  k -n demo wait --for=condition=Ready gsvc/web-egress --timeout=60s
  k -n demo get gostservices,gostchains
  k -n demo apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: $PROXY_IMAGE
        imagePullPolicy: $PULL_POLICY
        command: [/bin/sh, -c, 'while true; do sleep 3600; done']
YAML
  k -n demo rollout status deploy/web --timeout=180s
  local pod
  pod=$(k -n demo get pod -l app=web -o jsonpath='{.items[0].metadata.name}')
  say "pod $pod was admitted with the sidecar:"
  k -n demo get pod "$pod" -o jsonpath='{range .spec.initContainers[*]}  init container {.name} (restartPolicy {.restartPolicy}){"\n"}{end}{range .spec.containers[*]}  container {.name}{"\n"}{end}'

  say "the app asks its sidecar for http://hello.internal:8080/ (only the relay knows that name)"
  local body
  for _ in $(seq 30); do
    body=$(k -n demo exec "$pod" -c app -- gost-proxy fetch -T 5 -x http://127.0.0.1:8080 http://hello.internal:8080/ 2>/dev/null) && break
    sleep 2
  done
  [[ -n ${body:-} ]] || { echo "no answer through the chain" >&2; return 1; }
  printf '  answer: %s\n' "$body"
  say "done: app -> gost-proxy sidecar (127.0.0.1:8080) -> GostChain via-relay -> relay.demo-infra -> origin"
}
