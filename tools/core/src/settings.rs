//! Settings groups: the flags more than one tool takes, each declared once here with clap and
//! resolved once against the config by one precedence rule (the flag, else the config's value,
//! else built in; [`crate::config::setting`]).
//!
//! The same flag can mean a tool's own thing: health-check's `--wait` is the deadline of the
//! health wait (`health.wait`, 300s), rollback's the deadline of its deployments
//! (`rollback.wait`, 15m). So a group takes its help text and heading from a docs type of the tool
//! (`WaitArgs<HealthWait>`), and its resolution takes the tool's config values and defaults; the
//! flag's name, value and parsing are the group's. A tool flattens the groups into its `Args`
//! where their flags belong in its help.

use std::marker::PhantomData;
use std::time::Duration;

use crate::cli::Resolved;
use crate::config::{Config, setting};
use crate::duration::parse as parse_duration;
use crate::exit;

/// What a docs type is: a marker the groups hold (so it derives what they derive).
pub trait Docs: std::fmt::Debug + Clone + Default + Send + Sync + 'static {}
impl<T: std::fmt::Debug + Clone + Default + Send + Sync + 'static> Docs for T {}

/// Help texts of [`WaitArgs`].
pub trait WaitDocs: Docs {
    /// The help heading.
    const HEADING: &'static str;
    /// `--wait`.
    const WAIT: &'static str;
    /// `--interval`.
    const INTERVAL: &'static str;
}

/// `--wait` and `--interval`: the deadline of a wait and the pause between its polls.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WaitArgs<D: WaitDocs> {
    /// The deadline.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help = D::WAIT, help_heading = D::HEADING)]
    pub wait: Option<Duration>,
    /// The pause between polls.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help = D::INTERVAL, help_heading = D::HEADING)]
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

impl<D: WaitDocs> WaitArgs<D> {
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

/// Help texts of [`ClusterArg`] and [`ServicesArg`].
pub trait EcsDocs: Docs {
    /// The help heading.
    const HEADING: &'static str;
    /// `--cluster`.
    const CLUSTER: &'static str;
    /// `--service`.
    const SERVICE: &'static str;
}

/// `--cluster`: the ECS cluster, else the environment's. A group of its own, apart from
/// [`ServicesArg`], so each tool keeps the order its help shows them in.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClusterArg<D: EcsDocs> {
    /// The cluster.
    #[arg(long, value_name = "NAME", help = D::CLUSTER, help_heading = D::HEADING)]
    pub cluster: Option<String>,
    #[arg(skip)]
    docs: PhantomData<D>,
}

impl<D: EcsDocs> ClusterArg<D> {
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
pub struct ServicesArg<D: EcsDocs> {
    /// The services.
    #[arg(long = "service", value_name = "NAME", help = D::SERVICE, help_heading = D::HEADING)]
    pub services: Vec<String>,
    #[arg(skip)]
    docs: PhantomData<D>,
}

impl<D: EcsDocs> ServicesArg<D> {
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
pub fn ecs_scope<D: EcsDocs>(
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

/// Help texts of [`MetricArgs`].
pub trait MetricDocs: Docs {
    /// The help heading.
    const HEADING: &'static str;
    /// `--emit-metric`.
    const EMIT: &'static str;
    /// `--metric-namespace`.
    const NAMESPACE: &'static str;
}

/// `--emit-metric` and `--metric-namespace`: put the tool's CloudWatch metric (health-check's
/// Availability, rollback's MTTR), and where.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MetricArgs<D: MetricDocs> {
    /// Put the metric.
    #[arg(long, help = D::EMIT, help_heading = D::HEADING)]
    pub emit_metric: bool,
    /// The namespace.
    #[arg(long, value_name = "NAMESPACE", help = D::NAMESPACE, help_heading = D::HEADING)]
    pub metric_namespace: Option<String>,
    #[arg(skip)]
    docs: PhantomData<D>,
}

impl<D: MetricDocs> MetricArgs<D> {
    /// The namespace: the flag, else `metrics.namespace` (which defaults to AFU9/Factory).
    pub fn namespace(&self, config: &Config) -> String {
        self.metric_namespace
            .clone()
            .unwrap_or_else(|| config.metrics.namespace.clone())
    }
}

/// Help texts of [`DiagnoseArgs`].
pub trait DiagnoseDocs: Docs {
    /// The help heading.
    const HEADING: &'static str;
    /// `--no-diagnose`.
    const NO_DIAGNOSE: &'static str;
}

/// `--no-diagnose`: skip gathering why a run failed (crate::diagnose).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DiagnoseArgs<D: DiagnoseDocs> {
    /// Skip the diagnosis.
    #[arg(long, help = D::NO_DIAGNOSE, help_heading = D::HEADING)]
    pub no_diagnose: bool,
    #[arg(skip)]
    docs: PhantomData<D>,
}

impl<D: DiagnoseDocs> DiagnoseArgs<D> {
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
    impl EcsDocs for Words {
        const HEADING: &'static str = "ECS";
        const CLUSTER: &'static str = "cluster";
        const SERVICE: &'static str = "service";
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
        #[derive(Debug, Clone, Copy, Default)]
        struct W;
        impl WaitDocs for W {
            const HEADING: &'static str = "Waiting";
            const WAIT: &'static str = "wait";
            const INTERVAL: &'static str = "interval";
        }
        let s = Duration::from_secs;
        let builtin = Wait {
            deadline: s(300),
            interval: s(2),
        };
        let flags = WaitArgs::<W>::new(Some(s(9)), None);
        let got = flags.resolve(Some(s(60)), Some(s(7)), builtin);
        assert_eq!(
            got,
            Wait {
                deadline: s(9),
                interval: s(7)
            }
        );
        let none = WaitArgs::<W>::new(None, None).resolve(None::<Duration>, None, builtin);
        assert_eq!(none, builtin);
    }
}
