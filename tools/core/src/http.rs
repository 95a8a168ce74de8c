//! The HTTP client every tool uses: rustls, connect/read/request timeouts, a cap on body size, a
//! redirect limit, a user agent, and auth headers marked sensitive. Errors say what failed
//! (DNS, connect, TLS, timeout, redirects, body too large) without the secret parts of a request.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::secret::redact;

/// Limits of the client.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Longest silence while reading a response.
    pub read_timeout: Duration,
    /// Whole-request timeout (a request may set a shorter one).
    pub request_timeout: Duration,
    /// Largest response body read; more is an error.
    pub max_body_bytes: usize,
    /// Redirects followed before giving up.
    pub max_redirects: usize,
}

impl HttpOptions {
    /// For health and smoke checks: every request carries its own timeout (the check's `timeout`,
    /// else `--request-timeout`), which is the whole bound; the client adds none shorter, so a
    /// check's `timeout = "25s"` is 25 s, not cut at a client-wide 15 s.
    pub fn for_checks() -> Self {
        HttpOptions {
            read_timeout: Duration::from_secs(24 * 3600),
            request_timeout: Duration::from_secs(24 * 3600),
            ..HttpOptions::default()
        }
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
            max_redirects: 5,
        }
    }
}

/// Why a request failed before a response body was complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The URL could not be built or parsed.
    #[error("invalid request to {url}: {message}")]
    Invalid {
        /// The URL (redacted).
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The host name did not resolve.
    #[error("couldn't resolve host of {url}: {message}")]
    Dns {
        /// The URL (redacted).
        url: String,
        /// The cause, as reqwest and the OS tell it (redacted).
        message: String,
    },
    /// TCP connect failed (refused, unreachable).
    #[error("couldn't connect to {url}: {message}")]
    Connect {
        /// The URL (redacted).
        url: String,
        /// The cause, as reqwest and the OS tell it (redacted).
        message: String,
    },
    /// The TLS handshake or certificate check failed.
    #[error("TLS failure talking to {url}: {message}")]
    Tls {
        /// The URL (redacted).
        url: String,
        /// The cause, as reqwest and the OS tell it (redacted).
        message: String,
    },
    /// Connect, read or request timeout.
    #[error("timed out after {elapsed_ms} ms waiting for {url}")]
    Timeout {
        /// The URL (redacted).
        url: String,
        /// Time since the request (its first hop) began, in milliseconds.
        elapsed_ms: u64,
    },
    /// Redirect limit reached (a loop, usually).
    #[error("too many redirects from {url} (limit {limit})")]
    Redirects {
        /// The URL (redacted).
        url: String,
        /// How many redirects the client follows.
        limit: usize,
    },
    /// The body was larger than the cap.
    #[error("response body of {url} is larger than {limit} bytes")]
    BodyTooLarge {
        /// The URL (redacted).
        url: String,
        /// The cap on a body, in bytes.
        limit: usize,
    },
    /// The connection broke (reset, closed early).
    #[error("connection to {url} failed: {message}")]
    Io {
        /// The URL (redacted).
        url: String,
        /// The cause, as reqwest and the OS tell it (redacted).
        message: String,
    },
}

impl HttpError {
    /// Whether waiting and trying again can help (everything but a bad request or a too-large body).
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            HttpError::Invalid { .. } | HttpError::BodyTooLarge { .. }
        )
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body (at most the cap).
    pub body: Vec<u8>,
    /// Time to the complete body.
    pub latency: Duration,
    /// The final URL after redirects.
    pub url: String,
    /// The server's leaf certificate, on https: its subject and expiry (None on plain http, or
    /// when it could not be read: see [`crate::x509`]).
    pub certificate: Option<crate::x509::CertFacts>,
}

impl Response {
    /// The body as JSON, or why it is not.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("body is not JSON ({e})"))
    }

    /// A short, redacted, single-line excerpt of the body for reports.
    pub fn excerpt(&self, max_chars: usize) -> String {
        // Redacted first, as it came: a secret with two spaces or a tab in it would no longer
        // match once the whitespace is collapsed.
        let text = redact(&String::from_utf8_lossy(&self.body));
        let red: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if red.chars().count() > max_chars {
            let cut: String = red.chars().take(max_chars).collect();
            format!("{}…", cut.trim_end())
        } else {
            red
        }
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The shared client.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    opts: HttpOptions,
}

