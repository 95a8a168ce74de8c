//! The check engine, shared by health-check, smoke-test and rollback's verification: one HTTP
//! check is a request plus expectations (status set, latency, headers, jq assertions over the JSON
//! body, the deployed version). [`attempt`] runs it once and says whether it passed, and if not,
//! whether waiting can help (503, connection refused) or not (401, TLS failure), with the
//! server's `Retry-After`. The waiting itself (deadline, cadence, streaks) is the polling engine's,
//! [`crate::retry`], which speaks the same [`Verdict`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::config::{CaptureFrom, CheckSpec, CheckTarget, StatusSet};
use crate::exit;
use crate::http::{Header, HttpClient, HttpError, Response};
use crate::jq::Program;
pub use crate::retry::{Pace, Verdict};

/// The longest one jq assertion may run on one body.
pub const ASSERT_BUDGET: Duration = Duration::from_secs(5);

/// Characters of a body shown in a failure reason.
pub const EXCERPT_CHARS: usize = 160;

/// A compiled assertion.
#[derive(Debug, Clone)]
pub struct Assertion {
    /// The expression as written.
    pub expr: String,
    program: Arc<Program>,
    /// The left side of a top-level comparison (`.ready` of `.ready == true`), to say what it saw.
    lhs: Option<(String, Arc<Program>)>,
}

impl Assertion {
    /// Compiles `expr`.
    pub fn compile(expr: &str) -> Result<Assertion, String> {
        let program = Arc::new(Program::compile(expr)?);
        let lhs = ["==", "!=", ">=", "<=", " > ", " < "]
            .iter()
            .filter_map(|op| expr.find(op).map(|i| expr[..i].trim()))
            .find(|l| !l.is_empty())
            .and_then(|l| {
                Program::compile(l)
                    .ok()
                    .map(|p| (l.to_owned(), Arc::new(p)))
            });
        Ok(Assertion {
            expr: expr.to_owned(),
            program,
            lhs,
        })
    }

    /// `Ok(())` when true; otherwise what failed and what it saw. The expression runs on a
    /// thread of its own with a budget of [`ASSERT_BUDGET`]: one that loops (`[repeat(1)]`) or
    /// grows without end fails the check instead of hanging the tool past its deadline and its
    /// signals (the runaway thread ends with the process).
    pub fn check(&self, body: &Value) -> Result<(), String> {
        let (program, input) = (self.program.clone(), body.clone());
        let verdict = budgeted(move || program.truthy(&input))
            .map_err(|e| format!("assertion `{}` {e}", self.expr))?;
        match verdict {
            Ok(true) => Ok(()),
            Ok(false) => {
                // What it saw, on a budgeted thread too (its big stack, its deadline).
                let (lhs, program, input) = (self.lhs.clone(), self.program.clone(), body.clone());
                let saw = budgeted(move || match &lhs {
                    Some((l, p)) => format!("`{l}` is {}", shown(p.run(&input))),
                    None => format!("it gave {}", shown(program.run(&input))),
                })
                .unwrap_or_else(|e| format!("what it saw {e}"));
                Err(format!("assertion `{}` failed: {saw}", self.expr))
            }
            Err(e) => Err(format!("assertion `{}` failed: {e}", self.expr)),
        }
    }
}

/// Runs `f` (a jq program over a body) on a thread of its own with a budget of
/// [`ASSERT_BUDGET`]; the error says why it did not finish (the runaway thread ends with the
/// process).
fn budgeted<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("jq".into())
        .stack_size(64 * 1024 * 1024)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|_| "could not run: no thread for it".to_owned())?;
    rx.recv_timeout(ASSERT_BUDGET).map_err(|_| {
        format!(
            "did not finish within {}s: an endless loop?",
            ASSERT_BUDGET.as_secs()
        )
    })
}

fn shown(outputs: Result<Vec<Value>, String>) -> String {
    let text = match outputs {
        Ok(v) if v.is_empty() => "empty (no output)".to_owned(),
        Ok(v) => v
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => e,
    };
    let text = crate::secret::redact(&text);
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(80).collect::<String>())
    } else {
        text
    }
}

/// What the tool's waiting policy says about statuses and versions.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Statuses that mean "not yet": retried.
    pub retry_statuses: StatusSet,
    /// Retry 401/403 (normally a wrong token: fatal).
    pub retry_unauthorized: bool,
    /// `(field, sha)`: a body carrying `field` must report `sha` (prefix match either way).
    pub expect_version: Option<(String, String)>,
    /// Request timeout when a check sets none.
    pub request_timeout: Duration,
    /// How close to expiry an https server's certificate may be.
    pub cert: CertPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            retry_statuses: StatusSet::default_retry(),
            retry_unauthorized: false,
            expect_version: None,
            request_timeout: Duration::from_secs(10),
            cert: CertPolicy::default(),
        }
    }
}

