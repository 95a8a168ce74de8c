//! The `smoke-test` binary: parse arguments, run, map the outcome to the exit code.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match deploy_core::cli::parse::<smoke_test::Args>() {
        Ok(args) => deploy_core::cli::run(smoke_test::run(args)).await,
        Err(exit) => exit.into(),
    }
}
