//! The GitHub client factory and the two calls every tool reports through: a check run on the
//! head commit, with a commit status as the fallback when the token may not write checks.
//! [`publish_report`] is the common `--publish`: a finished [`Report`] becomes a check run named
//! `<tool> (<environment>)` with its annotations. `GITHUB_API_URL` points it at GitHub
//! Enterprise, or at Prism in tests.

use octocrab::Octocrab;
use serde_json::json;

use crate::exit::{self, Exit};
use crate::report::{Level, Report, Status};
use crate::secret::Secret;

/// The GitHub flags, one definition for every tool that talks to GitHub. The repository flag is
/// `--github-repository` (not `--repository`, which names an ECR repository to ecr-push).
#[derive(Debug, Clone, clap::Args)]
pub struct GithubArgs {
    /// Token for the GitHub API (the workflow's `github.token`).
    #[arg(long, env = "GITHUB_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub github_token: Option<Secret>,
    /// GitHub API base URL.
    #[arg(
        long,
        env = "GITHUB_API_URL",
        hide_env_values = true,
        default_value = "https://api.github.com",
        value_name = "URL"
    )]
    pub github_api_url: String,
    /// Repository as owner/name.
    #[arg(long, env = "GITHUB_REPOSITORY", value_name = "OWNER/NAME")]
    pub github_repository: Option<String>,
}

impl Default for GithubArgs {
    /// No token, no repository, github.com's API: what the flags give with nothing set.
    fn default() -> Self {
        GithubArgs {
            github_token: None,
            github_api_url: "https://api.github.com".to_owned(),
            github_repository: None,
        }
    }
}

/// Why a GitHub call failed.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    /// The API answered with an error status.
    #[error("GitHub API {call} answered {status}: {message}")]
    Api {
        /// Which call.
        call: String,
        /// HTTP status.
        status: u16,
        /// GitHub's message.
        message: String,
    },
    /// The request did not get an answer.
    #[error("GitHub API {call} failed: {message}")]
    Transport {
        /// Which call.
        call: String,
        /// Detail.
        message: String,
    },
}

impl GithubError {
    /// The HTTP status, when the API answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            GithubError::Api { status, .. } => Some(*status),
            GithubError::Transport { .. } => None,
        }
    }
}

/// The conclusion of a check run (and the matching commit status state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conclusion {
    /// Passed.
    Success,
    /// Failed.
    Failure,
    /// Passed with warnings.
    Neutral,
    /// Cut short by a signal (the job was cancelled): still an answer, so a required check
    /// does not wait at "Expected".
    Cancelled,
}

impl Conclusion {
    fn check_run(self) -> &'static str {
        match self {
            Conclusion::Success => "success",
            Conclusion::Failure => "failure",
            Conclusion::Neutral => "neutral",
            Conclusion::Cancelled => "cancelled",
        }
    }

    fn status_state(self) -> &'static str {
        match self {
            Conclusion::Success | Conclusion::Neutral => "success",
            Conclusion::Failure => "failure",
            // A commit status has no `cancelled` state (success, failure, error, pending):
            // https://docs.github.com/en/rest/commits/statuses#create-a-commit-status
            Conclusion::Cancelled => "error",
        }
    }
}

/// One check-run annotation (GitHub's `output.annotations[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckAnnotation {
    /// Repository-relative path.
    pub path: String,
    /// 1-based line.
    pub line: u32,
    /// `failure`, `warning` or `notice`.
    pub level: &'static str,
    /// Short title.
    pub title: String,
    /// The message.
    pub message: String,
}

/// GitHub takes at most 50 annotations per check-run request; the rest go in updates of the run.
pub const MAX_CHECK_ANNOTATIONS: usize = 50;

