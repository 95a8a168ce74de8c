//! `smoke-test`: runs the `[smoke]` suite of deploy.toml, or the Control Center contract's own
//! five smoke tests (runbook 4.2) when there is no config file.

use deploy_core::Exit;
use deploy_core::cli::CommonArgs;
use deploy_core::config::EMBEDDED_SMOKE;

/// Run a declarative suite of HTTP checks in parallel.
#[derive(Debug, clap::Parser)]
#[command(name = "smoke-test", version, about, long_about = None)]
pub struct Args {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
}

/// Runs the tool.
pub async fn run(args: Args) -> anyhow::Result<Exit> {
    deploy_core::checks::run_suite(
        "smoke-test",
        &args.common,
        |c| &c.smoke.checks,
        EMBEDDED_SMOKE,
    )
    .await
}
