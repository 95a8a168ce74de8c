//! The `health-check` binary: parse arguments, run, map the outcome to the exit code.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match deploy_core::cli::parse::<health_check::Args>() {
        Ok(args) => deploy_core::cli::run(health_check::run(args)).await,
        Err(exit) => exit.into(),
    }
}
