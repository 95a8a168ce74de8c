//! Which revision a service goes back to. `previous` (the default) is the newest ACTIVE revision
//! of the family, older than the one running, tagged verified and not tagged bad: never blindly
//! N-1, which is often the broken revision of an earlier attempt. A revision number, a
//! `family:revision`, an ARN, a commit (`deploy-action:sha`) or an image tag name one directly.

use std::collections::BTreeMap;

use deploy_core::taskdef::{self, TaskDef};

/// What `--to` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// The newest verified, not-bad revision older than the running one.
    Previous,
    /// This revision of the service's own family.
    Revision(i32),
    /// `family:revision` or an ARN.
    Named(String),
    /// A commit SHA (`deploy-action:sha`) or an image tag / release (`v0.2.4`).
    Ref(String),
}

impl std::fmt::Display for To {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            To::Previous => f.write_str("previous"),
            To::Revision(r) => write!(f, "revision {r}"),
            To::Named(n) => f.write_str(n),
            To::Ref(r) => f.write_str(r),
        }
    }
}

/// The shortest all-digit `--to` that may also name a commit or an image tag (git's shortest
/// abbreviation); a shorter one is only ever a revision number.
pub const MIN_SHA: usize = 4;

/// Parses one `--to` value (without a `SERVICE=` prefix).
pub fn parse_to(s: &str) -> Result<To, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("--to is empty: write previous, a revision, family:revision, an ARN, a commit or an image tag".into());
    }
    if s == "previous" {
        return Ok(To::Previous);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: a revision number, or an abbreviated commit SHA that happens to be all
        // digits (about 1 in 27 of 7-digit ones). The plan takes the revision only when the
        // family has it, else the commit, and says which it chose.
        return match s.parse::<i32>() {
            Ok(r) if r > 0 && !s.starts_with('0') => Ok(To::Revision(r)),
            _ if s.len() >= MIN_SHA => Ok(To::Ref(s.to_owned())),
            _ => Err(format!("--to {s}: not a valid revision number")),
        };
    }
    if s.starts_with("arn:") {
        if !s.contains(":task-definition/") || taskdef::parse_name(s).is_none() {
            return Err(format!(
                "--to {s}: not a task definition ARN (arn:aws:ecs:REGION:ACCOUNT:task-definition/FAMILY:REV)"
            ));
        }
        return Ok(To::Named(s.to_owned()));
    }
    if taskdef::parse_name(s).is_some() {
        return Ok(To::Named(s.to_owned()));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) || s.len() > 128 {
        return Err(format!("--to {s:?}: not a revision, commit or image tag"));
    }
    Ok(To::Ref(s.to_owned()))
}

/// `--to` values, per service: `SERVICE=TARGET` for one service, a bare `TARGET` for the rest.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    all: Option<To>,
    per: BTreeMap<String, To>,
}

impl Targets {
    /// Parses every `--to` flag; a service named that is not rolled back is an error.
    pub fn parse(items: &[String], services: &[String]) -> Result<Targets, String> {
        let mut t = Targets::default();
        for item in items {
            // `family:rev` and ARNs never contain '=', so the first '=' splits off a service.
            match item.split_once('=') {
                Some((svc, to)) => {
                    if !services.iter().any(|s| s == svc) {
                        return Err(format!(
                            "--to {item}: service {svc:?} is not rolled back (services: {})",
                            services.join(", ")
                        ));
                    }
                    if t.per.insert(svc.to_owned(), parse_to(to)?).is_some() {
                        return Err(format!("--to names service {svc:?} twice"));
                    }
                }
                None => {
                    if t.all.replace(parse_to(item)?).is_some() {
                        return Err("--to without SERVICE= given twice: name the service (--to SERVICE=TARGET)".into());
                    }
                }
            }
        }
        Ok(t)
    }

    /// The target asked for `service`.
    pub fn for_service(&self, service: &str) -> To {
        self.per
            .get(service)
            .or(self.all.as_ref())
            .cloned()
            .unwrap_or(To::Previous)
    }
}

/// A revision looked at while choosing, and why it was passed over.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `family:revision`.
    pub name: String,
    /// Why not chosen.
    pub why: String,
}

/// How a target was chosen.
#[derive(Debug, Clone)]
pub struct Choice {
    /// The target.
    pub target: TaskDef,
    /// Warnings for the report (unverified fallback).
    pub warnings: Vec<String>,
    /// The revisions passed over on the way, newest first.
    pub passed_over: Vec<Seen>,
}

