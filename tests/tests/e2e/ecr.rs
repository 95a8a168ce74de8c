//! ecr-push end to end: moto for the ECR API (repositories, mutability, the auth token), the real
//! registry (htpasswd accepting moto's token) for the data plane, skopeo to verify what landed,
//! and a fault proxy for a 500, a dropped connection and a refused password.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::Path;
use std::process::Command;

use deploy_action_e2e::faults::{self, Fault};
use deploy_action_e2e::oci::{self, Built};
use deploy_action_e2e::rig::{self, Ran, aws_env, run, tool, unique, words};
use deploy_core::aws_sdk_ecr::types::ImageTagMutability;
use serde_json::Value;

const TOKEN: &str = "123456789012-auth-token";

async fn repo(mutability: ImageTagMutability) -> String {
    let name = unique("afu9/svc");
    let ecr = deploy_core::aws::ecr(&rig::moto_sdk().await);
    ecr.create_repository()
        .repository_name(&name)
        .image_tag_mutability(mutability)
        .send()
        .await
        .unwrap();
    name
}

/// Reads the registry back with plain HTTP (the distribution API by hand, independent of the
/// code under test), to check what did and did not land.
struct Plain {
    base: String,
    http: deploy_core::http::HttpClient,
}

fn registry(url: &str) -> Plain {
    Plain {
        base: url.trim_end_matches('/').to_owned(),
        http: deploy_core::http::HttpClient::new("test", deploy_core::http::HttpOptions::default())
            .unwrap(),
    }
}

impl Plain {
    async fn head(&self, path: &str) -> anyhow::Result<deploy_core::http::Response> {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{TOKEN}"));
        let headers = [
            deploy_core::http::Header::new("Authorization", format!("Basic {basic}")),
            deploy_core::http::Header::new(
                "Accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json",
            ),
        ];
        Ok(self
            .http
            .send(
                "HEAD",
                &format!("{}{path}", self.base),
                &headers,
                None,
                None,
            )
            .await?)
    }

    /// The digest `reference` points at in `repo`, or None when the registry says 404.
    async fn manifest_digest(&self, repo: &str, reference: &str) -> anyhow::Result<Option<String>> {
        let r = self
            .head(&format!("/v2/{repo}/manifests/{reference}"))
            .await?;
        match r.status {
            404 => Ok(None),
            200 => Ok(Some(
                r.header("docker-content-digest")
                    .ok_or_else(|| anyhow::anyhow!("no digest header"))?
                    .to_owned(),
            )),
            s => anyhow::bail!("HEAD manifest {repo}:{reference}: {s}"),
        }
    }

    /// The digest `reference` points at in `repo`, or None when the registry says 404 (a panic
    /// on any other answer).
    async fn at(&self, repo: &str, reference: &str) -> Option<String> {
        self.manifest_digest(repo, reference).await.unwrap()
    }

    /// Whether `repo` has the blob.
    async fn has_blob(&self, repo: &str, digest: &str) -> anyhow::Result<bool> {
        let r = self.head(&format!("/v2/{repo}/blobs/{digest}")).await?;
        match r.status {
            404 => Ok(false),
            200 => Ok(true),
            s => anyhow::bail!("HEAD blob {repo}@{digest}: {s}"),
        }
    }
}

fn host() -> String {
    rig::registry_url().trim_start_matches("http://").to_owned()
}

/// ecr-push in `dir` pointed at moto and the registry at `registry_url`, with `args`, a command
/// line split at white space.
fn push_cmd(dir: &Path, registry_url: &str, args: &str) -> Command {
    let mut c = tool("ecr-push", dir);
    aws_env(&mut c)
        .args(["--registry-url", registry_url])
        .args(words(args));
    c
}

/// Runs [`push_cmd`] against the rig's registry: what it did.
async fn push_plain(dir: &Path, args: &str) -> Ran {
    run(push_cmd(dir, &rig::registry_url(), args)).await
}

async fn push(dir: &Path, args: &str) -> (Ran, Value) {
    push_via(dir, &rig::registry_url(), args).await
}

async fn push_via(dir: &Path, registry_url: &str, args: &str) -> (Ran, Value) {
    let args = format!("--format json --sha 22cdb6a41c42366ad165a0fb4c96282304f6f7ae {args}");
    let r = run(push_cmd(dir, registry_url, &args)).await;
    let v = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    (r, v)
}

/// [`push`] that must succeed: its report.
async fn pushed(dir: &Path, args: &str) -> Value {
    let (ran, v) = push(dir, args).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    v
}

/// A fault proxy in front of the rig's registry.
async fn proxy(fault: Fault) -> faults::Proxy {
    faults::start(host(), fault).await
}

