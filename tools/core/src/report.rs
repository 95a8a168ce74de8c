//! The one report model every tool produces. It is the contract between the binaries, the
//! composite action and the job summary: renderers (terminal, JSON, Markdown, JUnit) only read it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::exit::Exit;

/// The result of one check (an HTTP check, an ECS service, a merge test...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// It held.
    Passed,
    /// It ran and did not hold.
    Failed,
    /// It could not run (a dependency failed).
    Error,
    /// Not run (dry run, not selected, interrupted before it started).
    Skipped,
}

impl Status {
    /// A one-character mark for terminals and summaries.
    pub fn mark(self) -> &'static str {
        match self {
            Status::Passed => "✔",
            Status::Failed => "✘",
            Status::Error => "!",
            Status::Skipped => "-",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    /// Human name, unique within the report.
    pub name: String,
    /// How it ended.
    pub status: Status,
    /// Time spent on it in total, all attempts.
    pub duration_ms: u64,
    /// Attempts made (1 for a one-shot check).
    pub attempts: u32,
    /// Latency of the last response, for HTTP checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Why it failed, or what it saw last: one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Extra facts shown under the check (e.g. each MCP server's status), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<(String, String)>,
    /// What held but wants attention (a certificate close to expiry): shown as warnings, the
    /// status unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Check {
    /// A check with the given status, one attempt, no time.
    pub fn new(name: impl Into<String>, status: Status) -> Self {
        Check {
            name: name.into(),
            status,
            duration_ms: 0,
            attempts: 1,
            latency_ms: None,
            reason: None,
            details: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Sets the reason.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Sets the duration.
    pub fn took(mut self, d: Duration) -> Self {
        self.duration_ms = d.as_millis() as u64;
        self
    }

    /// Sets the attempt count.
    pub fn attempts(mut self, n: u32) -> Self {
        self.attempts = n;
        self
    }

    /// Sets the last response's latency.
    pub fn latency(mut self, d: Duration) -> Self {
        self.latency_ms = Some(d.as_millis() as u64);
        self
    }

    /// Adds a detail line.
    pub fn detail(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.details.push((key.into(), value.into()));
        self
    }

    /// Adds a warning.
    pub fn warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }
}

/// What became of an audited call (serialized `planned`, `done`, `failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// A dry run's plan: nothing was called.
    Planned,
    /// The call succeeded.
    Done,
    /// The call failed.
    Failed,
}

impl std::fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuditOutcome::Planned => "planned",
            AuditOutcome::Done => "done",
            AuditOutcome::Failed => "failed",
        })
    }
}

/// What an audited call did: the service and its operation, written in the report as
/// `service:Operation` (`ecs:UpdateService`, `registry:create tag`), as earlier versions did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// ECS UpdateService: a rollback to a task definition.
    EcsUpdateService,
    /// ECS StopServiceDeployment: a native rollback of a deployment in flight.
    EcsStopServiceDeployment,
    /// ECS TagResource: the verified (or bad) tags of a task definition revision.
    EcsTagResource,
    /// ECR CreateRepository.
    EcrCreateRepository,
    /// A blob uploaded to the registry.
    RegistryUploadBlob,
    /// A blob mounted from another repository of the registry.
    RegistryMountBlob,
    /// A tag created.
    RegistryCreateTag,
    /// A tag moved to another digest.
    RegistryMoveTag,
    /// CloudWatch PutMetricData (Availability, MTTR).
    CloudwatchPutMetricData,
    /// CloudWatch Logs PutLogEvents (incident records).
    LogsPutLogEvents,
    /// GitHub: a deployment created.
    GithubCreateDeployment,
    /// GitHub: a deployment status posted.
    GithubCreateDeploymentStatus,
    /// A local file appended to (the changelog).
    FileAppend,
    /// A git ref written (the backup ref, the branch).
    GitUpdateRef,
    /// git rebase of the branch.
    GitRebase,
    /// git merge into the branch.
    GitMerge,
    /// git push.
    GitPush,
}