/// Whether `s` looks like a (possibly abbreviated) commit SHA.
fn looks_like_sha(s: &str) -> bool {
    (7..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether a container image reference carries tag `tag` (`repo:tag`, `repo:tag@sha256:...`).
pub fn image_has_tag(image: &str, tag: &str) -> bool {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split_once(':').is_some_and(|(_, t)| t == tag)
}

/// Picks `previous` from `older` (revisions below the running one, newest first).
pub fn pick_previous(older: &[TaskDef], allow_unverified: bool) -> Result<Choice, Vec<Seen>> {
    let mut passed_over = Vec::new();
    for td in older {
        if let Some(bad) = td.bad() {
            passed_over.push(Seen {
                name: td.name(),
                why: format!("tagged bad ({bad})"),
            });
        } else if td.verified().is_none() {
            passed_over.push(Seen {
                name: td.name(),
                why: "not verified".into(),
            });
        } else {
            return Ok(Choice {
                target: td.clone(),
                warnings: Vec::new(),
                passed_over,
            });
        }
    }
    if allow_unverified && let Some(td) = older.iter().find(|td| td.bad().is_none()) {
        return Ok(Choice {
            target: td.clone(),
            warnings: vec![format!(
                "no verified revision older than the running one: {} is not verified (--allow-unverified)",
                td.name()
            )],
            passed_over,
        });
    }
    Err(passed_over)
}

/// Picks the newest revision (other than the running one) whose commit is `r` or whose images
/// carry tag `r`. `tags_of_digest` gives the ECR tags of a digest-pinned image, when known.
pub fn pick_ref<'a>(
    candidates: &'a [TaskDef],
    r: &str,
    tags_of: impl Fn(&str) -> Vec<String>,
) -> Option<&'a TaskDef> {
    if looks_like_sha(r) {
        let lower = r.to_ascii_lowercase();
        if let Some(td) = candidates.iter().find(|td| {
            td.sha()
                .is_some_and(|s| s.to_ascii_lowercase().starts_with(&lower))
        }) {
            return Some(td);
        }
    }
    candidates.iter().find(|td| {
        td.containers.iter().any(|c| {
            image_has_tag(&c.image, r)
                || (c.image.contains("@sha256:") && tags_of(&c.image).iter().any(|t| t == r))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn td(rev: i32, tags: &[(&str, &str)], image: &str) -> TaskDef {
        TaskDef {
            arn: format!("arn:aws:ecs:eu-central-1:123456789012:task-definition/web:{rev}"),
            family: "web".into(),
            revision: rev,
            status: "ACTIVE".into(),
            containers: vec![taskdef::Container {
                name: "web".into(),
                image: image.into(),
                ..Default::default()
            }],
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn to_values_parse_into_their_kinds() {
        assert_eq!(parse_to("previous"), Ok(To::Previous));
        assert_eq!(parse_to("7"), Ok(To::Revision(7)));
        assert!(parse_to("0").is_err());
        assert_eq!(parse_to("web:7"), Ok(To::Named("web:7".into())));
        assert_eq!(
            parse_to("arn:aws:ecs:eu-central-1:1:task-definition/web:7"),
            Ok(To::Named(
                "arn:aws:ecs:eu-central-1:1:task-definition/web:7".into()
            ))
        );
        assert!(parse_to("arn:aws:s3:::bucket").is_err());
        assert_eq!(parse_to("v0.2.4"), Ok(To::Ref("v0.2.4".into())));
        assert_eq!(parse_to("abc1234"), Ok(To::Ref("abc1234".into())));
        assert!(parse_to("").is_err());
        assert!(parse_to("a b").is_err());
        // Too large for a revision, or a leading zero: only a commit can be meant.
        assert_eq!(parse_to("99999999999"), Ok(To::Ref("99999999999".into())));
        assert_eq!(parse_to("0123456"), Ok(To::Ref("0123456".into())));
        assert!(parse_to("00").is_err());
    }

    #[test]
    fn per_service_targets_override_the_default() {
        let svcs = vec!["web".to_owned(), "api".to_owned()];
        let t = Targets::parse(&["web=3".into(), "v1.2.0".into()], &svcs).unwrap();
        assert_eq!(t.for_service("web"), To::Revision(3));
        assert_eq!(t.for_service("api"), To::Ref("v1.2.0".into()));
        assert!(
            Targets::parse(&["db=3".into()], &svcs)
                .unwrap_err()
                .contains("\"db\" is not rolled back")
        );
        assert!(Targets::parse(&["3".into(), "4".into()], &svcs).is_err());
        assert_eq!(
            Targets::parse(&[], &svcs).unwrap().for_service("web"),
            To::Previous
        );
    }

    #[test]
    fn previous_skips_bad_and_unverified_revisions() {
        let older = vec![
            td(4, &[("deploy-action:bad", "2026 HTTP 503")], "r:4"),
            td(3, &[], "r:3"),
            td(
                2,
                &[("deploy-action:verified", "2026-11-01T00:00:00Z")],
                "r:2",
            ),
        ];
        let c = pick_previous(&older, false).unwrap();
        assert_eq!(c.target.revision, 2);
        assert!(c.warnings.is_empty());
        assert_eq!(c.passed_over.len(), 2);
        assert_eq!(c.passed_over[0].why, "tagged bad (2026 HTTP 503)");
    }

    #[test]
    fn no_verified_revision_is_refused_unless_allowed() {
        let older = vec![
            td(4, &[("deploy-action:bad", "x")], "r:4"),
            td(3, &[], "r:3"),
        ];
        let seen = pick_previous(&older, false).unwrap_err();
        assert_eq!(seen.len(), 2);
        let c = pick_previous(&older, true).unwrap();
        assert_eq!(c.target.revision, 3, "next lower not-bad revision");
        assert!(c.warnings[0].contains("not verified"));
        assert!(pick_previous(&[td(4, &[("deploy-action:bad", "x")], "r:4")], true).is_err());
    }

    #[test]
    fn refs_match_commits_then_image_tags() {
        let c = vec![
            td(
                5,
                &[("deploy-action:sha", "abcdef1234567")],
                "acct/web:v0.2.5",
            ),
            td(4, &[], "acct/web:v0.2.4@sha256:00"),
            td(3, &[], "registry:5000/web@sha256:11"),
        ];
        assert_eq!(pick_ref(&c, "ABCDEF1", |_| vec![]).unwrap().revision, 5);
        assert_eq!(pick_ref(&c, "v0.2.4", |_| vec![]).unwrap().revision, 4);
        assert_eq!(
            pick_ref(&c, "v0.2.3", |i| if i.ends_with("@sha256:11") {
                vec!["v0.2.3".into()]
            } else {
                vec![]
            })
            .unwrap()
            .revision,
            3
        );
        assert!(pick_ref(&c, "v9", |_| vec![]).is_none());
        assert!(
            !image_has_tag("registry:5000/web", "5000"),
            "a registry port is not a tag"
        );
    }
}