/// `skopeo inspect` of `repo:tag` in the registry: (digest, layers).
fn skopeo(repo: &str, tag: &str) -> (String, Vec<String>) {
    let out = std::process::Command::new(rig::var("DEPLOY_TEST_SKOPEO"))
        .args([
            "inspect",
            "--tls-verify=false",
            "--creds",
            &format!("AWS:{TOKEN}"),
        ])
        .arg(format!("docker://{}/{repo}:{tag}", host()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let layers = v["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect();
    (v["Digest"].as_str().unwrap().to_owned(), layers)
}

fn layout(dir: &Path, name: &str, sizes: &[usize], seed: u64) -> (String, Built) {
    let p = dir.join(name);
    let layers: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, s)| oci::random_bytes(*s, seed * 100 + i as u64))
        .collect();
    let b = oci::oci_layout(&p, &layers, seed);
    (p.to_str().unwrap().to_owned(), b)
}

fn audit_actions(v: &Value) -> Vec<String> {
    v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn pushes_an_oci_layout_exactly_and_a_repush_is_a_no_op() {
    let r = repo(ImageTagMutability::Immutable).await;
    let dir = tempfile::tempdir().unwrap();
    let (src, built) = layout(dir.path(), "img", &[300_000, 200_000, 100_000], 1);
    let args = format!("--repository {r} --source {src} --tag v0.4.0 --tag sha-{{sha7}}");
    let v = pushed(dir.path(), &args).await;
    let (digest, layers) = skopeo(&r, "v0.4.0");
    assert_eq!(
        digest, built.manifest_digest,
        "the manifest went up as its exact bytes"
    );
    assert_eq!(layers, built.layers);
    assert_eq!(skopeo(&r, "sha-22cdb6a").0, built.manifest_digest);
    let name = r.rsplit('/').next().unwrap();
    assert_eq!(
        v["outputs"]["images"],
        format!("{name}={}/{r}@{}", host(), built.manifest_digest)
    );
    assert!(
        v["outputs"]["bytes-pushed"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 600_000
    );

    // The re-push, through a proxy that fails every blob check: it needs none, as every tag
    // already points at the image.
    let proxy = proxy(Fault::FailBlobChecks).await;
    let (ran, v) = push_via(dir.path(), &proxy.url, &args).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        !proxy.fired.load(std::sync::atomic::Ordering::SeqCst),
        "no blob was checked"
    );
    assert_eq!(v["outputs"]["bytes-pushed"], "0");
    assert!(
        audit_actions(&v).is_empty(),
        "nothing changed: {:?}",
        v["audit"]
    );
    let details = &v["checks"][0]["details"];
    assert!(
        details.to_string().contains("already at this digest"),
        "{details}"
    );
    // A new tag is a push that checks its blobs (and here meets the proxy's 500s).
    let (ran, _) = push_via(dir.path(), &proxy.url, &format!("{args} --tag extra")).await;
    assert_ne!(ran.code, 0, "{ran:?}");
    assert!(proxy.fired.load(std::sync::atomic::Ordering::SeqCst));
}

#[tokio::test]
async fn pushes_a_docker_archive() {
    let r = repo(ImageTagMutability::Immutable).await;
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("image.tar");
    let layers: Vec<Vec<u8>> = (0..2)
        .map(|i| oci::random_bytes(150_000, 700 + i))
        .collect();
    let built = oci::docker_archive(&tarball, &layers, 7);
    let args = format!("--repository {r} --source {} --tag v1", tarball.display());
    pushed(dir.path(), &args).await;
    let (_, pushed_layers) = skopeo(&r, "v1");
    assert_eq!(
        pushed_layers, built.layers,
        "layer digests are the archive's diff_ids"
    );
}

#[tokio::test]
async fn immutable_tag_conflict_pushes_nothing() {
    let r = repo(ImageTagMutability::Immutable).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, built_a) = layout(dir.path(), "a", &[50_000], 11);
    let (b, built_b) = layout(dir.path(), "b", &[60_000], 12);
    pushed(
        dir.path(),
        &format!("--repository {r} --source {a} --tag v1"),
    )
    .await;
    let args = format!("--repository {r} --source {b} --tag v2 --tag v1");
    let (ran, v) = push(dir.path(), &args).await;
    assert_eq!(ran.code, 1, "{ran:?}");
    let reason = v["checks"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("nothing pushed: v1 points at") && reason.contains("IMMUTABLE"),
        "{reason}"
    );
    let reg = registry(&rig::registry_url());
    assert_eq!(reg.at(&r, "v1").await, Some(built_a.manifest_digest));
    assert_eq!(reg.at(&r, "v2").await, None, "no tag moved or created");
    assert!(
        !reg.has_blob(&r, &built_b.layers[0]).await.unwrap(),
        "no blob pushed"
    );
}

#[tokio::test]
async fn moving_tags_move_on_mutable_repositories_and_version_tags_do_not() {
    let r = repo(ImageTagMutability::Mutable).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, built_a) = layout(dir.path(), "a", &[40_000], 21);
    let (b, built_b) = layout(dir.path(), "b", &[40_000], 22);
    let base = format!("--repository {r} --moving-tag staging");
    pushed(
        dir.path(),
        &format!("{base} --source {a} --tag v1 --tag staging"),
    )
    .await;
    let v = pushed(
        dir.path(),
        &format!("{base} --source {b} --tag v2 --tag staging"),
    )
    .await;
    assert!(audit_actions(&v).contains(&"registry:move tag".to_owned()));
    let reg = registry(&rig::registry_url());
    assert_eq!(
        reg.at(&r, "staging").await.as_ref(),
        Some(&built_b.manifest_digest)
    );
    assert_eq!(
        reg.at(&r, "v1").await.as_ref(),
        Some(&built_a.manifest_digest)
    );

    let (ran, v) = push(dir.path(), &format!("{base} --source {b} --tag v1")).await;
    assert_eq!(ran.code, 1, "a version tag does not move: {ran:?}");
    assert!(
        v["checks"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not a moving tag")
    );
    assert_eq!(
        reg.at(&r, "v1").await.as_ref(),
        Some(&built_a.manifest_digest)
    );
    let args = format!("{base} --source {b} --tag v1 --allow-retag");
    pushed(dir.path(), &args).await;
    assert_eq!(reg.at(&r, "v1").await, Some(built_b.manifest_digest));
}

#[tokio::test]
async fn adding_a_tag_is_a_manifest_only_retag() {
    let r = repo(ImageTagMutability::Immutable).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, built) = layout(dir.path(), "a", &[80_000, 80_000], 31);
    let args = format!("--repository {r} --source {a} --tag v1");
    pushed(dir.path(), &args).await;
    // At the wire: the manifest already there is not put again; the new tag is the one PUT.
    use deploy_action_e2e::recorder::{Mode, Recorder};
    let seen = Recorder::start("127.0.0.1", Mode::Forward(rig::registry_url())).await;
    let (ran, v) = push_via(dir.path(), &seen.url, &format!("{args} --tag production")).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(v["outputs"]["bytes-pushed"], "0");
    assert_eq!(audit_actions(&v), ["registry:create tag"]);
    let puts: Vec<_> = seen
        .requests()
        .into_iter()
        .filter(|q| q.method == "PUT" || q.method == "POST")
        .map(|q| format!("{} {}", q.method, q.uri))
        .collect();
    assert_eq!(puts, [format!("PUT /v2/{r}/manifests/production")]);
    assert_eq!(skopeo(&r, "production").0, built.manifest_digest);
}

