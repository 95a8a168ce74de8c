//! `deploy.toml`: the one config file every tool reads. Environments, images, health and smoke
//! checks, metrics and alarm filters. `${VAR}` reads the environment, and a value read that way is
//! a secret (registered for redaction and masking). Unknown keys, wrong types, bad values and
//! missing variables are errors naming the file, line, column and key.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::secret;
use crate::urls::{shown_url, validate_url};

/// The file read when neither `--config` nor `DEPLOY_CONFIG` names one.
pub const DEFAULT_FILE: &str = "deploy.toml";

/// What can go wrong reading the config. All of these are usage errors (exit 2): converted into
/// an `anyhow::Error`, one becomes [`exit::usage`](crate::exit::usage) with its message.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema.
    Invalid {
        /// The file.
        path: String,
        /// 1-based line of the offending value.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Dotted key path (`environments.staging.base_url`), or `(document)`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A named environment is not in the file.
    UnknownEnvironment {
        /// The file.
        path: String,
        /// The name asked for.
        name: String,
        /// The names defined, comma-separated.
        known: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "couldn't read config file {}: {source}", path.display())
            }
            ConfigError::Invalid {
                path,
                line,
                column,
                key,
                message,
            } => write!(f, "{path}:{line}:{column}: {key}: {message}"),
            ConfigError::UnknownEnvironment { path, name, known } => {
                write!(
                    f,
                    "{path}: no environment named {name:?} (defined: {known})"
                )
            }
        }
    }
}

// Deliberately not `std::error::Error`: `?` then goes through this conversion, so a config error
// reaches the exit classification as a usage error without `exit` knowing about the config.
impl From<ConfigError> for anyhow::Error {
    fn from(e: ConfigError) -> Self {
        crate::exit::usage(e.to_string())
    }
}

/// A string value from the config, after `${VAR}` expansion. When any part came from the
/// environment it is a secret: `Display`/`Debug` print `***` and the value is registered for
/// redaction. Use [`Text::expose`] where the value is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Text {
    value: String,
    secret: bool,
    /// A `${VAR}` in it is not set (the value is then incomplete; see [`Config::require`]).
    unset: bool,
}

impl Text {
    /// A literal (not secret) value.
    pub fn literal(value: impl Into<String>) -> Self {
        Text {
            value: value.into(),
            secret: false,
            unset: false,
        }
    }

    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Whether any part came from the environment.
    pub fn is_secret(&self) -> bool {
        self.secret
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("***")
        } else {
            f.write_str(&self.value)
        }
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("Text(***)")
        } else {
            write!(f, "Text({:?})", self.value)
        }
    }
}

type Lookup = Box<dyn Fn(&str) -> Option<String>>;

thread_local! {
    /// The variable lookup used while one document is parsed (tests pass their own).
    static LOOKUP: RefCell<Option<Lookup>> = const { RefCell::new(None) };
}

thread_local! {
    /// Set when the lookup met a variable that is not set (it then reads as empty).
    static UNSET_SEEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn lookup_var(name: &str) -> Option<String> {
    let value = LOOKUP.with(|l| match &*l.borrow() {
        Some(f) => f(name),
        None => std::env::var(name).ok(),
    });
    if value.is_none() {
        UNSET_SEEN.with(|u| u.set(true));
    }
    Some(value.unwrap_or_default())
}

/// Expands `${VAR}` (and `$$` for a literal `$`). Returns the value and whether a variable was used.
pub fn expand(
    raw: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(String, bool), String> {
    let mut out = String::with_capacity(raw.len());
    let mut used = false;
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {raw:?}"))?;
            let name = &tail[..end];
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || name.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(format!(
                    "invalid variable name {name:?} (use ${{NAME}} with letters, digits and _)"
                ));
            }
            let value =
                lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            // The variable's own value is a secret too, not only the text it is part of
            // (`Bearer ${API_TOKEN}`): the runner must mask the bare token wherever it shows.
            secret::register(&value);
            out.push_str(&value);
            used = true;
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok((out, used))
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        UNSET_SEEN.with(|u| u.set(false));
        let (value, secret) = expand(&raw, lookup_var).map_err(serde::de::Error::custom)?;
        let unset = UNSET_SEEN.with(|u| u.replace(false));
        // An incomplete value (`Bearer ` of `Bearer ${UNSET}`) is no secret to redact.
        if secret && !unset {
            secret::register(&value);
        }
        Ok(Text {
            value,
            secret,
            unset,
        })
    }
}

