//! `health-check --kpi WINDOW`: the runbook's KPIs (section 7) over a window, from what the tools
//! themselves recorded. Uptime exactly as the runbook's dashboard query defines it (`AVG(Availability)
//! * 100`, `COUNT(*)` total checks, `SUM(Availability)` healthy checks) from the `Availability`
//! metric health-check `--emit-metric` puts; and the number of incidents and their average and
//! largest MTTR from the records rollback writes to CloudWatch Logs (stream `incidents`). Targets
//! from `[kpi]` (or flags) make it pass or fail.

use std::time::{Duration, Instant, SystemTime};

use deploy_core::cli::Resolved;
use deploy_core::config::first;
use deploy_core::{Check, Report, Status, exit};
use serde::Deserialize;

use crate::Args;

/// One incident record, as far as the KPIs need it.
#[derive(Debug, Deserialize)]
pub struct Record {
    /// Its id.
    pub incident_id: String,
    /// Its environment.
    #[serde(default)]
    pub environment: String,
    /// Recovery minus detection, when recovered.
    #[serde(default)]
    pub mttr_seconds: Option<u64>,
    /// When it was detected (RFC 3339).
    #[serde(default)]
    pub detection_time: Option<String>,
}

/// What the incident records add up to.
#[derive(Debug, Default, PartialEq)]
pub struct Mttr {
    /// Incidents in the window.
    pub incidents: usize,
    /// Of those, recovered (with an MTTR).
    pub recovered: usize,
    /// Average MTTR of the recovered ones.
    pub avg: Option<f64>,
    /// Largest MTTR.
    pub max: Option<u64>,
}

/// Adds up the records of `environment` (records that are not JSON are counted as skipped). An
/// incident has several records (`in-progress`, then how its rollback ended, perhaps `resolved`
/// later): the newest one counts.
pub fn mttr(messages: &[String], environment: &str) -> (Mttr, usize) {
    let mut m = Mttr::default();
    let mut skipped = 0;
    let mut total = 0u64;
    let mut newest: Vec<Record> = Vec::new();
    for msg in messages {
        let Ok(r) = serde_json::from_str::<Record>(msg) else {
            skipped += 1;
            continue;
        };
        if r.environment != environment {
            continue;
        }
        match newest.iter_mut().find(|n| n.incident_id == r.incident_id) {
            Some(slot) => *slot = r,
            None => newest.push(r),
        }
    }
    m.incidents = newest.len();
    for s in newest.iter().filter_map(|r| r.mttr_seconds) {
        m.recovered += 1;
        // A record claiming an absurd MTTR (u64::MAX) must not overflow the sum.
        total = total.saturating_add(s);
        m.max = Some(m.max.map_or(s, |x| x.max(s)));
    }
    if m.recovered > 0 {
        m.avg = Some(total as f64 / m.recovered as f64);
    }
    (m, skipped)
}