#[tokio::test]
async fn blobs_are_mounted_from_another_repository_of_the_run() {
    let (r1, r2) = (
        repo(ImageTagMutability::Immutable).await,
        repo(ImageTagMutability::Immutable).await,
    );
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = layout(dir.path(), "a", &[120_000, 90_000], 41);
    rig::write_config(
        dir.path(),
        format!(
            "[images.a-first]\nrepository = \"{r1}\"\nsource = \"{a}\"\ntags = [\"v1\"]\n\n[images.b-second]\nrepository = \"{r2}\"\nsource = \"{a}\"\ntags = [\"v1\"]\n"
        ),
    );
    let v = pushed(dir.path(), "").await;
    let actions = audit_actions(&v);
    for kind in ["registry:upload blob", "registry:mount blob"] {
        assert_eq!(
            actions.iter().filter(|a| *a == kind).count(),
            3,
            "{actions:?}"
        );
    }
    assert!(
        v["outputs"]["images"]
            .as_str()
            .unwrap()
            .contains("b-second=")
    );
}

#[tokio::test]
async fn the_repositories_of_a_run_are_described_in_one_call() {
    // Through the recording stand-in in front of moto: the ECR calls are counted.
    let standin = deploy_action_e2e::ecs_standin::EcsStandIn::start(&rig::moto_url())
        .await
        .unwrap();
    let (r1, r2) = (
        repo(ImageTagMutability::Mutable).await,
        repo(ImageTagMutability::Immutable).await,
    );
    let dir = tempfile::tempdir().unwrap();
    let (a, built) = layout(dir.path(), "a", &[50_000], 43);
    let images = |r: &str, tag: &str| {
        format!(
            "[images.one]\nrepository = \"{r1}\"\nsource = \"{a}\"\ntags = [\"{tag}\"]\n\n[images.two]\nrepository = \"{r}\"\nsource = \"{a}\"\ntags = [\"{tag}\"]\n"
        )
    };
    rig::write_config(dir.path(), images(&r2, "v1"));
    let push_recorded = |extra: &str| {
        let mut c = push_cmd(
            dir.path(),
            &rig::registry_url(),
            &format!("--format json --sha 22cdb6a41c42366ad165a0fb4c96282304f6f7ae {extra}"),
        );
        c.env("AWS_ENDPOINT_URL", &standin.url);
        run(c)
    };
    let ran = push_recorded("").await;
    assert_eq!(ran.code, 0, "{ran:?}");
    let describes = standin.calls_of("AmazonEC2ContainerRegistry_V20150921.DescribeRepositories");
    assert_eq!(describes.len(), 1, "{describes:?}");
    let mut names: Vec<&str> = describes[0].body["repositoryNames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    names.sort_unstable();
    let mut want = [r1.as_str(), r2.as_str()];
    want.sort_unstable();
    assert_eq!(names, want);
    // Each repository's own mutability was read from the one answer: v1 on the IMMUTABLE r2 is
    // refused when it would move, and nothing moves anywhere.
    let (other, _) = layout(dir.path(), "b", &[60_000], 44);
    rig::write_config(
        dir.path(),
        images(&r2, "v1").replace(
            &format!("source = \"{a}\""),
            &format!("source = \"{other}\""),
        ),
    );
    let ran = push_recorded("--allow-retag").await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(ran.stdout.contains("IMMUTABLE"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("move from"),
        "the MUTABLE one would have moved"
    );
    assert_eq!(skopeo(&r1, "v1").0, built.manifest_digest);
    // A repository that does not exist fails the one call: each is then described on its own,
    // and the missing one is named.
    let missing = unique("bench/missing");
    rig::write_config(dir.path(), images(&missing, "v2"));
    let before = standin
        .calls_of("AmazonEC2ContainerRegistry_V20150921.DescribeRepositories")
        .len();
    let ran = push_recorded("").await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stdout.contains(&missing) || ran.stderr.contains(&missing),
        "{ran:?}"
    );
    let after = standin
        .calls_of("AmazonEC2ContainerRegistry_V20150921.DescribeRepositories")
        .len();
    assert_eq!(after - before, 3, "one call for both, then one for each");
}

/// Pushes a layout of one `size` byte layer as `v1` through a proxy with `fault`, which must fire,
/// and then to succeed: what it did, and the layout's image.
async fn push_through(fault: Fault, size: usize, seed: u64) -> (Ran, Built, String) {
    let r = repo(ImageTagMutability::Immutable).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, built) = layout(dir.path(), "a", &[size], seed);
    let proxy = proxy(fault).await;
    let args = format!("--repository {r} --source {a} --tag v1");
    let (ran, _) = push_via(dir.path(), &proxy.url, &args).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        proxy.fired.load(std::sync::atomic::Ordering::SeqCst),
        "the fault did not fire"
    );
    (ran, built, r)
}