/// A plain string field, `${VAR}` expanded like every string of the file; a value that used a
/// variable is registered as a secret (masked and redacted wherever it would be printed).
fn expanded<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Text::deserialize(d)?.value)
}

fn expanded_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Text>::deserialize(d)?.map(|t| t.value))
}

fn expanded_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Vec::<Text>::deserialize(d)?
        .into_iter()
        .map(|t| t.value)
        .collect())
}

fn expanded_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(BTreeMap::<String, Text>::deserialize(d)?
        .into_iter()
        .map(|(k, t)| (k, t.value))
        .collect())
}

/// An absolute http(s) URL (after expansion).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlText(pub Text);

impl UrlText {
    /// The URL without a trailing slash, ready to join paths to.
    pub fn base(&self) -> &str {
        self.0.expose().trim_end_matches('/')
    }
}

impl fmt::Display for UrlText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for UrlText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = Text::deserialize(d)?;
        if t.unset {
            // Not validated: a tool that reads it stops first (`Config::require`).
            return Ok(UrlText(t));
        }
        validate_url(t.expose()).map_err(|e| {
            let shown = if t.is_secret() {
                "***".to_owned()
            } else {
                shown_url(t.expose())
            };
            serde::de::Error::custom(format!("{e}: {shown:?}"))
        })?;
        Ok(UrlText(t))
    }
}

/// A duration written as `300s`, `5m`, `1m 30s`, `250ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::duration::parse(&s)
            .map(Dur)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
    }
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Settings shared by every environment.
    #[serde(default)]
    pub defaults: Defaults,
    /// Environments by name (`staging`, `production`).
    #[serde(default)]
    pub environments: BTreeMap<String, Environment>,
    /// Images by name (`control-center`) to their ECR repositories and tag rules.
    #[serde(default)]
    pub images: BTreeMap<String, Image>,
    /// What `health-check` polls.
    #[serde(default)]
    pub health: Health,
    /// What `smoke-test` runs.
    #[serde(default)]
    pub smoke: Smoke,
    /// Where the Availability metric goes.
    #[serde(default)]
    pub metrics: Metrics,
    /// Which CloudWatch alarms gate a deployment (per-environment lists override).
    #[serde(default)]
    pub alarms: Alarms,
    /// How `rollback` waits and where it records incidents.
    #[serde(default)]
    pub rollback: Rollback,
    /// KPI targets (runbook section 7) for `health-check --kpi`.
    #[serde(default)]
    pub kpi: Kpi,
    /// The `${VAR}`s the environment does not set, where they are (an error only where a tool
    /// reads: [`Config::require`]).
    #[serde(skip)]
    pub unset: Vec<Unset>,
    /// Where this config came from (set by the loader).
    #[serde(skip)]
    pub source: String,
}

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
}

/// One deployment target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Where the service answers (ALB DNS or domain).
    pub base_url: Option<UrlText>,
    /// ECS cluster name.
    pub cluster: Option<Text>,
    /// ECS services in the cluster.
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
    /// Passes in a row each check needs.
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
    /// Checks run at once.
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

/// Accepted HTTP statuses: codes (`200`), classes (`"2xx"`) or ranges (`"200-204"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(pub Vec<(u16, u16)>);

impl Default for StatusSet {
    fn default() -> Self {
        StatusSet(vec![(200, 299)])
    }
}

impl StatusSet {
    /// Whether `code` is accepted.
    pub fn accepts(&self, code: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&code))
    }

    /// The statuses retried during warm-up unless configured: 408, 429, 502, 503, 504.
    pub fn default_retry() -> Self {
        StatusSet(vec![(408, 408), (429, 429), (502, 504)])
    }

    /// Parses `200`, `"2xx"` or `"200-204"`.
    pub fn parse_one(s: &str) -> Result<(u16, u16), String> {
        let s = s.trim();
        let code = |t: &str| -> Result<u16, String> {
            t.parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| format!("invalid HTTP status {t:?}"))
        };
        if let Some(class) = s.strip_suffix("xx").or_else(|| s.strip_suffix("XX")) {
            let d = code(&format!("{class}00"))?;
            return Ok((d, d + 99));
        }
        if let Some((a, b)) = s.split_once('-') {
            let (a, b) = (code(a)?, code(b)?);
            if a > b {
                return Err(format!("empty status range {s:?}"));
            }
            return Ok((a, b));
        }
        let c = code(s)?;
        Ok((c, c))
    }
}

