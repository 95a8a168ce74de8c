//! Load: `[images]` of deploy.toml (or the flags) become jobs, every source is read and every tag
//! rendered, all before any network call. Bad input is a usage error (exit 2) here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use deploy_core::config::{Config, Mutability, flag_or_file};
use deploy_core::exit;

use crate::{Args, source};

/// One image to push.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub name: String,
    pub repository: String,
    pub source: String,
    pub tags: Vec<String>,
    pub moving: Vec<String>,
    pub mutability: Mutability,
    pub scan_on_push: bool,
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

/// ECR's rule for a repository name (CreateRepository's pattern, 2 to 256 characters): parts of
/// lowercase letters and digits joined by single `.`, `_` or `-`, separated by `/`. Checked here,
/// so a typo is exit 2 before any call, not an AWS error (exit 3).
pub(crate) fn valid_repository(name: &str) -> anyhow::Result<()> {
    let part_ok = |p: &str| {
        let mut prev_sep = true;
        for c in p.chars() {
            let sep = matches!(c, '.' | '_' | '-');
            if sep && prev_sep || !(sep || c.is_ascii_lowercase() || c.is_ascii_digit()) {
                return false;
            }
            prev_sep = sep;
        }
        !p.is_empty() && !prev_sep
    };
    if (2..=256).contains(&name.len()) && name.split('/').all(part_ok) {
        return Ok(());
    }
    Err(exit::usage(format!(
        "repository {name:?} is not a valid ECR repository name: 2 to 256 characters, parts of \
         lowercase letters and digits joined by single '.', '_' or '-', separated by '/'"
    )))
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

/// An image with its source read and its tags rendered.
pub(crate) struct Loaded {
    pub job: Job,
    pub image: source::Image,
    pub tags: Vec<String>,
    pub moving: Vec<String>,
}

/// The values of the tag templates' variables: {version}, {sha}, {sha7}, {env}. `git rev-parse`
/// runs only when a template asks for the commit and neither `--sha` nor `GITHUB_SHA` gives it.
fn template_vars(args: &Args, needs_sha: bool) -> BTreeMap<&'static str, Option<String>> {
    let sha = args
        .sha
        .clone()
        .or_else(|| std::env::var("GITHUB_SHA").ok())
        .or_else(|| {
            if !needs_sha {
                return None;
            }
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
pub(crate) fn load_all(args: &Args, cfg: Option<&Config>) -> anyhow::Result<Vec<Loaded>> {
    let jobs = jobs(args, cfg)?;
    for j in &jobs {
        valid_repository(&j.repository)?;
    }
    let needs_sha = jobs
        .iter()
        .any(|j| j.tags.iter().chain(&j.moving).any(|t| t.contains("{sha")));
    let vars = template_vars(args, needs_sha);
    let mut loaded = Vec::new();
    for job in jobs {
        let (path, reference) = match job.source.rsplit_once(':') {
            Some((p, r)) if !p.is_empty() && std::path::Path::new(p).is_dir() => {
                (PathBuf::from(p), Some(r.to_owned()))
            }
            _ => (PathBuf::from(&job.source), None),
        };
        let image = match job.source.strip_prefix("docker:") {
            Some(name) => {
                // An image name, never an option of `docker save` (`docker:-o/tmp/x`).
                if name.trim().is_empty()
                    || name.starts_with('-')
                    || name.contains(char::is_whitespace)
                {
                    return Err(exit::usage(format!(
                        "source {:?}: `docker:` needs an image name (NAME[:TAG]), not empty, an option or spaces",
                        job.source
                    )));
                }
                source::load_daemon(name)?
            }
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

#[cfg(test)]
mod tests {
    use deploy_core::Exit;

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

#[cfg(test)]
mod repository_name_tests {
    use super::valid_repository;

    #[test]
    fn ecr_repository_names() {
        for ok in ["ab", "afu9/control-center", "a/b/c", "x.y_z-1"] {
            assert!(valid_repository(ok).is_ok(), "{ok}");
        }
        // `app__x`: one separator at a time, as ECR's pattern has it.
        for bad in [
            "", "a", "UPPER", "a//b", "/a", "a/", "-a", "a-", "a b", "ä/b", "app__x",
        ] {
            let e = valid_repository(bad).unwrap_err().to_string();
            assert!(e.contains("not a valid ECR repository name"), "{bad}: {e}");
        }
    }
}
