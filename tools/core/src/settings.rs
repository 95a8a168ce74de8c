//! Settings groups: the flags more than one tool takes, each declared once here with clap and
//! resolved once against the config by one precedence rule (the flag, else the config's value,
//! else built in; [`crate::config::setting`]).
//!
//! The same flag can mean a tool's own thing: health-check's `--wait` is the deadline of the
//! health wait (`health.wait`, 300s), rollback's the deadline of its deployments
//! (`rollback.wait`, 15m). So a group takes its help text and heading from the tool's words file
//! ([`Docs`]: `WaitArgs<health_check::Help>` reads `tools/health-check/src/words.txt`), and its
//! resolution takes the tool's config values and defaults; the flag's name, value and parsing are
//! the group's. A tool flattens the groups into its `Args` where their flags belong in its help;
//! [`ProbeArgs`] is the head every tool that checks a running environment starts with.

use std::marker::PhantomData;
use std::time::Duration;

use crate::cli::{CommonArgs, Resolved, ServiceArgs};
use crate::config::{Config, setting};
use crate::duration::parse as parse_duration;
use crate::exit;
use crate::github::PublishArgs;

/// The flags of the tools that check a running environment (health-check, smoke-test, rollback):
/// the config, environment and output, the service's `--base-url`, and publishing. Its flags stand
/// first in their help, in this order.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub service: ServiceArgs,
    #[command(flatten)]
    pub publish: PublishArgs,
}

impl ProbeArgs {
    /// The config (`embedded` without a file), the environment and the base URL: see
    /// [`CommonArgs::resolve`].
    pub fn resolve(&self, embedded: &str, reads: &[&str]) -> anyhow::Result<Resolved> {
        self.common.resolve(&self.service, embedded, reads)
    }
}

/// A tool's words for the settings groups: the help text of each shared flag and the heading it
/// stands under, as `KEY: text` lines of a text file the tool embeds (`include_str!`), so a
/// group's flags read as that tool means them. The keys are [`WORD_KEYS`]: each flag (`--wait`)
/// and each group's heading (`[wait]`). Lines that start with no key (comments) are not read.
pub trait Docs: std::fmt::Debug + Clone + Default + Send + Sync + 'static {
    /// The tool's words file.
    const WORDS: &'static str;

    /// The words for `key`, empty where the file has none ([`missing_words`] lists those).
    fn word(key: &str) -> &'static str {
        word_in(Self::WORDS, key).unwrap_or_default()
    }
}

/// Every key a words file needs: the flags of the groups, then their headings.
pub const WORD_KEYS: &[&str] = &[
    "--wait",
    "--interval",
    "--cluster",
    "--service",
    "--emit-metric",
    "--metric-namespace",
    "--no-diagnose",
    "[wait]",
    "[ecs]",
    "[metric]",
    "[diagnose]",
];

/// The text of `key` in a words file: the rest of the line `KEY: text`.
fn word_in(words: &'static str, key: &str) -> Option<&'static str> {
    words.lines().find_map(|l| {
        l.strip_prefix(key)?
            .strip_prefix(':')
            .map(str::trim)
            .filter(|t| !t.is_empty())
    })
}

/// The keys of [`WORD_KEYS`] a tool's words file lacks (each tool's tests expect none).
pub fn missing_words<D: Docs>() -> Vec<&'static str> {
    WORD_KEYS
        .iter()
        .copied()
        .filter(|k| word_in(D::WORDS, k).is_none())
        .collect()
}

/// `--wait` and `--interval`: the deadline of a wait and the pause between its polls.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WaitArgs<D: Docs> {
    /// The deadline.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help = D::word("--wait"), help_heading = D::word("[wait]"))]
    pub wait: Option<Duration>,
    /// The pause between polls.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help = D::word("--interval"), help_heading = D::word("[wait]"))]
    pub interval: Option<Duration>,
    #[arg(skip)]
    docs: PhantomData<D>,
}

/// The deadline and the polling pause a wait runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// How long the whole wait may take.
    pub deadline: Duration,
    /// The pause between polls.
    pub interval: Duration,
}

impl<D: Docs> WaitArgs<D> {
    /// The flags as given (another tool calling this one as a library sets them so).
    pub fn new(wait: Option<Duration>, interval: Option<Duration>) -> Self {
        Self {
            wait,
            interval,
            docs: PhantomData,
        }
    }

