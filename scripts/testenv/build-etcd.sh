#!/usr/bin/env bash
# Build etcd from the published go.etcd.io/etcd/server/v3 module into
# $CACHE/etcd-$ETCD_VERSION/bin. No-op when warm; serialized with flock.
# (The module has replace directives, so `go install @version` is refused;
# a throwaway main module ignores them.)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DEST=$CACHE/etcd-$ETCD_VERSION
if [[ -f $DEST/.complete ]]; then echo "$DEST/bin"; exit 0; fi
cache_lock etcd
if [[ -f $DEST/.complete ]]; then echo "$DEST/bin"; exit 0; fi
go_env
log "building etcd $ETCD_VERSION (cold)"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; cd "$work"
go mod init kubegost.test/etcd-tools >/dev/null 2>&1
net_retry nice -n 10 go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
rm -rf "$DEST.tmp"; mkdir -p "$DEST.tmp/bin"
nice -n 10 go build -trimpath -ldflags "-s -w" -o "$DEST.tmp/bin/etcd" go.etcd.io/etcd/server/v3 >&2
"$DEST.tmp/bin/etcd" --version >&2
rm -rf "$DEST"; mv "$DEST.tmp" "$DEST"; touch "$DEST/.complete"
echo "$DEST/bin"
