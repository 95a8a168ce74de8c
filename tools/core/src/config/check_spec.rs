//! The HTTP checks of `[health]` and `[smoke]`: [`CheckSpec`] (one check: path or URL, method,
//! headers, body, statuses, jq assertions) and [`StatusSet`] (accepted statuses).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::expand::{Dur, Text, UrlText, expanded, expanded_map, expanded_opt, expanded_vec};

/// Accepted HTTP statuses: codes (`200`), classes (`"2xx"`) or ranges (`"200-204"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(pub Vec<(u16, u16)>);

impl Default for StatusSet {
    fn default() -> Self {
        StatusSet(vec![(200, 299)])
    }
}

impl StatusSet {
    /// Whether `code` is accepted.
    pub fn accepts(&self, code: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&code))
    }

    /// The statuses retried during warm-up unless configured: 408, 429, 502, 503, 504.
    pub fn default_retry() -> Self {
        StatusSet(vec![(408, 408), (429, 429), (502, 504)])
    }

    /// Parses `200`, `"2xx"` or `"200-204"`.
    pub fn parse_one(s: &str) -> Result<(u16, u16), String> {
        let s = s.trim();
        let code = |t: &str| -> Result<u16, String> {
            t.parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| format!("invalid HTTP status {t:?}"))
        };
        if let Some(class) = s.strip_suffix("xx").or_else(|| s.strip_suffix("XX")) {
            let d = code(&format!("{class}00"))?;
            return Ok((d, d + 99));
        }
        if let Some((a, b)) = s.split_once('-') {
            let (a, b) = (code(a)?, code(b)?);
            if a > b {
                return Err(format!("empty status range {s:?}"));
            }
            return Ok((a, b));
        }
        let c = code(s)?;
        Ok((c, c))
    }
}

impl<'de> Deserialize<'de> for StatusSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum One {
            Code(u16),
            Text(String),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Many {
            One(One),
            List(Vec<One>),
        }
        let items = match Many::deserialize(d)? {
            Many::One(o) => vec![o],
            Many::List(v) => v,
        };
        if items.is_empty() {
            return Err(serde::de::Error::custom("status list is empty"));
        }
        items
            .into_iter()
            .map(|o| match o {
                One::Code(c) => StatusSet::parse_one(&c.to_string()),
                One::Text(t) => StatusSet::parse_one(&t),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(StatusSet)
            .map_err(serde::de::Error::custom)
    }
}

/// One HTTP check (health or smoke).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawCheck")]
pub struct CheckSpec {
    /// Name in reports.
    pub name: String,
    /// HTTP method.
    pub method: String,
    /// Path joined to the environment's base URL, or a full URL.
    pub target: CheckTarget,
    /// Request headers (values may be secrets).
    pub headers: BTreeMap<String, Text>,
    /// Request body.
    pub body: Option<Text>,
    /// Accepted statuses.
    pub status: StatusSet,
    /// jq expressions over the JSON body; each must be true.
    pub assert: Vec<String>,
    /// Slowest acceptable response.
    pub max_latency: Option<Duration>,
    /// Per-request timeout.
    pub timeout: Option<Duration>,
    /// Response headers that must be present: name -> text the value must contain (`""`: present).
    pub expect_headers: BTreeMap<String, String>,
    /// smoke-test: how long this check may be retried until it passes (within the suite deadline).
    pub retry_for: Option<Duration>,
    /// smoke-test: values taken from the response for later checks (`{{name}}`), in name order.
    pub captures: Vec<Capture>,
}

/// A value a smoke check takes from its response, for later checks to use as `{{name}}` in their
/// path, URL, headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// The name later checks use.
    pub name: String,
    /// Where it comes from.
    pub from: CaptureFrom,
    /// Masked and scrubbed like a `${VAR}` value.
    pub secret: bool,
}

/// Where a capture reads its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureFrom {
    /// The first output of a jq expression over the JSON body (a string as it is, anything
    /// else as JSON; `null` and no output are nothing).
    Jq(String),
    /// A response header (case-insensitive name).
    Header(String),
    /// A cookie the response sets (`Set-Cookie`), by name.
    Cookie(String),
}

