#!/usr/bin/env python3
"""mkoci.py OUT.tar REF ENTRYPOINT SRC:DST [SRC:DST ...]

Write an OCI image-layout tarball (one gzip layer, deterministic) for
`ctr -n k8s.io images import`. No registry, no daemon. The index carries
io.containerd.image.name=REF so the import names the image exactly REF."""
import gzip
import hashlib
import io
import json
import sys
import tarfile


def digest(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    out, ref, entry, *files = sys.argv[1:]
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

        for spec in files:
            src, dst = spec.split(":", 1)
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
        "config": {"Entrypoint": entry.split(), "Env": ["PATH=/"], "WorkingDir": "/"},
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


main()
