//! The configs used when there is no `deploy.toml`: the Control Center contract's own checks.

/// The Control Center contract's own health checks (runbook 4.1), used when there is no config.
pub const EMBEDDED_HEALTH: &str = include_str!("embedded-health.toml");

/// The Control Center contract's own smoke tests (runbook 4.2), used when there is no config.
pub const EMBEDDED_SMOKE: &str = include_str!("embedded-smoke.toml");