impl<'de> Deserialize<'de> for StatusSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum One {
            Code(u16),
            Text(String),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Many {
            One(One),
            List(Vec<One>),
        }
        let items = match Many::deserialize(d)? {
            Many::One(o) => vec![o],
            Many::List(v) => v,
        };
        if items.is_empty() {
            return Err(serde::de::Error::custom("status list is empty"));
        }
        items
            .into_iter()
            .map(|o| match o {
                One::Code(c) => StatusSet::parse_one(&c.to_string()),
                One::Text(t) => StatusSet::parse_one(&t),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(StatusSet)
            .map_err(serde::de::Error::custom)
    }
}

/// One HTTP check (health or smoke).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawCheck")]
pub struct CheckSpec {
    /// Name in reports.
    pub name: String,
    /// HTTP method.
    pub method: String,
    /// Path joined to the environment's base URL, or a full URL.
    pub target: CheckTarget,
    /// Request headers (values may be secrets).
    pub headers: BTreeMap<String, Text>,
    /// Request body.
    pub body: Option<Text>,
    /// Accepted statuses.
    pub status: StatusSet,
    /// jq expressions over the JSON body; each must be true.
    pub assert: Vec<String>,
    /// Slowest acceptable response.
    pub max_latency: Option<Duration>,
    /// Per-request timeout.
    pub timeout: Option<Duration>,
    /// Response headers that must be present: name -> text the value must contain (`""`: present).
    pub expect_headers: BTreeMap<String, String>,
    /// smoke-test: how long this check may be retried until it passes (within the suite deadline).
    pub retry_for: Option<Duration>,
}

/// Where a check sends its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckTarget {
    /// Joined to the base URL.
    Path(String),
    /// A full URL.
    Url(UrlText),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    #[serde(deserialize_with = "expanded")]
    name: String,
    #[serde(default, deserialize_with = "expanded_opt")]
    method: Option<String>,
    #[serde(default, deserialize_with = "expanded_opt")]
    path: Option<String>,
    url: Option<UrlText>,
    #[serde(default)]
    headers: BTreeMap<String, Text>,
    body: Option<Text>,
    #[serde(default)]
    status: StatusSet,
    #[serde(default, deserialize_with = "expanded_vec")]
    assert: Vec<String>,
    max_latency: Option<Dur>,
    timeout: Option<Dur>,
    #[serde(default, deserialize_with = "expanded_map")]
    expect_headers: BTreeMap<String, String>,
    retry_for: Option<Dur>,
}

impl TryFrom<RawCheck> for CheckSpec {
    type Error = String;
    fn try_from(r: RawCheck) -> Result<Self, String> {
        let target = match (r.path, r.url) {
            (Some(p), None) => {
                if !p.starts_with('/') {
                    return Err(format!(
                        "check {:?}: path must start with '/', got {p:?}",
                        r.name
                    ));
                }
                CheckTarget::Path(p)
            }
            (None, Some(u)) => CheckTarget::Url(u),
            (Some(_), Some(_)) => {
                return Err(format!(
                    "check {:?}: give either path or url, not both",
                    r.name
                ));
            }
            (None, None) => return Err(format!("check {:?}: needs a path or a url", r.name)),
        };
        let method = r
            .method
            .unwrap_or_else(|| "GET".into())
            .to_ascii_uppercase();
        if !matches!(
            method.as_str(),
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS"
        ) {
            return Err(format!("check {:?}: unsupported method {method:?}", r.name));
        }
        for h in r.headers.keys() {
            if h.is_empty()
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            {
                return Err(format!("check {:?}: invalid header name {h:?}", r.name));
            }
        }
        // A bad jq expression is refused here, so the message names the file, line and key.
        for (i, a) in r.assert.iter().enumerate() {
            valid_assertion(a).map_err(|e| format!("check {:?}: assert[{i}]: {e}", r.name))?;
        }
        Ok(CheckSpec {
            name: r.name,
            method,
            target,
            headers: r.headers,
            body: r.body,
            status: r.status,
            assert: r.assert,
            max_latency: r.max_latency.map(|d| d.0),
            timeout: r.timeout.map(|d| d.0),
            expect_headers: r
                .expect_headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            retry_for: r.retry_for.map(|d| d.0),
        })
    }
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
    /// Lowest acceptable uptime, percent (e.g. 99.5).
    pub uptime_target: Option<f64>,
    /// Longest acceptable average MTTR (e.g. "15m").
    pub mttr_target: Option<Dur>,
}

