//! `ecr-push`: pushes built images to Amazon ECR, daemonless, digest-aware and idempotent.
//! Images come from `[images]` of deploy.toml (or flags); sources are OCI layouts, OCI tarballs and
//! docker-archives; credentials come from ECR's GetAuthorizationToken and stay in memory. Every
//! blob is HEAD-checked, mounted from another repository of the run when it is there, or uploaded
//! in one stream; manifests are pushed as their exact bytes. Tags are planned before anything is
//! pushed: a tag that already points at the same digest is left alone, a tag that would move is
//! refused on IMMUTABLE repositories and, on MUTABLE ones, moved only when it is a moving tag
//! (or `--allow-retag`). A refused image pushes nothing.

#[cfg(test)]
mod proptests;
pub mod registry;
pub mod source;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use deploy_core::aws::AwsArgs;
use deploy_core::aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability};
use deploy_core::cli::CommonArgs;
use deploy_core::config::{Config, Mutability, flag_or_file};
use deploy_core::report::{AuditAction, AuditOutcome};
use deploy_core::secret::Secret;
use deploy_core::{Check, Exit, Report, Status, exit};

use registry::{Registry, Transfer};

/// Push OCI images to Amazon ECR: daemonless, digest-aware, idempotent.
#[derive(Debug, clap::Parser)]
#[command(name = "ecr-push", version, about, long_about = None)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub publish: deploy_core::github::PublishArgs,
    /// Image of deploy.toml to push; repeat (default: all of [images]).
    #[arg(long = "image", value_name = "NAME")]
    pub images: Vec<String>,
    /// Image source (OCI layout dir, OCI or docker-archive tarball; DIR:REF picks an index entry);
    /// overrides the image's `source`. Without deploy.toml, use with --repository.
    #[arg(long, value_name = "PATH")]
    pub source: Option<String>,
    /// ECR repository, for an image not in deploy.toml.
    #[arg(long, value_name = "NAME")]
    pub repository: Option<String>,
    /// Tag template; repeat (overrides the image's tags): {version}, {sha}, {sha7}, {env} and literals.
    #[arg(long = "tag", value_name = "TEMPLATE")]
    pub tags: Vec<String>,
    /// Tag that may move to a new digest on a MUTABLE repository; repeat (adds to moving_tags).
    #[arg(long = "moving-tag", value_name = "TEMPLATE")]
    pub moving_tags: Vec<String>,
    /// The release version for {version} (default: the tag of GITHUB_REF, e.g. v0.4.0).
    #[arg(long, env = "DEPLOY_VERSION", value_name = "VERSION")]
    pub release: Option<String>,
    /// The commit for {sha}/{sha7} (default: GITHUB_SHA, else git rev-parse HEAD).
    #[arg(long, value_name = "SHA")]
    pub sha: Option<String>,
    /// Registry URL (default: ECR's proxy endpoint from GetAuthorizationToken).
    #[arg(long, env = "DEPLOY_REGISTRY_URL", value_name = "URL")]
    pub registry_url: Option<String>,
    /// Create a missing repository with the image's mutability and scan-on-push.
    #[arg(long)]
    pub create_repo: bool,
    /// Allow moving any tag on a MUTABLE repository, version tags included.
    #[arg(long)]
    pub allow_retag: bool,
    /// Blobs uploaded at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub concurrency: u32,
    /// Show which blobs are missing and which tags would be created or moved; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Required to push to a protected environment: repeat its name.
    #[arg(long, value_name = "ENV")]
    pub confirm: Option<String>,
}

/// One image to push.
#[derive(Debug, Clone)]
struct Job {
    name: String,
    repository: String,
    source: String,
    tags: Vec<String>,
    moving: Vec<String>,
    mutability: Mutability,
    scan_on_push: bool,
}

