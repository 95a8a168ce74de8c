//! Tag, phase 3, only once every image's blobs and manifests are up: create and move the planned
//! tags (a manifest PUT each), one check per image, and the run's outputs.

use std::time::Duration;

use deploy_core::report::{AuditAction, AuditOutcome};
use deploy_core::{Check, Exit, Report, Status, exit};

use crate::Push;
use crate::load::Loaded;
use crate::plan::{Plan, TagPlan, plan_check};
use crate::upload::Transferred;

impl Push<'_> {
    /// Phase 3 when every upload succeeded: every image's tags at once (each image's in order,
    /// audited into a report of its own and merged in image order), one check per image, and the
    /// outputs.
    pub(crate) async fn tag_all(
        &self,
        loaded: &[Loaded],
        plans: &[Plan],
        results: Vec<(anyhow::Result<Transferred>, Duration)>,
        report: &mut Report,
    ) {
        let failed = results.iter().any(|(r, _)| r.is_err());
        let tagged = futures_util::future::join_all(loaded.iter().zip(plans).map(|(l, p)| async {
            if failed {
                return (Ok(()), Vec::new());
            }
            let mut own = Report::new("ecr-push", "", "");
            let r = self.tag(l, p, &mut own).await;
            (r, own.audit)
        }))
        .await;
        let (mut pushed_bytes, mut skipped_bytes) = (0u64, 0u64);
        let mut refs = Vec::new();
        for (((l, p), (r, took)), (tag, audit)) in loaded.iter().zip(plans).zip(results).zip(tagged)
        {
            report.audit.extend(audit);
            let check = plan_check(&l.job, &l.image, p);
            let check = match r {
                Ok(t) if !failed => {
                    pushed_bytes += t.pushed;
                    skipped_bytes += t.skipped;
                    match tag {
                        Ok(()) => {
                            let r = format!(
                                "{}/{}@{}",
                                self.registry.host(),
                                l.job.repository,
                                l.image.top.digest
                            );
                            refs.push(format!("{}={r}", l.job.name));
                            check.reason(pushed_reason(self.args.dry_run, &t, p.tags.len()))
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

    /// Phase 3: create and move the planned tags (a manifest PUT each, no blob traffic).
    async fn tag(&self, l: &Loaded, p: &Plan, report: &mut Report) -> anyhow::Result<()> {
        let (registry, image) = (self.registry, &l.image);
        let repo = &l.job.repository;
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
            if self.args.dry_run {
                report.audit(action, &target, AuditOutcome::Planned, Some(detail));
                continue;
            }
            if let Err(e) = registry
                .put_manifest(repo, t, &image.top.media_type, &image.top.bytes)
                .await
            {
                // ECR refuses an existing tag on an IMMUTABLE repository
                // (ImageTagAlreadyExistsException, or ImageAlreadyExistsException in moto's words):
                // someone tagged it since the plan. The same digest there is a success; another is
                // a refusal.
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