impl AuditAction {
    /// Every action with its name in the report.
    pub const ALL: [(AuditAction, &'static str); 17] = [
        (AuditAction::EcsUpdateService, "ecs:UpdateService"),
        (
            AuditAction::EcsStopServiceDeployment,
            "ecs:StopServiceDeployment",
        ),
        (AuditAction::EcsTagResource, "ecs:TagResource"),
        (AuditAction::EcrCreateRepository, "ecr:CreateRepository"),
        (AuditAction::RegistryUploadBlob, "registry:upload blob"),
        (AuditAction::RegistryMountBlob, "registry:mount blob"),
        (AuditAction::RegistryCreateTag, "registry:create tag"),
        (AuditAction::RegistryMoveTag, "registry:move tag"),
        (
            AuditAction::CloudwatchPutMetricData,
            "cloudwatch:PutMetricData",
        ),
        (AuditAction::LogsPutLogEvents, "logs:PutLogEvents"),
        (
            AuditAction::GithubCreateDeployment,
            "github:POST deployments",
        ),
        (
            AuditAction::GithubCreateDeploymentStatus,
            "github:POST deployment status",
        ),
        (AuditAction::FileAppend, "file:append"),
        (AuditAction::GitUpdateRef, "git:update-ref"),
        (AuditAction::GitRebase, "git:rebase"),
        (AuditAction::GitMerge, "git:merge"),
        (AuditAction::GitPush, "git:push"),
    ];

    /// As written in the report.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(a, _)| *a == self)
            .map_or("unknown", |(_, s)| s)
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AuditAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuditAction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::ALL
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(a, _)| *a)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown audit action {s:?}")))
    }
}

/// One mutating call, planned or made: the audit trail the runbook asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEvent {
    /// RFC 3339 UTC time.
    pub at: String,
    /// What was done, e.g. `ecs:UpdateService`, `git:update-ref`, `registry:create tag`.
    pub action: AuditAction,
    /// What it was done to.
    pub target: String,
    /// Planned (dry run), done or failed.
    pub outcome: AuditOutcome,
    /// Anything else worth keeping (old and new values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An annotation's level (a workflow command `::error`, or a check run's `failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// `::error`; `failure` in a check run.
    Error,
    /// `::warning`
    Warning,
    /// `::notice`
    Notice,
}

impl Level {
    /// The workflow command: `error`, `warning`, `notice`.
    pub fn command(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
        }
    }

    /// The check-run annotation level: `failure`, `warning`, `notice`.
    pub fn check_run(self) -> &'static str {
        match self {
            Level::Error => "failure",
            Level::Warning => "warning",
            Level::Notice => "notice",
        }
    }
}

/// A finding tied to a file, shown as a GitHub annotation (within the runner's per-step limits).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Annotation {
    /// How serious it is.
    pub level: Level,
    /// Repository-relative path.
    pub file: String,
    /// Short title.
    pub title: String,
    /// The message.
    pub message: String,
}

/// One finding of "why it failed": what was seen, what kind of failure it is, and the runbook's
/// hint (section 8) on what to check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What it is about: `service control-center`, `target group ...`, `alarm ...`.
    pub subject: String,
    /// The kind: `image pull failure`, `out of memory`, `no capacity to place tasks`...
    pub class: String,
    /// What was seen, one line.
    pub summary: String,
    /// What to check (runbook section 8).
    pub hint: String,
    /// Supporting lines (stop reasons, events, the last log lines), redacted and capped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

