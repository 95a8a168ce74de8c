//! Which commit to check and against which base, in every trigger. On `pull_request` the head is
//! the PR head SHA from the event payload, never `GITHUB_SHA`: that is the synthetic merge commit,
//! which a conflicted PR does not have, and which is never "behind".

use std::path::Path;

use deploy_core::exit;
use serde_json::Value;

/// What the run checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The trigger (`pull_request`, `merge_group`, `push`, `workflow_dispatch`, `local`).
    pub trigger: String,
    /// The commit to check (a SHA, or `HEAD` locally until resolved).
    pub head: String,
    /// The head's branch name, when known.
    pub head_ref: Option<String>,
    /// The base branch (short name).
    pub base: Option<String>,
    /// The PR number, for `pull_request`.
    pub pr_number: Option<u64>,
    /// A note for the report (e.g. that GITHUB_SHA was the merge ref and was not used).
    pub note: Option<String>,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |cur, k| cur.get(k))
        .and_then(Value::as_str)
}

/// Resolves the target from the Actions environment (`GITHUB_EVENT_NAME`, `GITHUB_EVENT_PATH`,
/// `GITHUB_SHA`, `GITHUB_REF`); outside Actions, the local `HEAD`.
pub fn resolve(
    event_name: Option<&str>,
    event_path: Option<&Path>,
    github_sha: Option<&str>,
    github_ref: Option<&str>,
) -> anyhow::Result<Target> {
    let payload = || -> anyhow::Result<Value> {
        let p = event_path.ok_or_else(|| {
            exit::usage(
                "GITHUB_EVENT_PATH is not set: the event payload is needed to find the PR head",
            )
        })?;
        // GitHub's payloads are at most 25 MB; an endless file must not fill the memory.
        let bytes = deploy_core::read_file_capped(p, 64 * 1024 * 1024).map_err(|e| {
            exit::usage(format!(
                "couldn't read the event payload {}: {e}",
                p.display()
            ))
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| exit::usage(format!("event payload {} is not JSON: {e}", p.display())))
    };
    let branch_of = |r: &str| r.strip_prefix("refs/heads/").map(str::to_owned);
    match event_name {
        Some(name @ ("pull_request" | "pull_request_target")) => {
            let v = payload()?;
            let head = str_at(&v, &["pull_request", "head", "sha"]).ok_or_else(|| {
                exit::usage("the pull_request payload has no pull_request.head.sha")
            })?;
            let note = github_sha
                .filter(|s| *s != head)
                .map(|s| format!("GITHUB_SHA {s} is the synthetic merge commit; checked the PR head {head} instead"));
            Ok(Target {
                trigger: name.to_owned(),
                head: head.to_owned(),
                head_ref: str_at(&v, &["pull_request", "head", "ref"]).map(str::to_owned),
                base: str_at(&v, &["pull_request", "base", "ref"]).map(str::to_owned),
                pr_number: v.get("number").and_then(Value::as_u64),
                note,
            })
        }
        Some("merge_group") => {
            let v = payload()?;
            let head = str_at(&v, &["merge_group", "head_sha"]).ok_or_else(|| {
                exit::usage("the merge_group payload has no merge_group.head_sha")
            })?;
            Ok(Target {
                trigger: "merge_group".into(),
                head: head.to_owned(),
                head_ref: str_at(&v, &["merge_group", "head_ref"])
                    .map(|r| r.trim_start_matches("refs/heads/").to_owned()),
                base: str_at(&v, &["merge_group", "base_ref"]).and_then(branch_of),
                pr_number: None,
                note: None,
            })
        }
        Some(other) => Ok(Target {
            trigger: other.to_owned(),
            head: github_sha.unwrap_or("HEAD").to_owned(),
            head_ref: github_ref.and_then(branch_of),
            base: None,
            pr_number: None,
            note: None,
        }),
        None => Ok(Target {
            trigger: "local".into(),
            head: "HEAD".into(),
            head_ref: None,
            base: None,
            pr_number: None,
            note: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(json: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), json).unwrap();
        f
    }

    #[test]
    fn pull_request_uses_the_head_sha_not_the_merge_ref() {
        let f = payload(
            r#"{"number":7,"pull_request":{"head":{"sha":"aaaa","ref":"feat"},"base":{"ref":"main"}}}"#,
        );
        let t = resolve(
            Some("pull_request"),
            Some(f.path()),
            Some("mmmm"),
            Some("refs/pull/7/merge"),
        )
        .unwrap();
        assert_eq!(t.head, "aaaa");
        assert_eq!(t.head_ref.as_deref(), Some("feat"));
        assert_eq!(t.base.as_deref(), Some("main"));
        assert_eq!(t.pr_number, Some(7));
        assert!(
            t.note
                .unwrap()
                .contains("GITHUB_SHA mmmm is the synthetic merge commit")
        );
    }

    #[test]
    fn merge_group_and_push() {
        let f = payload(
            r#"{"merge_group":{"head_sha":"bbbb","head_ref":"refs/heads/gh-readonly-queue/main/pr-1","base_ref":"refs/heads/main"}}"#,
        );
        let t = resolve(Some("merge_group"), Some(f.path()), Some("bbbb"), None).unwrap();
        assert_eq!((t.head.as_str(), t.base.as_deref()), ("bbbb", Some("main")));
        let t = resolve(Some("push"), None, Some("cccc"), Some("refs/heads/feat")).unwrap();
        assert_eq!(
            (t.head.as_str(), t.head_ref.as_deref(), t.base),
            ("cccc", Some("feat"), None)
        );
        let t = resolve(None, None, None, None).unwrap();
        assert_eq!((t.trigger.as_str(), t.head.as_str()), ("local", "HEAD"));
    }

    #[test]
    fn a_pull_request_without_payload_is_a_usage_error() {
        let e = resolve(Some("pull_request"), None, Some("x"), None).unwrap_err();
        assert_eq!(exit::classify(&e), exit::Exit::Usage);
    }
}

#[cfg(test)]
mod proptests {
    //! The event payload is outside input (`GITHUB_EVENT_PATH`): any bytes, any JSON shape, any
    //! event name. Never a panic; a payload it cannot use is a usage error.

    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    fn payload() -> impl Strategy<Value = Vec<u8>> {
        let sha = prop_oneof![
            "[0-9a-f]{40}".prop_map(serde_json::Value::from),
            "\\PC{0,12}".prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
        ];
        prop_oneof![
            (sha.clone(), "[a-z/-]{0,12}", prop::option::of(any::<u32>())).prop_map(
                |(sha, base, number)| {
                    serde_json::json!({
                        "number": number,
                        "pull_request": { "head": { "sha": sha }, "base": { "ref": base } },
                        "merge_group": { "head_sha": "x", "base_ref": base },
                    })
                    .to_string()
                    .into_bytes()
                }
            ),
            prop::collection::vec(any::<u8>(), 0..200),
        ]
    }

    proptest! {
        #![proptest_config(Config {
            cases: deploy_core::testing::proptest_cases(1000),
            rng_seed: RngSeed::Fixed(0x5eed_e7e7),
            failure_persistence: None,
            ..Config::default()
        })]

        #[test]
        fn any_payload_resolves_or_is_a_usage_error(
            bytes in payload(),
            name in prop_oneof![
                Just("pull_request"),
                Just("pull_request_target"),
                Just("merge_group"),
                Just("push"),
                Just("workflow_dispatch"),
            ],
            sha in prop::option::of("[0-9a-f]{40}"),
            git_ref in prop::option::of("refs/(heads|pull|tags)/[a-z0-9/-]{0,12}"),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("event.json");
            std::fs::write(&path, &bytes).unwrap();
            if let Err(e) = super::resolve(Some(name), Some(&path), sha.as_deref(), git_ref.as_deref()) {
                prop_assert_eq!(deploy_core::exit::classify(&e), deploy_core::exit::Exit::Usage, "{:#}", e);
            }
        }
    }
}