/// An https check's certificate: a warning when it expires within `warn_days`, a failed check
/// when within `fail_days` (off unless set). An expired or untrusted one fails the TLS handshake
/// before this is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertPolicy {
    /// Warn when the leaf expires within this many days (`--cert-warn`, default 14; 0: never).
    pub warn_days: u32,
    /// Fail when within this many days (`--cert-fail`; None: never).
    pub fail_days: Option<u32>,
}

impl Default for CertPolicy {
    fn default() -> Self {
        CertPolicy {
            warn_days: 14,
            fail_days: None,
        }
    }
}

/// What a [`CertPolicy`] says of a certificate; each names the host, the subject and the date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertVerdict {
    /// Far enough from expiry.
    Fine,
    /// Within `--cert-warn`: the check passes with this warning.
    Warn(String),
    /// Within `--cert-fail`: the check fails with this reason.
    Fail(String),
}

impl CertPolicy {
    /// What the policy says of `cert`, seen on `url` at `now` (Unix seconds).
    pub fn judge(&self, cert: &crate::x509::CertFacts, url: &str, now: i64) -> CertVerdict {
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "the server".to_owned());
        let left = cert.not_after - now;
        let said = format!(
            "the certificate of {host} (subject {}) expires on {} (in {} days)",
            cert.subject,
            cert.expires_on(),
            cert.days_left(now)
        );
        let within = |days: u32| left < i64::from(days) * 86_400;
        match self.fail_days {
            Some(f) if within(f) => {
                CertVerdict::Fail(format!("{said}: within --cert-fail {f} days"))
            }
            _ if self.warn_days > 0 && within(self.warn_days) => CertVerdict::Warn(format!(
                "{said}: within --cert-warn {} days",
                self.warn_days
            )),
            _ => CertVerdict::Fine,
        }
    }
}

/// A check ready to run: URL resolved, headers and body in hand, assertions compiled.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The check as configured.
    pub spec: CheckSpec,
    /// The full URL.
    pub url: String,
    headers: Vec<Header>,
    body: Option<Vec<u8>>,
    assertions: Vec<Assertion>,
    /// The jq program of each capture of `spec.captures` that reads the body, compiled once.
    capture_programs: Vec<Option<Arc<Program>>>,
}

/// Joins a check's path to `base_url`, or returns its full URL.
pub fn resolve_url(spec: &CheckSpec, base_url: Option<&str>) -> Result<String, String> {
    match &spec.target {
        CheckTarget::Url(u) => Ok(u.0.expose().to_owned()),
        CheckTarget::Path(p) => base_url
            .map(|b| format!("{}{p}", b.trim_end_matches('/')))
            .ok_or_else(|| {
                format!(
                    "check {:?} has a path but there is no base URL: pass --base-url or set the environment's base_url",
                    spec.name
                )
            }),
    }
}

