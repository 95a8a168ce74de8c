//! Renderers of a [`Report`](crate::report::Report): the terminal, JSON, the Markdown job summary
//! and JUnit XML. Every renderer redacts registered secrets from what it writes.

pub mod human;
pub mod junit;
pub mod markdown;
pub mod mermaid;

use crate::report::Report;

/// The report as pretty JSON (redacted), newline-terminated.
pub fn json(report: &Report) -> String {
    // Redact every string before serialising: a secret with quotes or backslashes would be
    // escaped in the JSON text and slip past a redaction of the text.
    fn scrub(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => *s = crate::secret::redact(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(scrub),
            serde_json::Value::Object(o) => o.values_mut().for_each(scrub),
            _ => {}
        }
    }
    let text = serde_json::to_value(report)
        .map(|mut v| {
            scrub(&mut v);
            v
        })
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|e| format!("{{\"error\":\"could not serialise report: {e}\"}}"));
    format!("{text}\n")
}

/// Milliseconds as a short human duration: `850 ms`, `1.2 s`, `3 m 05 s`.
pub fn short_duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} m {:02} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(short_duration(850), "850 ms");
        assert_eq!(short_duration(1234), "1.2 s");
        assert_eq!(short_duration(185_000), "3 m 05 s");
    }
}
