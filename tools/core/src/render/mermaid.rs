//! Pictures for the job summary, as Mermaid, which GitHub renders in Markdown (and so in job
//! summaries): a timeline (`gantt`) of lanes of bars, and a chart (`xychart-beta`) of bars with a
//! target line. Each picture is bounded (lanes, bars, points) so a summary stays far inside the
//! runner's 1 MiB; the text tables beside them stay, for screen readers. Labels are cleaned of
//! what Mermaid reads as syntax (`:`, `;`, `#`, quotes, newlines).

use std::fmt::Write;

/// Lanes at most in a timeline, bars at most in a lane, points at most in a chart.
pub const MAX_LANES: usize = 25;
/// Bars at most per lane (the last ones are kept: they say how it ended).
pub const MAX_BARS: usize = 40;
/// Points at most of a chart (the last ones are kept).
pub const MAX_POINTS: usize = 100;

/// How a bar is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Done (grey): passed, finished.
    Done,
    /// Critical (red): failed.
    Crit,
    /// Active (blue): in progress, or a phase.
    Active,
}

/// One bar: from `start_ms` to `end_ms` since the picture's zero.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Its label.
    pub label: String,
    /// Start, in milliseconds from zero.
    pub start_ms: u64,
    /// End, in milliseconds from zero (a bar shorter than a 50th of the span is widened to it).
    pub end_ms: u64,
    /// How it is drawn.
    pub mark: Mark,
}

/// One lane of a timeline: a check, a service.
#[derive(Debug, Clone)]
pub struct Lane {
    /// The lane's name.
    pub name: String,
    /// Its bars, in time order.
    pub bars: Vec<Bar>,
}

/// Text Mermaid takes as a label: no syntax characters, one line, at most 60 characters.
pub fn label(text: &str) -> String {
    let cleaned: String = crate::secret::redact(text)
        .chars()
        .map(|c| {
            if matches!(
                c,
                ':' | ';' | '#' | '"' | '`' | '\n' | '\r' | '{' | '}' | '<' | '>'
            ) {
                ' '
            } else {
                c
            }
        })
        .collect();
    let one: String = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 60 {
        format!("{}...", one.chars().take(57).collect::<String>())
    } else if one.is_empty() {
        "-".to_owned()
    } else {
        one
    }
}

/// A timeline of `lanes` (at most [`MAX_LANES`], each with its last [`MAX_BARS`] bars).
pub fn gantt(title: &str, lanes: &[Lane]) -> String {
    let span = lanes
        .iter()
        .flat_map(|l| l.bars.iter().map(|b| b.end_ms))
        .max()
        .unwrap_or(0)
        .max(1);
    let min_width = (span / 50).max(1);
    let mut out = String::from("gantt\n");
    let _ = writeln!(out, "    title {}", label(title));
    out.push_str("    dateFormat x\n    axisFormat %M:%S\n");
    for lane in lanes.iter().take(MAX_LANES) {
        let _ = writeln!(out, "    section {}", label(&lane.name));
        let skip = lane.bars.len().saturating_sub(MAX_BARS);
        for b in lane.bars.iter().skip(skip) {
            let mark = match b.mark {
                Mark::Done => "done, ",
                Mark::Crit => "crit, ",
                Mark::Active => "active, ",
            };
            let end = b.end_ms.max(b.start_ms + min_width);
            let _ = writeln!(out, "    {} :{mark}{}, {end}", label(&b.label), b.start_ms);
        }
    }
    out
}

/// A bar chart of `values` over `x` (at most the last [`MAX_POINTS`]), on a `y` axis from `lo`
/// to `hi`, with `target` drawn as a line across it.
pub fn bars_with_target(
    title: &str,
    x: &[String],
    values: &[f64],
    (lo, hi): (f64, f64),
    target: Option<f64>,
) -> String {
    let skip = x.len().saturating_sub(MAX_POINTS);
    let xs: Vec<String> = x
        .iter()
        .skip(skip)
        .map(|s| format!("\"{}\"", label(s)))
        .collect();
    let vs: Vec<String> = values
        .iter()
        .skip(skip)
        .map(|v| format!("{v:.2}"))
        .collect();
    let mut out = String::from("xychart-beta\n");
    let _ = writeln!(out, "    title \"{}\"", label(title));
    let _ = writeln!(out, "    x-axis [{}]", xs.join(", "));
    let _ = writeln!(out, "    y-axis \"percent\" {lo} --> {hi}");
    let _ = writeln!(out, "    bar [{}]", vs.join(", "));
    if let Some(t) = target {
        let line: Vec<String> = vs.iter().map(|_| format!("{t:.2}")).collect();
        let _ = writeln!(out, "    line [{}]", line.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_lose_mermaid_syntax_and_stay_short() {
        assert_eq!(label("status 503: not ready; #1"), "status 503 not ready 1");
        assert_eq!(label(&"x".repeat(100)).chars().count(), 60);
        assert_eq!(label(" \n "), "-");
    }

    #[test]
    fn a_timeline_keeps_the_last_bars_and_widens_the_thin_ones() {
        let lane = Lane {
            name: "Control Center: readiness".into(),
            bars: (0..50)
                .map(|i| Bar {
                    label: if i < 49 { "503".into() } else { "200".into() },
                    start_ms: i * 1000,
                    end_ms: i * 1000 + 5,
                    mark: if i < 49 { Mark::Crit } else { Mark::Done },
                })
                .collect(),
        };
        let g = gantt("Health wait", &[lane]);
        assert!(
            g.starts_with("gantt\n    title Health wait\n    dateFormat x\n"),
            "{g}"
        );
        assert!(g.contains("    section Control Center readiness\n"), "{g}");
        assert_eq!(
            g.matches(" :crit, ").count() + g.matches(" :done, ").count(),
            MAX_BARS
        );
        // span 49,005 ms: a 5 ms bar is widened to 980 ms
        assert!(g.contains("    200 :done, 49000, 49980\n"), "{g}");
    }

    #[test]
    fn a_chart_has_its_bars_and_the_target_line() {
        let c = bars_with_target(
            "Availability",
            &["12-01".into(), "12-02".into()],
            &[100.0, 97.5],
            (90.0, 100.0),
            Some(99.5),
        );
        assert!(c.contains("x-axis [\"12-01\", \"12-02\"]"), "{c}");
        assert!(c.contains("bar [100.00, 97.50]"), "{c}");
        assert!(c.contains("line [99.50, 99.50]"), "{c}");
    }
}
