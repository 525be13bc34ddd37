#!/usr/bin/env python3
"""Writes a one-layer OCI image archive (an OCI image layout in a tar) without a container engine
or registry: `oci-image.py OUT.tar NAME:TAG ENTRYPOINT FILE...`. Each FILE goes to /<basename>
with its mode; the image runs ENTRYPOINT. `ctr images import` takes the result and names it
NAME:TAG (the `io.containerd.image.name` annotation)."""

import hashlib
import io
import json
import os
import sys
import tarfile


def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    out, ref, entrypoint, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]

    layer_io = io.BytesIO()
    with tarfile.open(fileobj=layer_io, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for path in files:
            info = layer.gettarinfo(path, arcname=os.path.basename(path))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            with open(path, "rb") as f:
                layer.addfile(info, f)
    layer_digest, layer_data = blob(layer_io.getvalue())

    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": [entrypoint]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    config_digest, config_data = blob(json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config_data),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": len(layer_data),
            }
        ],
    }
    manifest_digest, manifest_data = blob(json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest_data),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": ref,
                    "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1],
                },
            }
        ],
    }
    tmp = out + ".partial"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add(tar, "index.json", json.dumps(index, sort_keys=True).encode())
        for digest, data in ((layer_digest, layer_data), (config_digest, config_data),
                             (manifest_digest, manifest_data)):
            add(tar, "blobs/sha256/" + digest.split(":", 1)[1], data)
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
