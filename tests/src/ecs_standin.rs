//! The ECS stand-in: a small awsJson 1.1 server in front of moto for what moto 5.2.5 cannot do.
//! It answers ListServiceDeployments, DescribeServiceDeployments and StopServiceDeployment (moto
//! answers 500), pages and reorders ListTaskDefinitions (moto ignores paging and sort), and plays
//! scripted rollouts: after an UpdateService (or a StopServiceDeployment) of a scripted service,
//! DescribeServices shows the script's frames one call after another (in progress, FAILED, replaced
//! by the circuit breaker, stuck), with `{new}` standing for the id of the deployment the call
//! created; an UpdateService of an unscripted service shows as a completed rollout of the new
//! revision (moto keeps the first deployment PRIMARY for ever). Every other call goes to moto unchanged, so the tool under test talks to one endpoint
//! and everything that moto can keep (task definitions, tags, services, ECR, CloudWatch, Logs) is
//! real. Every call is recorded with its time, for assertions and the benchmark.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";

/// One call the stand-in received.
#[derive(Debug, Clone)]
pub struct Call {
    /// The operation (`UpdateService`), or the whole `X-Amz-Target` for other services.
    pub op: String,
    /// The JSON body.
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
}

/// A scripted rollout of one service.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Shown before the arming call (a deployment already in flight); `None`: moto's own answer.
    pub before: Option<Value>,
    /// Service objects (fields override moto's answer) shown one per DescribeServices call after
    /// the arming call (UpdateService or StopServiceDeployment); the last one stays. `{new}` in
    /// any string is replaced by the id of the deployment the arming call created.
    pub frames: Vec<Value>,
    armed: bool,
    pos: usize,
    new_id: Option<String>,
}

impl Script {
    /// Frames shown after UpdateService or StopServiceDeployment.
    pub fn after_update(frames: Vec<Value>) -> Script {
        Script {
            frames,
            ..Script::default()
        }
    }

