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

/// Values shorter than this are not redacted from free text: masking `1` or `ok` everywhere would
/// garble every report. (They are still never printed through [`Secret`].)
const MIN_REDACT_LEN: usize = 4;

fn registry() -> &'static Mutex<Vec<String>> {
    static REG: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(Vec::new()))
}

/// Remembers a secret so [`redact`] removes it from text and the Actions module masks it.
pub fn register(value: &str) {
    if value.trim().is_empty() {
        return;
    }
    let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    if !reg.iter().any(|v| v == value) {
        reg.push(value.to_owned());
        // Longest first, so a secret that contains another is replaced whole.
        reg.sort_by_key(|v| std::cmp::Reverse(v.len()));
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
    for secret in reg.iter() {
        for piece in std::iter::once(secret.as_str()).chain(secret.lines()) {
            let piece = piece.trim();
            if piece.len() >= MIN_REDACT_LEN && out.contains(piece) {
                out = out.replace(piece, "***");
            }
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
