//! The `rollback` binary: parse arguments, run, map the outcome to the exit code.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match deploy_core::cli::parse::<rollback::Args>() {
        Ok(args) => deploy_core::cli::run(rollback::run(args)).await,
        Err(exit) => exit.into(),
    }
}
