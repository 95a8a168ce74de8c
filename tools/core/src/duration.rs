//! Durations from flags and the config: `300s`, `5m`, `1m 30s`, `250ms`. A wait or an interval
//! is at most 7 days; a KPI window (a span of history to read, not a wait) at most 455 days.

use std::time::Duration;

/// Parses a duration flag: `300s`, `5m`, `1m 30s`, `250ms`, at most [`MAX_DURATION`].
pub fn parse(s: &str) -> Result<Duration, String> {
    let d = humantime(s)?;
    if d > MAX_DURATION {
        return Err(format!(
            "{s} is longer than the 7 days any wait here may take"
        ));
    }
    Ok(d)
}

/// Parses a KPI window (`30d`, `7d`, `12h`): a span of recorded history, at most [`MAX_WINDOW`].
pub fn parse_window(s: &str) -> Result<Duration, String> {
    let d = humantime(s)?;
    if d.is_zero() {
        return Err(format!("{s}: a KPI window must be longer than zero"));
    }
    if d > MAX_WINDOW {
        return Err(format!(
            "{s} is longer than the 455 days (15 months) CloudWatch keeps metrics"
        ));
    }
    Ok(d)
}

fn humantime(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 300s, 5m, 250ms, 30d)"))
}

/// The longest duration a wait, an interval or a timeout may take.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 86_400);

/// The longest KPI window: CloudWatch keeps hourly data points for 455 days (15 months), see
/// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#metrics-retention>.
pub const MAX_WINDOW: Duration = Duration::from_secs(455 * 86_400);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runbooks_thirty_day_window_is_a_window_not_a_wait() {
        assert_eq!(parse_window("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse("30d").unwrap_err().contains("7 days"));
        assert!(parse_window("456d").unwrap_err().contains("455 days"));
        assert!(parse_window("0s").unwrap_err().contains("longer than zero"));
        assert!(parse_window("soon").unwrap_err().contains("30d"));
    }
}
