#!/usr/bin/env python3
"""mkoci.py OUT.tar REF ENTRYPOINT SRC:DST [SRC:DST ...]
   mkoci.py --dockerfile DOCKERFILE --target STAGE OUT.tar REF BUILD_OUT_DIR [STAGE=ROOT ...]

Write an OCI image-layout tarball (one gzip layer, deterministic) for
`ctr -n k8s.io images import`. No registry, no daemon. The index carries
io.containerd.image.name=REF so the import names the image exactly REF.

With --dockerfile, the image is the final stage STAGE of the Dockerfile, built
without Docker: each `COPY --from=build /out/X DST` takes X from BUILD_OUT_DIR,
`COPY --from=OTHER SRC DST` takes SRC under the ROOT given for OTHER (for a stage
that only installs a Debian package, the root of this machine with that package
installed), and ENV, USER, EXPOSE, WORKDIR and ENTRYPOINT (exec form) become the image
config. Any other instruction in the stage is an error, so the image can never
silently differ from what `docker build --target STAGE` produces."""
import gzip
import hashlib
import io
import json
import os
import shlex
import sys
import tarfile


def digest(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def stage(dockerfile, target):
    """The final stage `target` of a Dockerfile as (files, config)."""
    lines, cur = [], ""
    with open(dockerfile) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not cur and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            lines.append((cur + line).strip())
            cur = ""
    inside, base = False, None
    files, cfg = [], {"Env": [], "ExposedPorts": {}, "WorkingDir": "/"}
    for line in lines:
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            words = rest.split()
            inside = len(words) == 3 and words[1].upper() == "AS" and words[2] == target
            base = words[0] if inside else base
            continue
        if not inside:
            continue
        if base != "scratch":
            sys.exit(f"{dockerfile}: stage {target} must be FROM scratch to be built without Docker")
        if instr == "COPY":
            words = shlex.split(rest)
            if len(words) != 3 or not words[0].startswith("--from="):
                sys.exit(f"{dockerfile}: stage {target}: only `COPY --from=STAGE SRC DEST` is supported, not {line!r}")
            src_stage = words[0][len("--from="):]
            if src_stage == "build" and not words[1].startswith("/out/"):
                sys.exit(f"{dockerfile}: stage {target}: COPY --from=build must take /out/FILE, not {line!r}")
            files.append((src_stage, words[1], words[2]))
        elif instr == "ENV":
            k, sep, v = rest.partition("=")
            if not sep or " " in k:
                sys.exit(f"{dockerfile}: stage {target}: ENV must be KEY=VALUE, not {line!r}")
            cfg["Env"].append(f"{k}={v}")
        elif instr == "USER":
            cfg["User"] = rest.strip()
        elif instr == "EXPOSE":
            for p in rest.split():
                cfg["ExposedPorts"][p if "/" in p else p + "/tcp"] = {}
        elif instr == "WORKDIR":
            cfg["WorkingDir"] = rest.strip()
        elif instr == "ENTRYPOINT":
            try:
                cfg["Entrypoint"] = json.loads(rest)
            except ValueError:
                sys.exit(f"{dockerfile}: stage {target}: ENTRYPOINT must be the exec form [\"…\"], not {line!r}")
        else:
            sys.exit(f"{dockerfile}: stage {target}: {instr} is not supported by mkoci.py (COPY --from=build, ENV, USER, EXPOSE, WORKDIR, ENTRYPOINT)")
    if base is None:
        sys.exit(f"{dockerfile}: no stage `FROM scratch AS {target}`")
    if not files or "Entrypoint" not in cfg:
        sys.exit(f"{dockerfile}: stage {target} needs a COPY and an ENTRYPOINT")
    if not cfg["ExposedPorts"]:
        del cfg["ExposedPorts"]
    return files, cfg


def main():
    args = sys.argv[1:]
    if args[:1] == ["--dockerfile"]:
        if len(args) < 7 or args[2] != "--target":
            sys.exit(__doc__)
        dockerfile, target, out, ref, build_out = args[1], args[3], args[4], args[5], args[6]
        roots = dict(a.split("=", 1) for a in args[7:])
        copies, cfg = stage(dockerfile, target)
        files = []
        for src_stage, src, dst in copies:
            if src_stage == "build":
                files.append((os.path.join(build_out, os.path.basename(src)), dst))
            elif src_stage in roots:
                files.append((os.path.join(roots[src_stage], src.lstrip("/")), dst))
            else:
                sys.exit(f"{dockerfile}: stage {target} copies from stage {src_stage}: give its root as {src_stage}=DIR")
    else:
        if len(args) < 4:
            sys.exit(__doc__)
        out, ref, entry, *specs = args
        files = [tuple(s.split(":", 1)) for s in specs]
        cfg = {"Entrypoint": entry.split(), "Env": ["PATH=/"], "WorkingDir": "/"}
    write(out, ref, files, cfg)


def write(out, ref, files, cfg):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        seen = set()

        def d(name, mode=0o755):
            if name in seen:
                return
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.DIRTYPE
            ti.mode = mode
            ti.mtime = 0
            t.addfile(ti)
            seen.add(name)

        for src, dst in files:
            dst = dst.lstrip("/")
            parts = dst.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d("/".join(parts[:i]))
            with open(src, "rb") as f:
                data = f.read()
            ti = tarfile.TarInfo(dst)
            ti.size = len(data)
            ti.mode = 0o755
            ti.mtime = 0
            t.addfile(ti, io.BytesIO(data))
        d("tmp", 0o1777)
    layer_tar = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as g:
        g.write(layer_tar)
    layer = gz.getvalue()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [digest(layer_tar)]}}, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest(layer), "size": len(layer)}]}, sort_keys=True).encode()
    index = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": digest(manifest), "size": len(manifest),
                       "platform": {"architecture": "amd64", "os": "linux"},
                       "annotations": {"io.containerd.image.name": ref,
                                       "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1]}}]}).encode()
    with tarfile.open(out, "w") as t:
        def add(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 0
            ti.mode = 0o644
            t.addfile(ti, io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", index)
        for b in (layer, config, manifest):
            add("blobs/sha256/" + digest(b)[7:], b)
    print(out, ref, digest(manifest))


if __name__ == "__main__":
    main()