/// Each blob goes up in two requests, the monolithic "POST then PUT" (no PATCH, so ECR's chunk
/// rules never apply): a session is opened, and one PUT with the digest carries all its bytes.
#[tokio::test]
async fn each_blob_is_one_post_and_one_put_carrying_its_bytes() {
    use deploy_action_e2e::recorder::{Mode, Recorder};
    let r = repo(ImageTagMutability::Immutable).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, built) = layout(dir.path(), "a", &[120_000, 70_000], 81);
    let seen = Recorder::start("127.0.0.1", Mode::Forward(rig::registry_url())).await;
    let (ran, _) = push_via(
        dir.path(),
        &seen.url,
        &format!("--repository {r} --source {a} --tag v1"),
    )
    .await;
    assert_eq!(ran.code, 0, "{ran:?}");
    let requests = seen.requests();
    let uploads = format!("/v2/{r}/blobs/uploads/");
    let opened = requests
        .iter()
        .filter(|q| q.method == "POST" && q.uri == uploads)
        .count();
    let puts: Vec<_> = requests
        .iter()
        .filter(|q| q.method == "PUT" && q.uri.starts_with(&uploads))
        .collect();
    // Two layers and the config.
    assert_eq!((opened, puts.len()), (3, 3), "{requests:?}");
    // The manifest goes up by digest (not asked for first: its blobs were not there, so it was
    // not either), then under its tag.
    let manifests: Vec<_> = requests
        .iter()
        .filter(|q| q.uri.contains("/manifests/"))
        .map(|q| format!("{} {}", q.method, q.uri))
        .collect();
    assert_eq!(
        manifests,
        [
            format!("HEAD /v2/{r}/manifests/v1"),
            format!("PUT /v2/{r}/manifests/{}", built.manifest_digest),
            format!("PUT /v2/{r}/manifests/v1"),
        ]
    );
    assert!(requests.iter().all(|q| q.method != "PATCH"), "{requests:?}");
    let carried = |size: usize| {
        puts.iter().any(|q| {
            q.uri.contains("digest=sha256")
                && q.headers
                    .iter()
                    .any(|(k, v)| k == "content-length" && *v == size.to_string())
        })
    };
    for size in [120_000, 70_000] {
        assert!(
            carried(size),
            "no PUT carried the {size}-byte layer: {puts:?}"
        );
    }
    assert_eq!(skopeo(&r, "v1"), (built.manifest_digest, built.layers));
}

#[tokio::test]
async fn a_500_on_the_first_upload_is_retried() {
    let (ran, built, r) = push_through(Fault::Fail500OnFirstUpload, 200_000, 51).await;
    assert!(
        ran.stderr.contains("500"),
        "the retry is logged: {}",
        ran.stderr
    );
    assert_eq!(skopeo(&r, "v1").0, built.manifest_digest);
}

/// Upload sessions are opened ahead of their turn: one the registry has forgotten by then (404
/// BLOB_UPLOAD_UNKNOWN, as after a purge) is not a failed push but a new session.
#[tokio::test]
async fn a_session_the_registry_forgot_is_opened_again() {
    let (ran, built, r) = push_through(Fault::ForgetFirstSession, 150_000, 53).await;
    assert!(
        ran.stderr.contains("BLOB_UPLOAD_UNKNOWN") && ran.stderr.contains("retrying"),
        "the retry is logged: {}",
        ran.stderr
    );
    assert_eq!(skopeo(&r, "v1"), (built.manifest_digest, built.layers));
}

