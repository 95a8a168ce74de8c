//! Which incidents of an environment are open, from the incident records rollback writes to
//! CloudWatch Logs (stream `incidents`, runbook section 7). The records are a log: the newest
//! record of an incident id is its state.
//!
//! - rollback writes `in-progress` when it starts changing an environment, and its final record
//!   (`recovered`, `failed` or `interrupted`) when it ends;
//! - health-check `--mark-verified` writes `resolved` for each incident still open once the
//!   environment passed every check again (a fix rolled forward, say).
//!
//! An incident is open while its newest record is `in-progress`, `failed` or `interrupted`:
//!
//! - `in-progress` ends only with the incident's own later record (another rollback's recovery
//!   says nothing about one still running), and counts as *running* for [`RUNNING_FOR`] after it
//!   was written; later it is taken as a rollback whose job was lost (open, as `interrupted`);
//! - `failed` and `interrupted` also end with any later record of the environment saying it is
//!   healthy again (`recovered` or `resolved`: the environment was verified as a whole then).
//!
//! A deploy that rolls forward over an open incident would race a running rollback, or bury a
//! failed one; `health-check --preflight` refuses it (see README, "Before a deploy"), and only
//! the buried kind can be overridden.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// How far back the records are read for open incidents: the runbook's KPI window.
pub const LOOKBACK: Duration = Duration::from_secs(30 * 24 * 3600);

/// At most this many records are kept, the newest (one FilterLogEvents page holds up to 10,000).
pub const MAX_RECORDS: usize = 10_000;

/// How long an `in-progress` record means a rollback is still running: a job on a GitHub-hosted
/// runner is stopped after 6 hours of execution time ("Job execution time",
/// https://docs.github.com/en/actions/reference/actions-limits), so a rollback job cannot run
/// longer there. (Self-hosted runners allow more; the examples' rollback jobs set a
/// `timeout-minutes` far below 6 hours.)
pub const RUNNING_FOR: Duration = Duration::from_secs(6 * 3600);

/// The state an incident record gives its incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A rollback is changing the environment (written before its first change).
    InProgress,
    /// The rollback ended with the environment healthy.
    Recovered,
    /// The rollback ended with the environment not healthy.
    Failed,
    /// The rollback was cut short (SIGTERM, a cancelled job).
    Interrupted,
    /// The environment passed every check again after the incident (`--mark-verified`).
    Resolved,
}