/// Renders a tag template; unknown or unset variables are usage errors.
pub fn render_tag(t: &str, vars: &BTreeMap<&str, Option<String>>) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let end = rest[i..]
            .find('}')
            .ok_or_else(|| exit::usage(format!("tag template {t:?}: unclosed {{")))?;
        let name = &rest[i + 1..i + end];
        let value = vars
            .get(name)
            .ok_or_else(|| {
                exit::usage(format!(
                    "tag template {t:?}: unknown variable {{{name}}} (use version, sha, sha7, env)"
                ))
            })?
            .as_ref()
            .ok_or_else(|| {
                exit::usage(format!(
                    "tag template {t:?}: {{{name}}} has no value (pass --{})",
                    match name {
                        "sha7" | "sha" => "sha",
                        "version" => "release",
                        other => other,
                    }
                ))
            })?;
        out.push_str(value);
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    let valid = !out.is_empty()
        && out.len() <= 128
        && out
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && out
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !valid {
        return Err(exit::usage(format!(
            "tag {out:?} (from {t:?}) is not a valid image tag"
        )));
    }
    Ok(out)
}

fn jobs(args: &Args, cfg: Option<&Config>) -> anyhow::Result<Vec<Job>> {
    if let Some(repo) = &args.repository {
        let source = args
            .source
            .clone()
            .ok_or_else(|| exit::usage("--repository needs --source"))?;
        return Ok(vec![Job {
            name: args
                .images
                .first()
                .cloned()
                .unwrap_or_else(|| repo.rsplit('/').next().unwrap_or(repo).to_owned()),
            repository: repo.clone(),
            source,
            tags: args.tags.clone(),
            moving: args.moving_tags.clone(),
            mutability: Mutability::Immutable,
            scan_on_push: true,
        }]);
    }
    let cfg = cfg.ok_or_else(|| {
        exit::usage("no deploy.toml with [images]: pass --repository and --source")
    })?;
    if cfg.images.is_empty() {
        return Err(exit::usage(format!("{}: no [images] to push", cfg.source)));
    }
    let names: Vec<String> = if args.images.is_empty() {
        cfg.images.keys().cloned().collect()
    } else {
        args.images.clone()
    };
    if args.source.is_some() && names.len() != 1 {
        return Err(exit::usage(
            "--source applies to one image: name it with --image",
        ));
    }
    names
        .iter()
        .map(|n| {
            let img = cfg.images.get(n).ok_or_else(|| {
                exit::usage(format!(
                    "{}: no image named {n:?} (defined: {})",
                    cfg.source,
                    cfg.images.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
            let source = flag_or_file(args.source.as_ref(), img.source.as_ref(), || {
                format!("image {n:?} has no source: set images.{n}.source or pass --source")
            })?;
            let mut moving = img.moving_tags.clone();
            moving.extend(args.moving_tags.iter().cloned());
            Ok(Job {
                name: n.clone(),
                repository: img.repository.expose().to_owned(),
                source,
                tags: if args.tags.is_empty() {
                    img.tags.clone()
                } else {
                    args.tags.clone()
                },
                moving,
                mutability: img.mutability.unwrap_or(Mutability::Immutable),
                scan_on_push: img.scan_on_push,
            })
        })
        .collect()
}

/// What happens to a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TagPlan {
    Create,
    Unchanged,
    Move { from: String },
    Refuse { from: String, why: String },
}

/// The sections of deploy.toml ecr-push reads: a `${VAR}` elsewhere may be unset.
const CONFIG_READS: &[&str] = &["defaults", "environments", "images"];

/// Runs the tool: load and check every source and tag (no network), then plan every image
/// (reads only), upload every blob and manifest, and only then create or move tags.
pub async fn run(args: Args) -> anyhow::Result<Exit> {
    match push(&args).await {
        Ok(exit) => Ok(exit),
        // A run that stops on an error still answers its check run (--publish).
        Err(e) => Err(args.publish.answer_error(e, &args.common, "ecr-push").await),
    }
}

async fn push(args: &Args) -> anyhow::Result<Exit> {
    let started = Instant::now();
    // A cancelled job stops before any tag moves; once tagging starts it finishes first.
    let cancel = deploy_core::cli::Cancel::watch();
    let cfg = args.common.load_config(CONFIG_READS)?;
    refuse_unconfirmed(args, cfg.as_ref())?;
    let loaded = load_all(args, cfg.as_ref())?;
    let (ecr, registry) = connect(args, cfg.as_ref()).await?;
    let mut report = Report::new(
        "ecr-push",
        env!("CARGO_PKG_VERSION"),
        format!("{} ({} images)", registry.host(), loaded.len()),
    );
    report.dry_run = args.dry_run;
    if let Some(signal) = cancel.signal() {
        return interrupted(args, report, &loaded, signal, "loading", started).await;
    }

    // Phase 1, reads only: every image's repository and tags. One refused tag stops the whole run
    // before anything is pushed, so no environment is left half-updated.
    let planned = tokio::select! {
        p = plan_all(args, &ecr, &registry, &loaded) => Ok(p),
        signal = cancel.arrived() => Err(signal),
    };
    let plans = match planned {
        Err(signal) => {
            return interrupted(args, report, &loaded, signal, "planning", started).await;
        }
        Ok(Err((name, e))) => {
            let exit = exit::classify(&e);
            report.push(Check::new(name, Status::Error).reason(format!("{e:#}; nothing pushed")));
            report.fail_with(exit, format!("{e:#}"));
            return publish_and_emit(args, report, started).await;
        }
        Ok(Ok(plans)) => plans,
    };
    if plans.iter().any(|p| !p.refused.is_empty()) {
        report_refused(&mut report, &loaded, &plans);
        return publish_and_emit(args, report, started).await;
    }

    // Phase 2: repositories, blobs and manifests of every image. Phase 3: only then any tag.
    let uploaded = tokio::select! {
        r = upload_all(args, &ecr, &registry, &loaded, &plans, &mut report) => Ok(r),
        signal = cancel.arrived() => Err(signal),
    };
    let results = match uploaded {
        Ok(results) => results,
        Err(signal) => return interrupted(args, report, &loaded, signal, "upload", started).await,
    };
    tag_all(args, &registry, &loaded, &plans, results, &mut report).await;
    if let Some(signal) = cancel.signal() {
        report.interrupted(
            signal,
            format!("interrupted by {signal}: every image's tags were finished first"),
        );
    }
    report.output(
        "duration-seconds",
        format!("{:.2}", started.elapsed().as_secs_f64()),
    );
    publish_and_emit(args, report, started).await
}

/// An image with its source read and its tags rendered.
struct Loaded {
    job: Job,
    image: source::Image,
    tags: Vec<String>,
    moving: Vec<String>,
}

/// A protected environment needs `--confirm ENV` (or `--dry-run`); a `--registry-url` must be a
/// plain http(s) URL. Both before any network call, never echoing credentials a URL might carry.
fn refuse_unconfirmed(args: &Args, cfg: Option<&Config>) -> anyhow::Result<()> {
    if let (Some(cfg), Some(e)) = (cfg, &args.common.environment) {
        let env = cfg.environment(e)?;
        if env.protected && !args.dry_run && args.confirm.as_deref() != Some(e.as_str()) {
            return Err(exit::usage(format!(
                "environment {e:?} is protected: pass --confirm {e} to push (or --dry-run)"
            )));
        }
    }
    if let Some(u) = &args.registry_url {
        deploy_core::urls::validate_url(u).map_err(|e| {
            exit::usage(format!(
                "--registry-url: {e}: {:?}",
                deploy_core::urls::shown_url(u)
            ))
        })?;
    }
    Ok(())
}

/// The values of the tag templates' variables: {version}, {sha}, {sha7}, {env}.
fn template_vars(args: &Args) -> BTreeMap<&'static str, Option<String>> {
    let sha = args
        .sha
        .clone()
        .or_else(|| std::env::var("GITHUB_SHA").ok())
        .or_else(|| {
            std::process::Command::new("git")
                .args(["rev-parse", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        });
    let version = args.release.clone().or_else(|| {
        std::env::var("GITHUB_REF")
            .ok()
            .and_then(|r| r.strip_prefix("refs/tags/").map(str::to_owned))
    });
    BTreeMap::from([
        ("version", version),
        ("sha7", sha.as_ref().map(|s| s.chars().take(7).collect())),
        ("sha", sha),
        ("env", args.common.environment.clone()),
    ])
}

/// Loads every source and renders every tag before any network call: bad input stops here.
fn load_all(args: &Args, cfg: Option<&Config>) -> anyhow::Result<Vec<Loaded>> {
    let vars = template_vars(args);
    let mut loaded = Vec::new();
    for job in jobs(args, cfg)? {
        let (path, reference) = match job.source.rsplit_once(':') {
            Some((p, r)) if !p.is_empty() && std::path::Path::new(p).is_dir() => {
                (PathBuf::from(p), Some(r.to_owned()))
            }
            _ => (PathBuf::from(&job.source), None),
        };
        let image = match job.source.strip_prefix("docker:") {
            Some(name) => source::load_daemon(name)?,
            None => source::load(&path, reference.as_deref())?,
        };
        let mut tags: Vec<String> = Vec::new();
        for t in &job.tags {
            let t = render_tag(t, &vars)?;
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        let moving = job
            .moving
            .iter()
            .filter_map(|t| render_tag(t, &vars).ok())
            .collect();
        loaded.push(Loaded {
            job,
            image,
            tags,
            moving,
        });
    }
    Ok(loaded)
}

/// ECR's client and the registry, logged in with ECR's token (kept in memory, masked).
async fn connect(
    args: &Args,
    cfg: Option<&Config>,
) -> anyhow::Result<(deploy_core::aws_sdk_ecr::Client, Registry)> {
    // The environment's region, else [defaults] (ecr-push takes --environment like the others).
    let region = cfg.and_then(|c| c.region_for(args.common.environment.as_deref()));
    let sdk = deploy_core::aws::sdk_config(&args.aws, region).await?;
    let ecr = deploy_core::aws::ecr(&sdk);
    let login = deploy_core::aws::ecr_login(&ecr).await?;
    deploy_core::gha::Actions::from_env().mask_registered()?;
    let registry_url = match &args.registry_url {
        Some(u) => u.clone(),
        None => login.proxy_endpoint.clone().ok_or_else(|| {
            exit::dependency("ECR returned no proxy endpoint; pass --registry-url")
        })?,
    };
    deploy_core::urls::validate_url(&registry_url).map_err(|e| {
        exit::dependency(format!(
            "ECR's proxy endpoint is not a usable URL: {e}: {:?}",
            deploy_core::urls::shown_url(&registry_url)
        ))
    })?;
    if login
        .expires_at
        .is_some_and(|t| t < std::time::SystemTime::now())
    {
        // moto reports 2015 for every token; a real expired token fails with 401 below.
        tracing::info!("ECR says the registry token has expired; trying it anyway");
    }
    let registry = Registry::new(
        &registry_url,
        &login.username,
        &Secret::new(login.password.expose()),
    )?;
    Ok((ecr, registry))
}

/// Phase 1 for every image; the first error names its image.
async fn plan_all(
    args: &Args,
    ecr: &deploy_core::aws_sdk_ecr::Client,
    registry: &Registry,
    loaded: &[Loaded],
) -> Result<Vec<Plan>, (String, anyhow::Error)> {
    let mut plans = Vec::new();
    for l in loaded {
        let p = plan(args, ecr, registry, &l.job, &l.image, &l.tags, &l.moving).await;
        plans.push(p.map_err(|e| (l.job.name.clone(), e))?);
    }
    Ok(plans)
}

/// A refused tag anywhere: every image reported, nothing pushed.
fn report_refused(report: &mut Report, loaded: &[Loaded], plans: &[Plan]) {
    for (l, p) in loaded.iter().zip(plans) {
        let c = plan_check(&l.job, &l.image, p);
        report.push(if p.refused.is_empty() {
            Check {
                status: Status::Skipped,
                ..c
            }
            .reason("nothing pushed: another image's tags were refused")
        } else {
            Check {
                status: Status::Failed,
                ..c
            }
            .reason(format!("nothing pushed: {}", p.refused.join("; ")))
        });
    }
    report.output("bytes-pushed", 0);
}

/// Phase 2 for every image, in order; after a failure the rest are not pushed.
async fn upload_all(
    args: &Args,
    ecr: &deploy_core::aws_sdk_ecr::Client,
    registry: &Registry,
    loaded: &[Loaded],
    plans: &[Plan],
    report: &mut Report,
) -> Vec<(anyhow::Result<Transferred>, std::time::Duration)> {
    let all_repos: Vec<String> = loaded.iter().map(|l| l.job.repository.clone()).collect();
    let mut results = Vec::new();
    let mut failed = false;
    for (l, p) in loaded.iter().zip(plans) {
        let t0 = Instant::now();
        let r = if failed {
            Err(exit::dependency("not pushed: an earlier image failed"))
        } else {
            upload(args, ecr, registry, &l.job, &l.image, p, &all_repos, report).await
        };
        failed |= r.is_err();
        results.push((r, t0.elapsed()));
    }
    results
}

/// Phase 3 when every upload succeeded: each image's tags, one check per image, and the outputs.
async fn tag_all(
    args: &Args,
    registry: &Registry,
    loaded: &[Loaded],
    plans: &[Plan],
    results: Vec<(anyhow::Result<Transferred>, std::time::Duration)>,
    report: &mut Report,
) {
    let failed = results.iter().any(|(r, _)| r.is_err());
    let (mut pushed_bytes, mut skipped_bytes) = (0u64, 0u64);
    let mut refs = Vec::new();
    for ((l, p), (r, took)) in loaded.iter().zip(plans).zip(results) {
        let check = plan_check(&l.job, &l.image, p);
        let check = match r {
            Ok(t) if !failed => {
                pushed_bytes += t.pushed;
                skipped_bytes += t.skipped;
                match tag(args, registry, &l.job, &l.image, p, report).await {
                    Ok(()) => {
                        let r = format!(
                            "{}/{}@{}",
                            registry.host(),
                            l.job.repository,
                            l.image.top.digest
                        );
                        refs.push(format!("{}={r}", l.job.name));
                        check.reason(pushed_reason(args.dry_run, &t, p.tags.len()))
                    }
                    Err(e) => {
                        report.fail_with(exit::classify(&e), format!("{e:#}"));
                        Check {
                            status: Status::Error,
                            ..check
                        }
                        .reason(format!(
                            "blobs and manifest pushed, but tagging failed: {e:#}"
                        ))
                    }
                }
            }
            Ok(_) => Check {
                status: Status::Skipped,
                ..check
            }
            .reason("blobs pushed, but no tag changed: another image failed"),
            Err(e) => upload_failed(report, check, &e),
        };
        report.push(check.took(took));
    }
    report.output("images", refs.join("\n"));
    report.output("bytes-pushed", pushed_bytes);
    report.output("bytes-skipped", skipped_bytes);
}

/// The check of an image whose upload failed: a usage error is the run's class, and no tag moved.
fn upload_failed(report: &mut Report, check: Check, e: &anyhow::Error) -> Check {
    let exit = exit::classify(e);
    if exit == Exit::Usage {
        report.fail_with(Exit::Usage, format!("{e:#}"));
    }
    Check {
        status: if exit == Exit::Failed {
            Status::Failed
        } else {
            Status::Error
        },
        ..check
    }
    .reason(format!("{e:#}; no tag was changed"))
}

fn pushed_reason(dry_run: bool, t: &Transferred, tags: usize) -> String {
    let verb = if dry_run { "would upload" } else { "uploaded" };
    format!(
        "{verb} {} blobs ({} bytes), mounted {}, {} already there; {tags} tags",
        t.uploaded, t.pushed, t.mounted, t.present
    )
}

/// The partial report of a run a signal cut short before tagging (exit 1): no tag was changed;
/// blobs already uploaded stay (they are content-addressed and unreferenced).
async fn interrupted(
    args: &Args,
    mut report: Report,
    loaded: &[Loaded],
    signal: &str,
    step: &str,
    started: Instant,
) -> anyhow::Result<Exit> {
    for l in loaded {
        report.push(Check::new(&l.job.name, Status::Skipped).reason(format!(
            "not finished: interrupted by {signal} during the {step}; no tag was changed"
        )));
    }
    report.interrupted(
        signal,
        format!("interrupted by {signal} during the {step}: partial report; no tag was changed"),
    );
    publish_and_emit(args, report, started).await
}

/// The common `--publish` (a check run `ecr-push (<environment>)`), then every other sink.
async fn publish_and_emit(args: &Args, report: Report, started: Instant) -> anyhow::Result<Exit> {
    let path = args.common.config_label();
    args.publish
        .publish_and_emit(report, &args.common, &path, || started.elapsed())
        .await
}

/// What phase 1 decided for one image.
#[derive(Debug)]
struct Plan {
    mutability: Mutability,
    create_repo: bool,
    tags: Vec<(String, TagPlan)>,
    refused: Vec<String>,
}

/// What phase 2 moved.
#[derive(Debug, Default)]
struct Transferred {
    uploaded: usize,
    mounted: usize,
    present: usize,
    pushed: u64,
    skipped: u64,
}

impl Transferred {
    /// Counts a blob already in the repository.
    fn present(&mut self, size: u64) {
        self.present += 1;
        self.skipped += size;
    }

    /// Counts (and audits) a blob uploaded, or planned to be.
    fn uploaded(
        &mut self,
        report: &mut Report,
        repo: &str,
        digest: &str,
        size: u64,
        outcome: AuditOutcome,
        how: &str,
    ) {
        self.uploaded += 1;
        self.pushed += size;
        report.audit(
            AuditAction::RegistryUploadBlob,
            &format!("{repo}@{digest}"),
            outcome,
            Some(format!("{size} bytes{how}")),
        );
    }
}

fn short(d: &str) -> &str {
    d.get(..19).unwrap_or(d)
}

fn plan_check(job: &Job, image: &source::Image, p: &Plan) -> Check {
    let mut check = Check::new(&job.name, Status::Passed)
        .detail("digest", image.top.digest.clone())
        .detail("source", image.kind);
    for (t, tp) in &p.tags {
        check = check.detail(
            format!("tag {t}"),
            match tp {
                TagPlan::Create => "create".to_owned(),
                TagPlan::Unchanged => "already at this digest".to_owned(),
                TagPlan::Move { from } => format!("move from {}", short(from)),
                TagPlan::Refuse { .. } => "refused".to_owned(),
            },
        );
    }
    check
}

/// Phase 1: the repository (exists? mutability?) and what happens to every tag. Reads only.
async fn plan(
    args: &Args,
    ecr: &deploy_core::aws_sdk_ecr::Client,
    registry: &Registry,
    job: &Job,
    image: &source::Image,
    tags: &[String],
    moving: &[String],
) -> anyhow::Result<Plan> {
    let repo = &job.repository;
    let described = ecr
        .describe_repositories()
        .repository_names(repo)
        .send()
        .await;
    let (mutability, create_repo) = match described {
        Ok(out) => (
            match out
                .repositories()
                .first()
                .and_then(|r| r.image_tag_mutability())
            {
                Some(ImageTagMutability::Mutable) => Mutability::Mutable,
                _ => Mutability::Immutable,
            },
            false,
        ),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_repository_not_found_exception()) =>
        {
            if !args.create_repo {
                return Err(exit::usage(format!(
                    "ECR repository {repo:?} does not exist: create it or pass --create-repo"
                )));
            }
            (job.mutability, true)
        }
        Err(e) => {
            return Err(deploy_core::aws::error(
                &format!("couldn't describe ECR repository {repo}"),
                &e,
            ));
        }
    };
    let digest = &image.top.digest;
    let mut planned = Vec::new();
    let mut refused = Vec::new();
    for t in tags {
        let current = if create_repo {
            None
        } else {
            registry.manifest_digest(repo, t).await?
        };
        let tp = match current {
            None => TagPlan::Create,
            Some(d) if &d == digest => TagPlan::Unchanged,
            Some(d) => match mutability {
                Mutability::Immutable => TagPlan::Refuse {
                    from: d,
                    why: "the repository is IMMUTABLE".into(),
                },
                Mutability::Mutable if moving.contains(t) || args.allow_retag => {
                    TagPlan::Move { from: d }
                }
                Mutability::Mutable => TagPlan::Refuse {
                    from: d,
                    why: "it is not a moving tag (pass --allow-retag to move it)".into(),
                },
            },
        };
        if let TagPlan::Refuse { from, why } = &tp {
            refused.push(format!("{t} points at {} ({why})", short(from)));
        }
        planned.push((t.clone(), tp));
    }
    Ok(Plan {
        mutability,
        create_repo,
        tags: planned,
        refused,
    })
}

/// Phase 2: create the repository if planned, then every blob and manifest (no tag).
#[allow(clippy::too_many_arguments)]
async fn upload(
    args: &Args,
    ecr: &deploy_core::aws_sdk_ecr::Client,
    registry: &Registry,
    job: &Job,
    image: &source::Image,
    p: &Plan,
    all_repos: &[String],
    report: &mut Report,
) -> anyhow::Result<Transferred> {
    let repo = &job.repository;
    if p.create_repo {
        let m = match p.mutability {
            Mutability::Mutable => ImageTagMutability::Mutable,
            Mutability::Immutable => ImageTagMutability::Immutable,
        };
        let detail = Some(format!("{m:?}, scanOnPush {}", job.scan_on_push));
        if args.dry_run {
            report.audit(
                AuditAction::EcrCreateRepository,
                repo,
                AuditOutcome::Planned,
                detail,
            );
        } else {
            ecr.create_repository()
                .repository_name(repo)
                .image_tag_mutability(m.clone())
                .image_scanning_configuration(
                    ImageScanningConfiguration::builder()
                        .scan_on_push(job.scan_on_push)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| {
                    deploy_core::aws::error(&format!("couldn't create ECR repository {repo}"), &e)
                })?;
            report.audit(
                AuditAction::EcrCreateRepository,
                repo,
                AuditOutcome::Done,
                detail,
            );
        }
    }
    let mut t = Transferred::default();
    if args.dry_run {
        for b in &image.blobs {
            if !p.create_repo && registry.has_blob(repo, &b.digest).await? {
                t.present(b.size);
            } else {
                t.uploaded(report, repo, &b.digest, b.size, AuditOutcome::Planned, "");
            }
        }
        return Ok(t);
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(args.concurrency as usize));
    let mut set = tokio::task::JoinSet::new();
    for b in image.blobs.clone() {
        let (registry, sem, repo, mount_from) = (
            registry.clone(),
            sem.clone(),
            repo.clone(),
            all_repos.to_vec(),
        );
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r = registry.ensure_blob(&repo, &b, &mount_from).await;
            (b, r)
        });
    }
    let mut first_err = None;
    let mut pending: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut daemon = None;
    while let Some(j) = set.join_next().await {
        let (b, r) = j?;
        match r {
            Ok(Transfer::Pending) => {
                if let source::Location::Daemon { image, entry } = &b.at {
                    pending.insert(entry.clone(), (b.digest.clone(), b.size));
                    daemon = Some(image.clone());
                }
            }
            Ok(Transfer::Present) => t.present(b.size),
            Ok(Transfer::Mounted) => {
                t.mounted += 1;
                t.skipped += b.size;
                report.audit(
                    AuditAction::RegistryMountBlob,
                    &format!("{repo}@{}", b.digest),
                    AuditOutcome::Done,
                    None,
                );
            }
            Ok(Transfer::Uploaded) => {
                t.uploaded(report, repo, &b.digest, b.size, AuditOutcome::Done, "")
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let (None, Some(name)) = (&first_err, daemon) {
        // The missing layers, streamed from a second `docker save`, in archive order.
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let wanted = pending.clone();
        let reader = tokio::task::spawn_blocking(move || source::stream_blobs(&name, &wanted, tx));
        let mut streamed = 0;
        while let Some((digest, size, chunks)) = rx.recv().await {
            match registry.upload_stream(repo, &digest, size, chunks).await {
                Ok(()) => {
                    streamed += 1;
                    t.uploaded(
                        report,
                        repo,
                        &digest,
                        size,
                        AuditOutcome::Done,
                        ", streamed from docker save",
                    );
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                    break;
                }
            }
        }
        drop(rx);
        if let Err(e) = reader.await? {
            first_err.get_or_insert(e);
        }
        if first_err.is_none() && streamed < pending.len() {
            first_err = Some(exit::dependency(format!(
                "docker save ended before all {} missing layers were streamed",
                pending.len()
            )));
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    // Manifests by digest (children of an index first); one already there is not re-put.
    for m in image.children.iter().chain(std::iter::once(&image.top)) {
        if registry.manifest_digest(repo, &m.digest).await?.is_none() {
            registry
                .put_manifest(repo, &m.digest, &m.media_type, &m.bytes)
                .await?;
        }
    }
    Ok(t)
}

/// Phase 3: create and move the planned tags (a manifest PUT each, no blob traffic).
async fn tag(
    args: &Args,
    registry: &Registry,
    job: &Job,
    image: &source::Image,
    p: &Plan,
    report: &mut Report,
) -> anyhow::Result<()> {
    let repo = &job.repository;
    let digest = &image.top.digest;
    for (t, tp) in &p.tags {
        let (action, detail) = match tp {
            TagPlan::Create => (AuditAction::RegistryCreateTag, digest.clone()),
            TagPlan::Move { from } => (
                AuditAction::RegistryMoveTag,
                format!("from {from} to {digest}"),
            ),
            _ => continue,
        };
        let target = format!("{repo}:{t}");
        if args.dry_run {
            report.audit(action, &target, AuditOutcome::Planned, Some(detail));
            continue;
        }
        if let Err(e) = registry
            .put_manifest(repo, t, &image.top.media_type, &image.top.bytes)
            .await
        {
            // ECR refuses an existing tag on an IMMUTABLE repository (ImageTagAlreadyExistsException,
            // or ImageAlreadyExistsException in moto's words): someone tagged it since the plan.
            // The same digest there is a success; another is a refusal.
            if registry
                .manifest_digest(repo, t)
                .await
                .ok()
                .flatten()
                .as_deref()
                == Some(digest.as_str())
            {
                report.audit(
                    action,
                    &target,
                    AuditOutcome::Done,
                    Some("already at this digest".into()),
                );
                continue;
            }
            report.audit(
                action,
                &target,
                AuditOutcome::Failed,
                Some(format!("{e:#}")),
            );
            return Err(e);
        }
        report.audit(action, &target, AuditOutcome::Done, Some(detail));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<&'static str, Option<String>> {
        BTreeMap::from([
            ("version", Some("v0.4.0".to_owned())),
            (
                "sha",
                Some("22cdb6a41c42366ad165a0fb4c96282304f6f7ae".to_owned()),
            ),
            ("sha7", Some("22cdb6a".to_owned())),
            ("env", None),
        ])
    }

    #[test]
    fn templates_render() {
        assert_eq!(render_tag("{version}", &vars()).unwrap(), "v0.4.0");
        assert_eq!(render_tag("sha-{sha7}", &vars()).unwrap(), "sha-22cdb6a");
        assert_eq!(render_tag("latest", &vars()).unwrap(), "latest");
    }

    #[test]
    fn bad_templates_are_usage_errors() {
        let e = render_tag("{env}", &vars()).unwrap_err();
        assert_eq!(exit::classify(&e), Exit::Usage);
        assert!(e.to_string().contains("{env} has no value"), "{e}");
        assert!(
            render_tag("{nope}", &vars())
                .unwrap_err()
                .to_string()
                .contains("unknown variable")
        );
        assert!(
            render_tag("bad tag!", &vars())
                .unwrap_err()
                .to_string()
                .contains("not a valid image tag")
        );
    }
}