/// The user agent: `deploy-action/<version> (<tool>)`.
pub fn user_agent(tool: &str) -> String {
    format!("deploy-action/{} ({tool})", env!("CARGO_PKG_VERSION"))
}

/// A request header. A secret one (its value came from `${VAR}`, or its name carries credentials)
/// is marked sensitive and is never sent to another origin than the request's own.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    /// The header name.
    pub name: String,
    /// The value, as sent.
    pub value: String,
    secret: bool,
}

impl Header {
    /// A header; secret when its name carries credentials ([`is_sensitive_header`]).
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Header {
        let name = name.into();
        let secret = is_sensitive_header(&name);
        Header {
            name,
            value: value.into(),
            secret,
        }
    }

    /// A header whose value is secret whatever its name.
    pub fn secret(name: impl Into<String>, value: impl Into<String>) -> Header {
        Header {
            name: name.into(),
            value: value.into(),
            secret: true,
        }
    }

    /// Whether the value is secret.
    pub fn is_secret(&self) -> bool {
        self.secret
    }
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.secret {
            write!(f, "{}: ***", self.name)
        } else {
            write!(f, "{}: {:?}", self.name, self.value)
        }
    }
}

/// Whether a header carries credentials and must be marked sensitive.
pub fn is_sensitive_header(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "x-api-key" | "x-auth-token"
    )
}

impl HttpClient {
    /// Builds a client for `tool` with `opts`.
    pub fn new(tool: &str, opts: HttpOptions) -> Result<Self, HttpError> {
        let inner = reqwest::Client::builder()
            .user_agent(user_agent(tool))
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .timeout(opts.request_timeout)
            // Redirects are followed by `send`, hop by hop, so secret headers stay on their origin.
            .redirect(reqwest::redirect::Policy::none())
            // The server's certificate comes with each response: checks report its expiry.
            .tls_info(true)
            .build()
            .map_err(|e| HttpError::Invalid {
                url: String::new(),
                message: error_chain(&e),
            })?;
        Ok(HttpClient { inner, opts })
    }

    /// The underlying reqwest client, for callers that stream (registry uploads). It follows no
    /// redirects; read its bodies with [`read_capped`].
    pub fn inner(&self) -> &reqwest::Client {
        &self.inner
    }

    /// The options it was built with.
    pub fn options(&self) -> &HttpOptions {
        &self.opts
    }

    /// Sends a request and reads the whole body (up to the cap). Secret headers (and those whose
    /// names carry credentials) are marked sensitive, so they never appear in debug output, and
    /// are sent only to the origin (scheme, host, port) of `url`: redirects are followed here, one
    /// hop at a time, and from the first hop to another origin on no secret header is sent again.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[Header],
        body: Option<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<Response, HttpError> {
        let shown = redact(url);
        let invalid = |message: String| HttpError::Invalid {
            url: shown.clone(),
            message,
        };
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| invalid(format!("invalid method {method:?}")))?;
        let url = crate::urls::validate_url(url).map_err(&invalid)?;
        let headers = HeaderMaps::new(headers).map_err(invalid)?;
        let start = Instant::now();
        let first = Hop { method, url, body };
        let mut resp = self.follow(first, &headers, timeout, start, &shown).await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let final_url = redact(resp.url().as_str());
        let certificate = resp
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|t| t.peer_certificate())
            .and_then(|der| match crate::x509::parse(der) {
                Ok(facts) => Some(facts),
                Err(e) => {
                    tracing::debug!("couldn't read the certificate of {final_url}: {e}");
                    None
                }
            });
        let body = read_capped(&mut resp, self.opts.max_body_bytes, &shown, start).await?;
        Ok(Response {
            status,
            headers,
            body,
            latency: start.elapsed(),
            url: final_url,
            certificate,
        })
    }

    /// Sends `hop` and follows redirects, up to the limit, until a response that is not one.
    async fn follow(
        &self,
        mut hop: Hop,
        headers: &HeaderMaps,
        timeout: Option<Duration>,
        start: Instant,
        shown: &str,
    ) -> Result<reqwest::Response, HttpError> {
        let mut send_secrets = true;
        let mut hops = 0usize;
        loop {
            let hop_url = redact(hop.url.as_str());
            let resp = self
                .send_hop(
                    &hop,
                    headers.for_hop(send_secrets),
                    timeout,
                    start,
                    &hop_url,
                )
                .await?;
            let code = resp.status().as_u16();
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let (true, Some(location)) = (matches!(code, 301 | 302 | 303 | 307 | 308), location)
            else {
                return Ok(resp);
            };
            if hops >= self.opts.max_redirects {
                return Err(HttpError::Redirects {
                    url: shown.to_owned(),
                    limit: self.opts.max_redirects,
                });
            }
            hops += 1;
            let next = redirect_target(&hop.url, &location, &hop_url)?;
            let cross_origin = !same_origin(&hop.url, &next);
            if cross_origin {
                // Credentials were meant for the origin they were configured for, never for
                // whatever host a response points at.
                send_secrets = false;
            }
            hop.redirect(code, next);
            // A 307 or 308 sends the body again: one that carries a secret (a login's password
            // from ${VAR}) does not go to another origin either.
            if cross_origin
                && hop
                    .body
                    .as_deref()
                    .is_some_and(crate::secret::contains_secret)
            {
                return Err(HttpError::Invalid {
                    url: hop_url,
                    message: format!(
                        "redirected ({code}) to another origin, {}: the request body carries a secret and is not sent there",
                        redact(&origin_of(&hop.url))
                    ),
                });
            }
        }
    }

    /// One request of [`HttpClient::send`], within what is left of its `timeout`.
    async fn send_hop(
        &self,
        hop: &Hop,
        headers: HeaderMap,
        timeout: Option<Duration>,
        start: Instant,
        hop_url: &str,
    ) -> Result<reqwest::Response, HttpError> {
        let mut req = self
            .inner
            .request(hop.method.clone(), hop.url.clone())
            .headers(headers);
        if let Some(b) = &hop.body {
            req = req.body(b.clone());
        }
        if let Some(t) = timeout {
            let left = t.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(HttpError::Timeout {
                    url: hop_url.to_owned(),
                    elapsed_ms: start.elapsed().as_millis() as u64,
                });
            }
            req = req.timeout(left);
        }
        req.send().await.map_err(|e| classify(&e, hop_url, start))
    }
}

