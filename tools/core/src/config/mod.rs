//! `deploy.toml`: the one config file every tool reads. Environments, images, health and smoke
//! checks, metrics and alarm filters. `${VAR}` reads the environment, and a value read that way is
//! a secret (registered for redaction and masking). Unknown keys, wrong types, bad values and
//! missing variables are errors naming the file, line, column and key.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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

mod check_spec;
mod embedded;
mod expand;
mod sections;

pub use check_spec::{Capture, CaptureFrom, CheckSpec, CheckTarget, StatusSet, valid_capture_name};
pub use embedded::{EMBEDDED_HEALTH, EMBEDDED_SMOKE};
use expand::LOOKUP;
pub use expand::{Dur, Text, UrlText, expand};
pub use sections::{
    Alarms, Defaults, Environment, Health, Image, Kpi, Metrics, Mutability, Rollback, Smoke,
};

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
    /// The webhook that hears of outcomes (`--notify`).
    #[serde(default)]
    pub notify: crate::notify::NotifyConfig,
    /// The `${VAR}`s the environment does not set, where they are (an error only where a tool
    /// reads: [`Config::require`]).
    #[serde(skip)]
    pub unset: Vec<Unset>,
    /// Where this config came from (set by the loader).
    #[serde(skip)]
    pub source: String,
}

/// The one precedence rule of every setting with a built-in default: the flag, else the
/// config file's value (the environment's, or the section's), else `builtin`.
pub fn setting<T, F: Into<T>>(flag: Option<T>, file: Option<F>, builtin: T) -> T {
    first(flag, file).unwrap_or(builtin)
}

/// [`setting`] without a built-in default: the flag, else the file's value, else none.
pub fn first<T, F: Into<T>>(flag: Option<T>, file: Option<F>) -> Option<T> {
    flag.or_else(|| file.map(Into::into))
}

impl Config {
    /// The AWS region for `environment`: its `region`, else `[defaults] region` (else none: the
    /// SDK's chain, `AWS_REGION` or the profile, decides; `--region` overrides them all).
    pub fn region_for(&self, environment: Option<&str>) -> Option<&str> {
        environment
            .and_then(|e| self.environments.get(e))
            .and_then(|e| e.region.as_deref())
            .or(self.defaults.region.as_deref())
    }

    /// The CloudWatch Logs group of the incident records: the `--incident-log-group` flag, else
    /// `[rollback] incident_log_group` (rollback writes there, health-check reads there).
    pub fn incident_log_group(&self, flag: Option<&String>) -> Option<String> {
        flag.cloned().or_else(|| {
            self.rollback
                .incident_log_group
                .as_ref()
                .map(|t| t.expose().to_owned())
        })
    }
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
        message: unset_message(&u.var),
    }
}