    /// The flags, else the config's `wait` and `interval`, else `builtin`.
    pub fn resolve<F: Into<Duration>>(
        &self,
        wait: Option<F>,
        interval: Option<F>,
        builtin: Wait,
    ) -> Wait {
        Wait {
            deadline: setting(self.wait, wait, builtin.deadline),
            interval: setting(self.interval, interval, builtin.interval),
        }
    }
}

/// `--cluster`: the ECS cluster, else the environment's. A group of its own, apart from
/// [`ServicesArg`], so each tool keeps the order its help shows them in.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClusterArg<D: Docs> {
    /// The cluster.
    #[arg(long, value_name = "NAME", help = D::word("--cluster"), help_heading = D::word("[ecs]"))]
    pub cluster: Option<String>,
    #[arg(skip)]
    docs: PhantomData<D>,
}

impl<D: Docs> ClusterArg<D> {
    /// The flag as given.
    pub fn new(cluster: Option<String>) -> Self {
        Self {
            cluster,
            docs: PhantomData,
        }
    }
}

/// `--service`, repeated: the ECS services, else the environment's.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServicesArg<D: Docs> {
    /// The services.
    #[arg(long = "service", value_name = "NAME", help = D::word("--service"), help_heading = D::word("[ecs]"))]
    pub services: Vec<String>,
    #[arg(skip)]
    docs: PhantomData<D>,
}

impl<D: Docs> ServicesArg<D> {
    /// The flags as given.
    pub fn new(services: Vec<String>) -> Self {
        Self {
            services,
            docs: PhantomData,
        }
    }
}

/// The ECS cluster and services a run is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsScope {
    /// The cluster.
    pub cluster: String,
    /// The services, in the order given.
    pub services: Vec<String>,
}

/// The cluster and the services: the flags, else the chosen environment's; both must be known.
pub fn ecs_scope<D: Docs>(
    cluster: &ClusterArg<D>,
    services: &ServicesArg<D>,
    r: &Resolved,
) -> anyhow::Result<EcsScope> {
    let env = r.env();
    let in_env = |key: &str| match &r.environment {
        Some(name) => format!("set environments.{name}.{key}"),
        None => format!("choose an environment (--environment) with {key}"),
    };
    let cluster = cluster
        .cluster
        .clone()
        .or_else(|| {
            env.and_then(|e| e.cluster.as_ref())
                .map(|c| c.expose().to_owned())
        })
        .ok_or_else(|| {
            exit::usage(format!(
                "no ECS cluster: pass --cluster or {}",
                in_env("cluster")
            ))
        })?;
    let services: Vec<String> = if services.services.is_empty() {
        env.map(|e| e.services.iter().map(|s| s.expose().to_owned()).collect())
            .unwrap_or_default()
    } else {
        services.services.clone()
    };
    if services.is_empty() {
        return Err(exit::usage(format!(
            "no ECS services: pass --service or {}",
            in_env("services")
        )));
    }
    if let Some(e) = services
        .iter()
        .find_map(|s| crate::ecs::service_ref_error(s))
    {
        return Err(exit::usage(e));
    }
    Ok(EcsScope { cluster, services })
}

/// `--emit-metric` and `--metric-namespace`: put the tool's CloudWatch metric (health-check's
/// Availability, rollback's MTTR), and where.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MetricArgs<D: Docs> {
    /// Put the metric.
    #[arg(long, help = D::word("--emit-metric"), help_heading = D::word("[metric]"))]
    pub emit_metric: bool,
    /// The namespace.
    #[arg(long, value_name = "NAMESPACE", help = D::word("--metric-namespace"), help_heading = D::word("[metric]"))]
    pub metric_namespace: Option<String>,
    #[arg(skip)]
    docs: PhantomData<D>,
}

impl<D: Docs> MetricArgs<D> {
    /// The namespace: the flag, else `metrics.namespace` (which defaults to AFU9/Factory).
    pub fn namespace(&self, config: &Config) -> String {
        self.metric_namespace
            .clone()
            .unwrap_or_else(|| config.metrics.namespace.clone())
    }
}

/// `--no-diagnose`: skip gathering why a run failed (crate::diagnose).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DiagnoseArgs<D: Docs> {
    /// Skip the diagnosis.
    #[arg(long, help = D::word("--no-diagnose"), help_heading = D::word("[diagnose]"))]
    pub no_diagnose: bool,
    #[arg(skip)]
    docs: PhantomData<D>,
}

impl<D: Docs> DiagnoseArgs<D> {
    /// Whether a failure is diagnosed.
    pub fn on(&self) -> bool {
        !self.no_diagnose
    }
}