    /// `before` until the arming call, then `frames`.
    pub fn in_flight(before: Value, frames: Vec<Value>) -> Script {
        Script {
            before: Some(before),
            frames,
            ..Script::default()
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    calls: Vec<Call>,
    scripts: BTreeMap<String, Script>,
    /// Per service: what ListServiceDeployments answers.
    service_deployments: BTreeMap<String, Vec<Value>>,
    /// ListTaskDefinitions page size (0: moto's single page), answered newest-last.
    td_page_size: usize,
    /// Services whose UpdateService fails with this message.
    update_fails: BTreeMap<String, String>,
    /// Canned answers by operation (`ListTasks`, or an awsQuery `Action` such as
    /// `DescribeTargetHealth`): (HTTP status, content type, body).
    canned: BTreeMap<String, (u16, String, String)>,
    /// Where to append `EPOCH_MS OPERATION` per call.
    log: Option<std::fs::File>,
    /// Every Nth ECS call is answered `ThrottlingException` (0: none), as AWS does past its call
    /// rates; `throttled` counts them by operation, and they are not in `calls`.
    throttle_every: u64,
    ecs_calls: u64,
    throttled: BTreeMap<String, u64>,
    /// Services (`cluster/service`) updated without a script: (new deployment id, task
    /// definition), shown as a
    /// completed rollout (moto keeps the old deployment PRIMARY for ever).
    updated: BTreeMap<String, (String, String)>,
}

/// A running ECS stand-in.
pub struct EcsStandIn {
    /// `http://127.0.0.1:PORT`: give it to the tool as `AWS_ENDPOINT_URL`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Ctx {
    moto: String,
    http: reqwest::Client,
    inner: Arc<Mutex<Inner>>,
}

impl EcsStandIn {
    /// Starts one on an ephemeral loopback port, forwarding to moto at `moto_url`.
    pub async fn start(moto_url: &str) -> std::io::Result<EcsStandIn> {
        Self::start_on("127.0.0.1:0", moto_url).await
    }

    /// Starts one on `addr`.
    pub async fn start_on(addr: &str, moto_url: &str) -> std::io::Result<EcsStandIn> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let inner = Arc::new(Mutex::new(Inner::default()));
        let ctx = Ctx {
            moto: moto_url.trim_end_matches('/').to_owned(),
            // A plain forwarder (no body cap: moto's answers pass through whole), with a timeout.
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .map_err(std::io::Error::other)?,
            inner: inner.clone(),
        };
        let app = Router::new().fallback(handle).with_state(ctx);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(EcsStandIn { url, inner, task })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// Scripts `service`'s rollout.
    pub fn script(&self, service: &str, script: Script) {
        self.lock().scripts.insert(service.to_owned(), script);
    }

    /// What ListServiceDeployments answers for `service`.
    pub fn service_deployments(&self, service: &str, list: Vec<Value>) {
        self.lock()
            .service_deployments
            .insert(service.to_owned(), list);
    }

    /// Pages ListTaskDefinitions `n` at a time, oldest first (0: one page).
    pub fn page_task_definitions(&self, n: usize) {
        self.lock().td_page_size = n;
    }

    /// Makes UpdateService of `service` fail with an AWS error.
    pub fn fail_update(&self, service: &str, message: &str) {
        self.lock()
            .update_fails
            .insert(service.to_owned(), message.to_owned());
    }

    /// Answers every call of ECS operation `op` with this JSON (what moto cannot produce: stopped
    /// tasks with reasons, PENDING tasks). `OP:SERVICE` answers only the calls about that service
    /// (`serviceName` or `service` in the request).
    pub fn answer(&self, op: &str, body: Value) {
        self.lock().canned.insert(
            op.to_owned(),
            (200, "application/x-amz-json-1.1".into(), body.to_string()),
        );
    }

    /// Answers every awsQuery call of `action` (ELBv2's `DescribeTargetHealth`) with this XML and
    /// status (moto reports every target healthy).
    pub fn answer_query(&self, action: &str, status: u16, xml: &str) {
        self.lock().canned.insert(
            action.to_owned(),
            (status, "text/xml".into(), xml.to_owned()),
        );
    }

    /// Appends `EPOCH_MS OPERATION` per call to `path` from now on.
    pub fn log_to(&self, path: &std::path::Path) -> std::io::Result<()> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        self.lock().log = Some(f);
        Ok(())
    }

    /// Answers every `n`th ECS call `ThrottlingException` ("Rate exceeded"), before it reaches
    /// anything else (0: none again).
    pub fn throttle_every(&self, n: u64) {
        self.lock().throttle_every = n;
    }

    /// The ECS calls answered `ThrottlingException`, by operation.
    pub fn throttled(&self) -> BTreeMap<String, u64> {
        self.lock().throttled.clone()
    }

    /// Every call so far (not the throttled ones).
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The calls of one operation.
    pub fn calls_of(&self, op: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.op == op).collect()
    }
}

impl Drop for EcsStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn aws_error(kind: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/x-amz-json-1.1")],
        json!({ "__type": kind, "message": message }).to_string(),
    )
        .into_response()
}

fn ok(v: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        v.to_string(),
    )
        .into_response()
}

/// The service name of a name or ARN (`arn:...:service/cluster/name`).
fn service_name(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// The cluster a request names (`default` when it names none), by name.
fn cluster_of(request: &Value) -> String {
    service_name(request["cluster"].as_str().unwrap_or("default")).to_owned()
}

fn substitute(v: &Value, new_id: &str) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace("{new}", new_id)),
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, new_id)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), substitute(x, new_id)))
                .collect(),
        ),
        other => other.clone(),
    }
}