/// Everything one tool run found and did. Serialized with `exit_code` (the outcome as a number)
/// after `outcome`: the outcome is the one source of truth for both.
#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    /// Which tool produced it.
    pub tool: String,
    /// The tool's version.
    pub version: String,
    /// What it ran against: an environment, a base URL, a branch, a repository.
    pub target: String,
    /// RFC 3339 UTC start time.
    pub started_at: String,
    /// Wall time of the run.
    pub duration_ms: u64,
    /// The run's outcome (the exit code is `outcome.code()`).
    pub outcome: Exit,
    /// One line: what happened.
    pub summary: String,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// The checks, in the order they were defined.
    pub checks: Vec<Check>,
    /// Named results, also written as step outputs (`ahead`, `healthy`, `digest`...).
    pub outputs: BTreeMap<String, String>,
    /// Every mutating call, planned or made.
    pub audit: Vec<AuditEvent>,
    /// File-level findings (conflicting files), emitted as annotations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
    /// Why it failed: what the diagnosis found (health-check and rollback, on failure).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnosis: Vec<Finding>,
    /// The error that ended the run early, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The signal that cut the run short, if one did: a published check run concludes
    /// `cancelled` (not part of the JSON report, whose `error` says it in words).
    #[serde(skip)]
    pub cancelled_by: Option<String>,
    /// Pictures for the job summary, as Mermaid sources ([`crate::render::mermaid`]); not part
    /// of the JSON report, whose checks carry the same facts.
    #[serde(skip)]
    pub charts: Vec<String>,
}

impl Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut r = s.serialize_struct("Report", 16)?;
        r.serialize_field("tool", &self.tool)?;
        r.serialize_field("version", &self.version)?;
        r.serialize_field("target", &self.target)?;
        r.serialize_field("started_at", &self.started_at)?;
        r.serialize_field("duration_ms", &self.duration_ms)?;
        r.serialize_field("outcome", &self.outcome)?;
        r.serialize_field("exit_code", &self.outcome.code())?;
        r.serialize_field("summary", &self.summary)?;
        r.serialize_field("dry_run", &self.dry_run)?;
        r.serialize_field("checks", &self.checks)?;
        r.serialize_field("outputs", &self.outputs)?;
        r.serialize_field("audit", &self.audit)?;
        if !self.annotations.is_empty() {
            r.serialize_field("annotations", &self.annotations)?;
        }
        if !self.diagnosis.is_empty() {
            r.serialize_field("diagnosis", &self.diagnosis)?;
        }
        if let Some(e) = &self.error {
            r.serialize_field("error", e)?;
        }
        r.end()
    }
}

impl Report {
    /// An empty report for `tool` against `target`, started now.
    pub fn new(tool: &str, version: &str, target: impl Into<String>) -> Self {
        Report {
            tool: tool.to_owned(),
            version: version.to_owned(),
            target: target.into(),
            started_at: now_rfc3339(),
            duration_ms: 0,
            outcome: Exit::Passed,
            summary: String::new(),
            dry_run: false,
            checks: Vec::new(),
            outputs: BTreeMap::new(),
            audit: Vec::new(),
            annotations: Vec::new(),
            diagnosis: Vec::new(),
            error: None,
            cancelled_by: None,
            charts: Vec::new(),
        }
    }

    /// Adds a check.
    pub fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// Sets an output.
    pub fn output(&mut self, name: &str, value: impl ToString) {
        self.outputs.insert(name.to_owned(), value.to_string());
    }

    /// Records a mutating call.
    pub fn audit(
        &mut self,
        action: AuditAction,
        target: &str,
        outcome: AuditOutcome,
        detail: Option<String>,
    ) {
        self.audit.push(AuditEvent {
            at: now_rfc3339(),
            action,
            target: target.to_owned(),
            outcome,
            detail,
        });
    }