/// `capture = { token = ".token" }` or `{ token = { jq = ".token", secret = true } }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawCapture {
    Jq(String),
    Table(CaptureTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureTable {
    #[serde(default)]
    jq: Option<String>,
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    cookie: Option<String>,
    #[serde(default)]
    secret: bool,
}

/// Whether `name` can be a capture's name (`{{name}}`): letters, digits, `_` and `-`, not
/// starting with a digit.
pub fn valid_capture_name(name: &str) -> bool {
    name.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn capture(check: &str, name: String, raw: RawCapture) -> Result<Capture, String> {
    if !valid_capture_name(&name) {
        return Err(format!(
            "check {check:?}: capture name {name:?} must be letters, digits, '_' or '-'"
        ));
    }
    let (from, secret) = match raw {
        RawCapture::Jq(e) => (CaptureFrom::Jq(e), false),
        RawCapture::Table(t) => {
            let from = match (t.jq, t.header, t.cookie) {
                (Some(e), None, None) => CaptureFrom::Jq(e),
                (None, Some(h), None) => CaptureFrom::Header(h.to_ascii_lowercase()),
                (None, None, Some(c)) => CaptureFrom::Cookie(c),
                _ => {
                    return Err(format!(
                        "check {check:?}: capture {name:?} needs exactly one of jq, header or cookie"
                    ));
                }
            };
            (from, t.secret)
        }
    };
    if let CaptureFrom::Jq(e) = &from {
        valid_assertion(e).map_err(|e| format!("check {check:?}: capture {name:?}: {e}"))?;
    }
    Ok(Capture { name, from, secret })
}

/// Where a check sends its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckTarget {
    /// Joined to the base URL.
    Path(String),
    /// A full URL.
    Url(UrlText),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    #[serde(deserialize_with = "expanded")]
    name: String,
    #[serde(default, deserialize_with = "expanded_opt")]
    method: Option<String>,
    #[serde(default, deserialize_with = "expanded_opt")]
    path: Option<String>,
    url: Option<UrlText>,
    #[serde(default)]
    headers: BTreeMap<String, Text>,
    body: Option<Text>,
    #[serde(default)]
    status: StatusSet,
    #[serde(default, deserialize_with = "expanded_vec")]
    assert: Vec<String>,
    max_latency: Option<Dur>,
    timeout: Option<Dur>,
    #[serde(default, deserialize_with = "expanded_map")]
    expect_headers: BTreeMap<String, String>,
    retry_for: Option<Dur>,
    #[serde(default)]
    capture: BTreeMap<String, RawCapture>,
}

impl TryFrom<RawCheck> for CheckSpec {
    type Error = String;
    fn try_from(r: RawCheck) -> Result<Self, String> {
        let target = match (r.path, r.url) {
            (Some(p), None) => {
                if !p.starts_with('/') {
                    return Err(format!(
                        "check {:?}: path must start with '/', got {p:?}",
                        r.name
                    ));
                }
                CheckTarget::Path(p)
            }
            (None, Some(u)) => CheckTarget::Url(u),
            (Some(_), Some(_)) => {
                return Err(format!(
                    "check {:?}: give either path or url, not both",
                    r.name
                ));
            }
            (None, None) => return Err(format!("check {:?}: needs a path or a url", r.name)),
        };
        let method = r
            .method
            .unwrap_or_else(|| "GET".into())
            .to_ascii_uppercase();
        if !matches!(
            method.as_str(),
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS"
        ) {
            return Err(format!("check {:?}: unsupported method {method:?}", r.name));
        }
        let valid_name = |h: &str| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        };
        for (h, v) in &r.headers {
            if !valid_name(h) {
                return Err(format!("check {:?}: invalid header name {h:?}", r.name));
            }
            // Said here, with the file and line, rather than as a failed request per check; the
            // value itself is not shown (it may be a secret).
            if reqwest::header::HeaderValue::from_str(v.expose()).is_err() {
                return Err(format!(
                    "check {:?}: header {h}: the value is not a valid HTTP header value (a newline, NUL or another control character)",
                    r.name
                ));
            }
        }
        for h in r.expect_headers.keys() {
            if !valid_name(h) {
                return Err(format!(
                    "check {:?}: expect_headers: invalid header name {h:?}",
                    r.name
                ));
            }
        }
        // A bad jq expression is refused here, so the message names the file, line and key.
        for (i, a) in r.assert.iter().enumerate() {
            valid_assertion(a).map_err(|e| format!("check {:?}: assert[{i}]: {e}", r.name))?;
        }
        let captures = r
            .capture
            .into_iter()
            .map(|(name, raw)| capture(&r.name, name, raw))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CheckSpec {
            captures,
            name: r.name,
            method,
            target,
            headers: r.headers,
            body: r.body,
            status: r.status,
            assert: r.assert,
            max_latency: r.max_latency.map(|d| d.0),
            timeout: r.timeout.map(|d| d.0),
            expect_headers: r
                .expect_headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            retry_for: r.retry_for.map(|d| d.0),
        })
    }
}

/// Compiles `expr` once per process to check it (a suite repeats the same few assertions).
fn valid_assertion(expr: &str) -> Result<(), String> {
    thread_local! {
        static VALID: RefCell<std::collections::HashSet<String>> = RefCell::default();
    }
    if VALID.with(|v| v.borrow().contains(expr)) {
        return Ok(());
    }
    crate::jq::Program::compile(expr)?;
    VALID.with(|v| v.borrow_mut().insert(expr.to_owned()));
    Ok(())
}