#[tokio::test]
async fn a_connection_dropped_mid_blob_is_retried() {
    let fault = Fault::DropFirstUploadAfter(1_000_000);
    let (_, built, r) = push_through(fault, 3_000_000, 61).await;
    assert_eq!(skopeo(&r, "v1"), (built.manifest_digest, built.layers));
}

/// ecr-push with `args` through `proxy` (which stalls uploads), cancelled like GitHub does once
/// an upload started: exit 1, and its JSON report.
async fn cancelled_mid_upload(dir: &Path, proxy: &faults::Proxy, args: &str) -> Value {
    let child = rig::spawn(push_cmd(dir, &proxy.url, args));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !proxy.fired.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(std::time::Instant::now() < deadline, "no upload started");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let out = rig::sigterm(child).await;
    assert_eq!(out.code, 1, "{out:?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// A cancelled job (SIGTERM) in the middle of an upload: a partial report, exit 1, and no tag in
/// the registry (read back with plain HTTP); a re-run then pushes normally.
#[tokio::test]
async fn sigterm_mid_upload_moves_no_tag_and_reports_partially() {
    let r = repo(ImageTagMutability::Immutable).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, built) = layout(dir.path(), "a", &[300_000], 71);
    let proxy = proxy(Fault::StallUploads).await;
    let args = format!(
        "--format json --sha 22cdb6a41c42366ad165a0fb4c96282304f6f7ae --repository {r} --source {a} --tag v1"
    );
    let v = cancelled_mid_upload(dir.path(), &proxy, &args).await;
    assert_eq!(v["outcome"], "failed", "{v}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("interrupted by SIGTERM during the upload"),
        "{v}"
    );
    assert_eq!(v["checks"][0]["status"], "skipped", "{v}");
    let plain = registry(&rig::registry_url());
    assert_eq!(plain.at(&r, "v1").await, None);
    assert_eq!(
        plain.at(&r, &built.manifest_digest).await,
        None,
        "no manifest was pushed"
    );
    pushed(
        dir.path(),
        &format!("--repository {r} --source {a} --tag v1"),
    )
    .await;
    assert_eq!(skopeo(&r, "v1").0, built.manifest_digest);
}

/// A push cut short by a signal still audits every call it made: here the repository it
/// created (`--create-repo`) before its uploads stalled.
#[tokio::test]
async fn a_cancelled_push_still_audits_the_calls_it_made() {
    let r = unique("afu9/created");
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = layout(dir.path(), "a", &[300_000], 75);
    let proxy = proxy(Fault::StallUploads).await;
    let args = format!("--format json --create-repo --repository {r} --source {a} --tag v1");
    let v = cancelled_mid_upload(dir.path(), &proxy, &args).await;
    let audit = v["audit"].as_array().cloned().unwrap_or_default();
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "ecr:CreateRepository" && e["outcome"] == "done"),
        "{v:#}"
    );
    // The time taken is an output of every report, an interrupted push's too.
    assert!(
        v["outputs"]["duration-seconds"]
            .as_str()
            .is_some_and(|d| d.parse::<f64>().is_ok()),
        "{v:#}"
    );
}

/// While a blob's bytes go up, the next blob is checked and its session opened, so its upload
/// starts the moment a permit frees; no more than `--concurrency` sessions wait ahead. Seen at
/// the wire: with `--concurrency 1` and the first upload held unanswered, exactly one more
/// session is opened and no second upload starts.
#[tokio::test]
async fn the_next_blobs_session_is_open_while_a_blob_uploads() {
    use deploy_action_e2e::recorder::{Mode, Recorder};
    let r = repo(ImageTagMutability::Immutable).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = layout(dir.path(), "a", &[200_000, 200_000, 200_000], 73);
    let stall = proxy(Fault::StallUploads).await;
    let seen = Recorder::start("127.0.0.1", Mode::Forward(stall.url.clone())).await;
    let args = format!("--concurrency 1 --repository {r} --source {a} --tag v1");
    let child = rig::spawn(push_cmd(dir.path(), &seen.url, &args));
    let uploads = format!("/v2/{r}/blobs/uploads/");
    let count = |method: &str| {
        seen.requests()
            .iter()
            .filter(|q| q.method == method && q.uri.starts_with(&uploads))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count("POST") < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no second session opened: {:?}",
            seen.requests()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Time for a wrongly opened third session or second upload to show.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        (count("POST"), count("PUT")),
        (2, 1),
        "{:?}",
        seen.requests()
    );
    assert!(stall.fired.load(std::sync::atomic::Ordering::SeqCst));
    let out = rig::sigterm(child).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(registry(&rig::registry_url()).at(&r, "v1").await, None);
}

