//! Durations from flags and the config: `300s`, `5m`, `1m 30s`, `250ms`, at most 7 days.

/// Parses a duration flag: `300s`, `5m`, `1m 30s`, `250ms`.
pub fn parse(s: &str) -> Result<std::time::Duration, String> {
    let d =
        humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 300s, 5m, 250ms)"))?;
    if d > MAX_DURATION {
        return Err(format!(
            "{s} is longer than the 7 days any wait here may take"
        ));
    }
    Ok(d)
}

/// The longest duration a flag or config value may give.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);
