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

/// The secrets registered, and every piece of them longest first (worked out once, when a secret
/// is registered, not on every line redacted).
#[derive(Default)]
struct Registry {
    secrets: Vec<String>,
    pieces: Vec<String>,
}

fn registry() -> &'static Mutex<Registry> {
    static REG: OnceLock<Mutex<Registry>> = OnceLock::new();
    REG.get_or_init(Default::default)
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
/// trimmed, when at least [`MIN_REDACT_LEN`] long; and each piece as it reads once escaped the
/// ways an error or report may print it: Rust's `{:?}` and JSON (`\"`, `\\`), and percent-encoded
/// as a URL's query, path or form value (`%20`, `+`), so that a value quoted or put in a URL by the
/// code that shows it is scrubbed too.
pub fn pieces(secret: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |p: &str| {
        if p.len() >= MIN_REDACT_LEN && !out.iter().any(|o| o == p) {
            out.push(p.to_owned());
        }
    };
    for piece in std::iter::once(secret.trim()).chain(secret.lines().map(str::trim)) {
        add(piece);
        for escaped in escaped_forms(piece) {
            add(&escaped);
        }
    }
    out
}

/// `piece` as `{:?}`, JSON and URL encodings write it (without the quotes around it).
fn escaped_forms(piece: &str) -> Vec<String> {
    let unquote = |q: String| {
        q.strip_prefix('"')
            .and_then(|q| q.strip_suffix('"'))
            .map(str::to_owned)
            .unwrap_or(q)
    };
    let mut forms = vec![unquote(format!("{piece:?}"))];
    if let Ok(j) = serde_json::to_string(piece) {
        forms.push(unquote(j));
    }
    if let Ok(mut u) = reqwest::Url::parse("http://h/") {
        u.set_query(Some(piece));
        forms.extend(u.query().map(str::to_owned));
        u.set_query(None);
        u.query_pairs_mut().append_pair("k", piece);
        forms.extend(
            u.query()
                .and_then(|q| q.strip_prefix("k="))
                .map(str::to_owned),
        );
        u.set_query(None);
        u.set_path(piece);
        forms.push(u.path().trim_start_matches('/').to_owned());
    }
    // As an HTML error page echoes it.
    let html = piece
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    forms.push(html.replace('\'', "&#39;"));
    forms.push(html.replace('\'', "&#x27;"));
    forms.extend(base64_forms(piece.as_bytes()));
    forms.retain(|f| f != piece);
    forms
}

/// `bytes` as base64 (standard and URL-safe alphabets) wherever it may sit in an encoded text:
/// for each of the three alignments, the characters that only its bytes decide (a secret base64'd
/// inside `user:token`, or alone, with or without padding).
fn base64_forms(bytes: &[u8]) -> Vec<String> {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let encode = |data: &[u8]| -> String {
        let mut out = String::new();
        for c in data.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            let chars = [18, 12, 6, 0].map(|s| STD[(n >> s & 63) as usize] as char);
            out.extend(&chars[..c.len() + 1]);
        }
        out
    };
    let mut forms = Vec::new();
    for k in 0..3usize {
        let mut data = vec![0u8; k];
        data.extend_from_slice(bytes);
        let enc = encode(&data);
        // Characters that mix in the prefix (the first group when k > 0) or whatever follows
        // (a last group that is not whole) are not the secret's alone.
        let start = if k == 0 { 0 } else { 4 };
        let end = if data.len() % 3 == 0 {
            enc.len()
        } else {
            enc.len().saturating_sub(enc.len() % 4)
        };
        // A short core would be a few letters that also turn up in unrelated text (a digest).
        if end >= start + 12 {
            let core = &enc[start..end];
            forms.push(core.to_owned());
            forms.push(core.replace('+', "-").replace('/', "_"));
        }
    }
    forms
}

/// Registers the credentials a URL-like string carries (`scheme://user:password@host`), so that
/// wherever it is shown (an error, a log line, a summary) they are scrubbed: the password, or
/// the user name when there is no password and it is as long as a token (`https://<token>@host`;
/// a short name such as `git` is an identity, not a secret). A plain string does nothing.
pub fn register_url_credentials(s: &str) {
    if let Ok(u) = reqwest::Url::parse(s) {
        if let Some(p) = u.password() {
            register_decoded(p);
        }
        // `https://<token>@host` and `https://<token>:x-oauth-basic@host`: the token is the user.
        if u.username().len() >= TOKEN_AS_USER_LEN {
            register_decoded(u.username());
        }
        return;
    }
    // Not a URL the parser takes (a password with `/` or `#` in it): everything between the
    // scheme and the last `@` is the user information.
    if let (Some(at), Some(start)) = (s.rfind('@'), s.find("://")) {
        let info = &s[start + 3..at.max(start + 3)];
        let password = info.split_once(':').map_or(info, |(_, p)| p);
        register(password);
    }
}

/// A user name without a password at least this long is taken for a token.
const TOKEN_AS_USER_LEN: usize = 12;

/// Registers a URL component as given and percent-decoded.
fn register_decoded(component: &str) {
    register(component);
    if let Ok(d) = percent_decode(component) {
        register(&d);
    }
}

/// `%XX` sequences decoded (UTF-8); an error for a malformed one.
fn percent_decode(s: &str) -> Result<String, ()> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

/// Whether `bytes` hold any registered secret (or one of its [`pieces`]): a request body that
/// must not follow a redirect to another origin.
pub fn contains_secret(bytes: &[u8]) -> bool {
    let reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    reg.pieces
        .iter()
        .any(|p| !p.is_empty() && bytes.windows(p.len()).any(|w| w == p.as_bytes()))
}

