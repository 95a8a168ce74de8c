//! CloudWatch gates and the Availability KPI: alarms in ALARM among configured names or a
//! prefix (runbook 5.3), the ALB `HTTPCode_Target_5XX_Count` sum over a window (runbook 5.1), and
//! the `Availability` metric (runbook 7).

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    AlarmType, Dimension, MetricDatum, StandardUnit, StateValue, Statistic,
};

use crate::aws::error;

/// An alarm that fails the gate: in ALARM, or named in the config but not found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    /// Alarm name.
    pub name: String,
    /// CloudWatch's state reason, or why it counts.
    pub reason: String,
    /// False when no alarm of this name exists: a gate on a missing alarm must not pass.
    pub exists: bool,
}

/// Alarms that fail the gate: metric and composite alarms in ALARM among `names` and those
/// starting with `prefix`, and every name in `names` that matches no alarm at all (a typo or
/// another region would otherwise pass silently).
pub async fn firing_alarms(
    client: &Client,
    names: &[String],
    prefix: Option<&str>,
) -> anyhow::Result<Vec<Firing>> {
    let mut found = Found::default();
    for chunk in names.chunks(100) {
        // No state filter: the answer also tells which names exist. DescribeAlarms pages its
        // answer (MaxRecords, 50 unless set) and says so with NextToken: every page is read, or
        // an alarm on a later one would read as missing, or firing unseen.
        let mut token = None;
        loop {
            let resp = client
                .describe_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                .set_alarm_types(Some(ALARM_TYPES.to_vec()))
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| error("couldn't describe CloudWatch alarms", &e))?;
            found.add(&resp);
            token = resp.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
    }
    if let Some(prefix) = prefix {
        firing_with_prefix(client, prefix, &mut found).await?;
    }
    Ok(found.with_missing(names))
}

/// Both kinds of alarm a gate looks at.
const ALARM_TYPES: [AlarmType; 2] = [AlarmType::MetricAlarm, AlarmType::CompositeAlarm];

/// The alarms seen so far, and those of them in ALARM.
#[derive(Default)]
struct Found {
    firing: Vec<Firing>,
    seen: Vec<String>,
}

impl Found {
    /// Adds the metric and composite alarms of one `DescribeAlarms` answer.
    fn add(&mut self, resp: &DescribeAlarmsOutput) {
        let metric = resp
            .metric_alarms()
            .iter()
            .map(|a| (a.alarm_name(), a.state_value(), a.state_reason()));
        let composite = resp
            .composite_alarms()
            .iter()
            .map(|a| (a.alarm_name(), a.state_value(), a.state_reason()));
        for (name, state, reason) in metric.chain(composite) {
            let (name, reason) = (name.unwrap_or_default(), reason.unwrap_or_default());
            self.seen.push(name.to_owned());
            // moto ignores the StateValue filter when AlarmNamePrefix is given: filter here too.
            if state == Some(&StateValue::Alarm) && !self.firing.iter().any(|f| f.name == name) {
                self.firing.push(Firing {
                    name: name.to_owned(),
                    reason: reason.to_owned(),
                    exists: true,
                });
            }
        }
    }

    /// The firing alarms, then each of `names` that no answer had.
    fn with_missing(mut self, names: &[String]) -> Vec<Firing> {
        for n in names {
            if !self.seen.contains(n) && !self.firing.iter().any(|f| &f.name == n) {
                self.firing.push(Firing {
                    name: n.clone(),
                    reason: "no alarm of this name exists (a typo, or another region or account?)"
                        .into(),
                    exists: false,
                });
            }
        }
        self.firing
    }
}

/// Adds the alarms in ALARM whose names start with `prefix`, page by page.
async fn firing_with_prefix(
    client: &Client,
    prefix: &str,
    found: &mut Found,
) -> anyhow::Result<()> {
    let mut token = None;
    loop {
        let resp = client
            .describe_alarms()
            .alarm_name_prefix(prefix)
            .set_alarm_types(Some(ALARM_TYPES.to_vec()))
            .state_value(StateValue::Alarm)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| {
                error(
                    &format!("couldn't describe CloudWatch alarms with prefix {prefix}"),
                    &e,
                )
            })?;
        found.add(&resp);
        token = resp.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(());
        }
    }
}

