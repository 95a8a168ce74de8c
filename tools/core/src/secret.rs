//! Secret values: a newtype that never prints, and a process-wide redactor that scrubs every
//! known secret out of any text before it reaches a log, summary, report or error.

use std::fmt;
use std::sync::{Mutex, OnceLock};

/// A secret string (token, password, bearer header). `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value and registers it with the redactor.
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        register(&value);
        Secret(value)
    }

    /// The value itself: only for the place that sends it (an HTTP header, a login).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(s))
    }
}

/// Values (and lines of values) shorter than this are neither redacted from free text nor masked
/// with `::add-mask::`: masking `1` or `ok` everywhere would garble every report and log. (They
/// are still never printed through [`Secret`].) README says so.
pub const MIN_REDACT_LEN: usize = 4;

fn registry() -> &'static Mutex<Vec<String>> {
    static REG: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(Vec::new()))
}

/// Called with every newly registered secret (the binaries install one that writes
/// `::add-mask::` at once, so the mask precedes any line that could carry the value).
type Hook = Box<dyn Fn(&str) + Send + Sync>;

fn hook() -> &'static Mutex<Option<Hook>> {
    static HOOK: OnceLock<Mutex<Option<Hook>>> = OnceLock::new();
    HOOK.get_or_init(|| Mutex::new(None))
}

/// Installs the function called with each secret as it is registered, and calls it at once with
/// every secret registered before.
pub fn on_register(f: impl Fn(&str) + Send + Sync + 'static) {
    for s in registered() {
        f(&s);
    }
    *hook().lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(f));
}

/// The pieces of a secret that are masked and redacted: the whole value and each of its lines,
/// trimmed, when at least [`MIN_REDACT_LEN`] long.
pub fn pieces(secret: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for piece in std::iter::once(secret.trim()).chain(secret.lines().map(str::trim)) {
        if piece.len() >= MIN_REDACT_LEN && !out.contains(&piece) {
            out.push(piece);
        }
    }
    out
}

/// Remembers a secret so [`redact`] removes it from text and the Actions module masks it.
pub fn register(value: &str) {
    if value.trim().is_empty() {
        return;
    }
    let added = {
        let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
        if reg.iter().any(|v| v == value) {
            false
        } else {
            reg.push(value.to_owned());
            // Longest first, so a secret that contains another is replaced whole.
            reg.sort_by_key(|v| std::cmp::Reverse(v.len()));
            true
        }
    };
    if added && let Some(f) = &*hook().lock().unwrap_or_else(|p| p.into_inner()) {
        f(value);
    }
}

/// Every secret registered so far (for `::add-mask::`).
pub fn registered() -> Vec<String> {
    registry().lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Replaces every registered secret (and each of its lines) in `text` with `***`.
pub fn redact(text: &str) -> String {
    let reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    let mut out = text.to_owned();
    // Every piece of every secret, longest first, so a piece containing another goes whole.
    let mut all: Vec<&str> = reg.iter().flat_map(|s| pieces(s)).collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for piece in all {
        if out.contains(piece) {
            out = out.replace(piece, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret::new("tok-abcdef-123");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(s.expose(), "tok-abcdef-123");
    }

    #[test]
    fn redact_scrubs_registered_values_and_their_lines() {
        register("hunter2-very-secret");
        register("line-one-secret\nline-two-secret");
        let text = "auth failed for hunter2-very-secret; saw line-two-secret";
        assert_eq!(redact(text), "auth failed for ***; saw ***");
    }

    #[test]
    fn short_values_are_not_scrubbed_from_text() {
        register("ab");
        assert_eq!(redact("a b ab"), "a b ab");
    }
}