/// Builds the KPI report.
pub async fn report(args: &Args, window: Duration, r: &Resolved) -> anyhow::Result<Report> {
    let started = Instant::now();
    let environment = r
        .environment
        .clone()
        .ok_or_else(|| exit::usage("--kpi needs an environment: pass --environment NAME"))?;
    let namespace = args.metric.namespace(&r.config);
    let log_group = r
        .config
        .incident_log_group(args.incident_log_group.as_ref());
    let uptime_target = args.uptime_target.or(r.config.kpi.uptime_target);
    let mttr_target = first(args.mttr_target, r.config.kpi.mttr_target);
    let region = r.region();
    let sdk = deploy_core::aws::sdk_config(&args.aws, region).await?;
    let cw = deploy_core::aws::cloudwatch(&sdk);
    let label = humantime::format_duration(window).to_string();
    let mut report = Report::new(
        "health-check",
        env!("CARGO_PKG_VERSION"),
        format!("{environment} KPIs, last {label}"),
    );

    let (healthy, total, points) =
        deploy_core::cloudwatch::availability_stats(&cw, &namespace, &environment, window).await?;
    let uptime = (total > 0.0).then(|| healthy / total * 100.0);
    report.push(uptime_check(
        &label,
        healthy,
        total,
        uptime_target,
        &namespace,
    ));
    report.output(
        "uptime-percent",
        uptime.map(|u| format!("{u:.3}")).unwrap_or_default(),
    );
    report.output("total-checks", total);
    report.output("healthy-checks", healthy);

    let mut incident_days = std::collections::BTreeMap::new();
    match &log_group {
        Some(group) => {
            let logs = deploy_core::logs::client(&sdk);
            let since = SystemTime::now().checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
            let messages = deploy_core::logs::read_events(
                &logs,
                group,
                deploy_core::logs::INCIDENT_STREAM,
                since,
                10_000,
            )
            .await?;
            let (m, skipped) = mttr(&messages, &environment);
            incident_days = days_of_incidents(&messages, &environment);
            report.push(mttr_check(&label, &m, skipped, mttr_target, group));
            report.output("incidents", m.incidents);
            report.output("mttr-avg-seconds", m.avg.map(|a| format!("{a:.0}")).unwrap_or_default());
            report.output("mttr-max-seconds", m.max.map(|x| x.to_string()).unwrap_or_default());
        }
        None => report.push(
            Check::new(format!("MTTR (last {label})"), Status::Skipped)
                .reason("no incident log group: pass --incident-log-group or set rollback.incident_log_group"),
        ),
    }
    if !points.is_empty() {
        report
            .charts
            .push(chart(&label, &points, &incident_days, uptime_target));
    }
    report.finish(started.elapsed());
    Ok(report)
}

/// `YYYY-MM-DD` of a Unix time (UTC).
fn day(secs: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs.max(0).unsigned_abs());
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_owned()
}

/// The incidents of `environment` by the day they were detected (the newest record of each).
fn days_of_incidents(
    messages: &[String],
    environment: &str,
) -> std::collections::BTreeMap<String, usize> {
    let mut newest: std::collections::BTreeMap<String, Record> = std::collections::BTreeMap::new();
    for r in messages
        .iter()
        .filter_map(|m| serde_json::from_str::<Record>(m).ok())
    {
        if r.environment == environment {
            newest.insert(r.incident_id.clone(), r);
        }
    }
    let mut days = std::collections::BTreeMap::new();
    for r in newest.values() {
        if let Some(d) = r.detection_time.as_deref().and_then(|t| t.get(..10)) {
            *days.entry(d.to_owned()).or_insert(0) += 1;
        }
    }
    days
}

/// Availability per day over the window as bars, the uptime target as a line, and each day
/// with incidents marked in its label (`12-03 (1 incident)`).
fn chart(
    label: &str,
    points: &[(i64, f64, f64)],
    incidents: &std::collections::BTreeMap<String, usize>,
    target: Option<f64>,
) -> String {
    let mut by_day: std::collections::BTreeMap<String, (f64, f64)> =
        std::collections::BTreeMap::new();
    for &(t, sum, count) in points {
        let e = by_day.entry(day(t)).or_insert((0.0, 0.0));
        e.0 += sum;
        e.1 += count;
    }
    let (mut xs, mut vs) = (Vec::new(), Vec::new());
    for (d, (sum, count)) in &by_day {
        let short = d.get(5..).unwrap_or(d);
        xs.push(match incidents.get(d) {
            Some(1) => format!("{short} (1 incident)"),
            Some(n) => format!("{short} ({n} incidents)"),
            None => short.to_owned(),
        });
        vs.push(if *count > 0.0 {
            sum / count * 100.0
        } else {
            0.0
        });
    }
    let lowest = vs.iter().copied().chain(target).fold(100.0_f64, f64::min);
    let lo = (lowest - 1.0).floor().max(0.0);
    deploy_core::render::mermaid::bars_with_target(
        &format!("Availability per day, last {label} (target as a line)"),
        &xs,
        &vs,
        (lo, 100.0),
        target,
    )
}