/// The reason line of a failed alarm gate: which alarms fire, which do not exist.
pub fn gate_reason(failing: &[Firing]) -> String {
    let list = |exists: bool| {
        failing
            .iter()
            .filter(|f| f.exists == exists)
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
    };
    let (firing, missing) = (list(true), list(false));
    let mut parts = Vec::new();
    if !firing.is_empty() {
        parts.push(format!(
            "{} alarm(s) in ALARM: {}",
            firing.len(),
            firing.join(", ")
        ));
    }
    if !missing.is_empty() {
        parts.push(format!(
            "{} alarm(s) not found: {}",
            missing.len(),
            missing.join(", ")
        ));
    }
    parts.join("; ")
}

/// CloudWatch returns at most this many datapoints per GetMetricStatistics call.
const MAX_DATAPOINTS: u64 = 1440;

/// The period (seconds, a multiple of 60) that covers `window` (plus the minute ahead) in at
/// most [`MAX_DATAPOINTS`] datapoints: 60 s up to 23 h, coarser beyond.
pub fn period_for(window: Duration) -> i32 {
    let secs = window.as_secs().saturating_add(60);
    let minutes = secs.div_ceil(60).div_ceil(MAX_DATAPOINTS).max(1);
    i32::try_from(minutes.saturating_mul(60)).unwrap_or(i32::MAX / 60 * 60)
}

/// Sum of the ALB's `HTTPCode_Target_5XX_Count` over the last `window`.
pub async fn alb_5xx_sum(
    client: &Client,
    load_balancer: &str,
    window: Duration,
) -> anyhow::Result<f64> {
    // The end is a minute ahead so the current, partial minute counts (CloudWatch and moto both
    // treat the end as exclusive and compare at second precision).
    let now = SystemTime::now();
    let start = now - window;
    let end = now + Duration::from_secs(60);
    let resp = client
        .get_metric_statistics()
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_Target_5XX_Count")
        .dimensions(
            Dimension::builder()
                .name("LoadBalancer")
                .value(load_balancer)
                .build(),
        )
        .start_time(DateTime::from(start))
        .end_time(DateTime::from(end))
        .period(period_for(window))
        .statistics(Statistic::Sum)
        .send()
        .await
        .map_err(|e| {
            error(
                &format!("couldn't read HTTPCode_Target_5XX_Count of {load_balancer}"),
                &e,
            )
        })?;
    // `+ 0.0` turns the empty sum's -0.0 into 0.
    Ok(resp
        .datapoints()
        .iter()
        .filter_map(|d| d.sum())
        .sum::<f64>()
        + 0.0)
}

/// The `Availability` metric over the last `window`: (sum of the values, number of values), i.e.
/// (healthy checks, total checks), and per datapoint (its time in Unix seconds, sum, count). The
/// period keeps the datapoints under CloudWatch's 1,440 a call.
pub async fn availability_stats(
    client: &Client,
    namespace: &str,
    environment: &str,
    window: Duration,
) -> anyhow::Result<(f64, f64, Vec<(i64, f64, f64)>)> {
    let now = SystemTime::now();
    let start = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
    // The request carries whole seconds: a datum put in this very second would fall after `now`.
    let end = now + Duration::from_secs(60);
    let period = availability_period(window);
    let resp = client
        .get_metric_statistics()
        .namespace(namespace)
        .metric_name("Availability")
        .dimensions(
            Dimension::builder()
                .name("Environment")
                .value(environment)
                .build(),
        )
        .start_time(DateTime::from(start))
        .end_time(DateTime::from(end))
        .period(i32::try_from(period).unwrap_or(i32::MAX))
        .statistics(Statistic::Sum)
        .statistics(Statistic::SampleCount)
        .send()
        .await
        .map_err(|e| error(&format!("couldn't read {namespace}/Availability"), &e))?;
    let (mut sum, mut count) = (0.0, 0.0);
    let mut points = Vec::new();
    for d in resp.datapoints() {
        let (s, c) = (d.sum().unwrap_or(0.0), d.sample_count().unwrap_or(0.0));
        sum += s;
        count += c;
        if let Some(t) = d.timestamp() {
            points.push((t.secs(), s, c));
        }
    }
    points.sort_by_key(|p| p.0);
    Ok((sum, count, points))
}