impl Outcome {
    /// As written in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::InProgress => "in-progress",
            Outcome::Recovered => "recovered",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
            Outcome::Resolved => "resolved",
        }
    }

    /// The environment was healthy again when this record was written.
    pub fn healthy_again(self) -> bool {
        matches!(self, Outcome::Recovered | Outcome::Resolved)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An incident record, as far as its state needs it (rollback writes more).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Record {
    /// `inc-<environment>-<UTC timestamp>`.
    pub incident_id: String,
    /// The environment.
    pub environment: String,
    /// The state this record gives the incident.
    pub outcome: Outcome,
    /// When the problem was detected.
    #[serde(default)]
    pub detection_time: Option<String>,
    /// Why the rollback was made.
    #[serde(default)]
    pub reason: Option<String>,
    /// Who.
    #[serde(default)]
    pub actor: Option<String>,
    /// The workflow run.
    #[serde(default)]
    pub run_url: Option<String>,
    /// When this record was written (RFC 3339); records before it had none.
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl Record {
    /// A rollback that is running now: `in-progress`, written less than [`RUNNING_FOR`] ago (a
    /// record without a time counts as running: it cannot be shown to be over).
    pub fn running(&self, now: SystemTime) -> bool {
        self.outcome == Outcome::InProgress
            && self
                .updated_at
                .as_deref()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                .is_none_or(|at| now.duration_since(at).unwrap_or(Duration::ZERO) < RUNNING_FOR)
    }
}

/// The open incidents of `environment` in `messages` (oldest first, as the log returns them),
/// each as its newest record, in the order they were opened. Messages that are not incident
/// records (or of another environment) are passed over.
pub fn open(messages: &[String], environment: &str) -> Vec<Record> {
    let mut open: Vec<Record> = Vec::new();
    for m in messages {
        let Ok(r) = serde_json::from_str::<Record>(m) else {
            continue;
        };
        if r.environment != environment {
            continue;
        }
        if r.outcome.healthy_again() {
            // Healthy again: this incident is over, and so is every failed or interrupted one
            // before it; a rollback still in progress is not.
            open.retain(|o| o.incident_id != r.incident_id && o.outcome == Outcome::InProgress);
        } else if let Some(slot) = open.iter_mut().find(|o| o.incident_id == r.incident_id) {
            *slot = r;
        } else {
            open.push(r);
        }
    }
    open
}

/// One line on an open incident, for messages and the report.
pub fn describe(r: &Record, now: SystemTime) -> String {
    let state = match r.outcome {
        Outcome::InProgress if r.running(now) => "a rollback is in progress",
        Outcome::InProgress => "its rollback left no final record within 6 hours: its job was lost",
        Outcome::Failed => "its rollback failed: the environment was not healthy after it",
        Outcome::Interrupted => "its rollback was interrupted",
        Outcome::Recovered | Outcome::Resolved => "over",
    };
    let mut s = format!("{} ({state}", crate::secret::redact(&r.incident_id));
    if let Some(t) = &r.detection_time {
        s.push_str(&format!("; detected {t}"));
    }
    if let Some(reason) = r.reason.as_deref().filter(|x| !x.is_empty()) {
        let reason: String = reason.chars().take(200).collect();
        s.push_str(&format!("; reason: {}", crate::secret::redact(&reason)));
    }
    if let Some(u) = &r.run_url {
        s.push_str(&format!("; {u}"));
    }
    s.push(')');
    s
}

/// The JSON record health-check writes when the environment passed every check after `open`:
/// the incident is `resolved`, recovered at `at`, its MTTR counted from its detection.
pub fn resolution(open: &Record, at: SystemTime, by: &str) -> serde_json::Value {
    let recovered = humantime::format_rfc3339_seconds(at).to_string();
    let mttr = open
        .detection_time
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .map(|d| at.duration_since(d).unwrap_or(Duration::ZERO).as_secs());
    serde_json::json!({
        "incident_id": open.incident_id,
        "environment": open.environment,
        "outcome": Outcome::Resolved,
        "detection_time": open.detection_time,
        "recovery_time": recovered,
        "mttr_seconds": mttr,
        "complete": true,
        "reason": open.reason,
        "resolved_by": by,
        "updated_at": recovered,
        "actor": std::env::var("GITHUB_ACTOR").ok().filter(|a| !a.is_empty()),
        "run_url": crate::taskdef::run_url(),
    })
}

/// Reads the open incidents of `environment` from `group` (stream `incidents`), over the last
/// [`LOOKBACK`]. A group or stream that does not exist yet holds none.
#[cfg(feature = "logs")]
pub async fn read_open(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    environment: &str,
) -> anyhow::Result<Vec<Record>> {
    let since = SystemTime::now()
        .checked_sub(LOOKBACK)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let messages = crate::logs::read_events(
        client,
        group,
        crate::logs::INCIDENT_STREAM,
        since,
        MAX_RECORDS,
    )
    .await?;
    Ok(open(&messages, environment))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rec(id: &str, env: &str, outcome: &str) -> String {
        format!(
            r#"{{"incident_id":"{id}","environment":"{env}","outcome":"{outcome}","detection_time":"2026-12-01T10:00:00Z"}}"#
        )
    }

    #[test]
    fn the_newest_record_of_an_incident_is_its_state_and_healthy_again_closes_all_before() {
        let log = [
            rec("a", "staging", "in-progress"),
            rec("a", "staging", "failed"),
            rec("b", "production", "in-progress"),
            "not json".to_owned(),
            r#"{"incident_id":"x","environment":"staging","outcome":"archived"}"#.to_owned(),
        ];
        let open_now = open(&log, "staging");
        assert_eq!(open_now.len(), 1);
        assert_eq!(open_now[0].outcome, Outcome::Failed);
        assert_eq!(open(&log, "production")[0].outcome, Outcome::InProgress);

        let mut later = log.to_vec();
        later.push(rec("c", "staging", "in-progress"));
        later.push(rec("e", "staging", "in-progress"));
        later.push(rec("c", "staging", "recovered"));
        let still: Vec<_> = open(&later, "staging")
            .into_iter()
            .map(|r| r.incident_id)
            .collect();
        assert_eq!(
            still,
            ["e"],
            "c's recovery closes a and c, not the running e"
        );
        later.push(rec("e", "staging", "recovered"));
        assert!(open(&later, "staging").is_empty());
        later.push(rec("d", "staging", "interrupted"));
        assert_eq!(open(&later, "staging")[0].incident_id, "d");
        later.push(rec("d", "staging", "resolved"));
        assert!(open(&later, "staging").is_empty());
        assert_eq!(open(&later, "production").len(), 1);
    }

    #[test]
    fn an_in_progress_record_is_running_for_six_hours_then_a_lost_job() {
        let now = humantime::parse_rfc3339("2026-12-01T18:00:00Z").unwrap();
        let at = |t: &str| -> Record {
            serde_json::from_str(&format!(
                r#"{{"incident_id":"a","environment":"staging","outcome":"in-progress","updated_at":"{t}"}}"#
            ))
            .unwrap()
        };
        assert!(at("2026-12-01T12:00:01Z").running(now));
        assert!(!at("2026-12-01T12:00:00Z").running(now));
        assert!(describe(&at("2026-12-01T11:00:00Z"), now).contains("its job was lost"));
        let untimed: Record = serde_json::from_str(&rec("a", "staging", "in-progress")).unwrap();
        assert!(untimed.running(now), "no time: cannot be shown to be over");
        let failed: Record = serde_json::from_str(&rec("a", "staging", "failed")).unwrap();
        assert!(!failed.running(now));
    }

    #[test]
    fn a_resolution_counts_its_mttr_from_the_detection() {
        let r: Record = serde_json::from_str(&rec("a", "staging", "failed")).unwrap();
        let at = humantime::parse_rfc3339("2026-12-01T10:10:30Z").unwrap();
        let v = resolution(&r, at, "health-check --mark-verified");
        assert_eq!(v["outcome"], "resolved");
        assert_eq!(v["mttr_seconds"], 630);
        assert_eq!(v["recovery_time"], "2026-12-01T10:10:30Z");
        let back: Record = serde_json::from_value(v).unwrap();
        assert!(open(&[rec("a", "staging", "failed"), serde_json::to_string(&serde_json::json!({"incident_id": back.incident_id, "environment": "staging", "outcome": back.outcome})).unwrap()], "staging").is_empty());
    }
}