/// What to publish on a commit.
#[derive(Debug, Clone)]
pub struct CommitReport {
    /// Check run name / status context (`sync-check`).
    pub name: String,
    /// The commit.
    pub head_sha: String,
    /// Outcome.
    pub conclusion: Conclusion,
    /// One-line title.
    pub title: String,
    /// Markdown summary (capped at GitHub's 65,535 characters).
    pub summary: String,
    /// Link to the run.
    pub details_url: Option<String>,
    /// Annotations of the check run (at most [`MAX_CHECK_ANNOTATIONS`] are sent).
    pub annotations: Vec<CheckAnnotation>,
}

/// How a report reached GitHub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// As a check run with this id.
    CheckRun(u64),
    /// As a commit status (the token could not write checks).
    Status,
    /// Not at all: the token may write neither (e.g. a fork PR); the job summary has it.
    Nowhere(String),
}

/// A GitHub API client for one repository.
#[derive(Debug, Clone)]
pub struct GithubClient {
    octo: Octocrab,
    owner: String,
    repo: String,
}

/// GitHub's limits on a check run's output, in bytes: the summary ("exceeds a maximum bytesize of
/// 65535" is its 422), an annotation's title (255) and message (64 KB).
const MAX_SUMMARY_BYTES: usize = 65_535;
const MAX_TITLE_BYTES: usize = 255;
const MAX_ANNOTATION_MESSAGE_BYTES: usize = 64 * 1024;

/// `s` cut to at most `max` bytes (at a character boundary), `note` ending what was cut.
fn cut_bytes(s: &str, max: usize, note: &str) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut cut = max.saturating_sub(note.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{note}", &s[..cut])
}

impl GithubClient {
    /// Builds a client from the flags. Needs a token and a repository.
    pub fn new(args: &GithubArgs) -> anyhow::Result<Self> {
        let repo = args.github_repository.as_deref().ok_or_else(|| {
            exit::usage(
                "no repository: pass --github-repository OWNER/NAME or set GITHUB_REPOSITORY",
            )
        })?;
        let (owner, name) = repo
            .split_once('/')
            .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
            .ok_or_else(|| {
                exit::usage(format!(
                    "--github-repository must be OWNER/NAME, got {repo:?}"
                ))
            })?;
        let token = args.github_token.as_ref().ok_or_else(|| {
            exit::usage("no GitHub token: pass --github-token or set GITHUB_TOKEN")
        })?;
        crate::urls::validate_url(&args.github_api_url)
            .map_err(|e| exit::usage(format!("--github-api-url: {e}")))?;
        let octo = Octocrab::builder()
            .base_uri(args.github_api_url.trim_end_matches('/'))
            .map_err(|e| exit::usage(format!("--github-api-url: {e}")))?
            .personal_token(token.expose().to_owned())
            .set_connect_timeout(Some(std::time::Duration::from_secs(10)))
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .build()
            .map_err(|e| exit::dependency(format!("couldn't build the GitHub client: {e}")))?;
        Ok(GithubClient {
            octo,
            owner: owner.to_owned(),
            repo: name.to_owned(),
        })
    }

    /// The underlying octocrab client, for calls this module does not wrap.
    pub fn octocrab(&self) -> &Octocrab {
        &self.octo
    }

