//! The stand-in service: speaks the Control Center contract the runbook checks (`/api/health`,
//! `/api/ready`, `/api/mcp/health`, `/api/workflows` behind a bearer token, `/`), and can be told
//! at run time (`POST /__standin/behaviour`) to be slow, flaky, not ready, to have MCP servers
//! down, to report another `commitSha`, or to send bad bodies (not JSON, huge, endless redirect).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What the service does; every field can be changed at run time.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// `commitSha` in `/api/health`.
    pub commit_sha: String,
    /// The bearer token `/api/workflows` accepts.
    pub token: String,
    /// Delay before every contract response, in milliseconds.
    pub delay_ms: u64,
    /// `/api/ready` answers 200 `ready: true` (else 503 `ready: false`).
    pub ready: bool,
    /// MCP servers reported down by `/api/mcp/health`.
    pub mcp_down: Vec<String>,
    /// The next N contract requests answer 503 (flaky: "fail N times, then pass").
    pub fail_next: u32,
    /// `Retry-After` seconds sent with those 503s.
    pub retry_after: Option<u64>,
    /// The next N `/api/ready` requests answer 503 `ready: false` whatever `ready` says: a
    /// service that turns ready after N polls.
    pub ready_after: u32,
    /// `normal`, `not-json`, `huge` (2 MiB) or `redirect-loop`, for every `/api/*` path.
    pub body: String,
    /// Contract requests served at once (0: no limit); one more is answered 429 at once.
    pub max_in_flight: u32,
    /// The password `POST /api/login` accepts (`{"user": ..., "password": ...}`): it answers
    /// `{"token": <token>}` and sets the cookie `csrf`; any other password is 401.
    pub password: String,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            commit_sha: "22cdb6a41c42366ad165a0fb4c96282304f6f7ae".into(),
            token: "standin-token".into(),
            delay_ms: 0,
            ready: true,
            mcp_down: Vec::new(),
            fail_next: 0,
            retry_after: None,
            ready_after: 0,
            body: "normal".into(),
            max_in_flight: 0,
            password: "standin-password".into(),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    behaviour: Behaviour,
    hits: BTreeMap<String, u64>,
    /// Every contract request: path and when it arrived.
    log: Vec<(String, std::time::Instant)>,
    in_flight: u32,
    peak_in_flight: u32,
    /// Requests answered 429 for `max_in_flight`.
    refused: u64,
}

/// Shared state of one stand-in.
#[derive(Clone, Debug, Default)]
pub struct Shared(Arc<Mutex<Inner>>);

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Replaces the behaviour.
    pub fn set(&self, b: Behaviour) {
        self.with(|i| i.behaviour = b);
    }

    /// The most requests that were in progress at once.
    pub fn peak_in_flight(&self) -> u32 {
        self.with(|i| i.peak_in_flight)
    }

    /// Requests answered 429 because `max_in_flight` were in flight.
    pub fn refused(&self) -> u64 {
        self.with(|i| i.refused)
    }

    /// Requests served per path.
    pub fn hits(&self) -> BTreeMap<String, u64> {
        self.with(|i| i.hits.clone())
    }

    /// When each request for `path` arrived, in order.
    pub fn arrivals(&self, path: &str) -> Vec<std::time::Instant> {
        self.with(|i| {
            i.log
                .iter()
                .filter(|(p, _)| p == path)
                .map(|(_, t)| *t)
                .collect()
        })
    }
}

const MCP_SERVERS: [&str; 3] = ["mcp-github", "mcp-deploy", "mcp-observability"];

/// The router (tests may mount it themselves).
pub fn router(shared: Shared) -> Router {
    Router::new()
        .route(
            "/__standin/behaviour",
            post(set_behaviour).get(get_behaviour),
        )
        .route("/__standin/hits", get(get_hits))
        .fallback(contract)
        .with_state(shared)
}

async fn set_behaviour(State(s): State<Shared>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<Behaviour>(&body) {
        Ok(b) => {
            s.set(b);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("bad behaviour: {e}\n")).into_response(),
    }
}

async fn get_behaviour(State(s): State<Shared>) -> Response {
    axum::Json(s.with(|i| i.behaviour.clone())).into_response()
}

async fn get_hits(State(s): State<Shared>) -> Response {
    axum::Json(s.hits()).into_response()
}

fn json_response(status: StatusCode, v: serde_json::Value) -> Response {
    (status, axum::Json(v)).into_response()
}