/// One request of a redirect chain.
struct Hop {
    method: reqwest::Method,
    url: reqwest::Url,
    body: Option<Vec<u8>>,
}

impl Hop {
    /// The next hop after a redirect with status `code` to `next`: a 303, and a 301 or 302 of a
    /// POST, become a GET without a body (as browsers and curl do).
    fn redirect(&mut self, code: u16, next: reqwest::Url) {
        if code == 303 || (matches!(code, 301 | 302) && self.method == reqwest::Method::POST) {
            self.method = reqwest::Method::GET;
            self.body = None;
        }
        self.url = next;
    }
}

/// A redirect's `Location`, resolved against the URL it came from and checked like any URL.
fn redirect_target(
    from: &reqwest::Url,
    location: &str,
    hop_url: &str,
) -> Result<reqwest::Url, HttpError> {
    from.join(location)
        .ok()
        .and_then(|u| crate::urls::validate_url(u.as_str()).ok())
        .ok_or_else(|| HttpError::Invalid {
            url: hop_url.to_owned(),
            message: format!("redirect to an invalid location {:?}", redact(location)),
        })
}

/// A request's headers, the secret ones (marked sensitive) apart.
struct HeaderMaps {
    plain: HeaderMap,
    secret: HeaderMap,
}

impl HeaderMaps {
    /// Checks and sorts `headers`; the error says which one is invalid.
    fn new(headers: &[Header]) -> Result<HeaderMaps, String> {
        let mut maps = HeaderMaps {
            plain: HeaderMap::new(),
            secret: HeaderMap::new(),
        };
        for h in headers {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| format!("invalid header name {:?}", h.name))?;
            let mut value = HeaderValue::from_str(&h.value)
                .map_err(|_| format!("invalid value for header {}", h.name))?;
            if h.is_secret() {
                value.set_sensitive(true);
                maps.secret.append(name, value);
            } else {
                maps.plain.append(name, value);
            }
        }
        Ok(maps)
    }

    /// The headers of one hop: the secret ones only while it stays on the first origin.
    fn for_hop(&self, send_secrets: bool) -> HeaderMap {
        let mut map = self.plain.clone();
        if send_secrets {
            for (k, v) in &self.secret {
                map.append(k.clone(), v.clone());
            }
        }
        map
    }
}

/// `scheme://host:port` of `u`, for messages.
fn origin_of(u: &reqwest::Url) -> String {
    u.origin().ascii_serialization()
}