/// Resolves URLs and compiles assertions; any problem is a usage error naming the check.
pub fn prepare(specs: &[CheckSpec], base_url: Option<&str>) -> anyhow::Result<Vec<Prepared>> {
    // A compiled program carries the whole jq standard library: compile each distinct expression
    // once (a suite repeats the same few assertions across many checks).
    let mut compiled: std::collections::HashMap<&str, Assertion> = std::collections::HashMap::new();
    specs
        .iter()
        .map(|spec| {
            let url = resolve_url(spec, base_url).map_err(exit::usage)?;
            let assertions = spec
                .assert
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    if let Some(done) = compiled.get(a.as_str()) {
                        return Ok(done.clone());
                    }
                    let done = Assertion::compile(a).map_err(|e| {
                        exit::usage(format!("check {:?}: assert[{i}]: {e}", spec.name))
                    })?;
                    compiled.insert(a.as_str(), done.clone());
                    Ok(done)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let capture_programs = spec
                .captures
                .iter()
                .map(|c| match &c.from {
                    CaptureFrom::Jq(e) => {
                        Program::compile(e).map(|p| Some(Arc::new(p))).map_err(|e| {
                            exit::usage(format!("check {:?}: capture {:?}: {e}", spec.name, c.name))
                        })
                    }
                    _ => Ok(None),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok(Prepared {
                capture_programs,
                url,
                headers: spec
                    .headers
                    .iter()
                    // A value read from the environment stays secret on the wire: sensitive, and
                    // never sent across a redirect to another origin.
                    .map(|(k, v)| {
                        if v.is_secret() {
                            Header::secret(k.clone(), v.expose())
                        } else {
                            Header::new(k.clone(), v.expose())
                        }
                    })
                    .collect(),
                body: spec.body.as_ref().map(|b| b.expose().as_bytes().to_vec()),
                assertions,
                spec: spec.clone(),
            })
        })
        .collect()
}

/// One attempt's result.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The verdict.
    pub verdict: Verdict,
    /// The HTTP status, when there was a response.
    pub status: Option<u16>,
    /// Time to the complete response.
    pub latency: Duration,
    /// Facts for the report: each MCP server's status, the version seen.
    pub details: Vec<(String, String)>,
    /// The version field's value, when the body carried it.
    pub version: Option<String>,
    /// What held but wants attention (a certificate close to expiry).
    pub warnings: Vec<String>,
    /// The values the check captured (smoke-test), when it passed.
    pub captured: Vec<(String, String)>,
}

impl Attempt {
    /// An attempt with no HTTP response behind it (a request that failed, an AWS probe).
    pub fn without_response(verdict: Verdict) -> Attempt {
        Attempt {
            verdict,
            status: None,
            latency: Duration::ZERO,
            details: Vec::new(),
            version: None,
            warnings: Vec::new(),
            captured: Vec::new(),
        }
    }
}

/// The report line of a check after `attempts` attempts taking `took`, ending with `last`.
pub fn report_check(
    name: &str,
    attempts: u32,
    took: Duration,
    last: Option<&Attempt>,
) -> crate::Check {
    use crate::report::{Check, Status};
    let Some(last) = last else {
        return Check::new(name, Status::Skipped)
            .reason("not run")
            .attempts(attempts);
    };
    let mut c = match &last.verdict {
        Verdict::Pass => Check::new(name, Status::Passed).reason(match last.status {
            Some(s) => format!("status {s}"),
            None => "passed".to_owned(),
        }),
        Verdict::Retry { reason, .. } | Verdict::Fatal { reason } => {
            Check::new(name, Status::Failed).reason(reason.clone())
        }
    }
    .attempts(attempts)
    .took(took);
    if last.status.is_some() {
        c = c.latency(last.latency);
    }
    for (k, v) in &last.details {
        c = c.detail(k.clone(), v.clone());
    }
    for w in &last.warnings {
        c = c.warning(w.clone());
    }
    c
}

/// Looks up a dotted path (`commitSha`, `build.sha`) in a JSON value.
pub fn field<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .try_fold(v, |cur, key| cur.get(key))
}

/// Whether two commit ids name the same commit: equal, or one a prefix (7+ chars) of the other.
pub fn same_commit(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim().to_ascii_lowercase(), b.trim().to_ascii_lowercase());
    a == b || (a.len().min(b.len()) >= 7 && (a.starts_with(&b) || b.starts_with(&a)))
}

fn http_verdict(e: &HttpError) -> Verdict {
    let reason = e.to_string();
    match e {
        HttpError::Invalid { .. }
        | HttpError::Tls { .. }
        | HttpError::BodyTooLarge { .. }
        | HttpError::Redirects { .. } => Verdict::Fatal { reason },
        // Nothing listens (yet), or the host is unreachable: polling faster will not help.
        HttpError::Connect { .. } => Verdict::Retry {
            reason,
            pace: Pace::BackOff,
        },
        HttpError::Dns { .. } | HttpError::Timeout { .. } | HttpError::Io { .. } => {
            Verdict::retry(reason)
        }
    }
}

/// The pace after a retried status: the server's `Retry-After` when it sent one; a 429 without
/// one backs off (it sheds load); any other status (a 503 "not ready yet") keeps the cadence.
fn status_pace(code: u16, retry_after: Option<&str>) -> Pace {
    match retry_after.and_then(crate::retry::parse_retry_after) {
        Some(d) => Pace::After(d),
        None if code == 429 => Pace::BackOff,
        None => Pace::Steady,
    }
}

