//! `health-check`: is the environment healthy? Runs the `[health]` checks of deploy.toml, or the
//! Control Center contract's own three (runbook 4.1) when there is no config file.

use deploy_core::Exit;
use deploy_core::cli::CommonArgs;
use deploy_core::config::EMBEDDED_HEALTH;

/// Wait until an environment is healthy: HTTP health, readiness and MCP checks.
#[derive(Debug, clap::Parser)]
#[command(name = "health-check", version, about, long_about = None)]
pub struct Args {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
}

/// Runs the tool.
pub async fn run(args: Args) -> anyhow::Result<Exit> {
    deploy_core::checks::run_suite(
        "health-check",
        &args.common,
        |c| &c.health.checks,
        EMBEDDED_HEALTH,
    )
    .await
}
