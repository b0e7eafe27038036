#!/usr/bin/env bash
# Build helm from the published helm.sh/helm/v3 module into
# $CACHE/helm-$HELM_VERSION/bin. No-op when warm; serialized with flock.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DEST=$CACHE/helm-$HELM_VERSION
if [[ -f $DEST/.complete ]]; then echo "$DEST/bin"; exit 0; fi
cache_lock helm
if [[ -f $DEST/.complete ]]; then echo "$DEST/bin"; exit 0; fi
go_env
log "building helm $HELM_VERSION (cold)"
major=$(cut -d. -f1 <<<"$HELM_VERSION")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; cd "$work"
go mod init kubegost.test/helm-tools >/dev/null 2>&1
net_retry nice -n 10 go get "helm.sh/helm/$major/cmd/helm@$HELM_VERSION" >&2
rm -rf "$DEST.tmp"; mkdir -p "$DEST.tmp/bin"
nice -n 10 go build -trimpath \
  -ldflags "-s -w -X helm.sh/helm/$major/internal/version.version=$HELM_VERSION" \
  -o "$DEST.tmp/bin/helm" "helm.sh/helm/$major/cmd/helm" >&2
"$DEST.tmp/bin/helm" version >&2
rm -rf "$DEST"; mv "$DEST.tmp" "$DEST"; touch "$DEST/.complete"
echo "$DEST/bin"
