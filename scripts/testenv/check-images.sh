#!/usr/bin/env bash
# check-images.sh: fails when an image that images.sh built for the test cluster differs from
# what the top-level Dockerfile describes. For each of proxy and operator (the .ref files in
# $IMAGES_DIR), it reads the Dockerfile's final stage with its own small parser (not the one
# mkoci.py uses) and compares the image tarball: entrypoint, user, exposed ports, environment,
# and the binary at the COPY destination (mode 0755, same bytes as the static build in the
# cargo target directory). Run it after images.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
fails=0
for name in proxy operator; do
  ref_file=$IMAGES_DIR/$name.ref
  [[ -f $ref_file ]] || die "no $ref_file: run scripts/testenv/images.sh first"
  read -r ref tar <"$ref_file"
  bin=gost-$name
  built=${CARGO_TARGET_DIR:-$REPO_ROOT/target}/x86_64-unknown-linux-gnu/release/$bin
  if ! out=$(python3 - "$REPO_ROOT/Dockerfile" "$name" "$tar" "$built" <<'PY'
import json, re, sys, tarfile, gzip, io, hashlib
dockerfile, target, tar, built = sys.argv[1:]
text = open(dockerfile).read()
m = re.search(r"^FROM\s+scratch\s+AS\s+%s\s*$(.*?)(?=^FROM\s|\Z)" % re.escape(target), text, re.M | re.S)
if not m:
    sys.exit(f"Dockerfile has no `FROM scratch AS {target}` stage")
body = [l.strip() for l in m.group(1).splitlines() if l.strip() and not l.strip().startswith("#")]
want = {"env": [], "ports": set(), "copies": []}
for l in body:
    k, _, v = l.partition(" ")
    if k == "COPY":
        frm, src, dst = v.split()
        want["copies"].append((frm.split("=", 1)[1], src, dst))
    elif k == "USER":
        want["user"] = v.strip()
    elif k == "ENTRYPOINT":
        want["entry"] = json.loads(v)
    elif k == "EXPOSE":
        want["ports"] |= {p if "/" in p else p + "/tcp" for p in v.split()}
    elif k == "ENV":
        want["env"].append(v.strip())
t = tarfile.open(tar)
blobs = {m.name.split("/")[-1]: t.extractfile(m).read() for m in t.getmembers() if m.name.startswith("blobs/")}
index = json.loads(t.extractfile("index.json").read())
manifest = json.loads(blobs[index["manifests"][0]["digest"][7:]])
cfg = json.loads(blobs[manifest["config"]["digest"][7:]])["config"]
problems = []
def cmp(what, got, exp):
    if got != exp:
        problems.append(f"{what}: image has {got!r}, Dockerfile says {exp!r}")
cmp("Entrypoint", cfg.get("Entrypoint"), want.get("entry"))
cmp("User", cfg.get("User"), want.get("user"))
cmp("ExposedPorts", set(cfg.get("ExposedPorts", {})), want["ports"])
cmp("Env", cfg.get("Env", []), want["env"])
layer = gzip.decompress(blobs[manifest["layers"][0]["digest"][7:]])
lt = tarfile.open(fileobj=io.BytesIO(layer))
sha = lambda b: hashlib.sha256(b).hexdigest()
for frm, src, dst in want["copies"]:
    # the build stage's /out/FILE is the static build in the cargo target directory; another
    # stage's file is this machine's (the stage installs a Debian package)
    expected = built if frm == "build" else src
    try:
        member = lt.getmember(dst.lstrip("/"))
        data = lt.extractfile(member).read()
        cmp(f"{dst} mode", oct(member.mode), oct(0o755))
        cmp(f"{dst} sha256", sha(data), sha(open(expected, "rb").read()))
    except KeyError:
        problems.append(f"no file {dst} in the image (the Dockerfile copies {src} from stage {frm} there)")
if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"entrypoint {cfg['Entrypoint']}, user {cfg['User']}, ports {sorted(want['ports'])}, files {[c[2] for c in want['copies']]}")
PY
  ); then
    log "IMAGE DRIFT $ref vs Dockerfile target $name:"
    sed 's/^/  /' <<<"$out" >&2
    fails=1
  else
    log "image $ref matches Dockerfile target $name: $out"
  fi
done
((fails == 0)) || die "images.sh and the Dockerfile disagree (see above)"