/// Remembers a secret so [`redact`] removes it from text and the Actions module masks it.
pub fn register(value: &str) {
    if value.trim().is_empty() {
        return;
    }
    let added = {
        let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
        if reg.secrets.iter().any(|v| v == value) {
            false
        } else {
            reg.secrets.push(value.to_owned());
            for p in pieces(value) {
                if !reg.pieces.contains(&p) {
                    reg.pieces.push(p);
                }
            }
            // Longest first, so a piece that contains another is replaced whole.
            reg.pieces.sort_by_key(|v| std::cmp::Reverse(v.len()));
            true
        }
    };
    if added && let Some(f) = &*hook().lock().unwrap_or_else(|p| p.into_inner()) {
        f(value);
    }
}

/// Every secret registered so far (for `::add-mask::`).
pub fn registered() -> Vec<String> {
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .secrets
        .clone()
}

/// Replaces every registered secret (each of its lines, and their escaped forms: [`pieces`]) in
/// `text` with `***`.
pub fn redact(text: &str) -> String {
    let reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    let mut out = text.to_owned();
    for piece in &reg.pieces {
        if out.contains(piece.as_str()) {
            out = out.replace(piece.as_str(), "***");
        }
    }
    // A server may echo a value in other case (a header upper-cased): pieces of 8 characters
    // or more are also matched without regard to ASCII case (byte offsets stay the same).
    let long = || reg.pieces.iter().filter(|p| p.len() >= CASELESS_LEN);
    if long().next().is_none() {
        return out;
    }
    let mut lower = out.to_ascii_lowercase();
    for piece in long() {
        let needle = piece.to_ascii_lowercase();
        while let Some(at) = lower.find(&needle) {
            out.replace_range(at..at + needle.len(), "***");
            lower.replace_range(at..at + needle.len(), "***");
        }
    }
    out
}

/// Pieces this long are also redacted whatever their ASCII case.
const CASELESS_LEN: usize = 8;

/// Whether `excerpt` (a few characters cut out of a text: a parser's "found ..." snippet) holds
/// part of a registered secret, at least `MIN_REDACT_LEN + 2` characters of one: an excerpt cut
/// through a secret shows a piece that [`redact`] does not know as a whole.
pub fn holds_part_of_a_secret(excerpt: &str) -> bool {
    let window = MIN_REDACT_LEN + 2;
    let chars: Vec<char> = excerpt.chars().collect();
    if chars.len() < window {
        return false;
    }
    let reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    chars.windows(window).any(|w| {
        let w: String = w.iter().collect();
        reg.pieces.iter().any(|p| p.contains(&w))
    })
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
    fn escaped_and_encoded_forms_are_scrubbed() {
        let v = "tok\"QUOTED\\ sp#ce";
        register(v);
        let debug = format!("got {v:?}");
        let json = serde_json::to_string(v).unwrap();
        let mut u = reqwest::Url::parse("http://h/p").unwrap();
        u.query_pairs_mut().append_pair("key", v);
        let mut q = reqwest::Url::parse("http://h/p").unwrap();
        q.set_query(Some(&format!("key={v}")));
        for shown in [debug, json, u.to_string(), q.to_string()] {
            let r = redact(&shown);
            assert!(!r.contains("QUOTED"), "{shown} -> {r}");
        }
    }

    #[test]
    fn url_credentials_are_registered_even_when_the_url_does_not_parse() {
        register_url_credentials("http://deploy:pw-first-9a8b@127.0.0.1:1/r.git");
        register_url_credentials("https://deploy:pw-second/x#y@h.example/");
        register_url_credentials("https://ghp_tokenasuser0001@github.com/o/r");
        register_url_credentials("https://ghp_tokenuser0002:x-oauth-basic@github.com/o/r");
        let text = "pw-first-9a8b pw-second/x#y ghp_tokenasuser0001 ghp_tokenuser0002";
        assert_eq!(redact(text), "*** *** *** ***");
        assert!(contains_secret(b"{\"password\": \"pw-first-9a8b\"}"));
        assert!(!contains_secret(b"nothing here"));
    }

    #[test]
    fn html_base64_and_other_case_echoes_are_scrubbed() {
        let v = "can&ary\"<h>-sec1-x";
        register(v);
        for echoed in [
            "can&amp;ary&quot;&lt;h&gt;-sec1-x".to_owned(),
            "CAN&ARY\"<H>-SEC1-X".to_owned(),
        ] {
            assert!(
                !redact(&echoed).contains("sec1"),
                "{echoed} -> {}",
                redact(&echoed)
            );
        }
        register("token-b64-secret-77");
        // Alone, and inside `user:token` as Basic auth encodes it (another alignment).
        for plain in [
            "token-b64-secret-77",
            "AWS:token-b64-secret-77",
            "ab:token-b64-secret-77",
        ] {
            let enc = super::base64_forms(plain.as_bytes())[0].clone();
            let shown = redact(&format!("Authorization: Basic {enc}"));
            assert!(shown.len() < 40, "{plain}: {shown}");
        }
        assert!(holds_part_of_a_secret("found \"b64-secret-\""));
        assert!(!holds_part_of_a_secret("found \"end of input\""));
    }

    #[test]
    fn short_values_are_not_scrubbed_from_text() {
        register("ab");
        assert_eq!(redact("a b ab"), "a b ab");
    }
}
