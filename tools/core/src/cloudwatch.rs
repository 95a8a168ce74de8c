//! CloudWatch gates and the Availability KPI: alarms in ALARM among configured names or a
//! prefix (runbook 5.3), the ALB `HTTPCode_Target_5XX_Count` sum over a window (runbook 5.1), and
//! the `Availability` metric (runbook 7).

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit, StateValue, Statistic};

use crate::aws::error;

/// An alarm that is firing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    /// Alarm name.
    pub name: String,
    /// CloudWatch's state reason.
    pub reason: String,
}

/// Alarms in ALARM among `names` and those starting with `prefix`.
pub async fn firing_alarms(
    client: &Client,
    names: &[String],
    prefix: Option<&str>,
) -> anyhow::Result<Vec<Firing>> {
    let mut out: Vec<Firing> = Vec::new();
    let mut push = |alarms: &[aws_sdk_cloudwatch::types::MetricAlarm]| {
        // moto ignores the StateValue filter when AlarmNamePrefix is given: filter here too.
        for a in alarms
            .iter()
            .filter(|a| a.state_value() == Some(&StateValue::Alarm))
        {
            let name = a.alarm_name().unwrap_or_default().to_owned();
            if !out.iter().any(|f| f.name == name) {
                out.push(Firing {
                    name,
                    reason: a.state_reason().unwrap_or_default().to_owned(),
                });
            }
        }
    };
    for chunk in names.chunks(100) {
        let resp = client
            .describe_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            .state_value(StateValue::Alarm)
            .send()
            .await
            .map_err(|e| error("couldn't describe CloudWatch alarms", &e))?;
        push(resp.metric_alarms());
    }
    if let Some(prefix) = prefix {
        let mut token = None;
        loop {
            let resp = client
                .describe_alarms()
                .alarm_name_prefix(prefix)
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
            push(resp.metric_alarms());
            token = resp.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
    }
    Ok(out)
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
        .period(60)
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

/// Puts `Availability` (1 healthy, 0 not) with dimension `Environment` into `namespace`.
pub async fn put_availability(
    client: &Client,
    namespace: &str,
    environment: &str,
    healthy: bool,
) -> anyhow::Result<()> {
    let value = if healthy { 1.0 } else { 0.0 };
    put_metric(
        client,
        namespace,
        "Availability",
        environment,
        value,
        StandardUnit::None,
    )
    .await
}

/// Puts one datum of `metric` with dimension `Environment` into `namespace`, stamped now.
pub async fn put_metric(
    client: &Client,
    namespace: &str,
    metric: &str,
    environment: &str,
    value: f64,
    unit: StandardUnit,
) -> anyhow::Result<()> {
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
