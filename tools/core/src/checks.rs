//! The check engine's first stage: send one check's request and judge its status and latency.
//! JSON assertions (`assert = [...]`) are reported as not evaluated yet; deadline polling and
//! assertions come with the health-check/smoke-test issue.

use std::time::Instant;

use crate::config::{CheckSpec, CheckTarget};
use crate::http::HttpClient;
use crate::report::{Check, Status};

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

/// Runs one check once.
pub async fn run_once(client: &HttpClient, spec: &CheckSpec, url: &str) -> Check {
    let start = Instant::now();
    let headers: Vec<(String, String)> = spec
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.expose().to_owned()))
        .collect();
    let body = spec.body.as_ref().map(|b| b.expose().as_bytes().to_vec());
    let mut check = match client
        .send(&spec.method, url, &headers, body, spec.timeout)
        .await
    {
        Err(e) => Check::new(&spec.name, Status::Failed).reason(client.with_limit(e).to_string()),
        Ok(resp) => {
            if !spec.status.accepts(resp.status) {
                Check::new(&spec.name, Status::Failed).reason(format!(
                    "status {} not accepted; body: {}",
                    resp.status,
                    resp.excerpt(120)
                ))
            } else if let Some(max) = spec.max_latency.filter(|m| resp.latency > *m) {
                Check::new(&spec.name, Status::Failed).reason(format!(
                    "took {} ms, more than the allowed {} ms",
                    resp.latency.as_millis(),
                    max.as_millis()
                ))
            } else {
                Check::new(&spec.name, Status::Passed).reason(format!("status {}", resp.status))
            }
        }
    };
    if !spec.assert.is_empty() {
        check = check.detail(
            "assertions",
            format!("not evaluated yet: {}", spec.assert.join("; ")),
        );
    }
    check.took(start.elapsed())
}

/// Runs a suite of checks once, concurrently, and emits the report: the checks come from the
/// config file's section chosen by `pick`, or from `embedded` (the Control Center contract) when
/// there is no config file. Returns the outcome.
pub async fn run_suite(
    tool: &str,
    common: &crate::cli::CommonArgs,
    pick: fn(&crate::config::Config) -> &[CheckSpec],
    embedded: &str,
) -> anyhow::Result<crate::Exit> {
    use crate::config::Config;
    use crate::exit;
    let started = Instant::now();
    let cfg = match common.load_config()? {
        Some(c) => c,
        None => Config::parse(embedded, "<embedded Control Center default>")?,
    };
    let env = common
        .environment
        .as_deref()
        .map(|n| cfg.environment(n))
        .transpose()?;
    let base_url = match (&common.base_url, env.and_then(|e| e.base_url.as_ref())) {
        (Some(u), _) => {
            crate::config::validate_url(u).map_err(|e| exit::usage(format!("--base-url: {e}")))?;
            Some(u.trim_end_matches('/').to_owned())
        }
        (None, Some(u)) => Some(u.base().to_owned()),
        (None, None) => None,
    };
    let specs = pick(&cfg).to_vec();
    if specs.is_empty() {
        return Err(exit::usage(format!(
            "{}: no checks configured for {tool}",
            cfg.source
        )));
    }
    let urls = specs
        .iter()
        .map(|s| resolve_url(s, base_url.as_deref()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(exit::usage)?;
    let client = HttpClient::new(tool, crate::http::HttpOptions::default())?;
    let mut set = tokio::task::JoinSet::new();
    for (i, (spec, url)) in specs.into_iter().zip(urls).enumerate() {
        let client = client.clone();
        set.spawn(async move { (i, run_once(&client, &spec, &url).await) });
    }
    let mut results = Vec::new();
    while let Some(r) = set.join_next().await {
        results.push(r?);
    }
    results.sort_by_key(|(i, _)| *i);
    let target = match (&common.environment, &base_url) {
        (Some(e), Some(u)) => format!("{e} {u}"),
        (None, Some(u)) => u.clone(),
        (Some(e), None) => e.clone(),
        (None, None) => "(no base URL)".to_owned(),
    };
    let mut report = crate::Report::new(tool, env!("CARGO_PKG_VERSION"), target);
    for (_, c) in results {
        report.push(c);
    }
    let (passed, failed, ..) = report.counts();
    report.output("passed", passed);
    report.output("failed", failed);
    report.finish(started.elapsed());
    crate::cli::emit(&report, &common.output)
}