/// Compiles `expr` once per process to check it (a suite repeats the same few assertions).
fn valid_assertion(expr: &str) -> Result<(), String> {
    thread_local! {
        static VALID: RefCell<std::collections::HashSet<String>> = RefCell::default();
    }
    if VALID.with(|v| v.borrow().contains(expr)) {
        return Ok(());
    }
    crate::jq::Program::compile(expr)?;
    VALID.with(|v| v.borrow_mut().insert(expr.to_owned()));
    Ok(())
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

/// A setting that must come from somewhere: the flag, else the file, else a usage error whose
/// message `missing` gives (it should name both the flag and the key).
pub fn flag_or_file(
    flag: Option<&String>,
    file: Option<&Text>,
    missing: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    flag.cloned()
        .or_else(|| file.map(|t| t.expose().to_owned()))
        .ok_or_else(|| crate::exit::usage(missing()))
}

fn unset_error(path: &str, u: &Unset) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        line: u.line,
        column: u.column,
        key: u.key.clone(),
        message: format!("environment variable {} is not set", u.var),
    }
}

/// A `${VAR}` of the file that the environment does not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unset {
    /// Dotted key path of the value (`environments.production.base_url`).
    pub key: String,
    /// The variable.
    pub var: String,
    /// 1-based line and column of its first `${VAR}` in the file.
    pub line: usize,
    /// See `line`.
    pub column: usize,
}

/// Every `${VAR}` of every string value in `value` that `lookup` does not set.
fn unset_vars(
    text: &str,
    key: &str,
    value: &toml::Value,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Vec<Unset>,
) {
    let child = |k: &str| {
        if key.is_empty() {
            k.to_owned()
        } else {
            format!("{key}.{k}")
        }
    };
    match value {
        toml::Value::String(s) => {
            let missing = RefCell::new(Vec::new());
            let _ = expand(s, |n| {
                if lookup(n).is_none() {
                    missing.borrow_mut().push(n.to_owned());
                }
                Some(String::new())
            });
            for var in missing.into_inner() {
                let (line, column) = text
                    .find(&format!("${{{var}}}"))
                    .map_or((1, 1), |i| line_col(text, i));
                out.push(Unset {
                    key: key.to_owned(),
                    var,
                    line,
                    column,
                });
            }
        }
        toml::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                unset_vars(text, &format!("{key}[{i}]"), v, lookup, out);
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t {
                unset_vars(text, &child(k), v, lookup, out);
            }
        }
        _ => {}
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |i| offset - i - 1) + 1;
    (line, col)
}

