//! Property tests of ecr-push's input parsers: tag templates, OCI index and manifest JSON in a
//! layout directory, and tar indexing of OCI archives and docker-archives (arbitrary bytes and
//! valid archives with bytes flipped or cut). Never a panic; bad input is a usage error (exit 2)
//! naming the source. Seeded; `PROPTEST_CASES=N` for a longer local run.

use std::collections::BTreeMap;
use std::path::Path;

use deploy_core::exit::{self, Exit};
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, RngSeed};
use serde_json::json;

use crate::render_tag;
use crate::source::{self, sha256};

/// Cases per target: `PROPTEST_CASES`, else `ci`.
fn config(ci: u32) -> PtConfig {
    PtConfig {
        cases: deploy_core::testing::proptest_cases(ci),
        rng_seed: RngSeed::Fixed(0x00c1_7a95),
        failure_persistence: None,
        ..PtConfig::default()
    }
}

fn vars() -> BTreeMap<&'static str, Option<String>> {
    BTreeMap::from([
        ("version", Some("v1.2.3".to_owned())),
        ("sha", Some("0123456789abcdef".to_owned())),
        ("sha7", Some("0123456".to_owned())),
        ("env", None),
    ])
}

/// An image's files: (path in the layout, bytes).
fn image_files(layer: &[u8], index_override: Option<Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": source::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(layer), "size": layer.len()}],
    }))
    .unwrap();
    let index = index_override.unwrap_or_else(|| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": source::OCI_MANIFEST, "digest": sha256(&manifest), "size": manifest.len()}],
        }))
        .unwrap()
    });
    let blob = |b: &[u8]| format!("blobs/sha256/{}", &sha256(b)[7..]);
    vec![
        (
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".into(), index),
        (blob(&manifest), manifest.clone()),
        (blob(&config), config.clone()),
        (blob(layer), layer.to_vec()),
    ]
}

fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, p, bytes.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

/// Loading must give an image or a usage error naming the source: never a panic, never exit 3.
fn check_load(src: &Path) -> Result<(), TestCaseError> {
    match source::load(src, None) {
        Ok(_) => Ok(()),
        Err(e) => {
            prop_assert_eq!(exit::classify(&e), Exit::Usage, "{:#}", e);
            let m = format!("{e:#}");
            prop_assert!(m.starts_with(&src.display().to_string()), "{m}");
            Ok(())
        }
    }
}

/// Index JSON of many shapes: valid, missing fields, wrong types, bad digests, traversal.
fn index_json() -> impl Strategy<Value = Vec<u8>> {
    let digest = prop_oneof![
        Just(serde_json::Value::String("sha256:".into())),
        Just(json!("sha256:../../etc/passwd")),
        Just(json!("nocolon")),
        Just(json!(":abc")),
        Just(json!(12)),
        "[a-z0-9:]{0,20}".prop_map(serde_json::Value::String),
    ];
    let size = prop_oneof![
        Just(json!(-1)),
        Just(json!(u64::MAX)),
        Just(json!("10")),
        any::<u32>().prop_map(|n| json!(n)),
    ];
    let entry = (digest, size, any::<bool>()).prop_map(|(d, s, index)| {
        json!({
            "digest": d, "size": s,
            "mediaType": if index { source::OCI_INDEX } else { source::OCI_MANIFEST },
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        })
    });
    prop_oneof![
        prop::collection::vec(entry, 0..3)
            .prop_map(
                |m| serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": m})).unwrap()
            ),
        Just(b"{\"manifests\": {}}".to_vec()),
        Just(b"[]".to_vec()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn tag_templates_render_valid_tags_or_say_why(t in "[a-z0-9{}._-]{0,24}|\\{[a-z0-9]{0,8}\\}.{0,8}") {
        match render_tag(&t, &vars()) {
            Ok(tag) => {
                prop_assert!(!tag.is_empty() && tag.len() <= 128, "{tag}");
                prop_assert!(tag.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)), "{tag}");
            }
            Err(e) => {
                prop_assert_eq!(exit::classify(&e), Exit::Usage);
                prop_assert!(format!("{e:#}").contains("tag"), "{e:#}");
            }
        }
    }
}

proptest! {
    #![proptest_config(config(600))]

    #[test]
    fn oci_layout_with_arbitrary_index_never_panics(index in index_json()) {
        let dir = tempfile::tempdir().unwrap();
        for (p, bytes) in image_files(b"layer", Some(index)) {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        check_load(dir.path())?;
    }

    #[test]
    fn arbitrary_bytes_as_an_archive_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img.tar");
        std::fs::write(&p, bytes).unwrap();
        check_load(&p)?;
    }

    #[test]
    fn damaged_oci_archive_never_panics(
        layer in prop::collection::vec(any::<u8>(), 0..600),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut tar = tar_of(&image_files(&layer, None));
        for (at, byte) in flips {
            let i = at.index(tar.len());
            tar[i] = byte;
        }
        if let Some(c) = cut {
            tar.truncate(c.index(tar.len()));
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img.tar");
        std::fs::write(&p, tar).unwrap();
        check_load(&p)?;
    }

    #[test]
    fn damaged_docker_archive_never_panics(
        manifest in prop_oneof![
            Just(br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["l/layer.tar"]}]"#.to_vec()),
            Just(br#"[{"Config":"../c.json","Layers":[]}]"#.to_vec()),
            Just(br#"[{"Config":3,"Layers":"x"}]"#.to_vec()),
            Just(br#"[]"#.to_vec()),
            Just(br#"[{},{}]"#.to_vec()),
            prop::collection::vec(any::<u8>(), 0..40),
        ],
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let files = vec![
            ("manifest.json".to_owned(), manifest),
            ("c.json".to_owned(), br#"{"rootfs":{"diff_ids":[]}}"#.to_vec()),
            ("l/layer.tar".to_owned(), b"layer bytes".to_vec()),
        ];
        let mut tar = tar_of(&files);
        for (at, byte) in flips {
            let i = at.index(tar.len());
            tar[i] = byte;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img.tar");
        std::fs::write(&p, tar).unwrap();
        check_load(&p)?;
    }
}

#[test]
fn the_undamaged_archive_loads() {
    // The generators above start from this image: it must be valid, or they test nothing.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("img.tar");
    std::fs::write(&p, tar_of(&image_files(b"some layer", None))).unwrap();
    let img = source::load(&p, None).unwrap();
    assert_eq!(img.blobs.len(), 2);
}

#[test]
fn an_index_with_a_malformed_digest_is_refused_by_name() {
    // oci-spec validates digests: a traversal or a short hex never becomes a path to read.
    let upper = format!("sha256:{}", "A".repeat(64));
    for digest in ["sha256:../../etc/passwd", "sha256:abc", "sha256", &upper] {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img.tar");
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": source::OCI_MANIFEST, "digest": digest, "size": 10}],
        }))
        .unwrap();
        std::fs::write(&p, tar_of(&image_files(b"some layer", Some(index)))).unwrap();
        let e = source::load(&p, None).unwrap_err();
        assert_eq!(exit::classify(&e), Exit::Usage);
        let m = format!("{e:#}");
        assert!(m.contains("index.json is not a valid"), "{digest}: {m}");
    }
}