/// Runs a prepared check once. `timeout_cap` bounds the request (the time left to a deadline).
pub async fn attempt(
    client: &HttpClient,
    check: &Prepared,
    policy: &Policy,
    timeout_cap: Option<Duration>,
) -> Attempt {
    let mut timeout = check.spec.timeout.unwrap_or(policy.request_timeout);
    if let Some(cap) = timeout_cap {
        timeout = timeout.min(cap.max(Duration::from_millis(100)));
    }
    let sent = client
        .send(
            &check.spec.method,
            &check.url,
            &check.headers,
            check.body.clone(),
            Some(timeout),
        )
        .await;
    match sent {
        Err(e) => Attempt::without_response(http_verdict(&e)),
        Ok(resp) => judge(check, policy, &resp),
    }
}

/// Judges a response against a check's expectations.
pub fn judge(check: &Prepared, policy: &Policy, resp: &Response) -> Attempt {
    let mut out = Attempt {
        verdict: Verdict::Pass,
        status: Some(resp.status),
        latency: resp.latency,
        details: Vec::new(),
        version: None,
        warnings: Vec::new(),
        captured: Vec::new(),
    };
    let json = resp.json().ok();
    if let Some(servers) = json
        .as_ref()
        .and_then(|j| j.get("servers"))
        .and_then(Value::as_object)
    {
        for (name, v) in servers {
            let st = v
                .get("status")
                .and_then(Value::as_str)
                .or_else(|| v.as_str())
                .unwrap_or("unknown");
            out.details.push((name.clone(), st.to_owned()));
        }
    }
    if let (Some((field_name, _)), Some(j)) = (&policy.expect_version, &json) {
        out.version = field(j, field_name).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    }
    out.verdict = verdict(check, policy, resp, json.as_ref(), out.version.as_deref());
    if out.verdict.passed() && !check.spec.captures.is_empty() {
        match capture_all(check, resp, json.as_ref()) {
            Ok(values) => out.captured = values,
            Err(reason) => out.verdict = Verdict::Fatal { reason },
        }
    }
    if let Some(cert) = &resp.certificate {
        out.details.push((
            "certificate".into(),
            format!("{}, expires {}", cert.subject, cert.expires_on()),
        ));
        match policy.cert.judge(cert, &resp.url, unix_now()) {
            // A failure of its own does not hide behind the certificate's.
            CertVerdict::Fail(reason) if out.verdict.passed() => {
                out.verdict = Verdict::Fatal { reason }
            }
            CertVerdict::Fail(w) | CertVerdict::Warn(w) => out.warnings.push(w),
            CertVerdict::Fine => {}
        }
    }
    out
}

/// Every capture of a check from its response; the first that finds nothing is the error, by name.
/// A secret one is registered at once (masked, scrubbed).
fn capture_all(
    check: &Prepared,
    resp: &Response,
    json: Option<&Value>,
) -> Result<Vec<(String, String)>, String> {
    check
        .spec
        .captures
        .iter()
        .zip(&check.capture_programs)
        .map(|(c, program)| {
            let value = match (&c.from, program) {
                (CaptureFrom::Jq(expr), Some(program)) => {
                    let json =
                        json.ok_or_else(|| format!("capture `{}`: the body is not JSON", c.name))?;
                    let (program, input) = (program.clone(), json.clone());
                    let first = budgeted(move || program.run(&input))
                        .and_then(|r| r)
                        .map_err(|e| format!("capture `{}` (`{expr}`) {e}", c.name))?
                        .into_iter()
                        .next();
                    match first {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s)) => Some(s),
                        Some(other) => Some(other.to_string()),
                    }
                }
                (CaptureFrom::Header(h), _) => resp.header(h).map(str::to_owned),
                (CaptureFrom::Cookie(name), _) => cookie(resp, name),
                // prepare compiles every jq capture
                (CaptureFrom::Jq(_), None) => None,
            }
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("capture `{}` ({}) found nothing", c.name, source(&c.from)))?;
            if c.secret {
                crate::secret::register(&value);
            }
            Ok((c.name.clone(), value))
        })
        .collect()
}

/// Where a capture looks, for its error.
fn source(from: &CaptureFrom) -> String {
    match from {
        CaptureFrom::Jq(e) => format!("jq `{e}` over the body"),
        CaptureFrom::Header(h) => format!("header {h}"),
        CaptureFrom::Cookie(c) => format!("cookie {c}"),
    }
}

/// The value of cookie `name` that the response sets (`Set-Cookie: name=value; ...`).
fn cookie(resp: &Response, name: &str) -> Option<String> {
    resp.headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let pair = v.split(';').next()?;
            let (k, val) = pair.split_once('=')?;
            (k.trim() == name).then(|| val.trim().trim_matches('"').to_owned())
        })
}

