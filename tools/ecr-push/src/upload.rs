//! Upload, phase 2: the repositories to create, then every blob (HEAD-checked, mounted from
//! another repository of the run or uploaded) and every manifest of every image. No tag.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use deploy_core::aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability};
use deploy_core::config::Mutability;
use deploy_core::report::{AuditAction, AuditOutcome};
use deploy_core::{Report, exit};

use crate::Push;
use crate::load::{Job, Loaded};
use crate::plan::Plan;
use crate::registry::Transfer;
use crate::source;

/// What phase 2 moved.
#[derive(Debug, Default)]
pub(crate) struct Transferred {
    pub uploaded: usize,
    pub mounted: usize,
    pub present: usize,
    pub pushed: u64,
    pub skipped: u64,
}

impl Transferred {
    /// Counts a blob already in the repository.
    fn present(&mut self, size: u64) {
        self.present += 1;
        self.skipped += size;
    }

    /// Counts (and audits) a blob uploaded, or planned to be; `blob` is `repo@digest`.
    fn uploaded(
        &mut self,
        report: &mut Report,
        blob: &str,
        size: u64,
        outcome: AuditOutcome,
        how: &str,
    ) {
        self.uploaded += 1;
        self.pushed += size;
        report.audit(
            AuditAction::RegistryUploadBlob,
            blob,
            outcome,
            Some(format!("{size} bytes{how}")),
        );
    }
}

/// The blobs of a daemon image no file holds: the image to `docker save` again, and the missing
/// ones by tar entry (digest, size).
struct Pending {
    daemon: String,
    blobs: BTreeMap<String, (String, u64)>,
}