impl Config {
    /// Parses `text`, read from `path` (for messages), reading `${VAR}` from the process environment.
    pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
        Self::parse_with(text, path, |k| std::env::var(k).ok())
    }

    /// Parses with an explicit variable lookup.
    pub fn parse_with(
        text: &str,
        path: &str,
        lookup: impl Fn(&str) -> Option<String> + 'static,
    ) -> Result<Config, ConfigError> {
        let invalid = |span: Option<std::ops::Range<usize>>, key: String, message: String| {
            let (line, column) = span.map_or((1, 1), |s| line_col(text, s.start));
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                key,
                message,
            }
        };
        let de = toml::de::Deserializer::parse(text)
            .map_err(|e| invalid(e.span(), "(document)".into(), e.message().to_owned()))?;
        let mut unset = Vec::new();
        // Only a file that uses `${` needs the second read that finds where each unset one is.
        if text.contains("${")
            && let Ok(doc) = toml::from_str::<toml::Table>(text)
        {
            unset_vars(text, "", &toml::Value::Table(doc), &lookup, &mut unset);
        }
        LOOKUP.with(|l| *l.borrow_mut() = Some(Box::new(lookup)));
        let result: Result<Config, _> = serde_path_to_error::deserialize(de);
        LOOKUP.with(|l| *l.borrow_mut() = None);
        let mut cfg = result.map_err(|e| {
            let key = match e.path().to_string() {
                k if k == "." || k.is_empty() => "(document)".to_owned(),
                k => k,
            };
            // A value that did not fit because a variable is missing: say that, not what the
            // incomplete value looked like.
            if let Some(u) = unset.iter().find(|u| key.starts_with(&u.key)) {
                return unset_error(path, u);
            }
            let inner = e.into_inner();
            invalid(inner.span(), key, inner.message().trim().to_owned())
        })?;
        cfg.source = path.to_owned();
        cfg.unset = unset;
        Ok(cfg)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            // Say where: the line and column of the first byte that is not UTF-8.
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let head = String::from_utf8_lossy(&bytes[..valid]);
            let (line, column) = line_col(&head, head.len());
            ConfigError::Invalid {
                path: path.display().to_string(),
                line,
                column,
                key: "(document)".into(),
                message: format!(
                    "not UTF-8 text (byte 0x{:02x}); TOML files are UTF-8",
                    bytes.get(valid).copied().unwrap_or_default()
                ),
            }
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Finds the config: `explicit` (from `--config` or `DEPLOY_CONFIG`) must exist; otherwise
    /// `deploy.toml` in `dir` is read if present, and `None` means "use the embedded default".
    pub fn discover(explicit: Option<&Path>, dir: &Path) -> Result<Option<Config>, ConfigError> {
        match explicit {
            Some(p) => Self::load(p).map(Some),
            None => {
                let p = dir.join(DEFAULT_FILE);
                if p.is_file() {
                    Self::load(&p).map(Some)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Fails on the first `${VAR}` that is not set where a tool reads: under one of the top-level
    /// `sections`, or under `environments.<environment>` when `"environments"` is one of them
    /// (every environment when none is chosen). Elsewhere an unset variable is no error: a
    /// fork's pull request runs sync-check without the deploy secrets production's URL needs.
    pub fn require(&self, sections: &[&str], environment: Option<&str>) -> Result<(), ConfigError> {
        let read = |key: &str| {
            let top = key.split(['.', '[']).next().unwrap_or_default();
            if !sections.contains(&top) {
                return false;
            }
            match (top, environment) {
                ("environments", Some(e)) => {
                    let rest = &key["environments.".len().min(key.len())..];
                    rest == e || rest.starts_with(&format!("{e}."))
                }
                _ => true,
            }
        };
        match self.unset.iter().find(|u| read(&u.key)) {
            Some(u) => Err(unset_error(&self.source, u)),
            None => Ok(()),
        }
    }

    /// The environment named `name`.
    pub fn environment(&self, name: &str) -> Result<&Environment, ConfigError> {
        self.environments
            .get(name)
            .ok_or_else(|| ConfigError::UnknownEnvironment {
                path: self.source.clone(),
                name: name.to_owned(),
                known: if self.environments.is_empty() {
                    "none".to_owned()
                } else {
                    self.environments
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })
    }
}

/// The Control Center contract's own health checks (runbook 4.1), used when there is no config.
pub const EMBEDDED_HEALTH: &str = r#"
[[health.checks]]
name = "Control Center health"
path = "/api/health"
status = 200

[[health.checks]]
name = "Control Center readiness"
path = "/api/ready"
status = 200
assert = [".ready == true"]

[[health.checks]]
name = "MCP servers"
path = "/api/mcp/health"
status = 200
assert = ['.status == "healthy"']
"#;

/// The Control Center contract's own smoke tests (runbook 4.2), used when there is no config.
pub const EMBEDDED_SMOKE: &str = r#"
[[smoke.checks]]
name = "Homepage"
path = "/"
status = "2xx"

[[smoke.checks]]
name = "API health"
path = "/api/health"
assert = ['.status == "ok"']

[[smoke.checks]]
name = "API readiness"
path = "/api/ready"
assert = [".ready == true"]

[[smoke.checks]]
name = "MCP servers"
path = "/api/mcp/health"
assert = ['.status == "healthy"']

[[smoke.checks]]
name = "Workflow API"
path = "/api/workflows"
headers = { Authorization = "Bearer ${API_TOKEN}" }
assert = [".workflows != null"]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'static {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    fn err(text: &str) -> String {
        Config::parse_with(text, "deploy.toml", env(&[]))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../../../deploy.example.toml");
        let cfg = Config::parse_with(
            text,
            "deploy.example.toml",
            env(&[("API_TOKEN", "tok-example-123")]),
        )
        .unwrap();
        let staging = cfg.environment("staging").unwrap();
        assert_eq!(staging.cluster.as_ref().unwrap().expose(), "afu9-staging");
        assert_eq!(staging.services.len(), 4);
        assert!(cfg.environment("production").unwrap().protected);
        assert_eq!(cfg.images.len(), 4);
        assert_eq!(cfg.health.checks.len(), 3);
        assert_eq!(cfg.smoke.checks.len(), 5);
        assert_eq!(cfg.metrics.namespace, "AFU9/Factory");
        let workflow = cfg
            .smoke
            .checks
            .iter()
            .find(|c| c.name == "Workflow API")
            .unwrap();
        let auth = &workflow.headers["Authorization"];
        assert!(auth.is_secret());
        assert_eq!(auth.expose(), "Bearer tok-example-123");
        assert_eq!(format!("{auth}"), "***");
        assert_eq!(format!("{auth:?}"), "Text(***)");
    }

    #[test]
    fn embedded_defaults_parse() {
        let h = Config::parse_with(EMBEDDED_HEALTH, "<embedded>", env(&[])).unwrap();
        assert_eq!(h.health.checks.len(), 3);
        let s = Config::parse_with(
            EMBEDDED_SMOKE,
            "<embedded>",
            env(&[("API_TOKEN", "t0ken-xyz")]),
        )
        .unwrap();
        assert_eq!(s.smoke.checks.len(), 5);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err("[environments.staging]\nbase_url = \"https://s.example\"\nclustr = \"x\"\n");
        assert!(
            e.starts_with("deploy.toml:3:1: environments.staging.clustr: unknown field `clustr`"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = err("[environments.staging]\nprotected = \"yes\"\n");
        assert!(
            e.starts_with("deploy.toml:2:13: environments.staging.protected:"),
            "{e}"
        );
        assert!(e.contains("bool"), "{e}");
    }

    #[test]
    fn missing_variable_names_the_variable_and_key() {
        let cfg = Config::parse_with(
            "[environments.staging]\ncluster = \"${CLUSTER_NAME}\"\n",
            "deploy.toml",
            env(&[]),
        )
        .unwrap();
        let e = cfg
            .require(&["environments"], Some("staging"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("deploy.toml:2:12: environments.staging.cluster:"),
            "{e}"
        );
        assert!(
            e.contains("environment variable CLUSTER_NAME is not set"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_variable_matters_only_where_a_tool_reads() {
        let text = "[defaults]\nbase_branch = \"main\"\n\
            [environments.staging]\nbase_url = \"https://staging.example.com\"\n\
            [environments.production]\nbase_url = \"${PROD_URL}\"\n\
            [[smoke.checks]]\nname = \"a\"\npath = \"/\"\nheaders = { Authorization = \"Bearer ${API_TOKEN}\" }\n";
        let cfg = Config::parse_with(text, "deploy.toml", env(&[])).unwrap();
        // sync-check reads [defaults] only; health-check on staging never reads production.
        cfg.require(&["defaults"], None).unwrap();
        cfg.require(&["defaults", "environments", "health"], Some("staging"))
            .unwrap();
        let prod = cfg
            .require(&["environments"], Some("production"))
            .unwrap_err()
            .to_string();
        assert!(
            prod.contains(
                "environments.production.base_url: environment variable PROD_URL is not set"
            ),
            "{prod}"
        );
        let all = cfg
            .require(&["environments"], None)
            .unwrap_err()
            .to_string();
        assert!(all.contains("PROD_URL"), "{all}");
        let smoke = cfg
            .require(&["smoke"], Some("staging"))
            .unwrap_err()
            .to_string();
        assert!(
            smoke.contains(
                "smoke.checks[0].headers.Authorization: environment variable API_TOKEN is not set"
            ),
            "{smoke}"
        );
        // A variable that is set is expanded as before.
        let cfg = Config::parse_with(
            text,
            "deploy.toml",
            env(&[("PROD_URL", "https://p.example.com"), ("API_TOKEN", "t")]),
        )
        .unwrap();
        cfg.require(&["defaults", "environments", "smoke"], None)
            .unwrap();
        assert_eq!(
            cfg.environments["production"]
                .base_url
                .as_ref()
                .unwrap()
                .base(),
            "https://p.example.com"
        );
    }

    #[test]
    fn bad_url_and_bad_duration_and_bad_status() {
        let e = err("[environments.s]\nbase_url = \"ftp://x\"\n");
        assert!(
            e.contains("environments.s.base_url") && e.contains("http or https"),
            "{e}"
        );
        let e = err("[health]\nwait = \"soon\"\n");
        assert!(
            e.contains("health.wait") && e.contains("invalid duration"),
            "{e}"
        );
        let e = err("[[smoke.checks]]\nname = \"a\"\npath = \"/\"\nstatus = \"700\"\n");
        assert!(
            e.contains("smoke.checks[0].status") && e.contains("invalid HTTP status"),
            "{e}"
        );
    }

    #[test]
    fn check_needs_exactly_one_target() {
        let e = err("[[smoke.checks]]\nname = \"a\"\n");
        assert!(
            e.contains("smoke.checks[0]") && e.contains("needs a path or a url"),
            "{e}"
        );
        let e = err("[[smoke.checks]]\nname = \"a\"\npath = \"x\"\n");
        assert!(e.contains("must start with '/'"), "{e}");
    }

    #[test]
    fn a_bad_assertion_is_located() {
        let e = err("[[smoke.checks]]\nname = \"a\"\npath = \"/\"\nassert = [\".a == \"]\n");
        assert!(
            e.starts_with("deploy.toml:1:1: smoke.checks[0]: check \"a\": assert[0]: invalid jq"),
            "{e}"
        );
    }

    #[test]
    fn syntax_error_is_located() {
        let e = err("[environments\n");
        assert!(e.starts_with("deploy.toml:1:"), "{e}");
    }

    #[test]
    fn expansion_rules() {
        let look = env(&[("A", "1"), ("B", "two")]);
        assert_eq!(
            expand("x${A}y${B}", &look).unwrap(),
            ("x1ytwo".into(), true)
        );
        assert_eq!(
            expand("cost $$5 $x", &look).unwrap(),
            ("cost $5 $x".into(), false)
        );
        assert!(expand("${A", &look).unwrap_err().contains("unclosed"));
        assert!(
            expand("${1A}", &look)
                .unwrap_err()
                .contains("invalid variable name")
        );
        assert!(
            expand("${NOPE}", &look)
                .unwrap_err()
                .contains("NOPE is not set")
        );
    }

    #[test]
    fn secret_urls_are_not_echoed_in_errors() {
        let e = Config::parse_with(
            "[environments.s]\nbase_url = \"${URL}\"\n",
            "deploy.toml",
            env(&[("URL", "not-a-url-secret-value")]),
        )
        .unwrap_err()
        .to_string();
        assert!(!e.contains("not-a-url-secret-value"), "{e}");
    }

    #[test]
    fn status_sets() {
        let s = StatusSet(vec![
            StatusSet::parse_one("2xx").unwrap(),
            StatusSet::parse_one("404").unwrap(),
        ]);
        assert!(s.accepts(204) && s.accepts(404) && !s.accepts(301));
        assert_eq!(StatusSet::parse_one("200-204").unwrap(), (200, 204));
    }

    #[test]
    fn unknown_environment_lists_the_known_ones() {
        let cfg = Config::parse_with("[environments.staging]\n", "deploy.toml", env(&[])).unwrap();
        let e = cfg.environment("prod").unwrap_err().to_string();
        assert_eq!(
            e,
            "deploy.toml: no environment named \"prod\" (defined: staging)"
        );
    }
}
