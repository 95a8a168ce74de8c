//! `ecr-push`: Push OCI images to Amazon ECR: daemonless, digest-aware, idempotent.
//!
//! Its behaviour arrives with the ecr-push issue; today the binary has its flags, help and version only.

use deploy_core::Exit;
use deploy_core::cli::CommonArgs;

/// Push OCI images to Amazon ECR: daemonless, digest-aware, idempotent.
#[derive(Debug, clap::Parser)]
#[command(name = "ecr-push", version, about, long_about = None)]
pub struct Args {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub aws: deploy_core::aws::AwsArgs,
    /// Show what would be pushed and tagged; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs the tool.
pub async fn run(_args: Args) -> anyhow::Result<Exit> {
    Err(deploy_core::exit::usage(
        "ecr-push is not implemented in this version yet (the ecr-push issue)",
    ))
}