async fn contract(State(s): State<Shared>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let headers: HeaderMap = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let refused = s.with(|i| {
        let max = i.behaviour.max_in_flight;
        let full = max > 0 && i.in_flight >= max;
        if full {
            i.refused += 1;
        } else {
            i.in_flight += 1;
        }
        full
    });
    if refused {
        return json_response(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": "too many requests in flight (stand-in's max_in_flight)"}),
        );
    }
    let (b, fail) = s.with(|i| {
        *i.hits.entry(path.clone()).or_default() += 1;
        i.log.push((path.clone(), std::time::Instant::now()));
        i.peak_in_flight = i.peak_in_flight.max(i.in_flight);
        let fail = i.behaviour.fail_next > 0;
        if fail {
            i.behaviour.fail_next -= 1;
        }
        let mut b = i.behaviour.clone();
        if path == "/api/ready" && i.behaviour.ready_after > 0 {
            i.behaviour.ready_after -= 1;
            b.ready = false;
        }
        (b, fail)
    });
    if b.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(b.delay_ms)).await;
    }
    s.with(|i| i.in_flight -= 1);
    if fail {
        let mut r = json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "service unavailable (stand-in told to fail)"}),
        );
        if let Some(secs) = b.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return r;
    }
    if path.starts_with("/api/") {
        match b.body.as_str() {
            "not-json" => {
                return (StatusCode::OK, "<html>this is not JSON</html>").into_response();
            }
            "huge" => {
                let filler = "x".repeat(2 * 1024 * 1024);
                return json_response(StatusCode::OK, json!({"status": "ok", "filler": filler}));
            }
            "redirect-loop" => {
                return (StatusCode::FOUND, [(header::LOCATION, path.clone())]).into_response();
            }
            _ => {}
        }
    }
    match path.as_str() {
        "/" => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html")],
            "<!doctype html><title>AFU-9 Control Center</title><h1>Control Center</h1>",
        )
            .into_response(),
        "/api/health" => json_response(
            StatusCode::OK,
            json!({"status": "ok", "service": "control-center", "commitSha": b.commit_sha}),
        ),
        "/api/ready" => {
            let db = if b.ready { "ok" } else { "error" };
            let status = if b.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json_response(
                status,
                json!({"ready": b.ready, "checks": {"database": db, "github": "ok", "mcp": "ok"}}),
            )
        }
        "/api/mcp/health" => {
            let servers: serde_json::Map<String, serde_json::Value> = MCP_SERVERS
                .iter()
                .map(|n| {
                    let st = if b.mcp_down.iter().any(|d| d == n) {
                        "unhealthy"
                    } else {
                        "healthy"
                    };
                    ((*n).to_owned(), json!({"status": st}))
                })
                .collect();
            let overall = if b.mcp_down.is_empty() {
                "healthy"
            } else {
                "degraded"
            };
            json_response(
                StatusCode::OK,
                json!({"status": overall, "servers": servers}),
            )
        }
        "/api/login" => {
            let given: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if given["password"].as_str() == Some(b.password.as_str()) {
                (
                    StatusCode::OK,
                    [(header::SET_COOKIE, "csrf=standin-csrf-7; Path=/; HttpOnly")],
                    axum::Json(json!({"token": b.token, "user": given["user"]})),
                )
                    .into_response()
            } else {
                json_response(
                    StatusCode::UNAUTHORIZED,
                    json!({"error": "bad credentials"}),
                )
            }
        }
        "/api/workflows" => {
            let expected = format!("Bearer {}", b.token);
            let ok = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v == expected);
            if ok {
                json_response(
                    StatusCode::OK,
                    json!({"workflows": [{"id": "wf-1", "name": "deploy", "status": "idle"}]}),
                )
            } else {
                json_response(StatusCode::UNAUTHORIZED, json!({"error": "unauthorized"}))
            }
        }
        _ => json_response(StatusCode::NOT_FOUND, json!({"error": "not found"})),
    }
}

/// A running stand-in.
pub struct StandIn {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// Its state, to change behaviour or read hits directly.
    pub shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl StandIn {
    /// Starts one on an ephemeral loopback port.
    pub async fn start(b: Behaviour) -> std::io::Result<StandIn> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Shared::default();
        shared.set(b);
        let app = router(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(StandIn { url, shared, task })
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A stand-in behaving as `b`, and a fresh directory to run a tool in.
pub async fn with_dir(b: Behaviour) -> (StandIn, tempfile::TempDir) {
    let s = StandIn::start(b).await.expect("start the stand-in");
    (s, tempfile::tempdir().expect("a temp dir"))
}
