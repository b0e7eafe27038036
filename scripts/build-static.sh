#!/usr/bin/env bash
# build-static.sh OUTDIR BIN...: build workspace binaries (gost-proxy, gost-operator) as static
# executables (static-pie, glibc, crt-static) into OUTDIR. The one build recipe of the images:
# the Dockerfile's build stage and scripts/testenv/images.sh both run this script, so the
# binaries in a docker-built image and in the test cluster's image are built the same way.
set -euo pipefail
(($# >= 2)) || { echo "usage: build-static.sh OUTDIR gost-proxy|gost-operator..." >&2; exit 64; }
out=$1; shift
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$PWD/target}
args=()
for b in "$@"; do
  case $b in
    gost-proxy) args+=(-p gost-engine --bin gost-proxy) ;;
    gost-operator) args+=(-p gost-operator --bin gost-operator) ;;
    *) echo "build-static.sh: unknown binary $b (gost-proxy, gost-operator)" >&2; exit 64 ;;
  esac
done
RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR=$target \
  cargo build --release --locked --target x86_64-unknown-linux-gnu "${args[@]}" >&2
mkdir -p "$out"
for b in "$@"; do
  cp "$target/x86_64-unknown-linux-gnu/release/$b" "$out/$b"
done
