//! The `ecr-push` binary: parse arguments, run, map the outcome to the exit code.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match deploy_core::cli::parse::<ecr_push::Args>() {
        Ok(args) => deploy_core::cli::run(ecr_push::run(args)).await,
        Err(exit) => exit.into(),
    }
}
