#!/usr/bin/env bash
# Build CoreDNS from the published github.com/coredns/coredns module into
# $CACHE/coredns-$COREDNS_VERSION-<script hash>/bin/coredns (static). No-op when warm;
# serialized with flock. The level-2 cluster runs it as its DNS (Service kube-dns, 10.96.0.10).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DEST=$CACHE/coredns-$COREDNS_VERSION-$(script_hash "$0")
if [[ -f $DEST/.complete ]]; then echo "$DEST/bin"; exit 0; fi
cache_lock coredns
if [[ -f $DEST/.complete ]]; then echo "$DEST/bin"; exit 0; fi
go_env
log "building coredns $COREDNS_VERSION (cold)"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; cd "$work"
go mod init kubegost.test/coredns-tools >/dev/null 2>&1
net_retry nice -n 10 go get "github.com/coredns/coredns@$COREDNS_VERSION" >&2
rm -rf "$DEST.tmp"; mkdir -p "$DEST.tmp/bin"
nice -n 10 go build -trimpath -ldflags "-s -w" -o "$DEST.tmp/bin/coredns" github.com/coredns/coredns >&2
"$DEST.tmp/bin/coredns" -version >&2
rm -rf "$DEST"; mv "$DEST.tmp" "$DEST"; touch "$DEST/.complete"
echo "$DEST/bin"
