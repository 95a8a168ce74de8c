//! The schema of each section of `deploy.toml`: `[defaults]`, `[environments.NAME]`,
//! `[images.NAME]`, `[health]`, `[smoke]`, `[rollback]`, `[kpi]`, `[metrics]`, `[alarms]`.

use serde::{Deserialize, Deserializer, de::Error as _};

use super::check_spec::{CheckSpec, StatusSet};
use super::expand::{Dur, Text, UrlText, expanded, expanded_opt, expanded_vec};

/// Settings shared by every environment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// AWS region (else the standard chain: `AWS_REGION`, profile).
    #[serde(default, deserialize_with = "expanded_opt")]
    pub region: Option<String>,
    /// The branch syncs and PR checks compare with.
    #[serde(default, deserialize_with = "expanded_opt")]
    pub base_branch: Option<String>,
    /// https checks warn when the server's certificate expires within this many days (14).
    #[serde(default)]
    pub cert_warn_days: Option<u32>,
    /// https checks fail when it expires within this many days (off).
    #[serde(default)]
    pub cert_fail_days: Option<u32>,
}

/// One deployment target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Where the service answers (ALB DNS or domain).
    pub base_url: Option<UrlText>,
    /// ECS cluster name.
    pub cluster: Option<Text>,
    /// ECS services: a name in `cluster`, or `CLUSTER/NAME` in another.
    #[serde(default)]
    pub services: Vec<Text>,
    /// Protected environments (production) need `--confirm <name>` for mutating tools.
    #[serde(default)]
    pub protected: bool,
    /// AWS region for this environment.
    #[serde(default, deserialize_with = "expanded_opt")]
    pub region: Option<String>,
    /// ALB dimension value (`app/name/id`) for the 5xx gate.
    pub load_balancer: Option<Text>,
    /// Alarm filter for this environment (replaces the top-level one).
    pub alarms: Option<Alarms>,
}

/// ECR tag mutability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mutability {
    /// Tags never move.
    Immutable,
    /// Tags may move.
    Mutable,
}

/// One image and where it goes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// ECR repository name (`afu9/control-center`).
    pub repository: Text,
    /// Where the built image is: an OCI layout dir, an OCI/docker-archive tarball, `docker:NAME`.
    pub source: Option<Text>,
    /// Tag templates: `{version}`, `{sha}`, `{sha7}`, `{env}` and literals.
    #[serde(default, deserialize_with = "expanded_vec")]
    pub tags: Vec<String>,
    /// Tags that may move to a new digest on mutable repositories (e.g. `{env}`).
    #[serde(default, deserialize_with = "expanded_vec")]
    pub moving_tags: Vec<String>,
    /// Mutability when `--create-repo` creates the repository.
    pub mutability: Option<Mutability>,
    /// Scan on push when `--create-repo` creates the repository.
    #[serde(default)]
    pub scan_on_push: bool,
}

/// `[health]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Deadline for the whole wait.
    pub wait: Option<Dur>,
    /// Steady pause between polling rounds (health-check defaults to 2s).
    pub interval: Option<Dur>,
    /// Passes in a row each check needs (1 to 100, as `--success-threshold`).
    #[serde(default, deserialize_with = "success_threshold")]
    pub success_threshold: Option<u32>,
    /// Delay before the first poll.
    pub stabilize: Option<Dur>,
    /// JSON field of the health body that carries the deployed commit (dotted path).
    #[serde(default, deserialize_with = "expanded_opt")]
    pub version_field: Option<String>,
    /// Statuses retried during warm-up (default 408, 429, 502, 503, 504; add 404 here).
    pub retry_on: Option<StatusSet>,
    /// Per-request timeout (default 10s).
    pub request_timeout: Option<Dur>,
    /// After success, keep watching alarms this long.
    pub bake: Option<Dur>,
    /// Largest acceptable ALB `HTTPCode_Target_5XX_Count` sum over `alb_5xx_window`.
    pub alb_5xx_threshold: Option<u64>,
    /// Window of the ALB 5xx gate (default 5m).
    pub alb_5xx_window: Option<Dur>,
    /// The checks.
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
}

/// `[smoke]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smoke {
    /// Requests in flight at most (smoke-test backs off below it while the server refuses): 1 to
    /// 256, as `--concurrency`.
    #[serde(default, deserialize_with = "concurrency")]
    pub concurrency: Option<usize>,
    /// Deadline of the whole suite.
    pub timeout: Option<Dur>,
    /// Default retry window of each check (default 10s).
    pub retry_for: Option<Dur>,
    /// Statuses retried within a check's window (default 408, 429, 502, 503, 504).
    pub retry_on: Option<StatusSet>,
    /// The checks.
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
}

/// `[rollback]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// Deadline of the wait for the rollback deployments (default 15m).
    pub wait: Option<Dur>,
    /// Pause between polls of the rollback deployments (default 5s).
    pub interval: Option<Dur>,
    /// CloudWatch Logs group that receives incident records (stream `incidents`).
    pub incident_log_group: Option<Text>,
    /// Changelog file a dated entry is appended to (runbook: CHANGELOG.md).
    pub changelog: Option<Text>,
}

/// `[kpi]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kpi {
    /// Lowest acceptable uptime, percent (e.g. 99.5): 0 to 100.
    #[serde(default, deserialize_with = "percent")]
    pub uptime_target: Option<f64>,
    /// Longest acceptable average MTTR (e.g. "15m").
    pub mttr_target: Option<Dur>,
}

/// `[metrics]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// CloudWatch namespace of the Availability metric.
    #[serde(default = "default_namespace", deserialize_with = "expanded")]
    pub namespace: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            namespace: default_namespace(),
        }
    }
}

fn default_namespace() -> String {
    "AFU9/Factory".into()
}

/// Which CloudWatch alarms gate a deployment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alarms {
    /// Exact alarm names.
    #[serde(default, deserialize_with = "expanded_vec")]
    pub names: Vec<String>,
    /// Alarm-name prefix.
    #[serde(default, deserialize_with = "expanded_opt")]
    pub prefix: Option<String>,
}

/// A whole number in `lo..=hi`, or an error saying the range (a negative one fails as a type).
fn ranged<'de, D: Deserializer<'de>>(d: D, lo: u64, hi: u64) -> Result<Option<u64>, D::Error> {
    match Option::<u64>::deserialize(d)? {
        Some(n) if !(lo..=hi).contains(&n) => Err(D::Error::custom(format!(
            "{n} is out of range: {lo} to {hi}"
        ))),
        n => Ok(n),
    }
}

fn concurrency<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    Ok(ranged(d, 1, 256)?.map(|n| n as usize))
}

fn success_threshold<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(ranged(d, 1, 100)?.map(|n| n as u32))
}

/// A percentage: a finite number from 0 to 100.
fn percent<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        Some(p) => crate::config::parse_percent(p)
            .map(Some)
            .map_err(D::Error::custom),
        None => Ok(None),
    }
}