/// The capture names `text` refers to as `{{name}}`, in order.
pub fn references(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(j) if crate::config::valid_capture_name(&after[..j]) => {
                out.push(&after[..j]);
                rest = &after[j + 2..];
            }
            _ => rest = after,
        }
    }
    out
}

/// `text` with each `{{name}}` of `values` replaced; and whether a secret value went in.
pub fn fill(text: &str, values: &Captured) -> (String, bool) {
    let mut out = text.to_owned();
    let mut secret = false;
    for name in references(text) {
        if let Some((v, s)) = values.get(name) {
            out = out.replace(&format!("{{{{{name}}}}}"), v);
            secret |= *s;
        }
    }
    (out, secret)
}

/// Values captured so far: name to (value, secret).
pub type Captured = std::collections::BTreeMap<String, (String, bool)>;

impl Prepared {
    /// The capture names this check uses in its URL, headers and body.
    pub fn uses(&self) -> Vec<String> {
        let mut names: Vec<String> = std::iter::once(self.url.as_str())
            .chain(self.headers.iter().map(|h| h.value.as_str()))
            .flat_map(references)
            .map(str::to_owned)
            .collect();
        if let Some(b) = &self.body {
            names.extend(
                references(&String::from_utf8_lossy(b))
                    .into_iter()
                    .map(str::to_owned),
            );
        }
        names.sort();
        names.dedup();
        names
    }

