#!/usr/bin/env python3
"""Writes an OCI image layout for the ecr-push benchmark: LAYERS layers of random
(incompressible) bytes totalling TOTAL_MB. Usage: gen-oci.py DIR TOTAL_MB LAYERS"""
import hashlib
import json
import os
import sys

out, total_mb, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)


def put(data: bytes) -> str:
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(data)
    return "sha256:" + d


layers = []
size = total_mb * 1024 * 1024 // n
for i in range(n):
    h = hashlib.sha256()
    tmp = os.path.join(out, f"layer{i}.tmp")
    with open(tmp, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 8 << 20))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    d = h.hexdigest()
    os.replace(tmp, os.path.join(blobs, d))
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + d, "size": size})
config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config), "size": len(config)},
                       "layers": layers}).encode()
md = put(manifest)
with open(os.path.join(out, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(manifest),
                                                  "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, f)
print(f"{out}: {n} layers, {total_mb} MB, manifest {md}")
