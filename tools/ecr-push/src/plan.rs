//! Plan, phase 1: every image's repository (exists? mutability?) and what happens to each of its
//! tags. Reads only; one refused tag anywhere and nothing is pushed.

use deploy_core::aws_sdk_ecr::types::ImageTagMutability;
use deploy_core::config::Mutability;
use deploy_core::{Check, Report, Status, exit};

use crate::Push;
use crate::load::{Job, Loaded};
use crate::source;

/// What happens to a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TagPlan {
    Create,
    Unchanged,
    Move { from: String },
    Refuse { from: String, why: String },
}

/// What phase 1 decided for one image.
#[derive(Debug)]
pub(crate) struct Plan {
    pub mutability: Mutability,
    pub create_repo: bool,
    pub tags: Vec<(String, TagPlan)>,
    pub refused: Vec<String>,
}

impl Plan {
    /// Whether every tag of the image already points at its digest (a re-push of the same image).
    pub fn all_unchanged(&self) -> bool {
        !self.create_repo
            && !self.tags.is_empty()
            && self.tags.iter().all(|(_, tp)| *tp == TagPlan::Unchanged)
    }
}

impl Push<'_> {
    /// Phase 1 for every image at once (reads only); the first error in image order names its
    /// image.
    pub(crate) async fn plan_all(
        &self,
        loaded: &[Loaded],
        described: Vec<Described>,
    ) -> Result<Vec<Plan>, (String, anyhow::Error)> {
        let plans = loaded.iter().zip(described).map(|(l, d)| self.plan(l, d));
        let plans = futures_util::future::join_all(plans).await;
        loaded
            .iter()
            .zip(plans)
            .map(|(l, p)| p.map_err(|e| (l.job.name.clone(), e)))
            .collect()
    }

    /// Phase 1: the repository (exists? mutability?) and what happens to every tag. Reads only.
    async fn plan(&self, l: &Loaded, described: Described) -> anyhow::Result<Plan> {
        let repo = &l.job.repository;
        let (mutability, create_repo) = described?;
        let digest = &l.image.top.digest;
        let mut planned = Vec::new();
        let mut refused = Vec::new();
        // Every tag's digest at once (one round trip of wall time, not one per tag).
        let lookups = l.tags.iter().map(|t| async move {
            if create_repo {
                Ok(None)
            } else {
                self.registry.manifest_digest(repo, t).await
            }
        });
        let currents = futures_util::future::join_all(lookups).await;
        for (t, current) in l.tags.iter().zip(currents) {
            let current = current?;
            let tp = match current {
                None => TagPlan::Create,
                Some(d) if &d == digest => TagPlan::Unchanged,
                Some(d) => match mutability {
                    Mutability::Immutable => TagPlan::Refuse {
                        from: d,
                        why: "the repository is IMMUTABLE".into(),
                    },
                    Mutability::Mutable if l.moving.contains(t) || self.args.allow_retag => {
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
}

/// What phase 1 learns from ECR of an image's repository: its tag mutability, and whether phase 2
/// has to create it.
pub(crate) type Described = anyhow::Result<(Mutability, bool)>;

/// Every image's repository described at once (ECR only; the registry's tag lookups follow in
/// [`Push::plan_all`]): in one `DescribeRepositories` call naming them all, where there are
/// several and every one exists; else one call per repository, which names the one missing.
pub(crate) async fn describe_all(
    ecr: &deploy_core::aws_sdk_ecr::Client,
    create_repo: bool,
    loaded: &[Loaded],
) -> Vec<Described> {
    if let Some(all) = describe_together(ecr, loaded).await {
        return all;
    }
    futures_util::future::join_all(loaded.iter().map(|l| repository(ecr, create_repo, &l.job)))
        .await
}

/// Most repository names one `DescribeRepositories` call takes ("repositoryNames", 1 to 100
/// items: <https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DescribeRepositories.html>).
const MAX_NAMES_PER_DESCRIBE: usize = 100;

/// The repositories of several images in one call; `None` when there is one image, too many, or
/// the call fails (ECR fails the whole call when one named repository does not exist).
async fn describe_together(
    ecr: &deploy_core::aws_sdk_ecr::Client,
    loaded: &[Loaded],
) -> Option<Vec<Described>> {
    let mut names: Vec<String> = loaded.iter().map(|l| l.job.repository.clone()).collect();
    names.sort();
    names.dedup();
    if loaded.len() < 2 || names.len() > MAX_NAMES_PER_DESCRIBE {
        return None;
    }
    let out = ecr
        .describe_repositories()
        .set_repository_names(Some(names))
        .send()
        .await
        .ok()?;
    let found: std::collections::HashMap<&str, Mutability> = out
        .repositories()
        .iter()
        .filter_map(|r| Some((r.repository_name()?, mutability_of(r))))
        .collect();
    loaded
        .iter()
        .map(|l| {
            found
                .get(l.job.repository.as_str())
                .map(|m| Ok((*m, false)))
        })
        .collect()
}

/// A repository's tag mutability (immutable unless ECR says mutable: the safe reading).
fn mutability_of(r: &deploy_core::aws_sdk_ecr::types::Repository) -> Mutability {
    match r.image_tag_mutability() {
        Some(ImageTagMutability::Mutable) => Mutability::Mutable,
        _ => Mutability::Immutable,
    }
}

/// The job's repository: its tag mutability, and whether phase 2 has to create it (a missing
/// repository is a usage error without `--create-repo`; with it, it gets the image's own).
async fn repository(
    ecr: &deploy_core::aws_sdk_ecr::Client,
    create_repo: bool,
    job: &Job,
) -> Described {
    let repo = &job.repository;
    let described = ecr
        .describe_repositories()
        .repository_names(repo)
        .send()
        .await;
    match described {
        Ok(out) => Ok((
            out.repositories()
                .first()
                .map_or(Mutability::Immutable, mutability_of),
            false,
        )),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_repository_not_found_exception()) =>
        {
            if !create_repo {
                return Err(exit::usage(format!(
                    "ECR repository {repo:?} does not exist: create it or pass --create-repo"
                )));
            }
            Ok((job.mutability, true))
        }
        Err(e) => Err(deploy_core::aws::error(
            &format!("couldn't describe ECR repository {repo}"),
            &e,
        )),
    }
}

/// A refused tag anywhere: every image reported, nothing pushed.
pub(crate) fn report_refused(report: &mut Report, loaded: &[Loaded], plans: &[Plan]) {
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

fn short(d: &str) -> &str {
    d.get(..19).unwrap_or(d)
}

pub(crate) fn plan_check(job: &Job, image: &source::Image, p: &Plan) -> Check {
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