    /// This check with every `{{name}}` filled in from `values`: a header that took a secret
    /// value is secret itself (sensitive, never sent to another origin).
    pub fn with_captured(&self, values: &Captured) -> Prepared {
        let mut p = self.clone();
        p.url = fill(&self.url, values).0;
        p.headers = self
            .headers
            .iter()
            .map(|h| match fill(&h.value, values) {
                (v, true) => Header::secret(h.name.clone(), v),
                (v, false) if h.is_secret() => Header::secret(h.name.clone(), v),
                (v, false) => Header::new(h.name.clone(), v),
            })
            .collect();
        p.body = self
            .body
            .as_ref()
            .map(|b| fill(&String::from_utf8_lossy(b), values).0.into_bytes());
        p
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn verdict(
    check: &Prepared,
    policy: &Policy,
    resp: &Response,
    json: Option<&Value>,
    version: Option<&str>,
) -> Verdict {
    let excerpt = || resp.excerpt(EXCERPT_CHARS);
    let code = resp.status;
    if !check.spec.status.accepts(code) {
        let reason = format!(
            "status {code}, expected {}; body: {}",
            statuses(&check.spec.status),
            excerpt()
        );
        if policy.retry_statuses.accepts(code) {
            return Verdict::Retry {
                reason,
                pace: status_pace(code, resp.header("retry-after")),
            };
        }
        if matches!(code, 401 | 403) {
            let reason = format!("{reason} (check the credentials)");
            return if policy.retry_unauthorized {
                Verdict::retry(reason)
            } else {
                Verdict::Fatal { reason }
            };
        }
        return Verdict::Fatal { reason };
    }
    if let Some(max) = check.spec.max_latency.filter(|m| resp.latency > *m) {
        return Verdict::retry(format!(
            "took {} ms, more than the allowed {} ms",
            resp.latency.as_millis(),
            max.as_millis()
        ));
    }
    for (name, want) in &check.spec.expect_headers {
        match resp.header(name) {
            None => {
                return Verdict::retry(format!("header {name} is missing"));
            }
            Some(got) if !got.contains(want.as_str()) => {
                return Verdict::retry(format!(
                    "header {name} is {got:?}, expected it to contain {want:?}"
                ));
            }
            Some(_) => {}
        }
    }
    if !check.assertions.is_empty() {
        let Some(body) = json else {
            return Verdict::retry(format!("body is not JSON: {}", excerpt()));
        };
        for a in &check.assertions {
            if let Err(reason) = a.check(body) {
                if reason.contains("did not finish within") {
                    // It would not finish next time either: stop, do not start another.
                    return Verdict::Fatal { reason };
                }
                return Verdict::retry(format!("{reason}; body: {}", excerpt()));
            }
        }
    }
    if let Some((field_name, want)) = &policy.expect_version
        && let Some(got) = version
        && !same_commit(got, want)
    {
        return Verdict::retry(format!(
            "{field_name} is {got}, expected {want}: traffic still reaches tasks of another version"
        ));
    }

    Verdict::Pass
}

/// A status set as people write it: `200`, `2xx`, `200-204`.
pub fn statuses(s: &StatusSet) -> String {
    s.0.iter()
        .map(|(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else if lo % 100 == 0 && hi - lo == 99 {
                format!("{}xx", lo / 100)
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    #[test]
    fn an_endless_assertion_fails_within_its_budget() {
        let a = Assertion::compile("last(repeat(1)) > 0").unwrap();
        let start = std::time::Instant::now();
        let e = a.check(&serde_json::json!({})).unwrap_err();
        assert!(e.contains("did not finish within 5s"), "{e}");
        assert!(start.elapsed() < ASSERT_BUDGET + Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use reqwest::header::HeaderMap;

    fn prepared(toml: &str) -> Prepared {
        let cfg = Config::parse_with(toml, "t.toml", |_| None).unwrap();
        prepare(&cfg.smoke.checks, Some("http://x"))
            .unwrap()
            .remove(0)
    }

    fn resp(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
            latency: Duration::from_millis(5),
            url: "http://x/".into(),
            certificate: None,
        }
    }

    #[test]
    fn captures_read_jq_header_and_cookie_and_fill_later_checks() {
        let toml = "[[smoke.checks]]\nname = \"login\"\npath = \"/login\"\n\
            capture = { token = { jq = \".token\", secret = true }, rid = { header = \"X-Request-Id\" }, csrf = { cookie = \"csrf\" } }\n";
        let p = prepared(toml);
        let mut r = resp(200, r#"{"token":"tok-cap-1234"}"#);
        r.headers.insert("x-request-id", "req-77".parse().unwrap());
        r.headers.append(
            reqwest::header::SET_COOKIE,
            "other=1; Path=/".parse().unwrap(),
        );
        r.headers.append(
            reqwest::header::SET_COOKIE,
            "csrf=c-9; HttpOnly".parse().unwrap(),
        );
        let a = judge(&p, &Policy::default(), &r);
        assert!(a.verdict.passed(), "{:?}", a.verdict);
        let got: std::collections::BTreeMap<_, _> = a.captured.iter().cloned().collect();
        assert_eq!(got["token"], "tok-cap-1234");
        assert_eq!(got["rid"], "req-77");
        assert_eq!(got["csrf"], "c-9");
        assert_eq!(
            crate::secret::redact("tok-cap-1234"),
            "***",
            "a secret capture is masked"
        );
        // A later check: its header takes the secret value and is secret itself.
        let later = prepared(
            "[[smoke.checks]]\nname = \"api\"\npath = \"/api/{{rid}}\"\nheaders = { X-Session = \"{{token}}\" }\nbody = \"csrf={{csrf}}\"\n",
        );
        assert_eq!(later.uses(), ["csrf", "rid", "token"]);
        let mut values = Captured::new();
        values.insert("token".into(), ("tok-cap-1234".into(), true));
        values.insert("rid".into(), ("req-77".into(), false));
        values.insert("csrf".into(), ("c-9".into(), false));
        let filled = later.with_captured(&values);
        assert!(filled.url.ends_with("/api/req-77"), "{}", filled.url);
        assert_eq!(filled.headers[0].value, "tok-cap-1234");
        assert!(filled.headers[0].is_secret());
        assert_eq!(filled.body.as_deref(), Some(&b"csrf=c-9"[..]));
        // Nothing there: the check fails by the first capture's name (in name order).
        let a = judge(&p, &Policy::default(), &resp(200, "{}"));
        assert_eq!(
            a.verdict.reason(),
            Some("capture `csrf` (cookie csrf) found nothing")
        );
    }

    #[test]
    fn a_certificate_near_expiry_warns_and_within_cert_fail_fails() {
        let p = prepared("[[smoke.checks]]\nname = \"h\"\npath = \"/\"\n");
        let now = unix_now();
        let mut r = resp(200, "{}");
        r.url = "https://svc.example:8443/".into();
        r.certificate = Some(crate::x509::CertFacts {
            subject: "svc.example".into(),
            not_after: now + 5 * 86_400 + 60,
        });
        let a = judge(&p, &Policy::default(), &r);
        assert!(a.verdict.passed());
        assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
        let w = &a.warnings[0];
        assert!(
            w.contains("svc.example (subject svc.example)") && w.contains("in 5 days"),
            "{w}"
        );
        let strict = Policy {
            cert: CertPolicy {
                warn_days: 14,
                fail_days: Some(7),
            },
            ..Policy::default()
        };
        let reason = judge(&p, &strict, &r).verdict.reason().unwrap().to_owned();
        assert!(reason.contains("within --cert-fail 7 days"), "{reason}");
        let relaxed = Policy {
            cert: CertPolicy {
                warn_days: 3,
                fail_days: Some(2),
            },
            ..Policy::default()
        };
        let a = judge(&p, &relaxed, &r);
        assert!(a.verdict.passed() && a.warnings.is_empty());
        assert!(a.details.iter().any(|(k, _)| k == "certificate"));
    }

    const READY: &str =
        "[[smoke.checks]]\nname = \"r\"\npath = \"/api/ready\"\nassert = [\".ready == true\"]\n";

    #[test]
    fn passing_assertion() {
        let a = judge(
            &prepared(READY),
            &Policy::default(),
            &resp(200, r#"{"ready":true}"#),
        );
        assert_eq!(a.verdict, Verdict::Pass);
    }

    #[test]
    fn failed_assertion_says_what_it_saw() {
        let a = judge(
            &prepared(READY),
            &Policy::default(),
            &resp(200, r#"{"ready":false}"#),
        );
        let r = a.verdict.reason().unwrap();
        assert!(
            r.starts_with(
                "assertion `.ready == true` failed: `.ready` is false; body: {\"ready\":false}"
            ),
            "{r}"
        );
        assert!(matches!(a.verdict, Verdict::Retry { .. }));
    }

    #[test]
    fn not_json_is_retried_with_an_excerpt() {
        let a = judge(
            &prepared(READY),
            &Policy::default(),
            &resp(200, "<html>maintenance</html>"),
        );
        assert_eq!(
            a.verdict.reason(),
            Some("body is not JSON: <html>maintenance</html>")
        );
    }

    #[test]
    fn statuses_are_retried_or_fatal() {
        let p = prepared(READY);
        let mut r = resp(503, "{}");
        r.headers.insert("retry-after", "3".parse().unwrap());
        assert_eq!(
            judge(&p, &Policy::default(), &r).verdict,
            Verdict::Retry {
                reason: "status 503, expected 2xx; body: {}".into(),
                pace: Pace::After(Duration::from_secs(3))
            }
        );
        assert_eq!(
            judge(&p, &Policy::default(), &resp(503, "{}"))
                .verdict
                .pace(),
            Pace::Steady,
            "a plain 503 is \"not ready yet\": keep the cadence"
        );
        assert_eq!(
            judge(&p, &Policy::default(), &resp(429, "{}"))
                .verdict
                .pace(),
            Pace::BackOff
        );
        assert!(matches!(
            judge(&p, &Policy::default(), &resp(401, "{}")).verdict,
            Verdict::Fatal { .. }
        ));
        let lenient = Policy {
            retry_unauthorized: true,
            ..Policy::default()
        };
        assert!(matches!(
            judge(&p, &lenient, &resp(401, "{}")).verdict,
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            judge(&p, &Policy::default(), &resp(404, "{}")).verdict,
            Verdict::Fatal { .. }
        ));
        let warmup = Policy {
            retry_statuses: StatusSet(vec![(404, 404), (502, 504)]),
            ..Policy::default()
        };
        assert!(matches!(
            judge(&p, &warmup, &resp(404, "{}")).verdict,
            Verdict::Retry { .. }
        ));
    }

    #[test]
    fn mcp_servers_become_details() {
        let p = prepared(
            "[[smoke.checks]]\nname = \"m\"\npath = \"/api/mcp/health\"\nassert = ['.status == \"healthy\"']\n",
        );
        let a = judge(
            &p,
            &Policy::default(),
            &resp(
                200,
                r#"{"status":"degraded","servers":{"mcp-github":{"status":"unhealthy"},"mcp-deploy":"healthy"}}"#,
            ),
        );
        assert_eq!(
            a.details,
            vec![
                ("mcp-deploy".to_owned(), "healthy".to_owned()),
                ("mcp-github".to_owned(), "unhealthy".to_owned())
            ]
        );
        assert!(
            a.verdict
                .reason()
                .unwrap()
                .contains("`.status` is \"degraded\"")
        );
    }

    #[test]
    fn expected_version_must_match() {
        let p = prepared("[[smoke.checks]]\nname = \"h\"\npath = \"/api/health\"\n");
        let policy = Policy {
            expect_version: Some(("commitSha".into(), "22cdb6a".into())),
            ..Policy::default()
        };
        let a = judge(
            &p,
            &policy,
            &resp(
                200,
                r#"{"commitSha":"22cdb6a41c42366ad165a0fb4c96282304f6f7ae"}"#,
            ),
        );
        assert_eq!(a.verdict, Verdict::Pass);
        assert_eq!(
            a.version.as_deref(),
            Some("22cdb6a41c42366ad165a0fb4c96282304f6f7ae")
        );
        let a = judge(&p, &policy, &resp(200, r#"{"commitSha":"0000000aaaa"}"#));
        assert!(
            a.verdict
                .reason()
                .unwrap()
                .contains("traffic still reaches tasks of another version")
        );
    }

    #[test]
    fn headers_and_latency() {
        let p = prepared(
            "[[smoke.checks]]\nname = \"h\"\npath = \"/\"\nmax_latency = \"1ms\"\nexpect_headers = { \"Content-Type\" = \"json\" }\n",
        );
        let a = judge(&p, &Policy::default(), &resp(200, "{}"));
        assert!(
            a.verdict
                .reason()
                .unwrap()
                .contains("took 5 ms, more than the allowed 1 ms")
        );
        let p = prepared(
            "[[smoke.checks]]\nname = \"h\"\npath = \"/\"\nexpect_headers = { \"Content-Type\" = \"json\" }\n",
        );
        let mut r = resp(200, "{}");
        assert_eq!(
            judge(&p, &Policy::default(), &r).verdict.reason(),
            Some("header content-type is missing")
        );
        r.headers
            .insert("content-type", "application/json".parse().unwrap());
        assert_eq!(judge(&p, &Policy::default(), &r).verdict, Verdict::Pass);
    }

    #[test]
    fn bad_assertion_is_a_usage_error_naming_the_check() {
        // Refused when the file is read, so the message has the file, line and key.
        let e = Config::parse_with(
            "[[smoke.checks]]\nname = \"x\"\npath = \"/\"\nassert = [\".a | (\"]\n",
            "t.toml",
            |_| None,
        )
        .unwrap_err();
        let e = anyhow::Error::from(e);
        assert_eq!(exit::classify(&e), exit::Exit::Usage);
        assert!(
            e.to_string().starts_with(
                "t.toml:4:12: smoke.checks[0]: check \"x\": assert[0]: invalid jq expression"
            ),
            "{e}"
        );
    }

    #[test]
    fn commit_prefixes() {
        assert!(same_commit(
            "22CDB6A",
            "22cdb6a41c42366ad165a0fb4c96282304f6f7ae"
        ));
        assert!(!same_commit("22cd", "22cdb6a41c"));
        assert!(!same_commit("22cdb6b", "22cdb6a41c"));
    }

    #[test]
    fn status_sets_read_well() {
        assert_eq!(
            statuses(&StatusSet(vec![(200, 299), (404, 404), (500, 502)])),
            "2xx, 404, 500-502"
        );
    }
}

#[cfg(test)]
mod template_props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(crate::proptests::config(2000))]

        /// `{{name}}` references in any text: no panic, every name valid, and filling with no
        /// values changes nothing.
        #[test]
        fn any_text_has_valid_references_and_empty_fill_is_identity(text in "[a-z{}_ -]{0,60}|\\PC{0,40}") {
            for name in references(&text) {
                prop_assert!(crate::config::valid_capture_name(name), "{name:?}");
            }
            prop_assert_eq!(fill(&text, &Captured::new()), (text.clone(), false));
        }

        /// Every reference to a known name is replaced, and a secret value says so.
        #[test]
        fn fill_replaces_every_reference(pre in "[a-z ]{0,10}", name in "[a-z_][a-z0-9_-]{0,8}", value in "[A-Za-z0-9.]{1,12}", secret in any::<bool>()) {
            let text = format!("{pre}{{{{{name}}}}}/{{{{{name}}}}}");
            let mut values = Captured::new();
            values.insert(name.clone(), (value.clone(), secret));
            let (out, s) = fill(&text, &values);
            prop_assert_eq!(out, format!("{pre}{value}/{value}"));
            prop_assert_eq!(s, secret);
        }

        /// Any Set-Cookie headers: the cookie lookup never panics.
        #[test]
        fn any_set_cookie_is_read_or_not(raw in proptest::collection::vec("[ -~]{0,40}", 0..4), name in "[a-z]{1,5}") {
            let mut headers = reqwest::header::HeaderMap::new();
            for r in &raw {
                if let Ok(v) = reqwest::header::HeaderValue::from_str(r) {
                    headers.append(reqwest::header::SET_COOKIE, v);
                }
            }
            let resp = Response {
                status: 200,
                headers,
                body: Vec::new(),
                latency: Duration::ZERO,
                url: "http://x/".into(),
                certificate: None,
            };
            let _ = cookie(&resp, &name);
        }
    }
}
