#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
# kube-proxy and kubectl from the published k8s.io/kubernetes Go module into
# $CACHE/k8s-$K8S_VERSION-<script hash>/bin. No-op when warm; serialized with flock.
#
# k8s.io/kubernetes requires its staging modules at the fake version v0.0.0
# (replaced by directories), so `go install pkg@version` is refused. A
# throwaway main module replaces each staging module k8s.io/X with the
# published k8s.io/X v0.Y.Z instead (generated from the downloaded go.mod).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DEST=$CACHE/k8s-$K8S_VERSION-$(script_hash "$0")
if [[ -f $DEST/.complete ]]; then echo "$DEST/bin"; exit 0; fi
cache_lock k8s
if [[ -f $DEST/.complete ]]; then echo "$DEST/bin"; exit 0; fi
go_env
log "building kubernetes $K8S_VERSION (cold; 15-30 min on 2 cores)"
minor=$(cut -d. -f2 <<<"$K8S_VERSION")
stage=v0.${K8S_VERSION#v1.}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; cd "$work"
go mod init kubegost.test/k8s-tools >/dev/null 2>&1
kmod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
sed -nE 's#^[[:space:]]*(k8s\.io/[a-z0-9.-]+) => \./staging/src/k8s\.io/[a-z0-9.-]+[[:space:]]*$#\1#p' "$kmod" |
  sort -u | while read -r m; do go mod edit -replace="$m=$m@$stage"; done
# keep the main module's go line at kubernetes' so godebug defaults match upstream
gov=$(sed -nE 's/^go ([0-9.]+)$/\1/p' "$kmod" | head -1)
[[ -n $gov ]] && go mod edit -go="$gov"
cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
pkgs=(); for c in "${cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
nice -n 10 go get "${pkgs[@]/%/@$K8S_VERSION}" >&2
when=$(go list -m -json "k8s.io/kubernetes" |
  python3 -c 'import json,sys; print(json.load(sys.stdin).get("Time","1970-01-01T00:00:00Z"))')
X=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  X+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  X+=" -X $p.gitTreeState=clean -X $p.buildDate=$when"
done
rm -rf "$DEST.tmp"; mkdir -p "$DEST.tmp/bin"
nice -n 10 go build -p 2 -trimpath -ldflags "-s -w$X" -o "$DEST.tmp/bin/" "${pkgs[@]}" >&2
"$DEST.tmp/bin/kube-apiserver" --version >&2
rm -rf "$DEST"; mv "$DEST.tmp" "$DEST"; touch "$DEST/.complete"
echo "$DEST/bin"