    /// Counts of checks by status: (passed, failed, error, skipped).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let n = |s| self.checks.iter().filter(|c| c.status == s).count();
        (
            n(Status::Passed),
            n(Status::Failed),
            n(Status::Error),
            n(Status::Skipped),
        )
    }

    /// Sets the outcome from the checks (any error: 3, any failure: 1) unless an outcome worse than
    /// that was already set, fills in the summary if empty, and stamps the duration.
    pub fn finish(&mut self, took: Duration) {
        let (passed, failed, errors, skipped) = self.counts();
        let from_checks = if errors > 0 {
            Exit::Dependency
        } else if failed > 0 {
            Exit::Failed
        } else {
            Exit::Passed
        };
        self.outcome = self.outcome.worst(from_checks);
        self.duration_ms = took.as_millis() as u64;
        if self.summary.is_empty() {
            let total = self.checks.len();
            self.summary = match self.outcome {
                Exit::Passed => format!("{passed} of {total} checks passed"),
                _ if total > 0 => format!(
                    "{} of {total} checks did not pass ({failed} failed, {errors} errors, {skipped} skipped)",
                    failed + errors
                ),
                _ => self
                    .error
                    .clone()
                    .unwrap_or_else(|| self.outcome.to_string()),
            };
        }
    }

    /// Marks the run as ended by an error.
    pub fn fail_with(&mut self, exit: Exit, error: impl Into<String>) {
        self.outcome = self.outcome.worst(exit);
        self.error = Some(error.into());
    }

    /// Ends the run as cut short by `signal` (exit 1, the `error` saying what was under way): a
    /// published check run concludes `cancelled`, so a required check is still answered.
    pub fn interrupted(&mut self, signal: &str, error: impl Into<String>) {
        self.fail_with(Exit::Failed, error);
        self.cancelled_by = Some(signal.to_owned());
    }
}

/// Now, as RFC 3339 UTC with seconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_actions_are_written_as_before_and_read_back() {
        let mut names: Vec<&str> = AuditAction::ALL.iter().map(|(_, n)| *n).collect();
        for (a, n) in AuditAction::ALL {
            assert_eq!(a.as_str(), n);
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("{n:?}"));
            assert_eq!(serde_json::from_str::<AuditAction>(&json).unwrap(), a);
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), AuditAction::ALL.len(), "names are unique");
        assert!(serde_json::from_str::<AuditAction>("\"ecs:DeleteService\"").is_err());
    }

    #[test]
    fn outcome_follows_the_checks() {
        let mut r = Report::new("health-check", "0.1.0", "staging");
        r.push(Check::new("a", Status::Passed));
        r.push(Check::new("b", Status::Failed).reason("HTTP 503"));
        r.finish(Duration::from_millis(1200));
        assert_eq!(r.outcome, Exit::Failed);
        assert_eq!(serde_json::to_value(&r).unwrap()["exit_code"], 1);
        assert_eq!(
            r.summary,
            "1 of 2 checks did not pass (1 failed, 0 errors, 0 skipped)"
        );
        assert_eq!(r.duration_ms, 1200);
    }

    #[test]
    fn an_earlier_usage_error_is_kept() {
        let mut r = Report::new("t", "0", "x");
        r.fail_with(Exit::Usage, "bad config");
        r.push(Check::new("a", Status::Passed));
        r.finish(Duration::ZERO);
        assert_eq!(serde_json::to_value(&r).unwrap()["exit_code"], 2);
    }

    #[test]
    fn json_shape_is_stable() {
        let mut r = Report::new("smoke-test", "0.1.0", "https://x");
        r.started_at = "2026-01-01T00:00:00Z".into();
        r.push(Check::new("home", Status::Passed).took(Duration::from_millis(5)));
        r.output("passed", 1);
        r.finish(Duration::from_millis(7));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["tool"], "smoke-test");
        assert_eq!(v["outcome"], "passed");
        assert_eq!(v["exit_code"], 0);
        assert_eq!(v["checks"][0]["status"], "passed");
        assert_eq!(v["checks"][0]["duration_ms"], 5);
        assert_eq!(v["outputs"]["passed"], "1");
        let back: Report = serde_json::from_value(v).unwrap();
        assert_eq!(back.checks.len(), 1);
    }
}
