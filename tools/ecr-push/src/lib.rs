//! `ecr-push`: pushes built images to Amazon ECR, daemonless, digest-aware and idempotent.
//! Images come from `[images]` of deploy.toml (or flags); sources are OCI layouts, OCI tarballs and
//! docker-archives; credentials come from ECR's GetAuthorizationToken and stay in memory. Every
//! blob is HEAD-checked, mounted from another repository of the run when it is there, or uploaded
//! in one stream; manifests are pushed as their exact bytes. Tags are planned before anything is
//! pushed: a tag that already points at the same digest is left alone, a tag that would move is
//! refused on IMMUTABLE repositories and, on MUTABLE ones, moved only when it is a moving tag
//! (or `--allow-retag`). A refused image pushes nothing.
//!
//! The run in stages, one module each: `load` (sources and tags, no network), `plan` (phase 1,
//! reads only), `upload` (phase 2, blobs and manifests) and `tag` (phase 3, only then any tag).

mod load;
mod plan;
#[cfg(test)]
mod proptests;
pub mod registry;
pub mod source;
mod tag;
mod upload;

use std::sync::Arc;
use std::time::Instant;

use deploy_core::aws::AwsArgs;
use deploy_core::cli::CommonArgs;
use deploy_core::config::Config;
use deploy_core::secret::Secret;
use deploy_core::{Check, Exit, Report, Status, exit};

pub use load::render_tag;
use load::{Loaded, load_all};
use plan::report_refused;
use registry::Registry;

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
    #[arg(long, env = "DEPLOY_REGISTRY_URL", hide_env_values = true, value_name = "URL")]
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

/// What every phase of a push reads: the flags, ECR's client and the logged-in registry.
struct Push<'a> {
    args: &'a Args,
    ecr: &'a deploy_core::aws_sdk_ecr::Client,
    registry: &'a Registry,
    /// `--concurrency` permits to send a blob's bytes, shared by the blobs of every image of the
    /// run.
    blobs_in_flight: Arc<tokio::sync::Semaphore>,
    /// `--concurrency` permits more, to check the next blobs and open their sessions meanwhile.
    blobs_ahead: Arc<tokio::sync::Semaphore>,
}

/// The sections of deploy.toml ecr-push reads: a `${VAR}` elsewhere may be unset.
const CONFIG_READS: &[&str] = &["defaults", "environments", "images"];

/// Runs the tool: load and check every source and tag (no network), then plan every image
/// (reads only), upload every blob and manifest, and only then create or move tags.
pub async fn run(args: Args) -> anyhow::Result<Exit> {
    match deploy_core::cli::catching(push(&args)).await {
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
    let ecr = ecr_client(args, cfg.as_ref()).await?;
    // ECR's registry token and every repository's description at once: one round trip of wall
    // time before the tag lookups (a re-push of an unchanged image is these and nothing else).
    let (registry, described) = tokio::join!(
        login(args, &ecr),
        plan::describe_all(&ecr, args.create_repo, &loaded)
    );
    let registry = registry?;
    let ctx = Push {
        args,
        ecr: &ecr,
        registry: &registry,
        blobs_in_flight: Arc::new(tokio::sync::Semaphore::new(args.concurrency as usize)),
        blobs_ahead: Arc::new(tokio::sync::Semaphore::new(args.concurrency as usize)),
    };
    let mut report = Report::new(
        "ecr-push",
        env!("CARGO_PKG_VERSION"),
        format!("{} ({} images)", registry.host(), loaded.len()),
    );
    report.dry_run = args.dry_run;
    if let Some(signal) = cancel.signal() {
        let report = interrupted(report, &loaded, signal, "loading");
        return publish_and_emit(args, report, started).await;
    }

    // Phase 1, reads only: every image's repository and tags. One refused tag stops the whole run
    // before anything is pushed, so no environment is left half-updated.
    let planned = tokio::select! {
        p = ctx.plan_all(&loaded, described) => Ok(p),
        signal = cancel.arrived() => Err(signal),
    };
    let plans = match planned {
        Err(signal) => {
            let report = interrupted(report, &loaded, signal, "planning");
            return publish_and_emit(args, report, started).await;
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
    let audits: Vec<tokio::sync::Mutex<Report>> = loaded
        .iter()
        .map(|_| tokio::sync::Mutex::new(Report::new("ecr-push", "", "")))
        .collect();
    let uploaded = tokio::select! {
        r = ctx.upload_all(&loaded, &plans, &audits) => Ok(r),
        signal = cancel.arrived() => Err(signal),
    };
    // Every call made, in image order, whether the uploads finished or a signal cut them short.
    for a in audits {
        report.audit.extend(a.into_inner().audit);
    }
    let results = match uploaded {
        Ok(results) => results,
        Err(signal) => {
            let report = interrupted(report, &loaded, signal, "upload");
            return publish_and_emit(args, report, started).await;
        }
    };
    ctx.tag_all(&loaded, &plans, results, &mut report).await;
    if let Some(signal) = cancel.signal() {
        report.interrupted(
            signal,
            format!("interrupted by {signal}: every image's tags were finished first"),
        );
    }
    publish_and_emit(args, report, started).await
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

/// ECR's client, in the environment's region, else [defaults]' (ecr-push takes --environment like
/// the others).
async fn ecr_client(
    args: &Args,
    cfg: Option<&Config>,
) -> anyhow::Result<deploy_core::aws_sdk_ecr::Client> {
    let region = cfg.and_then(|c| c.region_for(args.common.environment.as_deref()));
    let sdk = deploy_core::aws::sdk_config(&args.aws, region).await?;
    Ok(deploy_core::aws::ecr(&sdk))
}

/// The registry, logged in with ECR's token (kept in memory, masked).
async fn login(args: &Args, ecr: &deploy_core::aws_sdk_ecr::Client) -> anyhow::Result<Registry> {
    let login = deploy_core::aws::ecr_login(ecr).await?;
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
    Registry::new(
        &registry_url,
        &login.username,
        &Secret::new(login.password.expose()),
    )
}

/// The partial report of a run a signal cut short before tagging (exit 1): no tag was changed;
/// blobs already uploaded stay (they are content-addressed and unreferenced).
fn interrupted(mut report: Report, loaded: &[Loaded], signal: &str, step: &str) -> Report {
    for l in loaded {
        report.push(Check::new(&l.job.name, Status::Skipped).reason(format!(
            "not finished: interrupted by {signal} during the {step}; no tag was changed"
        )));
    }
    report.interrupted(
        signal,
        format!("interrupted by {signal} during the {step}: partial report; no tag was changed"),
    );
    report
}

/// The common `--publish` (a check run `ecr-push (<environment>)`), then every other sink.
async fn publish_and_emit(
    args: &Args,
    mut report: Report,
    started: Instant,
) -> anyhow::Result<Exit> {
    // Every report carries the time taken: a refusal and an interrupted push included.
    report.output(
        "duration-seconds",
        format!("{:.2}", started.elapsed().as_secs_f64()),
    );
    let path = args.common.config_label();
    args.publish
        .publish_and_emit(report, &args.common, &path, || started.elapsed())
        .await
}
