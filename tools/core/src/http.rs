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
        /// Detail.
        message: String,
    },
    /// TCP connect failed (refused, unreachable).
    #[error("couldn't connect to {url}: {message}")]
    Connect {
        /// The URL (redacted).
        url: String,
        /// Detail.
        message: String,
    },
    /// The TLS handshake or certificate check failed.
    #[error("TLS failure talking to {url}: {message}")]
    Tls {
        /// The URL (redacted).
        url: String,
        /// Detail.
        message: String,
    },
    /// Connect, read or request timeout.
    #[error("timed out after {elapsed_ms} ms waiting for {url}")]
    Timeout {
        /// The URL (redacted).
        url: String,
        /// Time spent.
        elapsed_ms: u64,
    },
    /// Redirect limit reached (a loop, usually).
    #[error("too many redirects from {url} (limit {limit})")]
    Redirects {
        /// The URL (redacted).
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The body was larger than the cap.
    #[error("response body of {url} is larger than {limit} bytes")]
    BodyTooLarge {
        /// The URL (redacted).
        url: String,
        /// The cap.
        limit: usize,
    },
    /// The connection broke (reset, closed early).
    #[error("connection to {url} failed: {message}")]
    Io {
        /// The URL (redacted).
        url: String,
        /// Detail.
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
}

impl Response {
    /// The body as JSON, or why it is not.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("body is not JSON ({e})"))
    }

    /// A short, redacted, single-line excerpt of the body for reports.
    pub fn excerpt(&self, max_chars: usize) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let red = redact(&one_line);
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
        #[allow(clippy::disallowed_methods)] // this is the wrapper the lint points to
        let inner = reqwest::Client::builder()
            .user_agent(user_agent(tool))
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .timeout(opts.request_timeout)
            .redirect(reqwest::redirect::Policy::limited(opts.max_redirects))
            .build()
            .map_err(|e| HttpError::Invalid {
                url: String::new(),
                message: error_chain(&e),
            })?;
        Ok(HttpClient { inner, opts })
    }

    /// The underlying reqwest client, for callers that stream (registry uploads).
    pub fn inner(&self) -> &reqwest::Client {
        &self.inner
    }

    /// The options it was built with.
    pub fn options(&self) -> &HttpOptions {
        &self.opts
    }

    /// Sends a request and reads the whole body (up to the cap). Header values whose names carry
    /// credentials are marked sensitive, so they never appear in debug output.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
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
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| invalid(format!("invalid header name {k:?}")))?;
            let mut value = HeaderValue::from_str(v)
                .map_err(|_| invalid(format!("invalid value for header {k}")))?;
            if is_sensitive_header(k) {
                value.set_sensitive(true);
            }
            map.append(name, value);
        }
        let mut req = self.inner.request(method, url).headers(map);
        if let Some(b) = body {
            req = req.body(b);
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let start = Instant::now();
        let mut resp = req.send().await.map_err(|e| classify(&e, &shown, start))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let final_url = redact(resp.url().as_str());
        let limit = self.opts.max_body_bytes;
        if resp.content_length().is_some_and(|n| n as usize > limit) {
            return Err(HttpError::BodyTooLarge { url: shown, limit });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| classify(&e, &shown, start))?
        {
            if body.len() + chunk.len() > limit {
                return Err(HttpError::BodyTooLarge { url: shown, limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers,
            body,
            latency: start.elapsed(),
            url: final_url,
        })
    }
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
    } else if e.is_redirect() {
        HttpError::Redirects { url, limit: 0 }
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

impl HttpClient {
    /// Fixes the redirect limit in [`HttpError::Redirects`] (reqwest does not report it).
    pub fn with_limit(&self, e: HttpError) -> HttpError {
        match e {
            HttpError::Redirects { url, .. } => HttpError::Redirects {
                url,
                limit: self.opts.max_redirects,
            },
            other => other,
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

    #[tokio::test]
    async fn bad_header_is_invalid_not_sent() {
        let c = HttpClient::new("test", HttpOptions::default()).unwrap();
        let e = c
            .send(
                "GET",
                "http://127.0.0.1:1/",
                &[("bad header".into(), "x".into())],
                None,
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::Invalid { .. }), "{e:?}");
    }
}