    async fn post(
        &self,
        call: &str,
        route: String,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, GithubError> {
        self.send_json(call, true, route, body).await
    }

    async fn patch(
        &self,
        call: &str,
        route: String,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, GithubError> {
        self.send_json(call, false, route, body).await
    }

    /// POST (`post`) or PATCH a JSON body to `route`.
    async fn send_json(
        &self,
        call: &str,
        post: bool,
        route: String,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, GithubError> {
        let r = if post {
            self.octo
                .post::<_, serde_json::Value>(route, Some(&body))
                .await
        } else {
            self.octo
                .patch::<serde_json::Value, _, _>(route, Some(&body))
                .await
        };
        Self::answer(call, r)
    }

    fn answer(
        call: &str,
        r: octocrab::Result<serde_json::Value>,
    ) -> Result<serde_json::Value, GithubError> {
        r.map_err(|e| match e {
            octocrab::Error::GitHub { source, .. } => GithubError::Api {
                call: call.to_owned(),
                status: source.status_code.as_u16(),
                message: crate::secret::redact(&source.message),
            },
            other => GithubError::Transport {
                call: call.to_owned(),
                message: crate::http::error_chain(&other),
            },
        })
    }

    /// Creates a completed check run; returns its id. GitHub takes 50 annotations a request
    /// ("To create more than 50 annotations, you have to make multiple requests to the Update a
    /// check run endpoint", <https://docs.github.com/en/rest/checks/runs#update-a-check-run>):
    /// the rest follow in updates of 50.
    pub async fn create_check_run(&self, r: &CommitReport) -> Result<u64, GithubError> {
        let summary = cut_bytes(
            &crate::secret::redact(&r.summary),
            MAX_SUMMARY_BYTES,
            "\n\n(truncated: see the job summary)",
        );
        let title = cut_bytes(&crate::secret::redact(&r.title), MAX_TITLE_BYTES, "…");
        let annotation = |a: &CheckAnnotation| {
            json!({
                "path": a.path,
                "start_line": a.line,
                "end_line": a.line,
                "annotation_level": a.level,
                "title": cut_bytes(&crate::secret::redact(&a.title), MAX_TITLE_BYTES, "…"),
                "message": cut_bytes(&crate::secret::redact(&a.message), MAX_ANNOTATION_MESSAGE_BYTES, "…"),
            })
        };
        let mut body = json!({
            "name": r.name,
            "head_sha": r.head_sha,
            "status": "completed",
            "conclusion": r.conclusion.check_run(),
            "completed_at": crate::report::now_rfc3339(),
            "output": { "title": title, "summary": summary },
        });
        if let Some(u) = &r.details_url {
            body["details_url"] = json!(u);
        }
        let mut batches = r.annotations.chunks(MAX_CHECK_ANNOTATIONS);
        if let Some(first) = batches.next() {
            body["output"]["annotations"] = first.iter().map(annotation).collect();
        }
        let v = self
            .post(
                "POST check-runs",
                format!("/repos/{}/{}/check-runs", self.owner, self.repo),
                body,
            )
            .await?;
        let id = v.get("id").and_then(|i| i.as_u64()).unwrap_or_default();
        for batch in batches {
            let more = json!({
                "output": {
                    "title": title,
                    "summary": summary,
                    "annotations": batch.iter().map(annotation).collect::<serde_json::Value>(),
                }
            });
            self.patch(
                "PATCH check-runs",
                format!("/repos/{}/{}/check-runs/{id}", self.owner, self.repo),
                more,
            )
            .await?;
        }
        Ok(id)
    }

    /// Creates a commit status.
    pub async fn create_status(&self, r: &CommitReport) -> Result<(), GithubError> {
        // GitHub caps a status description at 140 characters.
        let description: String = crate::secret::redact(&r.title).chars().take(140).collect();
        let mut body = json!({
            "state": r.conclusion.status_state(),
            "context": r.name,
            "description": description,
        });
        if let Some(u) = &r.details_url {
            body["target_url"] = json!(u);
        }
        self.post(
            "POST statuses",
            format!(
                "/repos/{}/{}/statuses/{}",
                self.owner, self.repo, r.head_sha
            ),
            body,
        )
        .await
        .map(|_| ())
    }

    /// Publishes a report: a check run, else (403/404: the token may not write checks) a commit
    /// status, else (403 again, e.g. a fork PR's read-only token) nowhere, with the reason.
    pub async fn publish(&self, r: &CommitReport) -> Result<Published, GithubError> {
        match self.create_check_run(r).await {
            Ok(id) => Ok(Published::CheckRun(id)),
            Err(e) if matches!(e.status(), Some(403 | 404)) => {
                tracing::warn!(
                    "couldn't create a check run ({e}); falling back to a commit status"
                );
                match self.create_status(r).await {
                    Ok(()) => Ok(Published::Status),
                    Err(e2) if matches!(e2.status(), Some(403 | 404)) => {
                        Ok(Published::Nowhere(format!(
                            "the token may write neither check runs nor statuses ({e2}); the job summary has the result"
                        )))
                    }
                    Err(e2) => Err(e2),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Creates a deployment of commit `git_ref` to `environment` for `task` (e.g. `rollback`);
    /// returns its id. No auto-merge and no required contexts: it records what happened, it does
    /// not ask GitHub to gate it.
    pub async fn create_deployment(
        &self,
        git_ref: &str,
        environment: &str,
        task: &str,
        description: &str,
    ) -> Result<u64, GithubError> {
        let body = json!({
            "ref": git_ref,
            "task": task,
            "environment": environment,
            "auto_merge": false,
            "required_contexts": [],
            "description": crate::secret::redact(description).chars().take(140).collect::<String>(),
        });
        let v = self
            .post(
                "POST deployments",
                format!("/repos/{}/{}/deployments", self.owner, self.repo),
                body,
            )
            .await?;
        Ok(v.get("id").and_then(|i| i.as_u64()).unwrap_or_default())
    }

    /// Sets a deployment's status (`in_progress`, `success`, `failure`...).
    pub async fn create_deployment_status(
        &self,
        deployment_id: u64,
        state: &str,
        description: &str,
        log_url: Option<&str>,
    ) -> Result<(), GithubError> {
        let mut body = json!({
            "state": state,
            "description": crate::secret::redact(description).chars().take(140).collect::<String>(),
        });
        if let Some(u) = log_url {
            body["log_url"] = json!(u);
        }
        self.post(
            "POST deployment statuses",
            format!(
                "/repos/{}/{}/deployments/{deployment_id}/statuses",
                self.owner, self.repo
            ),
            body,
        )
        .await
        .map(|_| ())
    }
}

/// When a tool publishes its report on the commit (`--publish`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Publish {
    /// Inside GitHub Actions with a token and a repository.
    Auto,
    /// Always (exit 3 if GitHub refuses for another reason than permissions).
    Always,
    /// Never.
    Never,
}

/// The common `--publish` flag with the GitHub flags it needs. Each tool picks its default
/// (sync-check: auto; the others: never, so a report becomes a check only when asked).
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Publishing")]
pub struct PublishArgs {
    /// Post the report on the head commit as a check run named `<tool> (<environment>)`, with
    /// annotations (a commit status when the token may not write checks; the job summary alone
    /// when it may write neither, e.g. a fork PR) [default: never].
    #[arg(long, value_enum, value_name = "WHEN")]
    pub publish: Option<Publish>,
    #[command(flatten)]
    pub github: GithubArgs,
    /// The flags' own headings; after them, none: the Publishing heading above does not reach the
    /// flags a tool declares next (clap keeps a `next_help_heading` until it is reset).
    #[command(flatten, next_help_heading = None::<&'static str>)]
    pub notify: crate::notify::NotifyArgs,
}

impl PublishArgs {
    /// The end of every run but sync-check's: the report finished (its outcome is what the check
    /// run shows), published when asked, finished again (`elapsed` gives the run's time so far),
    /// then written everywhere else it belongs.
    pub async fn publish_and_emit(
        &self,
        mut report: Report,
        common: &crate::cli::CommonArgs,
        annotation_path: &str,
        elapsed: impl Fn() -> std::time::Duration,
    ) -> anyhow::Result<Exit> {
        report.finish(elapsed());
        self.publish(&mut report, common.environment.as_deref(), annotation_path)
            .await;
        report.finish(elapsed());
        self.notify(&mut report, common).await;
        crate::cli::emit(&report, &common.output)
    }

    /// Posts the outcome to the webhook of `--notify` or `[notify]`, if any; a failure is a
    /// warning (stderr and an annotation), never a changed verdict.
    async fn notify(&self, report: &mut Report, common: &crate::cli::CommonArgs) {
        // The tool has read the config already; read it again for [notify] (a small file).
        let cfg =
            crate::config::Config::discover(common.config.as_deref(), std::path::Path::new("."))
                .ok()
                .flatten();
        let Some(target) = self
            .notify
            .target(&report.tool, cfg.as_ref().map(|c| &c.notify))
        else {
            return;
        };
        let posted = target.post(report).await;
        report.output("notified", posted.is_ok());
        if let Err(w) = posted {
            tracing::warn!("{w}");
            let _ = crate::gha::Actions::from_env().annotate(
                Level::Warning,
                &w,
                &crate::gha::Location {
                    title: Some("notify".to_owned()),
                    ..crate::gha::Location::default()
                },
            );
        }
    }

    /// Publishes `report` (see [`publish_report`]) as `<tool> (<environment>)` on the head commit
    /// of the event; `annotation_path` is where failed checks point (the config file).
    pub async fn publish(
        &self,
        report: &mut Report,
        environment: Option<&str>,
        annotation_path: &str,
    ) {
        let name = check_name(&report.tool, environment);
        let on = On {
            name: &name,
            head_sha: None,
            annotation_path: Some(annotation_path),
        };
        publish_report(
            report,
            &self.github,
            self.publish.unwrap_or(Publish::Never),
            on,
        )
        .await;
    }
}

impl PublishArgs {
    /// A run that ended in an error before it had a report (bad input, a dependency that failed)
    /// still answers its check: a check run `<tool> (<environment>)` concluding `failure`, with
    /// the error (redacted) as its title and summary. Returns `err` unchanged for the exit path.
    pub async fn answer_error(
        &self,
        err: anyhow::Error,
        common: &crate::cli::CommonArgs,
        tool: &str,
    ) -> anyhow::Error {
        let name = check_name(tool, common.environment.as_deref());
        let on = On {
            name: &name,
            head_sha: None,
            annotation_path: None,
        };
        publish_error(
            &err,
            tool,
            &self.github,
            self.publish.unwrap_or(Publish::Never),
            on,
        )
        .await;
        err
    }
}

/// Publishes a report of `err` (see [`PublishArgs::answer_error`]) as `name` on `head_sha` (else
/// the event's head commit), when `when` asks for publishing. A failure to publish is a warning:
/// the error that ended the run stands. Branch protection waits at "Expected" for a required
/// check that is never reported: every path of a run must answer it,
/// <https://docs.github.com/en/pull-requests/collaborating-with-pull-requests/collaborating-on-repositories-with-code-quality-features/troubleshooting-required-status-checks>.
pub async fn publish_error(
    err: &anyhow::Error,
    tool: &str,
    github: &GithubArgs,
    when: Publish,
    on: On<'_>,
) {
    if ANSWERED.load(std::sync::atomic::Ordering::SeqCst) {
        // The report was published before this error (one writing the report's files): one
        // check run per run; the error is the step's (its log, outputs and exit code).
        return;
    }
    let code = exit::classify(err);
    let line = crate::secret::redact(&format!("{err:#}"));
    let mut report = Report::new(tool, env!("CARGO_PKG_VERSION"), on.name);
    report.summary = format!("{code}: {line}");
    report.fail_with(code, line.clone());
    publish_report(&mut report, github, when, on).await;
    if let Some(why) = report.error.filter(|e| *e != line) {
        tracing::warn!("{why}");
    }
}

/// Where a report is published: the check run's name, the commit (none: the event's head
/// commit), and the file its annotations point to.
#[derive(Debug, Clone)]
pub struct On<'a> {
    /// The check run's name.
    pub name: &'a str,
    /// The commit; `None`: the head commit of the event.
    pub head_sha: Option<String>,
    /// The file failed checks point to (the config file).
    pub annotation_path: Option<&'a str>,
}

/// The check run's name: `<tool> (<environment>)`, or `<tool>` without an environment.
pub fn check_name(tool: &str, environment: Option<&str>) -> String {
    match environment.filter(|e| !e.is_empty()) {
        Some(e) => format!("{tool} ({e})"),
        None => tool.to_owned(),
    }
}

/// The flags were refused, so the run never began: when it would have published (its
/// `--publish` on the command line, else the tool's default: sync-check `auto`, the others
/// `never`), the refusal is still answered as a failed check run on the head commit, named as the
/// run's would have been, so a required check never waits at "Expected". The GitHub settings come
/// from the environment (`GITHUB_TOKEN`, `GITHUB_API_URL`, `GITHUB_REPOSITORY`), as the flags'
/// defaults do.
pub async fn answer_refused_flags(tool: &str, argv: &[std::ffi::OsString], why: &str) {
    use clap::ValueEnum;
    let args: Vec<String> = argv
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut publish = if tool == "sync-check" {
        Publish::Auto
    } else {
        Publish::Never
    };
    let mut environment = std::env::var("DEPLOY_ENVIRONMENT")
        .ok()
        .filter(|e| !e.is_empty());
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let next = args.get(i + 1).cloned();
        let (flag, value) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (a.as_str(), None),
        };
        match flag {
            "--publish" => {
                if let Some(p) = value
                    .or(next)
                    .and_then(|v| Publish::from_str(&v, true).ok())
                {
                    publish = p;
                }
            }
            "--environment" | "-e" => environment = value.or(next).or(environment),
            _ => {}
        }
        i += 1;
    }
    if publish == Publish::Never {
        return;
    }
    let github = GithubArgs {
        github_token: std::env::var("GITHUB_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .map(Secret::new),
        github_api_url: std::env::var("GITHUB_API_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "https://api.github.com".to_owned()),
        github_repository: std::env::var("GITHUB_REPOSITORY")
            .ok()
            .filter(|r| !r.is_empty()),
    };
    // sync-check's check run has one name; the others' name their environment.
    let name = if tool == "sync-check" {
        tool.to_owned()
    } else {
        check_name(tool, environment.as_deref())
    };
    let on = On {
        name: &name,
        head_sha: None,
        annotation_path: None,
    };
    let err = exit::usage(format!("the flags were refused: {why}"));
    publish_error(&err, tool, &github, publish, on).await;
}

/// The commit a report belongs to inside Actions: a pull request's head (never the synthetic
/// merge commit in `GITHUB_SHA`), a merge group's head, else `GITHUB_SHA`.
pub fn head_sha_from_env() -> Option<String> {
    let from_event = std::env::var_os("GITHUB_EVENT_PATH")
        .and_then(|p| crate::read_file_capped(std::path::Path::new(&p), 64 * 1024 * 1024).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| {
            v.pointer("/pull_request/head/sha")
                .or_else(|| v.pointer("/merge_group/head_sha"))
                .and_then(|s| s.as_str())
                .map(str::to_owned)
        });
    from_event.or_else(|| std::env::var("GITHUB_SHA").ok().filter(|s| !s.is_empty()))
}

/// The check run's annotations: the report's file findings, then (with a `path`: the config file
/// the checks come from) one per failed or errored check.
pub fn annotations_of(report: &Report, path: Option<&str>) -> Vec<CheckAnnotation> {
    let mut out: Vec<CheckAnnotation> = report
        .annotations
        .iter()
        .map(|a| CheckAnnotation {
            path: a.file.clone(),
            line: 1,
            level: a.level.check_run(),
            title: a.title.clone(),
            message: a.message.clone(),
        })
        .collect();
    let Some(path) = path else {
        return out;
    };
    for c in &report.checks {
        let level = match c.status {
            Status::Failed => Level::Error,
            Status::Error => Level::Warning,
            Status::Passed | Status::Skipped => continue,
        }
        .check_run();
        out.push(CheckAnnotation {
            path: path.to_owned(),
            line: 1,
            level,
            title: format!("{}: {}", report.tool, c.name),
            message: c
                .reason
                .clone()
                .unwrap_or_else(|| "did not pass".to_owned()),
        });
    }
    out
}

/// Whether this process has published its report (a check run, a status, or tried to).
static ANSWERED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Publishes a finished report on the head commit, the common `--publish` of every tool: a check
/// run named `name` with the report's Markdown as its summary and its findings as annotations;
/// a commit status when the token may not write checks; nothing (a warning, the job summary
/// keeps the result) when it may write neither, as on a fork's pull request. Records
/// `check-run-id` or `published` in the report's outputs; a GitHub failure of another kind makes
/// the run a dependency error.
pub async fn publish_report(report: &mut Report, github: &GithubArgs, when: Publish, on: On<'_>) {
    let On {
        name,
        head_sha,
        annotation_path,
    } = on;
    let in_actions = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    let wanted = match when {
        Publish::Never => false,
        Publish::Always => true,
        Publish::Auto => {
            in_actions && github.github_token.is_some() && github.github_repository.is_some()
        }
    };
    if !wanted {
        return;
    }
    let Some(head_sha) = head_sha.or_else(head_sha_from_env) else {
        report.fail_with(
            Exit::Usage,
            "--publish: no commit to publish on (GITHUB_SHA is not set)",
        );
        return;
    };
    let client = match GithubClient::new(github) {
        Ok(c) => c,
        Err(e) => {
            report.fail_with(exit::classify(&e), format!("--publish: {e:#}"));
            return;
        }
    };
    // From here on this run has answered its check (or tried): an error after it (writing the
    // report's files) must not post a second, contradicting one.
    ANSWERED.store(true, std::sync::atomic::Ordering::SeqCst);
    let failed = report.outcome != Exit::Passed
        || report
            .checks
            .iter()
            .any(|c| matches!(c.status, Status::Failed | Status::Error));
    let r = CommitReport {
        name: name.to_owned(),
        head_sha: head_sha.clone(),
        conclusion: if report.cancelled_by.is_some() {
            Conclusion::Cancelled
        } else if failed {
            Conclusion::Failure
        } else {
            Conclusion::Success
        },
        title: report.summary.clone(),
        summary: crate::render::markdown::render(report),
        details_url: std::env::var("GITHUB_SERVER_URL")
            .ok()
            .zip(std::env::var("GITHUB_REPOSITORY").ok())
            .zip(std::env::var("GITHUB_RUN_ID").ok())
            .map(|((s, r), id)| format!("{s}/{r}/actions/runs/{id}")),
        annotations: annotations_of(report, annotation_path),
    };
    match client.publish(&r).await {
        Ok(Published::CheckRun(id)) => report.output("check-run-id", id),
        Ok(Published::Status) => report.output("published", "commit-status"),
        Ok(Published::Nowhere(why)) => {
            tracing::warn!("{why}");
            report.output("published", "job-summary-only");
        }
        Err(e) => report.fail_with(
            Exit::Dependency,
            format!("couldn't publish the result on {head_sha}: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Annotation, Check};

    #[test]
    fn check_name_carries_the_environment() {
        assert_eq!(
            check_name("smoke-test", Some("preview-42")),
            "smoke-test (preview-42)"
        );
        assert_eq!(check_name("sync-check", None), "sync-check");
        assert_eq!(check_name("sync-check", Some("")), "sync-check");
    }

    #[test]
    fn annotations_cover_file_findings_and_failed_checks_only() {
        let mut r = Report::new("health-check", "0", "staging");
        r.push(Check::new("ok", Status::Passed));
        r.push(Check::new("ready", Status::Failed).reason("HTTP 503"));
        r.push(Check::new("ecs", Status::Error).reason("AWS said no"));
        r.annotations.push(Annotation {
            level: Level::Warning,
            file: "src/a.rs".into(),
            title: "t".into(),
            message: "m".into(),
        });
        assert_eq!(annotations_of(&r, None).len(), 1);
        let a = annotations_of(&r, Some("deploy.toml"));
        assert_eq!(a.len(), 3);
        assert_eq!((a[0].path.as_str(), a[0].level), ("src/a.rs", "warning"));
        assert_eq!(a[1].title, "health-check: ready");
        assert_eq!((a[1].level, a[1].message.as_str()), ("failure", "HTTP 503"));
        assert_eq!((a[2].path.as_str(), a[2].level), ("deploy.toml", "warning"));
    }
}