#[tokio::test]
async fn a_refused_password_is_exit_3_and_never_printed() {
    let r = repo(ImageTagMutability::Immutable).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = layout(dir.path(), "a", &[10_000], 71);
    let proxy = proxy(Fault::Unauthorized).await;
    let args = format!("--repository {r} --source {a} --tag v1");
    let (ran, v) = push_via(dir.path(), &proxy.url, &args).await;
    assert_eq!(ran.code, 3, "{ran:?}");
    assert!(
        v["checks"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("registry refused the credentials (401 Unauthorized)"),
        "{v:#}"
    );
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{TOKEN}"));
    assert!(
        !ran.all().contains(TOKEN) && !ran.all().contains(&basic),
        "credentials leaked"
    );
}

#[tokio::test]
async fn missing_or_corrupt_sources_are_usage_errors() {
    let r = repo(ImageTagMutability::Immutable).await;
    let dir = tempfile::tempdir().unwrap();
    let from = |source: &str| format!("--repository {r} --source {source} --tag v1");
    let ran = push_plain(dir.path(), &from("nope/")).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains("nope/: cannot read the image source"),
        "{}",
        ran.stderr
    );

    let (a, built) = layout(dir.path(), "a", &[10_000], 81);
    std::fs::remove_file(
        Path::new(&a)
            .join("blobs/sha256")
            .join(built.layers[0].trim_start_matches("sha256:")),
    )
    .unwrap();
    let ran = push_plain(dir.path(), &from(&a)).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains("corrupt layout: blob blobs/sha256/")
            && ran.stderr.contains("is missing"),
        "{}",
        ran.stderr
    );

    std::fs::write(Path::new(&a).join("index.json"), "{not json").unwrap();
    let ran = push_plain(dir.path(), &from(&a)).await;
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr.contains("index.json is not JSON"),
        "{}",
        ran.stderr
    );

    // A layer with one byte changed (same size): the registry hashes what arrives and refuses
    // it; a usage error that says the source is corrupt, and no tag.
    let (b, built) = layout(dir.path(), "b", &[10_000], 82);
    let blob = Path::new(&b)
        .join("blobs/sha256")
        .join(built.layers[0].trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[5000] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let ran = push_plain(dir.path(), &from(&b)).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains("the source is corrupt"),
        "{}",
        ran.stderr
    );
    assert_eq!(registry(&rig::registry_url()).at(&r, "v1").await, None);
}

#[tokio::test]
async fn dry_run_changes_nothing_and_create_repo_creates() {
    let name = unique("afu9/new");
    let dir = tempfile::tempdir().unwrap();
    let (a, built) = layout(dir.path(), "a", &[20_000], 91);
    let args = format!("--repository {name} --source {a} --tag v1");
    let ran = push_plain(dir.path(), &args).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr
            .contains("does not exist: create it or pass --create-repo"),
        "{}",
        ran.stderr
    );

    let v = pushed(dir.path(), &format!("{args} --create-repo --dry-run")).await;
    assert_eq!(v["dry_run"], true);
    assert_eq!(
        audit_actions(&v),
        [
            "ecr:CreateRepository",
            "registry:upload blob",
            "registry:upload blob",
            "registry:create tag"
        ]
    );
    let ecr = deploy_core::aws::ecr(&rig::moto_sdk().await);
    assert!(
        ecr.describe_repositories()
            .repository_names(&name)
            .send()
            .await
            .is_err(),
        "dry run created the repository"
    );
    let reg = registry(&rig::registry_url());
    assert_eq!(reg.at(&name, "v1").await, None);

    pushed(dir.path(), &format!("{args} --create-repo")).await;
    let repos = ecr
        .describe_repositories()
        .repository_names(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        repos.repositories()[0].image_tag_mutability(),
        Some(&ImageTagMutability::Immutable)
    );
    assert_eq!(reg.at(&name, "v1").await, Some(built.manifest_digest));
}

#[tokio::test]
async fn pushes_an_oci_tarball_and_a_multi_platform_index() {
    let r = repo(ImageTagMutability::Immutable).await;
    let dir = tempfile::tempdir().unwrap();
    let (src, built) = layout(dir.path(), "multi", &[70_000, 30_000], 101);
    let (index, children) =
        oci::make_multi_platform(Path::new(&src), &oci::random_bytes(40_000, 102));
    assert_eq!(children[0], built.manifest_digest);
    let tarball = dir.path().join("multi.tar");
    oci::tar_dir(Path::new(&src), &tarball);
    let args = format!("--repository {r} --source {} --tag v1", tarball.display());
    let v = pushed(dir.path(), &args).await;
    assert!(
        v["checks"][0]["details"]
            .to_string()
            .contains("OCI archive"),
        "{v:#}"
    );
    let reg = registry(&rig::registry_url());
    assert_eq!(
        reg.at(&r, "v1").await.as_ref(),
        Some(&index),
        "the tag points at the index"
    );
    for child in &children {
        assert_eq!(
            reg.at(&r, child).await.as_ref(),
            Some(child),
            "child {child} pushed"
        );
    }
    let (digest, layers) = skopeo(&r, "v1");
    assert_eq!(digest, index);
    assert_eq!(
        layers, built.layers,
        "skopeo resolves the index to this machine's (amd64) image"
    );
}

