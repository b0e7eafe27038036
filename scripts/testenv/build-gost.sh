#!/usr/bin/env bash
# Build the reference GOST binary (github.com/go-gost/gost) into the cache,
# keyed by version. No-op when warm; serialized with flock. Prints the path.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DEST=$CACHE/gost-$GOST_VERSION
BIN=$DEST/bin/gost
if [[ ! -f $DEST/.complete ]]; then
  cache_lock gost
  if [[ ! -f $DEST/.complete ]]; then
    go_env
    log "building gost $GOST_VERSION (cold)"
    rm -rf "$DEST"; mkdir -p "$DEST/bin"
    if ! GOBIN=$DEST/bin nice -n 10 go install -trimpath -ldflags "-s -w" \
      "github.com/go-gost/gost/cmd/gost@$GOST_VERSION" >&2; then
      rm -rf "$DEST"
      die "go install github.com/go-gost/gost/cmd/gost@$GOST_VERSION failed (see above): the reference GOST binary is not available"
    fi
    "$BIN" -V >&2
    touch "$DEST/.complete"
  fi
fi
echo "$BIN"