/// Why `${var}` has no value: not set, or set to bytes that are not UTF-8 (which no config value
/// can hold, and which must not be sent as a lossy copy of a secret).
pub fn unset_message(var: &str) -> String {
    if std::env::var_os(var).is_some() {
        format!("environment variable {var} is set but not valid UTF-8")
    } else {
        format!("environment variable {var} is not set")
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
                // The first use on a line that is not a comment (a `# uses ${TOKEN}` above the
                // key is not where it is read).
                let needle = format!("${{{var}}}");
                let (line, column) = text
                    .match_indices(&needle)
                    .map(|(i, _)| i)
                    .find(|&i| {
                        let start = text[..i].rfind('\n').map_or(0, |n| n + 1);
                        !text[start..i].trim_start().starts_with('#')
                    })
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

/// Where the error `span` points at is: the expression `message` quotes (`expression "..."`, as
/// `{:?}` writes it), else its first quoted value, when it stands in the file as written in the
/// table the span heads. An invalid jq assertion is a line of its check's table.
fn narrow(
    text: &str,
    span: std::ops::Range<usize>,
    key: &str,
    message: &str,
) -> std::ops::Range<usize> {
    let at = message
        .find("expression \"")
        .map(|i| i + "expression ".len())
        .or_else(|| message.find('"'));
    let Some(q) = at else {
        return span;
    };
    let quoted = serde_json::Deserializer::from_str(&message[q..])
        .into_iter::<String>()
        .next()
        .and_then(Result::ok)
        .filter(|v| v.len() >= 2);
    // toml gives a table's header (`[[smoke.checks]]`) as the span of an error in the table:
    // look through that table, up to the next header. Any other span already is the value.
    let header = text.get(span.clone()).unwrap_or_default();
    if !header.starts_with('[') {
        return span;
    }
    // `smoke.checks[1]`: the second `[[smoke.checks]]` (toml points at the first).
    let nth = key
        .split_once('[')
        .and_then(|(_, r)| r.split_once(']'))
        .and_then(|(n, _)| n.parse::<usize>().ok())
        .unwrap_or(0);
    let mut start = span.start;
    for _ in 0..nth {
        match text.get(start + 1..).and_then(|t| t.find(header)) {
            Some(i) => start += 1 + i,
            None => return span,
        }
    }
    let after = start + header.len();
    let end = text
        .get(after..)
        .and_then(|t| t.find("\n["))
        .map_or(text.len(), |i| after + i);
    let region = text.get(start..end).unwrap_or_default();
    match quoted.and_then(|v| region.find(&v).map(|i| (i, v.len()))) {
        Some((i, n)) => start + i..start + i + n,
        None => span,
    }
}

/// A percentage: finite, from 0 to 100 (`[kpi] uptime_target`, `--uptime-target`).
pub fn parse_percent(p: f64) -> Result<f64, String> {
    if p.is_finite() && (0.0..=100.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not a percentage from 0 to 100"))
    }
}

/// [`parse_percent`] of a flag's text.
pub fn parse_percent_arg(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    parse_percent(p)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |i| offset - i - 1) + 1;
    (line, col)
}

/// The largest config file read (a deploy.toml is a few KiB; `--config /dev/zero` must not fill
/// the memory).
pub const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;

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
            let message = inner.message().trim().to_owned();
            let span = inner.span().map(|s| narrow(text, s, &key, &message));
            invalid(span, key, message)
        })?;
        cfg.source = path.to_owned();
        cfg.unset = unset;
        Ok(cfg)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let bytes = crate::read_file_capped(path, MAX_CONFIG_BYTES).map_err(|source| {
            ConfigError::Read {
                path: path.to_owned(),
                source,
            }
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
        let text = include_str!("../../../../deploy.example.toml");
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
    fn the_example_file_s_chained_checks_parse_once_uncommented() {
        let text = include_str!("../../../../deploy.example.toml");
        let start = text
            .find("# [[smoke.checks]]\n# name = \"Log in\"")
            .unwrap();
        let block: String = text[start..]
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{}\n", l.trim_start_matches('#').trim_start()))
            .collect();
        let cfg = Config::parse_with(
            &block,
            "deploy.example.toml",
            env(&[("SMOKE_PASSWORD", "pw-example-42")]),
        )
        .unwrap();
        let (login, api) = (&cfg.smoke.checks[0], &cfg.smoke.checks[1]);
        let names: Vec<&str> = login.captures.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["csrf", "session"]);
        assert!(
            login
                .captures
                .iter()
                .any(|c| c.name == "session" && c.secret)
        );
        assert_eq!(api.headers["Authorization"].expose(), "Bearer {{session}}");
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
    fn header_values_and_expected_header_names_are_checked_when_read() {
        let e = Config::parse_with(
            "[[smoke.checks]]\nname = \"a\"\npath = \"/\"\nheaders = { X-Key = \"${K}\" }\n",
            "deploy.toml",
            |_| Some("line-one\nline-two-secret".into()),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("deploy.toml:1:1: smoke.checks[0]: check \"a\": header X-Key: the value is not a valid HTTP header value"),
            "{e}"
        );
        assert!(!e.contains("line-two-secret"), "{e}");
        let e = err(
            "[[smoke.checks]]\nname = \"a\"\npath = \"/\"\nexpect_headers = { \"bad name\" = \"x\" }\n",
        );
        assert!(
            e.contains("expect_headers: invalid header name \"bad name\""),
            "{e}"
        );
    }

    #[test]
    fn an_unset_variable_is_located_where_it_is_read_not_in_a_comment() {
        let cfg = Config::parse_with(
            "# needs ${NOPE_TOKEN} from the job\n[environments.s]\nbase_url = \"https://${NOPE_TOKEN}.example\"\n",
            "deploy.toml",
            |_| None,
        )
        .unwrap();
        let u = &cfg.unset[0];
        assert_eq!((u.var.as_str(), u.line, u.column), ("NOPE_TOKEN", 3, 21));
    }

    #[test]
    fn numbers_out_of_their_range_name_key_and_range() {
        for (text, key, why) in [
            (
                "[smoke]\nconcurrency = 9223372036854775807\n",
                "smoke.concurrency",
                "out of range: 1 to 256",
            ),
            (
                "[smoke]\nconcurrency = 0\n",
                "smoke.concurrency",
                "out of range: 1 to 256",
            ),
            (
                "[health]\nsuccess_threshold = 0\n",
                "health.success_threshold",
                "out of range: 1 to 100",
            ),
            (
                "[health]\nsuccess_threshold = 4294967295\n",
                "health.success_threshold",
                "out of range: 1 to 100",
            ),
            (
                "[kpi]\nuptime_target = nan\n",
                "kpi.uptime_target",
                "not a percentage",
            ),
            (
                "[kpi]\nuptime_target = 500.0\n",
                "kpi.uptime_target",
                "not a percentage",
            ),
        ] {
            let e = err(text);
            assert!(
                e.starts_with("deploy.toml:2:") && e.contains(key) && e.contains(why),
                "{text}: {e}"
            );
        }
        assert!(parse_percent_arg("150").is_err() && parse_percent_arg("99.5") == Ok(99.5));
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
            e.starts_with("deploy.toml:4:12: smoke.checks[0]: check \"a\": assert[0]: invalid jq"),
            "{e}"
        );
        // The second check's second assertion: its own line, not the first check's.
        let e = err(
            "[[smoke.checks]]\nname = \"one\"\npath = \"/\"\n\n[[smoke.checks]]\nname = \"two\"\npath = \"/\"\nassert = [\".ok\",\n  \".x ==\"]\n",
        );
        assert!(
            e.starts_with("deploy.toml:9:4: smoke.checks[1]: check \"two\": assert[1]: invalid jq"),
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
