//! A recording pass-through in front of Prism: every request goes on to Prism (which validates it
//! against GitHub's OpenAPI description and answers), and the tap keeps a copy of each request
//! body, so a test can say which check run a tool created. Prism is stateless and cannot be
//! asked afterwards. Requests whose path contains one of the `refuse` fragments (`/check-runs`,
//! `/statuses/`) it answers itself with the 403 GitHub gives a token without that permission (a
//! fork's pull request), to drive the fallbacks.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One request that passed the tap.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, `GET`...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The JSON body (`null` when none or not JSON).
    pub body: serde_json::Value,
    /// The status the client got.
    pub status: u16,
}

#[derive(Clone)]
struct Ctx {
    upstream: String,
    refuse: Vec<String>,
    client: reqwest::Client,
    recorded: Arc<Mutex<Vec<Recorded>>>,
}

/// A running tap.
pub struct Tap {
    /// `http://127.0.0.1:PORT`: give it to a tool as `GITHUB_API_URL`.
    pub url: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Tap {
    /// Starts a tap in front of `upstream` (Prism's URL).
    pub async fn start(upstream: String, refuse: &[&str]) -> Tap {
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let ctx = Ctx {
            upstream: upstream.trim_end_matches('/').to_owned(),
            refuse: refuse.iter().map(|s| (*s).to_owned()).collect(),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap(),
            recorded: recorded.clone(),
        };
        let app = Router::new().fallback(forward).with_state(ctx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Tap {
            url,
            recorded,
            task,
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }
}

async fn forward(State(ctx): State<Ctx>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let headers = req.headers().clone();
    let bytes = axum::body::to_bytes(req.into_body(), 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    let record = |status: u16| {
        ctx.recorded.lock().unwrap().push(Recorded {
            method: method.to_string(),
            path: path.clone(),
            body: body.clone(),
            status,
        });
    };
    if method == "POST" && ctx.refuse.iter().any(|r| path.contains(r.as_str())) {
        record(403);
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"message":"Resource not accessible by integration","documentation_url":"https://docs.github.com/rest","status":"403"}"#,
        )
            .into_response();
    }
    let mut up = ctx
        .client
        .request(method.clone(), format!("{}{path}", ctx.upstream))
        .body(bytes.to_vec());
    for name in [
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::ACCEPT,
        header::USER_AGENT,
    ] {
        if let Some(v) = headers.get(&name) {
            up = up.header(name.as_str(), v.as_bytes());
        }
    }
    match up.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let ctype = resp.headers().get(header::CONTENT_TYPE).cloned();
            let body = resp.bytes().await.unwrap_or_default();
            record(status);
            let mut r = Response::new(Body::from(body));
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                ctype.unwrap_or_else(|| HeaderValue::from_static("application/json")),
            );
            r
        }
        Err(e) => {
            record(502);
            (StatusCode::BAD_GATEWAY, format!("tap: {e}")).into_response()
        }
    }
}
