//! `sync-check`: Is this branch up to date with its base, and would it merge cleanly?
//!
//! Its behaviour arrives with the sync-check issue; today the binary has its flags, help and version only.

use deploy_core::Exit;
use deploy_core::cli::CommonArgs;

/// Is this branch up to date with its base, and would it merge cleanly?
#[derive(Debug, clap::Parser)]
#[command(name = "sync-check", version, about, long_about = None)]
pub struct Args {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub github: deploy_core::github::GithubArgs,
}

/// Runs the tool.
pub async fn run(_args: Args) -> anyhow::Result<Exit> {
    Err(deploy_core::exit::usage(
        "sync-check is not implemented in this version yet (the sync-check issue)",
    ))
}
