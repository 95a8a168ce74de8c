//! All GitHub Actions runner I/O in one place: step outputs (random heredoc delimiters), the job
//! summary (capped), workflow commands (annotations within the runner's per-step limits,
//! `::add-mask::`, `::group::`). Outside Actions every call is a no-op, so the same run works in a
//! terminal. Everything writes to `impl Write` so tests use buffers.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::PathBuf;

use crate::secret;

/// The runner shows at most this many annotations of one level per step; past it we summarise.
pub const MAX_ANNOTATIONS_PER_LEVEL: usize = 10;
/// The runner refuses a step summary over 1 MiB; we keep ours below it.
pub const MAX_SUMMARY_BYTES: usize = 1024 * 1024;

pub use crate::report::Level;

/// Where an annotation points.
#[derive(Debug, Clone, Default)]
pub struct Location {
    /// Repository-relative file path.
    pub file: Option<String>,
    /// 1-based line.
    pub line: Option<u32>,
    /// Short title shown above the message.
    pub title: Option<String>,
}

/// The runner's files and the command stream. Build it with [`Actions::from_env`] in binaries and
/// [`Actions::with_writer`] in tests.
pub struct Actions<W: Write> {
    enabled: bool,
    commands: W,
    output_file: Option<PathBuf>,
    summary_file: Option<PathBuf>,
    annotations: [usize; 3],
    suppressed: [usize; 3],
}

impl Actions<io::Stderr> {
    /// Reads `GITHUB_ACTIONS`, `GITHUB_OUTPUT` and `GITHUB_STEP_SUMMARY`. Commands go to stderr,
    /// which the runner reads for workflow commands as it reads stdout, so stdout carries only
    /// the `--format json` report.
    pub fn from_env() -> Self {
        let enabled = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
        let file = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Actions {
            enabled,
            commands: io::stderr(),
            output_file: file("GITHUB_OUTPUT"),
            summary_file: file("GITHUB_STEP_SUMMARY"),
            annotations: [0; 3],
            suppressed: [0; 3],
        }
    }
}

impl<W: Write> Actions<W> {
    /// An explicit instance: `enabled` as if `GITHUB_ACTIONS=true`.
    pub fn with_writer(
        enabled: bool,
        commands: W,
        output_file: Option<PathBuf>,
        summary_file: Option<PathBuf>,
    ) -> Self {
        Actions {
            enabled,
            commands,
            output_file,
            summary_file,
            annotations: [0; 3],
            suppressed: [0; 3],
        }
    }

    /// Whether we run inside GitHub Actions.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The command stream (for tests).
    pub fn into_writer(self) -> W {
        self.commands
    }

