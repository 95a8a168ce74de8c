//! `rollback`: Roll ECS services back to the last good task definition.
//!
//! Its behaviour arrives with a later issue; today the binary has its flags, help and version only.

use deploy_core::Exit;
use deploy_core::cli::CommonArgs;

/// Roll ECS services back to the last good task definition.
#[derive(Debug, clap::Parser)]
#[command(name = "rollback", version, about, long_about = None)]
pub struct Args {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub aws: deploy_core::aws::AwsArgs,
    /// Show the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Required to act on a protected environment: repeat its name.
    #[arg(long, value_name = "ENV")]
    pub confirm: Option<String>,
}

/// Runs the tool.
pub async fn run(_args: Args) -> anyhow::Result<Exit> {
    Err(deploy_core::exit::usage(
        "rollback is not implemented in this version yet (a later issue)",
    ))
}
