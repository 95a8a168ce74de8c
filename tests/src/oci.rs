//! Builds real image sources for the ecr-push tests: OCI image layouts (directories) and
//! docker-archive tarballs, with layers of random (incompressible) bytes.

use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

/// sha256 of bytes as `sha256:<hex>`.
pub fn sha256(b: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(b))
}

/// Random bytes (fixed seed per call site: pass a distinct seed for distinct images).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    v
}

/// What was built.
#[derive(Debug, Clone)]
pub struct Built {
    /// The manifest's digest.
    pub manifest_digest: String,
    /// The layers' digests, in order.
    pub layers: Vec<String>,
    /// The config's digest.
    pub config: String,
}

fn config_json(diff_ids: &[String], seed: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["/app"], "Labels": {"seed": seed.to_string()}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": diff_ids.iter().map(|_| json!({"created_by": "test"})).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// Writes an OCI image layout at `dir` with `layers` as gzip-typed layer blobs.
pub fn oci_layout(dir: &Path, layers: &[Vec<u8>], seed: u64) -> Built {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = sha256(b);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), b).unwrap();
        d
    };
    let digests: Vec<String> = layers.iter().map(|l| put(l)).collect();
    let config = config_json(&digests, seed);
    let config_digest = put(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layers.iter().zip(&digests).map(|(l, d)| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": l.len()
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let manifest_digest = put(&manifest);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest.len(),
                           "annotations": {"org.opencontainers.image.ref.name": "latest"}}]
        }))
        .unwrap(),
    )
    .unwrap();
    Built {
        manifest_digest,
        layers: digests,
        config: config_digest,
    }
}

/// Writes a docker-archive (`docker save` format) at `path`.
pub fn docker_archive(path: &Path, layers: &[Vec<u8>], seed: u64) -> Built {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let config = config_json(&diff_ids, seed);
    let config_digest = sha256(&config);
    let config_name = format!("{}.json", config_digest.trim_start_matches("sha256:"));
    let layer_names: Vec<String> = (0..layers.len())
        .map(|i| format!("layer{i}/layer.tar"))
        .collect();
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name, "RepoTags": ["afu9/test:latest"], "Layers": layer_names
    }]))
    .unwrap();
    let f = std::fs::File::create(path).unwrap();
    let mut b = tar::Builder::new(f);
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    add(&config_name, &config);
    for (n, l) in layer_names.iter().zip(layers) {
        add(n, l);
    }
    add("manifest.json", &manifest);
    b.finish().unwrap();
    Built {
        manifest_digest: String::new(),
        layers: diff_ids,
        config: config_digest,
    }
}

/// Turns the OCI layout at `dir` into a multi-platform one: a second manifest (for arm64, with
/// `extra` as its only layer) and an image index over both, which becomes the layout's entry.
/// Returns (index digest, child manifest digests).
pub fn make_multi_platform(dir: &Path, extra: &[u8]) -> (String, Vec<String>) {
    let blobs = dir.join("blobs/sha256");
    let put = |b: &[u8]| {
        let d = sha256(b);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), b).unwrap();
        d
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let amd = index["manifests"][0].clone();
    let layer = put(extra);
    let config = config_json(std::slice::from_ref(&layer), 99);
    let config_digest = put(&config);
    let arm = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": extra.len()}],
    }))
    .unwrap();
    let arm_digest = put(&arm);
    let idx = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": amd["mediaType"], "digest": amd["digest"], "size": amd["size"], "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm_digest, "size": arm.len(), "platform": {"architecture": "arm64", "os": "linux"}},
        ],
    }))
    .unwrap();
    let idx_digest = put(&idx);
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": idx_digest, "size": idx.len()}
        ]}))
        .unwrap(),
    )
    .unwrap();
    (
        idx_digest,
        vec![amd["digest"].as_str().unwrap().to_owned(), arm_digest],
    )
}

/// Packs a directory into a tarball (what `buildx --output type=oci,dest=` writes).
pub fn tar_dir(dir: &Path, out: &Path) {
    let f = std::fs::File::create(out).unwrap();
    let mut b = tar::Builder::new(f);
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}