/// `--cert-warn` and `--cert-fail`: how close to expiry an https server's certificate may be
/// (health-check and smoke-test; [`crate::checks::CertPolicy`]).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CertArgs {
    /// Warn when an https server's certificate expires within DAYS (default:
    /// defaults.cert_warn_days, else 14; 0 never warns).
    #[arg(long, value_name = "DAYS", help_heading = "TLS")]
    pub cert_warn: Option<u32>,
    /// Fail a check whose server's certificate expires within DAYS (default:
    /// defaults.cert_fail_days, else off).
    #[arg(long, value_name = "DAYS", help_heading = "TLS")]
    pub cert_fail: Option<u32>,
}

impl CertArgs {
    /// The flags, else `[defaults]`, else warn within 14 days and never fail.
    pub fn resolve(&self, cfg: &Config) -> crate::checks::CertPolicy {
        let d = &cfg.defaults;
        crate::checks::CertPolicy {
            warn_days: setting(self.cert_warn, d.cert_warn_days, 14),
            fail_days: crate::config::first(self.cert_fail, d.cert_fail_days),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, Default)]
    struct Words;
    impl Docs for Words {
        const WORDS: &'static str =
            "# a comment: no key\n--cluster: the cluster\n--service:   \n[ecs]: ECS\n";
    }

    #[test]
    fn a_word_is_the_rest_of_its_line_and_a_missing_or_empty_one_is_listed() {
        assert_eq!(Words::word("--cluster"), "the cluster");
        assert_eq!(Words::word("[ecs]"), "ECS");
        assert_eq!(Words::word("--service"), "");
        assert_eq!(Words::word("--clus"), "");
        let missing = missing_words::<Words>();
        assert!(missing.contains(&"--service") && missing.contains(&"--wait"));
        assert!(!missing.contains(&"--cluster") && !missing.contains(&"[ecs]"));
        assert_eq!(missing.len(), WORD_KEYS.len() - 2);
    }

    fn resolved(toml: &str, environment: Option<&str>) -> Resolved {
        Resolved {
            config: Config::parse(toml, "deploy.toml").unwrap(),
            environment: environment.map(str::to_owned),
            base_url: None,
        }
    }

    fn scope(cluster: Option<&str>, services: &[&str], r: &Resolved) -> anyhow::Result<EcsScope> {
        let cluster = ClusterArg::<Words>::new(cluster.map(str::to_owned));
        let services = ServicesArg::<Words>::new(services.iter().map(|s| s.to_string()).collect());
        ecs_scope(&cluster, &services, r)
    }

    #[test]
    fn the_flags_win_over_the_environment_and_the_environment_fills_in() {
        let r = resolved(
            "[environments.staging]\ncluster = \"c1\"\nservices = [\"a\", \"b\"]\n",
            Some("staging"),
        );
        let both = scope(Some("c2"), &["x"], &r).unwrap();
        assert_eq!(
            (both.cluster.as_str(), both.services),
            ("c2", vec!["x".to_owned()])
        );
        let env = scope(None, &[], &r).unwrap();
        assert_eq!(
            (env.cluster.as_str(), env.services),
            ("c1", vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn a_missing_cluster_or_service_names_the_key_to_set() {
        let r = resolved(
            "[environments.staging]\nservices = [\"a\"]\n",
            Some("staging"),
        );
        let e = scope(None, &[], &r).unwrap_err().to_string();
        assert!(
            e.contains("pass --cluster or set environments.staging.cluster"),
            "{e}"
        );
        let r = resolved("[environments.staging]\ncluster = \"c\"\n", Some("staging"));
        let e = scope(None, &[], &r).unwrap_err().to_string();
        assert!(
            e.contains("pass --service or set environments.staging.services"),
            "{e}"
        );
        let e = scope(None, &["a"], &resolved("", None))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("choose an environment (--environment) with cluster"),
            "{e}"
        );
    }

    #[test]
    fn a_wait_takes_the_flag_else_the_file_else_the_default() {
        let s = Duration::from_secs;
        let builtin = Wait {
            deadline: s(300),
            interval: s(2),
        };
        let flags = WaitArgs::<Words>::new(Some(s(9)), None);
        let got = flags.resolve(Some(s(60)), Some(s(7)), builtin);
        assert_eq!(
            got,
            Wait {
                deadline: s(9),
                interval: s(7)
            }
        );
        let none = WaitArgs::<Words>::new(None, None).resolve(None::<Duration>, None, builtin);
        assert_eq!(none, builtin);
    }
}
