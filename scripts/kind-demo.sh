#!/usr/bin/env bash
# kind-demo.sh: kubegost end to end on a local kind cluster (needs docker, kind, kubectl and
# helm): create the cluster, build both images from the Dockerfile and load them, then the
# same steps as the project's level-2 test and scripts/demo.sh: helm install, label a
# namespace, apply a GostChain and a GostService, and a request from an injected app through
# the chain. KIND_KEEP=1 keeps the cluster (kind delete cluster --name kubegost-demo).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=demo-steps.sh
. scripts/demo-steps.sh
for t in docker kind kubectl helm; do
  command -v "$t" >/dev/null || { echo "kind-demo.sh needs $t in PATH" >&2; exit 1; }
done
CLUSTER=${KIND_CLUSTER:-kubegost-demo}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
OPERATOR_IMAGE=kubegost/operator:$VERSION
PROXY_IMAGE=kubegost/proxy:$VERSION
say "kind cluster $CLUSTER"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER"
if [[ ${KIND_KEEP:-0} != 1 ]]; then
  trap 'say "deleting kind cluster $CLUSTER"; kind delete cluster --name "$CLUSTER"' EXIT
fi
say "images (docker build --target operator / proxy), loaded into kind"
docker build --target operator -t "$OPERATOR_IMAGE" .
docker build --target proxy -t "$PROXY_IMAGE" .
kind load docker-image --name "$CLUSTER" "$OPERATOR_IMAGE" "$PROXY_IMAGE"
KUBECTL=(kubectl --context "kind-$CLUSTER")
HELM=helm
export HELM_KUBECONTEXT=kind-$CLUSTER
PULL_POLICY=IfNotPresent
demo_run