    /// Sets a step output. Any value (multi-line included) is safe: it is written as a heredoc
    /// whose delimiter is random and checked not to occur in the value. Secrets are redacted.
    pub fn set_output(&mut self, name: &str, value: &str) -> io::Result<()> {
        let Some(path) = &self.output_file else {
            return Ok(());
        };
        if name.is_empty() || name.contains(['\n', '\r', '=']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid output name {name:?}"),
            ));
        }
        let value = secret::redact(value);
        let delimiter = loop {
            let d = format!(
                "ghadelimiter_{:016x}{:016x}",
                fastrand::u64(..),
                fastrand::u64(..)
            );
            if !value.contains(&d) {
                break d;
            }
        };
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| named("GITHUB_OUTPUT", path, e))?;
        write!(f, "{name}<<{delimiter}\n{value}\n{delimiter}\n")
            .map_err(|e| named("GITHUB_OUTPUT", path, e))?;
        Ok(())
    }

    /// Appends Markdown to the job summary, keeping the file under [`MAX_SUMMARY_BYTES`]: what
    /// does not fit is cut at a line boundary and a note says so.
    pub fn append_summary(&mut self, markdown: &str) -> io::Result<()> {
        let Some(path) = &self.summary_file else {
            return Ok(());
        };
        let existing = std::fs::metadata(path)
            .map(|m| m.len() as usize)
            .unwrap_or(0);
        let markdown = secret::redact(markdown);
        const NOTE: &str = "\n\n> Summary truncated: it would exceed GitHub's 1 MiB limit. The full report is in the JSON output.\n";
        let room = MAX_SUMMARY_BYTES.saturating_sub(existing);
        let text = if markdown.len() < room {
            format!("{markdown}\n")
        } else if room > NOTE.len() {
            let budget = room - NOTE.len();
            let mut cut = budget.min(markdown.len());
            while !markdown.is_char_boundary(cut) {
                cut -= 1;
            }
            let head = &markdown[..cut];
            let head = head.rfind('\n').map_or(head, |i| &head[..i]);
            format!("{head}{NOTE}")
        } else {
            tracing::warn!("job summary is full; not appending");
            return Ok(());
        };
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| named("GITHUB_STEP_SUMMARY", path, e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| named("GITHUB_STEP_SUMMARY", path, e))
    }

    /// Tells the runner to mask a value (each line separately, as the runner matches per line).
    /// Pieces shorter than [`secret::MIN_REDACT_LEN`] are not masked (they would hide every `1`
    /// or `ok` of the log), nor those the mask hook already wrote to stderr.
    pub fn add_mask(&mut self, value: &str) -> io::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        for piece in mask_pieces(value) {
            if !already_masked(&piece) {
                writeln!(self.commands, "::add-mask::{}", escape_data(&piece))?;
            }
        }
        Ok(())
    }

    /// Masks every secret registered so far. Call before printing anything else.
    pub fn mask_registered(&mut self) -> io::Result<()> {
        for s in secret::registered() {
            self.add_mask(&s)?;
        }
        Ok(())
    }

    /// Emits an annotation, or counts it as suppressed when the step already has the runner's
    /// maximum of that level; [`Actions::flush_suppressed`] then reports how many were left out.
    pub fn annotate(&mut self, level: Level, message: &str, at: &Location) -> io::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let i = level as usize;
        if self.annotations[i] >= MAX_ANNOTATIONS_PER_LEVEL {
            self.suppressed[i] += 1;
            return Ok(());
        }
        self.annotations[i] += 1;
        let mut props = Vec::new();
        if let Some(file) = &at.file {
            props.push(format!("file={}", escape_property(file)));
        }
        if let Some(line) = at.line {
            props.push(format!("line={line}"));
        }
        if let Some(title) = &at.title {
            props.push(format!("title={}", escape_property(&secret::redact(title))));
        }
        let props = if props.is_empty() {
            String::new()
        } else {
            format!(" {}", props.join(","))
        };
        writeln!(
            self.commands,
            "::{}{}::{}",
            level.command(),
            props,
            escape_data(&secret::redact(message))
        )
    }

    /// How many annotations of each level were suppressed (error, warning, notice).
    pub fn suppressed(&self) -> (usize, usize, usize) {
        (self.suppressed[0], self.suppressed[1], self.suppressed[2])
    }

    /// Emits one notice saying how many annotations were left out, if any were.
    pub fn flush_suppressed(&mut self) -> io::Result<()> {
        let (e, w, n) = self.suppressed();
        if self.enabled && e + w + n > 0 {
            writeln!(
                self.commands,
                "::notice title=More findings::{}",
                escape_data(&format!(
                    "{e} more errors, {w} more warnings and {n} more notices are in the job summary (the runner shows {MAX_ANNOTATIONS_PER_LEVEL} of each per step)"
                ))
            )?;
        }
        Ok(())
    }

    /// Opens a collapsible log group.
    pub fn group(&mut self, title: &str) -> io::Result<()> {
        if self.enabled {
            writeln!(
                self.commands,
                "::group::{}",
                escape_data(&secret::redact(title))
            )?;
        }
        Ok(())
    }

    /// Closes the log group.
    pub fn endgroup(&mut self) -> io::Result<()> {
        if self.enabled {
            writeln!(self.commands, "::endgroup::")?;
        }
        Ok(())
    }
}

/// An I/O error on a file the runner named in `var`, saying which.
fn named(var: &str, path: &std::path::Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{var} ({}): {e}", path.display()))
}

/// The lines of a secret the runner is told to mask.
fn mask_pieces(value: &str) -> Vec<String> {
    secret::pieces(value)
        .into_iter()
        .filter(|p| !p.contains(['\n', '\r']))
        .collect()
}

fn stderr_masked() -> &'static std::sync::Mutex<std::collections::HashSet<String>> {
    static SET: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> =
        std::sync::OnceLock::new();
    SET.get_or_init(Default::default)
}

fn already_masked(piece: &str) -> bool {
    stderr_masked()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(piece)
}

/// Inside Actions (`GITHUB_ACTIONS=true`), writes `::add-mask::` to stderr for every secret the
/// moment it is registered (and at once for those registered before), so the mask comes before
/// any line that could carry the value, whatever logs first. Binaries call it first thing.
pub fn install_mask_hook() {
    if !std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
        return;
    }
    secret::on_register(|value| {
        let mut set = stderr_masked().lock().unwrap_or_else(|p| p.into_inner());
        let mut err = io::stderr().lock();
        for piece in mask_pieces(value) {
            if set.insert(piece.clone()) {
                let _ = writeln!(err, "::add-mask::{}", escape_data(&piece));
            }
        }
    });
}