/// `docker` for the daemon source: `docker save NAME` writes the archive `docker save` would
/// (a docker-archive), and fails for an unknown image as docker does. No Docker engine is promised
/// on the project's machines; the streaming, hashing and upload path is the real one.
fn scripted_docker(dir: &Path, archive: &Path) -> std::path::PathBuf {
    script(
        dir,
        "docker",
        &format!(
            "[ \"$1\" = save ] && [ \"$2\" = -- ] || exit 64\n[ \"$3\" = afu9/daemon:v1 ] || {{ echo \"Error response from daemon: reference does not exist\" >&2; exit 1; }}\nexec cat '{}'",
            archive.display()
        ),
    )
}

/// ecr-push in `dir` of `image` from the Docker daemon (the `docker` at `docker`) to `repo` as
/// `v1`, with `extra` arguments first.
fn push_docker(dir: &Path, docker: &Path, extra: &str, repo: &str, image: &str) -> Command {
    let args = format!("{extra} --repository {repo} --source docker:{image} --tag v1");
    let mut c = push_cmd(dir, &rig::registry_url(), &args);
    c.env("DEPLOY_DOCKER", docker);
    c
}

/// `docker:` takes an image name, never an option of `docker save` (`-o FILE` would write
/// anywhere) and never nothing: refused before docker runs (it would exit 64 here).
#[tokio::test]
async fn a_docker_source_that_is_not_an_image_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("saved.tar");
    let docker = scripted_docker(dir.path(), &archive);
    for image in ["-o/tmp/x", "--output=/tmp/x", ""] {
        let ran = run(push_docker(dir.path(), &docker, "", "afu9/never", image)).await;
        assert_eq!(ran.code, 2, "{image:?}: {ran:?}");
        assert!(
            ran.stderr.contains("`docker:` needs an image name"),
            "{image:?}: {}",
            ran.stderr
        );
    }
}

#[tokio::test]
async fn pushes_from_docker_save_without_a_temp_copy() {
    let r = repo(ImageTagMutability::Immutable).await;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("saved.tar");
    // One layer above the in-memory metadata limit (streamed and hashed), one below.
    let layers = vec![
        oci::random_bytes(5 * 1024 * 1024, 111),
        oci::random_bytes(50_000, 112),
    ];
    let built = oci::docker_archive(&archive, &layers, 11);
    let docker = scripted_docker(dir.path(), &archive);
    let c = push_docker(dir.path(), &docker, "--format json", &r, "afu9/daemon:v1");
    let ran = run(c).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    let v: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert!(
        v["checks"][0]["details"]
            .to_string()
            .contains("Docker daemon"),
        "{v:#}"
    );
    let streamed = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["detail"]
                .as_str()
                .unwrap_or("")
                .contains("streamed from docker save")
        })
        .count();
    assert_eq!(
        streamed, 3,
        "config and two layers streamed: {:#}",
        v["audit"]
    );
    let (_, pushed) = skopeo(&r, "v1");
    assert_eq!(pushed, built.layers);

    let ran = run(push_docker(dir.path(), &docker, "", &r, "afu9/missing:v1")).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains("`docker save afu9/missing:v1` failed"),
        "{}",
        ran.stderr
    );
}

#[tokio::test]
async fn a_refused_image_stops_every_image_before_any_tag_moves() {
    let (r1, r2) = (
        repo(ImageTagMutability::Mutable).await,
        repo(ImageTagMutability::Immutable).await,
    );
    let dir = tempfile::tempdir().unwrap();
    let (old_a, built_old_a) = layout(dir.path(), "old-a", &[20_000], 121);
    let (old_b, _) = layout(dir.path(), "old-b", &[20_000], 122);
    let (new_a, built_new_a) = layout(dir.path(), "new-a", &[20_000], 123);
    let (new_b, _) = layout(dir.path(), "new-b", &[20_000], 124);
    let args = format!("--repository {r1} --source {old_a} --tag staging");
    pushed(dir.path(), &args).await;
    let args = format!("--repository {r2} --source {old_b} --tag v1");
    pushed(dir.path(), &args).await;
    rig::write_config(
        dir.path(),
        format!(
            "[images.a]\nrepository = \"{r1}\"\nsource = \"{new_a}\"\ntags = [\"staging\"]\nmoving_tags = [\"staging\"]\n\n[images.b]\nrepository = \"{r2}\"\nsource = \"{new_b}\"\ntags = [\"v1\"]\n"
        ),
    );
    let (ran, v) = push(dir.path(), "").await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!(v["checks"][0]["status"], "skipped", "{v:#}");
    assert_eq!(v["checks"][1]["status"], "failed", "{v:#}");
    let reg = registry(&rig::registry_url());
    assert_eq!(
        reg.at(&r1, "staging").await,
        Some(built_old_a.manifest_digest),
        "staging did not move"
    );
    assert!(
        !reg.has_blob(&r1, &built_new_a.layers[0]).await.unwrap(),
        "nothing of image a was pushed"
    );
}

fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[tokio::test]
async fn docker_daemon_failures_are_classified_and_a_chatty_save_does_not_stall() {
    let r = repo(ImageTagMutability::Immutable).await;
    let dir = tempfile::tempdir().unwrap();
    let push_with =
        |docker: std::path::PathBuf| push_docker(dir.path(), &docker, "", &r, "afu9/daemon:v1");
    // The daemon is down: an outside dependency, exit 3.
    let down = script(
        dir.path(),
        "docker-down",
        "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2; exit 1",
    );
    let ran = run(push_with(down)).await;
    assert_eq!(ran.code, 3, "{ran:?}");
    assert!(
        ran.stderr.contains("Is the docker daemon running?"),
        "{}",
        ran.stderr
    );
    // The daemon has no such image: a usage error, exit 2.
    let missing = script(
        dir.path(),
        "docker-missing",
        "echo 'Error response from daemon: reference does not exist' >&2; exit 1",
    );
    let ran = run(push_with(missing)).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains("reference does not exist"),
        "{}",
        ran.stderr
    );
    // 200 KiB of warnings on stderr before the archive (more than a pipe holds): read while the
    // archive streams, so the save neither stalls nor fails.
    let archive = dir.path().join("saved.tar");
    oci::docker_archive(&archive, &[oci::random_bytes(40_000, 121)], 12);
    let chatty = script(
        dir.path(),
        "docker-chatty",
        &format!(
            "head -c 204800 /dev/zero | tr '\\0' 'w' >&2\nexec cat '{}'",
            archive.display()
        ),
    );
    let mut c = push_with(chatty);
    c.arg("--dry-run");
    let ran = tokio::time::timeout(std::time::Duration::from_secs(60), run(c))
        .await
        .expect("docker save with a full stderr pipe stalled the push");
    assert_eq!(ran.code, 0, "{ran:?}");
}

#[tokio::test]
async fn image_picks_images_and_protected_environments_need_confirm() {
    let (ra, rb) = (
        repo(ImageTagMutability::Immutable).await,
        repo(ImageTagMutability::Immutable).await,
    );
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = layout(dir.path(), "a", &[3000], 31);
    let (b, _) = layout(dir.path(), "b", &[3000], 32);
    rig::write_config(
        dir.path(),
        format!(
            "[environments.production]\nprotected = true\n\n[images.one]\nrepository = \"{ra}\"\nsource = \"{a}\"\ntags = [\"v1\", \"{{env}}\"]\n\n[images.two]\nrepository = \"{rb}\"\nsource = \"{b}\"\ntags = [\"v1\"]\n"
        ),
    );
    let reg = registry(&rig::registry_url());
    // Protected without --confirm: refused before anything is read or pushed.
    let ran = push_plain(dir.path(), "-e production").await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr
            .contains("environment \"production\" is protected: pass --confirm production"),
        "{}",
        ran.stderr
    );
    // The wrong name does not confirm either.
    let ran = push_plain(dir.path(), "-e production --confirm staging").await;
    assert_eq!(ran.code, 2);
    assert_eq!(reg.at(&ra, "v1").await, None, "pushed without --confirm");
    // --dry-run needs no confirmation and changes nothing.
    pushed(dir.path(), "-e production --dry-run").await;
    assert_eq!(reg.at(&ra, "v1").await, None);
    // Confirmed, with --image one: only image one is pushed.
    let v = pushed(dir.path(), "-e production --confirm production --image one").await;
    assert_eq!(v["checks"].as_array().unwrap().len(), 1, "{v:#}");
    assert!(reg.at(&ra, "production").await.is_some());
    assert_eq!(reg.at(&rb, "v1").await, None, "image two was pushed");
    // An unknown name is a usage error listing the defined ones.
    let ran = push_plain(dir.path(), "--image three").await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr
            .contains("no image named \"three\" (defined: one, two)"),
        "{}",
        ran.stderr
    );
}

/// Issue 18: ecr-push takes the region as every tool does: `--region`/`AWS_REGION`, else the
/// environment's `region`, else `[defaults] region`. The repository exists in moto's
/// eu-central-1 only, the environment says eu-central-1 and the defaults another region, so the
/// push lands only when the environment's region is honoured.
#[tokio::test]
async fn the_environment_region_wins_over_the_defaults() {
    let r = repo(ImageTagMutability::Immutable).await;
    let dir = tempfile::tempdir().unwrap();
    let (src, _) = layout(dir.path(), "img", &[20_000], 31);
    rig::write_config(
        dir.path(),
        "[defaults]\nregion = \"us-west-2\"\n\n[environments.staging]\nregion = \"eu-central-1\"\n",
    );
    let run_in = |environment: &str| {
        let args = format!(
            "--format json --sha 22cdb6a41c42366ad165a0fb4c96282304f6f7ae --repository {r} --source {src} --tag v1 {environment}"
        );
        let mut c = push_cmd(dir.path(), &rig::registry_url(), &args);
        c.env_remove("AWS_REGION");
        c
    };
    let ran = run(run_in("")).await;
    assert_ne!(
        ran.code, 0,
        "[defaults] region us-west-2 has no such repository: {ran:?}"
    );
    assert!(
        ran.stderr.contains(&r),
        "the error names the repository: {ran:?}"
    );
    let ran = run(run_in("--environment staging")).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    let (digest, _) = skopeo(&r, "v1");
    assert!(digest.starts_with("sha256:"), "{digest}");
}
