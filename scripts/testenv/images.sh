#!/usr/bin/env bash
# images.sh [NAME...]: build OCI image tarballs from locally built static
# binaries (no registry) into $IMAGES_DIR, for up.sh --level 2 to import.
#   pause     CRI sandbox image (C, gcc -static)          localhost/kubegost-testenv/pause:<hash>
#   origin    tiny HTTP origin for tests (C, gcc -static) localhost/kubegost-testenv/http-origin:<hash>
#   coredns   CoreDNS (build-coredns.sh)                 localhost/kubegost-testenv/coredns:<hash>
#   proxy     the Dockerfile's `proxy` stage (gost-proxy)       localhost/kubegost/proxy:<hash>
#   operator  the Dockerfile's `operator` stage (gost-operator) localhost/kubegost/operator:<hash>
# proxy/operator are built without Docker: scripts/build-static.sh (what the Dockerfile's build
# stage runs), then the final stage's COPY/ENV/USER/EXPOSE/ENTRYPOINT read by mkoci.py.
# Without NAMEs: pause, origin, and proxy/operator if the workspace has that
# binary target; a Rust binary that fails to build is then skipped with a
# warning, unless KUBEGOST_TESTENV_REQUIRED=1 (CI), where it is an error. A NAME
# given explicitly that cannot be built is always an error.
# Tag = content hash, so a stale image is never reused silently.
# Writes $IMAGES_DIR/NAME.ref ("REF TARBALL") per image.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
mkdir -p "$IMAGES_DIR"
# KUBEGOST_TESTENV_REQUIRED as the cluster tests read it: anything but empty/0/false/no.
required() {
  local v=${KUBEGOST_TESTENV_REQUIRED:-}
  v=${v,,}
  [[ -n $v && $v != 0 && $v != false && $v != no ]]
}
explicit=1
names=("$@")
if ((${#names[@]} == 0)); then
  explicit=0
  names=(pause origin)
fi
# "BIN PACKAGE" for every binary target of the workspace
bins=$(cd "$REPO_ROOT" && cargo metadata --no-deps --format-version 1 2>/dev/null |
  python3 -c 'import json,sys
for p in json.load(sys.stdin)["packages"]:
    for t in p["targets"]:
        if "bin" in t["kind"]: print(t["name"], p["name"])' || true)
if ((!explicit)); then
  grep -q '^gost-proxy ' <<<"$bins" && names+=(proxy)
  grep -q '^gost-operator ' <<<"$bins" && names+=(operator)
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

# mkimage NAME REPO BINARY: wrap BINARY as /NAME-entrypoint in image REPO:<hash>
mkimage() {
  local name=$1 repo=$2 bin=$3 hash ref tar
  hash=$( (sha256sum "$bin" "$TESTENV_DIR/images/mkoci.py" | cut -d' ' -f1) | sha256sum | cut -c1-12)
  ref=$repo:$hash
  tar=$IMAGES_DIR/$name-$hash.tar
  if [[ ! -f $tar ]]; then
    python3 "$TESTENV_DIR/images/mkoci.py" "$tar.tmp" "$ref" "/$(basename "$bin")" "$bin:/$(basename "$bin")" >/dev/null
    mv "$tar.tmp" "$tar"
  fi
  echo "$ref $tar" >"$IMAGES_DIR/$name.ref"
  log "image $ref ($tar)"
}

# dockerfile_image NAME BIN: build BIN with scripts/build-static.sh (the Dockerfile's build
# stage runs the same script) and wrap it as the Dockerfile's final stage NAME
dockerfile_image() {
  local name=$1 bin=$2 hash ref tar out=$work/out-$1
  "$REPO_ROOT/scripts/build-static.sh" "$out" "$bin" || return 1
  hash=$( (sha256sum "$out/$bin" "$REPO_ROOT/Dockerfile" "$TESTENV_DIR/images/mkoci.py" /bin/busybox | cut -d' ' -f1) | sha256sum | cut -c1-12)
  ref=localhost/kubegost/$name:$hash
  tar=$IMAGES_DIR/$name-$hash.tar
  if [[ ! -f $tar ]]; then
    # the hook-tools stage only installs busybox-static: install-deps.sh puts it on this machine
    python3 "$TESTENV_DIR/images/mkoci.py" --dockerfile "$REPO_ROOT/Dockerfile" --target "$name" \
      "$tar.tmp" "$ref" "$out" hook-tools=/ >/dev/null
    mv "$tar.tmp" "$tar"
  fi
  echo "$ref $tar" >"$IMAGES_DIR/$name.ref"
  log "image $ref ($tar)"
}

failed=0
for n in "${names[@]}"; do
  cache_lock "image-$n" # one lock per image: a slow Rust build does not block pause/origin
  case $n in
    pause | origin)
      src=$TESTENV_DIR/images/$([[ $n == pause ]] && echo pause.c || echo http-origin.c)
      out=$work/$([[ $n == pause ]] && echo pause || echo http-origin)
      gcc -static -O2 -Wall -o "$out" "$src"
      mkimage "$n" "localhost/kubegost-testenv/$(basename "$out")" "$out"
      ;;
    coredns)
      cp "$("$TESTENV_DIR/build-coredns.sh")/coredns" "$work/coredns"
      mkimage "$n" "localhost/kubegost-testenv/coredns" "$work/coredns"
      ;;
    proxy | operator)
      pkg=$(awk -v b="gost-$n" '$1==b {print $2; exit}' <<<"$bins")
      if [[ -z $pkg ]]; then
        if ((explicit)); then log "ERROR: the workspace has no binary gost-$n"; failed=1; fi
        continue
      fi
      if dockerfile_image "$n" "gost-$n"; then
        :
      elif ((explicit)) || required; then
        log "ERROR: static build of gost-$n (package $pkg) failed"; failed=1
      else
        log "WARNING: static build of gost-$n (package $pkg) failed; image skipped"
        rm -f "$IMAGES_DIR/$n.ref"
      fi
      ;;
    *) die "unknown image $n (pause, origin, coredns, proxy, operator)" ;;
  esac
done
# prune tarballs nobody references any more (kept 2 days for concurrent clones)
refs=$(cat "$IMAGES_DIR"/*.ref 2>/dev/null | awk '{print $2}')
find "$IMAGES_DIR" -maxdepth 1 -name '*.tar' -mtime +2 2>/dev/null | while read -r t; do
  grep -qxF "$t" <<<"$refs" || rm -f "$t"
done
exit $failed