impl Push<'_> {
    /// Phase 2 for every image. Images that share no blob go up at once, their blobs sharing
    /// `--concurrency`: four images of 50 MB take about the time of one of 200 MB. Images that do
    /// share one go in order, so a later image mounts what an earlier one uploaded instead of
    /// sending it twice (and after a failure the rest are not pushed). A failed image moves no tag
    /// of any image (phase 3 tags only when all succeeded). Each image audits into `audits[i]`, a
    /// report of its own that the caller owns and merges in image order, so the record does not
    /// depend on which upload finished first, and a push cut short by a signal (this future
    /// dropped) still reports every call it made.
    pub(crate) async fn upload_all(
        &self,
        loaded: &[Loaded],
        plans: &[Plan],
        audits: &[tokio::sync::Mutex<Report>],
    ) -> Vec<(anyhow::Result<Transferred>, Duration)> {
        let upload = |i: usize| async move {
            let t0 = Instant::now();
            let mut own = audits[i].lock().await;
            let r = self.upload(&loaded[i], &plans[i], loaded, &mut own).await;
            (r, t0.elapsed())
        };
        let n = loaded.len().min(plans.len()).min(audits.len());
        if shares_blobs(loaded) {
            let mut done: Vec<(anyhow::Result<Transferred>, Duration)> = Vec::new();
            for i in 0..n {
                if done.iter().any(|(r, _)| r.is_err()) {
                    let skipped = Err(exit::dependency("not pushed: an earlier image failed"));
                    done.push((skipped, Duration::ZERO));
                } else {
                    done.push(upload(i).await);
                }
            }
            done
        } else {
            futures_util::future::join_all((0..n).map(upload)).await
        }
    }

    /// Phase 2: create the repository if planned, then every blob and manifest (no tag).
    async fn upload(
        &self,
        l: &Loaded,
        p: &Plan,
        run: &[Loaded],
        report: &mut Report,
    ) -> anyhow::Result<Transferred> {
        let (job, image) = (&l.job, &l.image);
        let repo = &job.repository;
        if p.all_unchanged() {
            // Every tag already resolves to this image's digest: the registry accepted that
            // manifest only with every blob and child manifest it names, so nothing is sent
            // (phase 1's tag lookups were the existence checks).
            tracing::info!("{repo}: every tag already points at this image; nothing to upload");
            let mut t = Transferred::default();
            for b in &image.blobs {
                t.present(b.size);
            }
            return Ok(t);
        }
        if p.create_repo {
            self.create_repository(job, p.mutability, report).await?;
        }
        if self.args.dry_run {
            let mut t = Transferred::default();
            for b in &image.blobs {
                if !p.create_repo && self.registry.has_blob(repo, &b.digest).await? {
                    t.present(b.size);
                } else {
                    let blob = format!("{repo}@{}", b.digest);
                    t.uploaded(report, &blob, b.size, AuditOutcome::Planned, "");
                }
            }
            return Ok(t);
        }
        let (mut t, pending) = self.ensure_blobs(repo, image, run, report).await?;
        if let Some(pending) = pending {
            self.stream_from_daemon(repo, &pending, &mut t, report)
                .await?;
        }
        // A blob that was not in the repository (uploaded or mounted now) means no manifest
        // naming it was either: registries take a manifest only with all its blobs present.
        let absent = t.present < image.blobs.len() && image.children.is_empty();
        self.put_manifests(repo, image, absent).await?;
        Ok(t)
    }

    /// The planned repository, with the image's mutability and scan-on-push (only audited as
    /// planned on a dry run).
    async fn create_repository(
        &self,
        job: &Job,
        mutability: Mutability,
        report: &mut Report,
    ) -> anyhow::Result<()> {
        let repo = &job.repository;
        let m = match mutability {
            Mutability::Mutable => ImageTagMutability::Mutable,
            Mutability::Immutable => ImageTagMutability::Immutable,
        };
        let detail = Some(format!("{m:?}, scanOnPush {}", job.scan_on_push));
        if self.args.dry_run {
            report.audit(
                AuditAction::EcrCreateRepository,
                repo,
                AuditOutcome::Planned,
                detail,
            );
        } else {
            self.ecr
                .create_repository()
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
        Ok(())
    }

    /// Every blob, `--concurrency` uploads at once: present, mounted or uploaded. The checks of
    /// the next blobs run while others upload: up to `--concurrency` blobs more are checked (HEAD,
    /// mounts) and have their upload session open (POST) before an upload permit frees, so each
    /// permit goes straight to sending bytes, and many small blobs keep the line as busy as a few
    /// large ones. All of them finish before the first error is returned; a daemon image's missing
    /// ones come back as pending.
    async fn ensure_blobs(
        &self,
        repo: &str,
        image: &source::Image,
        run: &[Loaded],
        report: &mut Report,
    ) -> anyhow::Result<(Transferred, Option<Pending>)> {
        let mut set = tokio::task::JoinSet::new();
        for b in image.blobs.clone() {
            let (registry, sending, ahead, repo, mount_from) = (
                self.registry.clone(),
                self.blobs_in_flight.clone(),
                self.blobs_ahead.clone(),
                repo.to_owned(),
                holders(run, repo, &b.digest),
            );
            set.spawn(async move {
                let r = async {
                    let checking = ahead.acquire_owned().await;
                    if let Some(found) = registry.locate(&repo, &b, &mount_from).await? {
                        return Ok(found);
                    }
                    // A session the registry refuses for good fails the blob here; one that
                    // failed for now is opened again by the upload's own attempts.
                    let session = match registry.open_session(&repo, &b.digest).await {
                        Ok(location) => Some(location),
                        Err((e, false)) => return Err(e),
                        Err((_, true)) => None,
                    };
                    let _sending = sending.acquire_owned().await;
                    drop(checking);
                    registry.upload(&repo, &b, session).await?;
                    Ok(Transfer::Uploaded)
                }
                .await;
                (b, r)
            });
        }
        let mut t = Transferred::default();
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
                    let blob = format!("{repo}@{}", b.digest);
                    t.uploaded(report, &blob, b.size, AuditOutcome::Done, "")
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let pending = daemon.map(|daemon| Pending {
            daemon,
            blobs: pending,
        });
        Ok((t, pending))
    }

    /// The missing layers, streamed from a second `docker save`, in archive order.
    async fn stream_from_daemon(
        &self,
        repo: &str,
        pending: &Pending,
        t: &mut Transferred,
        report: &mut Report,
    ) -> anyhow::Result<()> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let (name, wanted) = (pending.daemon.clone(), pending.blobs.clone());
        let reader = tokio::task::spawn_blocking(move || source::stream_blobs(&name, &wanted, tx));
        let mut first_err = None;
        let mut streamed = 0;
        while let Some((digest, size, chunks)) = rx.recv().await {
            match self
                .registry
                .upload_stream(repo, &digest, size, chunks)
                .await
            {
                Ok(()) => {
                    streamed += 1;
                    t.uploaded(
                        report,
                        &format!("{repo}@{digest}"),
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
        if first_err.is_none() && streamed < pending.blobs.len() {
            first_err = Some(exit::dependency(format!(
                "docker save ended before all {} missing layers were streamed",
                pending.blobs.len()
            )));
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Manifests by digest (children of an index first); one already there is not re-put (ECR
    /// may refuse an unchanged image with ImageAlreadyExistsException). `absent`: the image is one
    /// manifest, known not to be there, so it is put without asking.
    async fn put_manifests(
        &self,
        repo: &str,
        image: &source::Image,
        absent: bool,
    ) -> anyhow::Result<()> {
        for m in image.children.iter().chain(std::iter::once(&image.top)) {
            if absent
                || self
                    .registry
                    .manifest_digest(repo, &m.digest)
                    .await?
                    .is_none()
            {
                self.registry
                    .put_manifest(repo, &m.digest, &m.media_type, &m.bytes)
                    .await?;
            }
        }
        Ok(())
    }
}

/// Whether two images of the run have a blob in common.
fn shares_blobs(run: &[Loaded]) -> bool {
    let mut seen = std::collections::HashSet::new();
    run.iter().any(|l| {
        let own: std::collections::HashSet<&str> =
            l.image.blobs.iter().map(|b| b.digest.as_str()).collect();
        own.into_iter().any(|d| !seen.insert(d))
    })
}

/// The other repositories of the run whose image has `digest`: where it can be mounted from. Only
/// those are asked (a HEAD each), not every repository of the run.
fn holders(run: &[Loaded], repo: &str, digest: &str) -> Vec<String> {
    run.iter()
        .filter(|o| o.job.repository != repo && o.image.blobs.iter().any(|b| b.digest == digest))
        .map(|o| o.job.repository.clone())
        .collect()
}