/// Escapes a workflow command's message (the runner's `escapeData`).
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value (the runner's `escapeProperty`).
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(dir: &std::path::Path) -> Actions<Vec<u8>> {
        Actions::with_writer(
            true,
            Vec::new(),
            Some(dir.join("output")),
            Some(dir.join("summary")),
        )
    }

    /// Parses a GITHUB_OUTPUT file the way the runner does.
    fn parse_outputs(text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let (name, delim) = line.split_once("<<").expect("heredoc form");
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.push((name.to_owned(), value.join("\n")));
        }
        out
    }

    #[test]
    fn multi_line_output_round_trips_even_with_delimiter_like_text() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = actions(dir.path());
        let value = "line 1\nEOF\nghadelimiter_\n%0A and = signs";
        a.set_output("report", value).unwrap();
        a.set_output("count", "3").unwrap();
        let text = std::fs::read_to_string(dir.path().join("output")).unwrap();
        let parsed = parse_outputs(&text);
        assert_eq!(parsed[0], ("report".to_owned(), value.to_owned()));
        assert_eq!(parsed[1], ("count".to_owned(), "3".to_owned()));
    }

    #[test]
    fn two_writes_use_different_delimiters() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = actions(dir.path());
        a.set_output("a", "x").unwrap();
        a.set_output("b", "y").unwrap();
        let text = std::fs::read_to_string(dir.path().join("output")).unwrap();
        let delims: Vec<_> = text
            .lines()
            .filter_map(|l| l.split_once("<<").map(|(_, d)| d.to_owned()))
            .collect();
        assert_eq!(delims.len(), 2);
        assert_ne!(delims[0], delims[1]);
    }

    #[test]
    fn output_names_with_newlines_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = actions(dir.path());
        assert!(a.set_output("a\nb", "x").is_err());
    }

    #[test]
    fn outputs_are_redacted() {
        crate::secret::register("s3cr3t-output-token");
        let dir = tempfile::tempdir().unwrap();
        let mut a = actions(dir.path());
        a.set_output("msg", "token is s3cr3t-output-token").unwrap();
        let text = std::fs::read_to_string(dir.path().join("output")).unwrap();
        assert!(!text.contains("s3cr3t-output-token"));
        assert!(text.contains("token is ***"));
    }

    #[test]
    fn annotations_are_escaped_and_capped_per_level() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = actions(dir.path());
        let at = Location {
            file: Some("src/a,b:c.rs".into()),
            line: Some(3),
            title: None,
        };
        for i in 0..13 {
            a.annotate(Level::Error, &format!("conflict {i}\n100%"), &at)
                .unwrap();
        }
        a.annotate(Level::Warning, "w", &Location::default())
            .unwrap();
        a.flush_suppressed().unwrap();
        assert_eq!(a.suppressed(), (3, 0, 0));
        let text = String::from_utf8(a.into_writer()).unwrap();
        assert_eq!(text.matches("::error ").count(), 10);
        assert!(text.contains("::error file=src/a%2Cb%3Ac.rs,line=3::conflict 0%0A100%25\n"));
        assert!(text.contains("::warning::w\n"));
        assert!(text.contains("3 more errors"));
    }

    #[test]
    fn masks_each_line_and_groups() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = actions(dir.path());
        a.add_mask("abcd-1\ndefg-2").unwrap();
        // Too short to mask usefully: left alone (README says so).
        a.add_mask("ab").unwrap();
        a.group("push").unwrap();
        a.endgroup().unwrap();
        let text = String::from_utf8(a.into_writer()).unwrap();
        // Each line masked (and the value's escaped forms, e.g. `abcd-1\ndefg-2` as `{:?}`
        // writes it), never the short one, and every mask before the group.
        let masks: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("::add-mask::"))
            .collect();
        assert!(
            masks.contains(&"abcd-1") && masks.contains(&"defg-2"),
            "{text}"
        );
        assert!(masks.contains(&"abcd-1\\ndefg-2"), "{text}");
        assert!(!masks.contains(&"ab"), "{text}");
        assert!(text.ends_with("::group::push\n::endgroup::\n"), "{text}");
    }

    #[test]
    fn summary_stays_under_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = actions(dir.path());
        let line = "| check | passed |\n";
        let big = line.repeat(MAX_SUMMARY_BYTES / line.len() + 100);
        a.append_summary("# first\n").unwrap();
        a.append_summary(&big).unwrap();
        let text = std::fs::read_to_string(dir.path().join("summary")).unwrap();
        assert!(text.len() <= MAX_SUMMARY_BYTES, "{}", text.len());
        assert!(text.starts_with("# first\n"));
        assert!(text.contains("Summary truncated"));
    }

    #[test]
    fn outside_actions_nothing_is_written() {
        let mut a = Actions::with_writer(false, Vec::new(), None, None);
        a.add_mask("x").unwrap();
        a.annotate(Level::Error, "e", &Location::default()).unwrap();
        a.set_output("a", "b").unwrap();
        a.append_summary("s").unwrap();
        assert!(a.into_writer().is_empty());
    }
}
