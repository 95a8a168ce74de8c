//! A recording HTTP server for the leak suite: it keeps every request it receives (method, URI,
//! headers, body) so a test can assert on exactly what reached another host, and it either
//! answers with a fixed response, redirects every request to another base URL, or forwards to an
//! upstream (Prism, the registry), optionally moving the registry's upload `Location` to another
//! host.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What the recorder does with a request.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Answers every request with this status and JSON body.
    Answer(u16, String),
    /// Answers this redirect status (302; 307 and 308 keep the method and the body) to `BASE` +
    /// the request's path (the query, which may hold a secret the client put there for this host,
    /// is not passed on).
    RedirectWith(u16, String),
    /// Forwards to `upstream` (`http://host:port`) and returns its answer (a `Location` on the
    /// upstream pointed back at the recorder).
    Forward(String),
    /// Forwards to a registry `upstream`, but the `Location` of an opened upload session points at
    /// `foreign` (`http://other-host:port`) instead: the client must not send it credentials.
    ForeignUploads {
        /// The registry.
        upstream: String,
        /// Where upload locations are moved to.
        foreign: String,
    },
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers, lowercase names.
    pub headers: Vec<(String, String)>,
    /// Body (lossy UTF-8).
    pub body: String,
}

#[derive(Clone)]
struct Ctx {
    mode: Mode,
    log: Arc<Mutex<Vec<Recorded>>>,
    client: deploy_core::http::HttpClient,
}

/// A running recorder.
pub struct Recorder {
    /// Its base URL, with the host name it was asked to use.
    pub url: String,
    log: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    /// Starts one on an ephemeral loopback port; `host` names it in [`Recorder::url`]
    /// (`127.0.0.1` or `localhost`: two origins on one machine).
    pub async fn start(host: &str, mode: Mode) -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let ctx = Ctx {
            mode,
            log: log.clone(),
            client: deploy_core::http::HttpClient::new(
                "recorder",
                deploy_core::http::HttpOptions::default(),
            )
            .unwrap(),
        };
        let app = Router::new().fallback(handle).with_state(ctx);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Recorder {
            url: format!("http://{host}:{port}"),
            log,
            task,
        }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// Everything received (methods, URIs, headers, bodies) as one text, for leak checks.
    pub fn text(&self) -> String {
        self.requests()
            .iter()
            .map(|r| {
                let h: Vec<String> = r.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{} {}\n{}\n\n{}\n", r.method, r.uri, h.join("\n"), r.body)
            })
            .collect()
    }
}

async fn handle(State(ctx): State<Ctx>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    ctx.log.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        uri: uri.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    match &ctx.mode {
        Mode::Answer(status, text) => (
            StatusCode::from_u16(*status).unwrap(),
            [(header::CONTENT_TYPE, "application/json")],
            text.clone(),
        )
            .into_response(),
        Mode::RedirectWith(status, base) => (
            StatusCode::from_u16(*status).unwrap_or(StatusCode::FOUND),
            [(header::LOCATION, format!("{base}{}", parts.uri.path()))],
        )
            .into_response(),
        Mode::Forward(upstream) => forward(&ctx, upstream, &parts, &uri, body, None).await,
        Mode::ForeignUploads { upstream, foreign } => {
            forward(&ctx, upstream, &parts, &uri, body, Some(foreign)).await
        }
    }
}

async fn forward(
    ctx: &Ctx,
    upstream: &str,
    parts: &axum::http::request::Parts,
    uri: &str,
    body: Bytes,
    foreign: Option<&String>,
) -> Response {
    let mut req = ctx
        .client
        .inner()
        .request(parts.method.clone(), format!("{upstream}{uri}"));
    for (k, v) in &parts.headers {
        if k != header::HOST {
            req = req.header(k, v);
        }
    }
    let mut resp = match req.body(body.to_vec()).send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = resp.status();
    let mut headers = HeaderMap::new();
    for (k, v) in resp.headers() {
        headers.append(k.clone(), v.clone());
    }
    let bytes = deploy_core::http::read_capped(
        &mut resp,
        64 * 1024 * 1024,
        upstream,
        std::time::Instant::now(),
    )
    .await
    .unwrap_or_default();
    let location = headers.get(header::LOCATION).and_then(|v| v.to_str().ok());
    let moved = match (foreign, location) {
        (Some(foreign), Some(loc)) if parts.method == "POST" && uri.contains("/blobs/uploads/") => {
            let path = loc.find("/v2/").map_or(loc, |i| &loc[i..]);
            Some(format!("{foreign}{path}"))
        }
        // An absolute location on the upstream comes back through the recorder too, so that
        // what follows it (a blob's PUT) is recorded.
        (None, Some(loc)) => loc
            .strip_prefix(upstream)
            .zip(
                parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok()),
            )
            .map(|(path, host)| format!("http://{host}{path}")),
        _ => None,
    };
    if let Some(moved) = moved {
        headers.insert(header::LOCATION, HeaderValue::from_str(&moved).unwrap());
    }
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::CONTENT_LENGTH);
    let mut r = (status, bytes).into_response();
    r.headers_mut().extend(headers);
    r
}
