//! The GitHub client factory and the two calls every tool reports through: a check run on the
//! head commit, with a commit status as the fallback when the token may not write checks.
//! `GITHUB_API_URL` points it at GitHub Enterprise, or at Prism in tests.

use octocrab::Octocrab;
use serde_json::json;

use crate::exit;
use crate::secret::Secret;

/// GitHub flags shared by the tools that report to GitHub.
#[derive(Debug, Clone, clap::Args)]
pub struct GithubArgs {
    /// Token for the GitHub API (the workflow's `github.token`).
    #[arg(
        long,
        env = "GITHUB_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub github_token: Option<Secret>,
    /// GitHub API base URL.
    #[arg(
        long,
        env = "GITHUB_API_URL",
        default_value = "https://api.github.com",
        value_name = "URL"
    )]
    pub github_api_url: String,
    /// Repository as owner/name.
    #[arg(long, env = "GITHUB_REPOSITORY", value_name = "OWNER/NAME")]
    pub repository: Option<String>,
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
}

impl Conclusion {
    fn check_run(self) -> &'static str {
        match self {
            Conclusion::Success => "success",
            Conclusion::Failure => "failure",
            Conclusion::Neutral => "neutral",
        }
    }

    fn status_state(self) -> &'static str {
        match self {
            Conclusion::Success | Conclusion::Neutral => "success",
            Conclusion::Failure => "failure",
        }
    }
}

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

const MAX_SUMMARY_CHARS: usize = 65_535;

impl GithubClient {
    /// Builds a client from the flags. Needs a token and a repository.
    pub fn new(args: &GithubArgs) -> anyhow::Result<Self> {
        let repo = args.repository.as_deref().ok_or_else(|| {
            exit::usage("no repository: pass --repository OWNER/NAME or set GITHUB_REPOSITORY")
        })?;
        let (owner, name) = repo
            .split_once('/')
            .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
            .ok_or_else(|| exit::usage(format!("--repository must be OWNER/NAME, got {repo:?}")))?;
        let token = args.github_token.as_ref().ok_or_else(|| {
            exit::usage("no GitHub token: pass --github-token or set GITHUB_TOKEN")
        })?;
        crate::config::validate_url(&args.github_api_url)
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
        self.octo
            .post::<_, serde_json::Value>(route, Some(&body))
            .await
            .map_err(|e| match e {
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

    /// Creates a completed check run; returns its id.
    pub async fn create_check_run(&self, r: &CommitReport) -> Result<u64, GithubError> {
        let mut summary = crate::secret::redact(&r.summary);
        if summary.chars().count() > MAX_SUMMARY_CHARS {
            summary = summary.chars().take(MAX_SUMMARY_CHARS - 40).collect();
            summary.push_str("\n\n(truncated: see the job summary)");
        }
        let mut body = json!({
            "name": r.name,
            "head_sha": r.head_sha,
            "status": "completed",
            "conclusion": r.conclusion.check_run(),
            "completed_at": crate::report::now_rfc3339(),
            "output": { "title": crate::secret::redact(&r.title), "summary": summary },
        });
        if let Some(u) = &r.details_url {
            body["details_url"] = json!(u);
        }
        let v = self
            .post(
                "POST check-runs",
                format!("/repos/{}/{}/check-runs", self.owner, self.repo),
                body,
            )
            .await?;
        Ok(v.get("id").and_then(|i| i.as_u64()).unwrap_or_default())
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