/// The period of the Availability statistics over `window`: at most 1,440 data points (the most
/// one GetMetricStatistics answer holds), in whole minutes, and for a start more than 15 days
/// (63 days) ago a multiple of 5 minutes (1 hour), or CloudWatch returns no data points for it:
/// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricStatistics.html>
/// (parameter `Period`).
pub fn availability_period(window: Duration) -> u64 {
    let days = window.as_secs() / 86_400;
    let step = match days {
        0..15 => 60,
        15..63 => 300,
        _ => 3600,
    };
    window.as_secs().div_ceil(1440).div_ceil(step).max(1) * step
}

/// Puts `Availability` (1 healthy, 0 not) with dimension `Environment` into `namespace`.
pub async fn put_availability(
    client: &Client,
    namespace: &str,
    environment: &str,
    healthy: bool,
) -> anyhow::Result<()> {
    let value = if healthy { 1.0 } else { 0.0 };
    let metric = Metric {
        namespace,
        name: "Availability",
        environment,
    };
    put_metric(client, metric, value, StandardUnit::None).await
}

/// A metric of an environment: its namespace, its name and the `Environment` dimension.
#[derive(Debug, Clone, Copy)]
pub struct Metric<'a> {
    /// The CloudWatch namespace.
    pub namespace: &'a str,
    /// The metric's name (`Availability`, `MTTR`).
    pub name: &'a str,
    /// The value of the `Environment` dimension.
    pub environment: &'a str,
}

/// Puts one datum of `metric`, stamped now.
pub async fn put_metric(
    client: &Client,
    metric: Metric<'_>,
    value: f64,
    unit: StandardUnit,
) -> anyhow::Result<()> {
    let Metric {
        namespace,
        name: metric,
        environment,
    } = metric;
    client
        .put_metric_data()
        .namespace(namespace)
        .metric_data(
            MetricDatum::builder()
                .metric_name(metric)
                .dimensions(
                    Dimension::builder()
                        .name("Environment")
                        .value(environment)
                        .build(),
                )
                .value(value)
                .unit(unit)
                .timestamp(DateTime::from(SystemTime::now()))
                .build(),
        )
        .send()
        .await
        .map_err(|e| error(&format!("couldn't put {metric} into {namespace}"), &e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_period_follows_cloudwatchs_retention_rules() {
        for days in [1u64, 7, 14, 15, 30, 62, 63, 90, 455] {
            let w = Duration::from_secs(days * 86_400);
            let p = availability_period(w);
            let step = if days < 15 {
                60
            } else if days < 63 {
                300
            } else {
                3600
            };
            assert_eq!(p % step, 0, "{days}d: {p}");
            assert!(w.as_secs().div_ceil(p) <= 1440, "{days}d: {p}");
        }
        assert_eq!(availability_period(Duration::from_secs(30 * 86_400)), 1800);
    }

    #[test]
    fn alb_period_keeps_within_the_datapoint_limit() {
        for mins in [1u64, 5, 60, 23 * 60, 24 * 60, 25 * 60, 3 * 1440, 7 * 1440] {
            let w = Duration::from_secs(mins * 60);
            let p = period_for(w) as u64;
            assert_eq!(p % 60, 0, "{mins}");
            assert!(
                (mins * 60 + 60).div_ceil(p) <= MAX_DATAPOINTS,
                "{mins}: {p}"
            );
        }
        assert_eq!(period_for(Duration::from_secs(300)), 60);
    }

    #[test]
    fn gate_reason_names_firing_and_missing() {
        let f = |n: &str, exists| Firing {
            name: n.into(),
            reason: String::new(),
            exists,
        };
        assert_eq!(
            gate_reason(&[f("a", true), f("typo", false)]),
            "1 alarm(s) in ALARM: a; 1 alarm(s) not found: typo"
        );
    }
}