/// The runbook's uptime, `AVG(Availability) * 100` = healthy / total checks, against `target`.
fn uptime_check(
    label: &str,
    healthy: f64,
    total: f64,
    target: Option<f64>,
    namespace: &str,
) -> Check {
    let uptime = (total > 0.0).then(|| healthy / total * 100.0);
    let name = format!("Uptime (last {label})");
    let Some(u) = uptime else {
        let status = if target.is_some() {
            Status::Failed
        } else {
            Status::Skipped
        };
        return Check::new(name, status).reason(format!(
            "no {namespace}/Availability data in the window: run health-check --emit-metric after each check"
        ));
    };
    let figures = format!("{u:.3} % ({healthy} of {total} checks healthy)");
    let c = match target {
        Some(t) if u < t => {
            Check::new(name, Status::Failed).reason(format!("{figures}, below the target of {t} %"))
        }
        Some(t) => Check::new(name, Status::Passed).reason(format!("{figures}, target {t} %")),
        None => Check::new(name, Status::Passed).reason(figures),
    };
    c.detail("uptime-percent", format!("{u:.3}"))
        .detail("total checks", total.to_string())
        .detail("healthy checks", healthy.to_string())
}

fn mttr_check(
    label: &str,
    m: &Mttr,
    skipped: usize,
    target: Option<Duration>,
    group: &str,
) -> Check {
    let name = format!("MTTR (last {label})");
    let mut c = match (m.avg, target) {
        (None, _) => Check::new(name, Status::Passed).reason(format!(
            "{} incidents, none with a recovery time",
            m.incidents
        )),
        (Some(avg), Some(t)) if avg > t.as_secs_f64() => {
            Check::new(name, Status::Failed).reason(format!(
                "average {avg:.0} s over {} recovered incidents, above the target of {}",
                m.recovered,
                humantime::format_duration(t)
            ))
        }
        (Some(avg), t) => Check::new(name, Status::Passed).reason(format!(
            "average {avg:.0} s, max {} s over {} recovered incidents{}",
            m.max.unwrap_or(0),
            m.recovered,
            t.map(|t| format!(", target {}", humantime::format_duration(t)))
                .unwrap_or_default()
        )),
    };
    c = c
        .detail("incidents", m.incidents.to_string())
        .detail("source", format!("{group} stream incidents"));
    if skipped > 0 {
        c = c.detail(
            "skipped",
            format!("{skipped} events that are not incident records"),
        );
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mttr_adds_up_recovered_incidents_of_the_environment() {
        let msgs = vec![
            r#"{"incident_id":"a","environment":"staging","mttr_seconds":630}"#.to_owned(),
            r#"{"incident_id":"b","environment":"staging","mttr_seconds":90}"#.to_owned(),
            r#"{"incident_id":"c","environment":"staging","mttr_seconds":null}"#.to_owned(),
            r#"{"incident_id":"d","environment":"production","mttr_seconds":5}"#.to_owned(),
            r#"{"incident_id":"a","environment":"staging","mttr_seconds":630}"#.to_owned(),
            "not json".to_owned(),
        ];
        let (m, skipped) = mttr(&msgs, "staging");
        assert_eq!(
            m,
            Mttr {
                incidents: 3,
                recovered: 2,
                avg: Some(360.0),
                max: Some(630)
            }
        );
        assert_eq!(skipped, 1);
    }

    #[test]
    fn the_newest_record_of_an_incident_counts() {
        let msgs = vec![
            r#"{"incident_id":"e","environment":"staging","outcome":"in-progress","mttr_seconds":null}"#.to_owned(),
            r#"{"incident_id":"e","environment":"staging","outcome":"failed","mttr_seconds":null}"#.to_owned(),
        ];
        assert_eq!(mttr(&msgs, "staging").0.recovered, 0);
        let mut resolved = msgs.clone();
        resolved.push(r#"{"incident_id":"e","environment":"staging","outcome":"resolved","mttr_seconds":300}"#.to_owned());
        let (m, _) = mttr(&resolved, "staging");
        assert_eq!((m.incidents, m.recovered, m.max), (1, 1, Some(300)));
    }
}
