//! Task definition revisions and the record of their health kept on them as tags: a revision that
//! passed `health-check --ecs --mark-verified` carries `deploy-action:verified` (UTC time),
//! `deploy-action:sha` (the commit) and `deploy-action:run` (the run URL); one that `rollback`
//! left carries `deploy-action:bad` (time and reason). Rollback chooses from these. Nothing here
//! deregisters a revision: a rollback must always have somewhere to go.

use std::collections::BTreeMap;

use serde::Serialize;

/// Tag on a revision that passed health-check: the UTC time it passed.
pub const TAG_VERIFIED: &str = "deploy-action:verified";
/// Tag on a verified revision: the commit it was built from.
pub const TAG_SHA: &str = "deploy-action:sha";
/// Tag on a verified revision: the workflow run that verified it.
pub const TAG_RUN: &str = "deploy-action:run";
/// Tag on a revision rollback left: the UTC time and the reason.
pub const TAG_BAD: &str = "deploy-action:bad";

/// The longest ECS tag value.
pub const MAX_TAG_VALUE: usize = 256;

/// Makes `s` a valid ECS tag value: letters, digits, spaces and `+ - = . _ : / @` stay, anything
/// else becomes `_`; at most 256 characters.
pub fn tag_value(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() || " +-=._:/@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(MAX_TAG_VALUE)
        .collect()
}

/// The URL of the current GitHub Actions run, when running in one.
pub fn run_url() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Some(format!(
        "{}/{}/actions/runs/{}",
        var("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into()),
        var("GITHUB_REPOSITORY")?,
        var("GITHUB_RUN_ID")?
    ))
}

/// One container of a revision, as far as a rollback diff cares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Container {
    /// Container name.
    pub name: String,
    /// Image reference (`repo:tag`, `repo@sha256:...`).
    pub image: String,
    /// Names of its environment variables (values are not read: they may be secrets).
    pub env_names: Vec<String>,
    /// Names of its secrets.
    pub secret_names: Vec<String>,
}

/// A task definition revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TaskDef {
    /// Full ARN.
    pub arn: String,
    /// Family.
    pub family: String,
    /// Revision number.
    pub revision: i32,
    /// `ACTIVE` or `INACTIVE` (or `DELETE_IN_PROGRESS`).
    pub status: String,
    /// Task-level CPU units, as registered.
    pub cpu: Option<String>,
    /// Task-level memory (MiB), as registered.
    pub memory: Option<String>,
    /// Its containers.
    pub containers: Vec<Container>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

impl TaskDef {
    /// `family:revision`.
    pub fn name(&self) -> String {
        format!("{}:{}", self.family, self.revision)
    }

    /// When it was verified, if it was and was not marked bad since.
    pub fn verified(&self) -> Option<&str> {
        self.tags.get(TAG_VERIFIED).map(String::as_str)
    }

    /// Why it was marked bad, if it was.
    pub fn bad(&self) -> Option<&str> {
        self.tags.get(TAG_BAD).map(String::as_str)
    }

    /// The commit it was verified at.
    pub fn sha(&self) -> Option<&str> {
        self.tags.get(TAG_SHA).map(String::as_str)
    }
}

/// Splits `family:revision` (or an ARN ending in it) into its parts.
pub fn parse_name(td: &str) -> Option<(&str, i32)> {
    let (family, rev) = crate::ecs::family_revision(td).rsplit_once(':')?;
    let rev = rev.parse().ok().filter(|r| *r > 0)?;
    (!family.is_empty()).then_some((family, rev))
}

#[cfg(feature = "ecs")]
mod fetch {
    use super::{Container, TaskDef};
    use crate::aws::error;
    use aws_sdk_ecs::types::{Tag, TaskDefinitionField, TaskDefinitionStatus};

    /// Describes a revision (`family:rev` or ARN) with its tags.
    pub async fn describe(client: &aws_sdk_ecs::Client, td: &str) -> anyhow::Result<TaskDef> {
        let out = client
            .describe_task_definition()
            .task_definition(td)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .map_err(|e| error(&format!("couldn't describe task definition {td}"), &e))?;
        let d = out.task_definition().ok_or_else(|| {
            crate::exit::dependency(format!("ECS returned no task definition for {td}"))
        })?;
        Ok(TaskDef {
            arn: d.task_definition_arn().unwrap_or_default().to_owned(),
            family: d.family().unwrap_or_default().to_owned(),
            revision: d.revision(),
            status: d
                .status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            cpu: d.cpu().map(str::to_owned),
            memory: d.memory().map(str::to_owned),
            containers: d
                .container_definitions()
                .iter()
                .map(|c| Container {
                    name: c.name().unwrap_or_default().to_owned(),
                    image: c.image().unwrap_or_default().to_owned(),
                    env_names: c
                        .environment()
                        .iter()
                        .filter_map(|kv| kv.name().map(str::to_owned))
                        .collect(),
                    secret_names: c.secrets().iter().map(|s| s.name().to_owned()).collect(),
                })
                .collect(),
            tags: out
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                .collect(),
        })
    }

    /// Every ACTIVE revision of `family`, newest first, as `(revision, ARN)`. Reads every page and
    /// sorts by revision itself: neither one page nor the API's order is trusted, and
    /// `familyPrefix` also matches longer families (`web` finds `webapp`), which are dropped.
    pub async fn active_revisions(
        client: &aws_sdk_ecs::Client,
        family: &str,
    ) -> anyhow::Result<Vec<(i32, String)>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _page in 0..1000 {
            let resp = client
                .list_task_definitions()
                .family_prefix(family)
                .status(TaskDefinitionStatus::Active)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    error(
                        &format!("couldn't list task definitions of family {family}"),
                        &e,
                    )
                })?;
            for arn in resp.task_definition_arns() {
                if let Some((f, rev)) = super::parse_name(arn)
                    && f == family
                    && !out.iter().any(|(r, _)| *r == rev)
                {
                    out.push((rev, arn.clone()));
                }
            }
            match resp.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        out.sort_by_key(|(rev, _)| std::cmp::Reverse(*rev));
        Ok(out)
    }

    /// Adds (or overwrites) tags on a revision.
    pub async fn tag(
        client: &aws_sdk_ecs::Client,
        arn: &str,
        tags: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let tags: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(super::tag_value(v)).build())
            .collect();
        client
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| error(&format!("couldn't tag task definition {arn}"), &e))?;
        Ok(())
    }
}

#[cfg(feature = "ecs")]
pub use fetch::{active_revisions, describe, tag};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_values_fit_ecs_rules() {
        assert_eq!(
            tag_value("https://github.com/o/r/actions/runs/1"),
            "https://github.com/o/r/actions/runs/1"
        );
        assert_eq!(
            tag_value("2026-11-28T16:00:00Z HTTP 503 (\"ready\": false)"),
            "2026-11-28T16:00:00Z HTTP 503 __ready_: false_"
        );
        assert_eq!(tag_value(&"x".repeat(300)).len(), 256);
    }

    #[test]
    fn names_split_into_family_and_revision() {
        assert_eq!(
            parse_name("arn:aws:ecs:eu-central-1:1:task-definition/web:12"),
            Some(("web", 12))
        );
        assert_eq!(parse_name("web:3"), Some(("web", 3)));
        assert_eq!(parse_name("web"), None);
        assert_eq!(parse_name("web:0"), None);
        assert_eq!(parse_name(":3"), None);
        assert_eq!(parse_name("web:x"), None);
    }
}
