//! The incident record (runbook section 7): the runbook's own fields (`incident_id`,
//! `start_time`, `detection_time`, `recovery_time`, `mttr_seconds`) plus what was rolled back, by
//! whom and why. MTTR follows the runbook's example: recovery minus detection
//! (10:01:30 -> 10:12:00 is its 630 s); the time from start to detection is kept beside it.

use std::time::{Duration, SystemTime};

use serde::Serialize;

/// One service's part of the incident.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceRecord {
    /// Service name.
    pub service: String,
    /// Revision left (`family:rev`).
    pub from: String,
    /// Revision gone back to.
    pub to: String,
    /// Images of the revision left.
    pub from_images: Vec<String>,
    /// Images of the revision gone back to.
    pub to_images: Vec<String>,
    /// `update-service`, `native-rollback`, `no-op`.
    pub action: String,
    /// `rolled-back`, `failed`, `not-run`.
    pub result: String,
    /// Why, one line.
    pub detail: String,
}

/// The record.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    /// `inc-<environment>-<UTC timestamp>`.
    pub incident_id: String,
    /// When the bad deployment began (or `--incident-start`).
    pub start_time: String,
    /// When the problem was detected (`--detected-at`, else when rollback started).
    pub detection_time: String,
    /// When the environment was healthy again; null when it was not.
    pub recovery_time: Option<String>,
    /// recovery_time - detection_time; null when not recovered.
    pub mttr_seconds: Option<u64>,
    /// detection_time - start_time.
    pub time_to_detect_seconds: u64,
    /// `in-progress` (written before the first change), then `recovered`, `failed` or
    /// `interrupted`: the state `health-check --preflight` reads (see `deploy_core::incidents`).
    pub outcome: deploy_core::incidents::Outcome,
    /// False while in progress and when the run was cut short (SIGTERM): the record is partial.
    pub complete: bool,
    /// The environment.
    pub environment: String,
    /// The ECS cluster.
    pub cluster: String,
    /// Why the rollback was made.
    pub reason: String,
    /// Who (`GITHUB_ACTOR`, else `USER`).
    pub actor: String,
    /// The workflow run, when in Actions.
    pub run_url: Option<String>,
    /// Per service.
    pub services: Vec<ServiceRecord>,
    /// When this record was written: an `in-progress` one older than 6 hours is a lost job.
    pub updated_at: String,
}

/// `t` without its fraction of a second, so that the record's arithmetic can be checked from its
/// own RFC 3339 times.
pub fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// RFC 3339 UTC with seconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses an RFC 3339 time flag.
pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(s.trim())
        .map_err(|e| format!("{s:?} is not an RFC 3339 UTC time like 2026-11-28T10:00:00Z ({e})"))
}

/// Whole seconds from `a` to `b` (0 when `b` is earlier).
pub fn seconds_between(a: SystemTime, b: SystemTime) -> u64 {
    b.duration_since(a).unwrap_or(Duration::ZERO).as_secs()
}

/// An id for an incident of `environment` detected at `at`.
pub fn incident_id(environment: &str, at: SystemTime) -> String {
    let stamp: String = rfc3339(at)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("inc-{environment}-{stamp}")
}

/// The changelog entry (runbook 3.3: "Dokumentiere in CHANGELOG.md").
pub fn changelog_entry(i: &Incident) -> String {
    let day = i.detection_time.get(..10).unwrap_or(&i.detection_time);
    let mut s = format!(
        "\n## {day}: rollback of {} ({})\n\n",
        i.environment, i.outcome
    );
    s.push_str(&format!("- Incident {}: {}\n", i.incident_id, i.reason));
    for svc in &i.services {
        s.push_str(&format!(
            "- {}: {} -> {} ({})\n",
            svc.service, svc.from, svc.to, svc.result
        ));
    }
    match i.mttr_seconds {
        Some(m) => s.push_str(&format!(
            "- Recovered at {} (MTTR {m} s)\n",
            i.recovery_time.as_deref().unwrap_or("?")
        )),
        None => s.push_str("- Not recovered by this rollback\n"),
    }
    s.push_str(&format!(
        "- By {}{}\n",
        i.actor,
        i.run_url
            .as_deref()
            .map(|u| format!(", {u}"))
            .unwrap_or_default()
    ));
    s
}

/// Appends the entry to `path` (created when missing).
pub fn append_changelog(path: &std::path::Path, i: &Incident) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // Like every other sink: no secret (a `${VAR}` in a service name, the reason) in the file.
    f.write_all(deploy_core::secret::redact(&changelog_entry(i)).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runbook_example_gives_its_mttr() {
        let start = parse_time("2025-12-16T10:00:00Z").unwrap();
        let detected = parse_time("2025-12-16T10:01:30Z").unwrap();
        let recovered = parse_time("2025-12-16T10:12:00Z").unwrap();
        assert_eq!(seconds_between(detected, recovered), 630);
        assert_eq!(seconds_between(start, detected), 90);
        assert_eq!(seconds_between(recovered, detected), 0);
        assert_eq!(
            incident_id("staging", detected),
            "inc-staging-20251216T100130Z"
        );
        assert!(
            parse_time("yesterday")
                .unwrap_err()
                .contains("not an RFC 3339")
        );
    }
}