/// Whether two URLs have the same origin (scheme, host, port).
pub fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Reads a response body of at most `limit` bytes: more is [`HttpError::BodyTooLarge`]. Every
/// body read in the tools goes through here (or [`HttpClient::send`]), so no server can make a
/// tool hold more than its cap in memory.
pub async fn read_capped(
    resp: &mut reqwest::Response,
    limit: usize,
    shown_url: &str,
    start: Instant,
) -> Result<Vec<u8>, HttpError> {
    let too_large = || HttpError::BodyTooLarge {
        url: shown_url.to_owned(),
        limit,
    };
    if resp
        .content_length()
        .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > limit))
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| classify(&e, shown_url, start))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error and its sources on one line (`a: b: c`), redacted.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    redact(&parts.join(": "))
}

fn classify(e: &reqwest::Error, url: &str, start: Instant) -> HttpError {
    let chain = error_chain(e);
    let lower = chain.to_ascii_lowercase();
    let url = url.to_owned();
    if e.is_timeout() || lower.contains("timed out") || lower.contains("deadline has elapsed") {
        HttpError::Timeout {
            url,
            elapsed_ms: start.elapsed().as_millis() as u64,
        }
    } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
        HttpError::Dns {
            url,
            message: chain,
        }
    } else if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("invalid peer")
        || lower.contains("corrupt message")
        || lower.contains("received fatal alert")
        // An https connect error past the TCP connect is the TLS layer.
        || (e.is_connect() && url.starts_with("https://") && !lower.contains("tcp connect error"))
    {
        HttpError::Tls {
            url,
            message: chain,
        }
    } else if e.is_connect() {
        HttpError::Connect {
            url,
            message: chain,
        }
    } else if e.is_builder() {
        HttpError::Invalid {
            url,
            message: chain,
        }
    } else {
        HttpError::Io {
            url,
            message: chain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers_are_sensitive() {
        assert!(is_sensitive_header("Authorization"));
        assert!(is_sensitive_header("cookie"));
        assert!(!is_sensitive_header("accept"));
    }

    #[test]
    fn excerpt_is_short_single_line_and_redacted() {
        crate::secret::register("bearer-secret-99");
        let r = Response {
            status: 500,
            headers: HeaderMap::new(),
            body: b"error:\n  token bearer-secret-99 rejected   and a long tail".to_vec(),
            latency: Duration::ZERO,
            url: String::new(),
            certificate: None,
        };
        assert_eq!(r.excerpt(30), "error: token *** rejected and…");
    }

    #[tokio::test]
    async fn connection_refused_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let c = HttpClient::new("test", HttpOptions::default()).unwrap();
        let e = c
            .send(
                "GET",
                &format!("http://127.0.0.1:{port}/x"),
                &[],
                None,
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::Connect { .. }), "{e:?}");
        assert!(e.is_transient());
    }

    /// A one-route-per-path HTTP/1.1 server: `/a` redirects (302) to `/b` on the same origin, and
    /// `/b` answers with the `x-key` header it received (or `none`).
    async fn echo_server() -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let req = String::from_utf8_lossy(&buf).to_string();
                    let key = req
                        .lines()
                        .find_map(|l| l.strip_prefix("x-key: "))
                        .unwrap_or("none")
                        .to_owned();
                    let resp = if req.starts_with("GET /a ") || req.starts_with("POST /a ") {
                        "HTTP/1.1 302 Found\r\nLocation: /b\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                    } else {
                        let method = req.split(' ').next().unwrap_or("").to_owned();
                        let body = format!("{method} {key}");
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        url
    }

    #[tokio::test]
    async fn secret_headers_follow_a_same_origin_redirect_and_post_becomes_get() {
        let url = echo_server().await;
        let c = HttpClient::new("test", HttpOptions::default()).unwrap();
        let r = c
            .send(
                "POST",
                &format!("{url}/a"),
                &[Header::secret("x-key", "k-123")],
                Some(b"x".to_vec()),
                None,
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(String::from_utf8_lossy(&r.body), "GET k-123");
        assert!(r.url.ends_with("/b"), "{}", r.url);
    }

    #[tokio::test]
    async fn bad_header_is_invalid_not_sent() {
        let c = HttpClient::new("test", HttpOptions::default()).unwrap();
        let e = c
            .send(
                "GET",
                "http://127.0.0.1:1/",
                &[Header::new("bad header", "x")],
                None,
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::Invalid { .. }), "{e:?}");
    }
}
