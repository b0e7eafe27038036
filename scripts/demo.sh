#!/usr/bin/env bash
# demo.sh: kubegost end to end on the project's own level-2 cluster (as root on Debian 12, no
# Docker): builds the images, brings up a real Kubernetes (scripts/testenv), installs the
# chart, injects the sidecar into an app and shows a request crossing a GostChain, then tears
# everything down. The first run builds Kubernetes from the Go module proxy (about 15-30 min
# on 2 cores; cached afterwards). DEMO_KEEP=1 leaves the cluster up (stop it with
# scripts/testenv/down.sh). scripts/kind-demo.sh does the same steps on a kind cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=testenv/lib.sh
. scripts/testenv/lib.sh
# shellcheck source=demo-steps.sh
. scripts/demo-steps.sh
[[ $(id -u) == 0 ]] || die "demo.sh runs a real kubelet: run it as root"
KG_STEP="tools and images"
scripts/testenv/install-deps.sh
scripts/testenv/images.sh pause origin coredns proxy operator
read -r OPERATOR_IMAGE _ <"$IMAGES_DIR/operator.ref"
read -r PROXY_IMAGE _ <"$IMAGES_DIR/proxy.ref"
KG_STEP="cluster up"
kc=$(scripts/testenv/up.sh --level 2)
if [[ ${DEMO_KEEP:-0} != 1 ]]; then
  trap 'say "tearing down"; scripts/testenv/down.sh --quiet' EXIT
fi
KUBECTL=(env -u KUBECONFIG "$(scripts/testenv/build-k8s.sh)/kubectl" --kubeconfig "$kc")
HELM=$(scripts/testenv/build-helm.sh)/helm
export KUBECONFIG=$kc
PULL_POLICY=Never
KG_STEP="demo"
demo_run
