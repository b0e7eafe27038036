#!/usr/bin/env bash
# Build cargo-deny $CARGO_DENY_VERSION from the crate registry into
# $CACHE/cargo-deny-$CARGO_DENY_VERSION/bin (its own target dir, so the workspace's is not
# touched). No-op when warm; serialized with flock. Prints the bin directory.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DEST=$CACHE/cargo-deny-$CARGO_DENY_VERSION
if [[ -f $DEST/.complete ]]; then echo "$DEST/bin"; exit 0; fi
cache_lock cargo-deny
if [[ -f $DEST/.complete ]]; then echo "$DEST/bin"; exit 0; fi
log "building cargo-deny $CARGO_DENY_VERSION (cold)"
rm -rf "$DEST.tmp"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
CARGO_TARGET_DIR=$work net_retry nice -n 10 cargo install --locked --quiet \
  --root "$DEST.tmp" --version "$CARGO_DENY_VERSION" cargo-deny >&2
"$DEST.tmp/bin/cargo-deny" --version >&2
rm -rf "$DEST"; mv "$DEST.tmp" "$DEST"; touch "$DEST/.complete"
echo "$DEST/bin"