async fn handle(
    State(ctx): State<Ctx>,
    method: axum::http::Method,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let op = if let Some(rpc) = uri.path().split_once("/operation/") {
        // RPC v2 CBOR (CloudWatch): the operation is the path's last segment.
        rpc.1.to_owned()
    } else if target.is_empty() {
        // awsQuery (ELBv2): the operation is the form's Action.
        String::from_utf8_lossy(&body)
            .split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .unwrap_or_default()
            .to_owned()
    } else {
        target.strip_prefix(PREFIX).unwrap_or(&target).to_owned()
    };
    {
        let mut inner = ctx.inner.lock().unwrap();
        if target.starts_with(PREFIX) {
            inner.ecs_calls += 1;
            let n = inner.throttle_every;
            if n > 0 && inner.ecs_calls % n == 0 {
                *inner.throttled.entry(op.clone()).or_default() += 1;
                return aws_error("ThrottlingException", "Rate exceeded");
            }
        }
        inner.calls.push(Call {
            op: op.clone(),
            body: json.clone(),
            at: Instant::now(),
        });
        if let Some(f) = inner.log.as_mut() {
            use std::io::Write;
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let _ = writeln!(f, "{ms} {op}");
        }
    }
    let service_key = json["serviceName"]
        .as_str()
        .or(json["service"].as_str())
        .map(|s| format!("{op}:{}", service_name(s)));
    let canned = {
        let inner = ctx.inner.lock().unwrap();
        service_key
            .and_then(|k| inner.canned.get(&k).cloned())
            .or_else(|| inner.canned.get(&op).cloned())
    };
    if let Some((status, ctype, text)) = canned {
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            [("content-type", ctype)],
            text,
        )
            .into_response();
    }
    if target.starts_with(PREFIX) {
        match op.as_str() {
            "ListServiceDeployments" => {
                let svc = service_name(json["service"].as_str().unwrap_or_default()).to_owned();
                let inner = ctx.inner.lock().unwrap();
                let list = inner
                    .service_deployments
                    .get(&svc)
                    .cloned()
                    .unwrap_or_default();
                let wanted: Vec<String> = json["status"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let list: Vec<Value> = list
                    .into_iter()
                    .filter(|d| wanted.is_empty() || wanted.iter().any(|w| d["status"] == *w))
                    .collect();
                return ok(json!({ "serviceDeployments": list }));
            }
            "DescribeServiceDeployments" => {
                let arns: Vec<&str> = json["serviceDeploymentArns"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let inner = ctx.inner.lock().unwrap();
                let found: Vec<Value> = inner
                    .service_deployments
                    .values()
                    .flatten()
                    .filter(|d| arns.iter().any(|a| d["serviceDeploymentArn"] == *a))
                    .cloned()
                    .collect();
                return ok(json!({ "serviceDeployments": found, "failures": [] }));
            }
            "StopServiceDeployment" => {
                let arn = json["serviceDeploymentArn"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let mut inner = ctx.inner.lock().unwrap();
                let svc = inner
                    .service_deployments
                    .iter()
                    .find(|(_, l)| l.iter().any(|d| d["serviceDeploymentArn"] == arn.as_str()))
                    .map(|(s, _)| s.clone());
                let Some(svc) = svc else {
                    return aws_error(
                        "ServiceDeploymentNotFoundException",
                        &format!("service deployment {arn} not found"),
                    );
                };
                if let Some(s) = inner.scripts.get_mut(&svc) {
                    s.armed = true;
                    s.pos = 0;
                    s.new_id = Some("ecs-svc/native-rollback".into());
                }
                return ok(json!({ "serviceDeploymentArn": arn }));
            }
            "UpdateService" => {
                let svc = service_name(json["service"].as_str().unwrap_or_default()).to_owned();
                if let Some(msg) = ctx.inner.lock().unwrap().update_fails.get(&svc).cloned() {
                    return aws_error("ServerException", &msg);
                }
            }
            _ => {}
        }
    }
    let resp = ctx
        .http
        .request(
            reqwest::Method::from_bytes(method.as_str().as_bytes())
                .unwrap_or(reqwest::Method::POST),
            format!(
                "{}{}",
                ctx.moto,
                uri.path_and_query().map_or("/", |p| p.as_str())
            ),
        )
        .headers(forwardable(&headers))
        .body(body.clone())
        .send()
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-amz-json-1.1")
        .to_owned();
    let bytes = resp.bytes().await.unwrap_or_default();
    let passthrough = || {
        (
            StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
            [("content-type", ctype.clone())],
            bytes.clone(),
        )
            .into_response()
    };
    if !status.is_success() || !target.starts_with(PREFIX) {
        return passthrough();
    }
    let Ok(mut answer) = serde_json::from_slice::<Value>(&bytes) else {
        return passthrough();
    };
    let mut inner = ctx.inner.lock().unwrap();
    match op.as_str() {
        "UpdateService" => {
            let svc = service_name(json["service"].as_str().unwrap_or_default()).to_owned();
            let new_id = answer["service"]["deployments"]
                .as_array()
                .and_then(|d| d.iter().find(|d| d["status"] == "PRIMARY"))
                .and_then(|d| d["id"].as_str())
                .map(str::to_owned);
            match inner.scripts.get_mut(&svc) {
                Some(s) => {
                    s.armed = true;
                    s.pos = 0;
                    s.new_id = new_id;
                }
                None => {
                    let td = json["taskDefinition"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    inner.updated.insert(
                        format!("{}/{svc}", cluster_of(&json)),
                        (new_id.unwrap_or_else(|| "ecs-svc/updated".into()), td),
                    );
                }
            }
        }
        "DescribeServices" => {
            if let Some(list) = answer["services"].as_array_mut() {
                for svc in list {
                    let name = svc["serviceName"].as_str().unwrap_or_default().to_owned();
                    if let Some((id, td)) =
                        inner.updated.get(&format!("{}/{name}", cluster_of(&json)))
                    {
                        let desired = svc["desiredCount"].clone();
                        let completed = json!({
                            "taskDefinition": td,
                            "runningCount": desired,
                            "pendingCount": 0,
                            "deployments": [{
                                "id": id, "status": "PRIMARY", "taskDefinition": td,
                                "desiredCount": desired, "runningCount": desired, "pendingCount": 0,
                                "failedTasks": 0, "rolloutState": "COMPLETED",
                                "rolloutStateReason": "ECS deployment completed."
                            }]
                        });
                        if let (Some(o), Some(f)) = (svc.as_object_mut(), completed.as_object()) {
                            for (k, v) in f {
                                o.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    let Some(s) = inner.scripts.get_mut(&name) else {
                        continue;
                    };
                    let frame = if s.armed && !s.frames.is_empty() {
                        let f = s.frames[s.pos.min(s.frames.len() - 1)].clone();
                        s.pos += 1;
                        Some(f)
                    } else if s.armed {
                        None
                    } else {
                        s.before.clone()
                    };
                    if let Some(frame) = frame {
                        let frame =
                            substitute(&frame, s.new_id.as_deref().unwrap_or("ecs-svc/none"));
                        if let (Some(o), Some(f)) = (svc.as_object_mut(), frame.as_object()) {
                            for (k, v) in f {
                                o.insert(k.clone(), v.clone());
                            }
                        }
                    }
                }
            }
        }
        "ListTaskDefinitions" if inner.td_page_size > 0 => {
            let mut arns: Vec<Value> = answer["taskDefinitionArns"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            // Oldest first, whatever sort was asked: the tool must sort by itself.
            arns.sort_by_key(|a| {
                a.as_str()
                    .and_then(|s| s.rsplit(':').next())
                    .and_then(|r| r.parse::<u64>().ok())
                    .unwrap_or(0)
            });
            let start: usize = json["nextToken"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let end = (start + inner.td_page_size).min(arns.len());
            let page: Vec<Value> = arns
                .get(start..end)
                .map(<[Value]>::to_vec)
                .unwrap_or_default();
            answer = if end < arns.len() {
                json!({ "taskDefinitionArns": page, "nextToken": end.to_string() })
            } else {
                json!({ "taskDefinitionArns": page })
            };
        }
        _ => {}
    }
    ok(answer)
}

fn forwardable(headers: &HeaderMap) -> reqwest::header::HeaderMap {
    let mut out = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        if matches!(k.as_str(), "host" | "content-length" | "connection") {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(k.as_str().as_bytes()),
            reqwest::header::HeaderValue::from_bytes(v.as_bytes()),
        ) {
            out.insert(name, value);
        }
    }
    out
}
