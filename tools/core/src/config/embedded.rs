//! The configs used when there is no `deploy.toml`: the Control Center contract's own checks.

/// The Control Center contract's own health checks (runbook 4.1), used when there is no config.
pub const EMBEDDED_HEALTH: &str = r#"
[[health.checks]]
name = "Control Center health"
path = "/api/health"
status = 200

[[health.checks]]
name = "Control Center readiness"
path = "/api/ready"
status = 200
assert = [".ready == true"]

[[health.checks]]
name = "MCP servers"
path = "/api/mcp/health"
status = 200
assert = ['.status == "healthy"']
"#;

/// The Control Center contract's own smoke tests (runbook 4.2), used when there is no config.
pub const EMBEDDED_SMOKE: &str = r#"
[[smoke.checks]]
name = "Homepage"
path = "/"
status = "2xx"

[[smoke.checks]]
name = "API health"
path = "/api/health"
assert = ['.status == "ok"']

[[smoke.checks]]
name = "API readiness"
path = "/api/ready"
assert = [".ready == true"]

[[smoke.checks]]
name = "MCP servers"
path = "/api/mcp/health"
assert = ['.status == "healthy"']

[[smoke.checks]]
name = "Workflow API"
path = "/api/workflows"
headers = { Authorization = "Bearer ${API_TOKEN}" }
assert = [".workflows != null"]
"#;
