//! The `deploy-action` binary: the five tools in one (they share the AWS SDK, tokio and reqwest,
//! so one binary is a fraction of five). Which tool runs: see [`deploy_action::dispatch`].

use std::ffi::OsString;
use std::future::Future;
use std::io::Write;
use std::process::ExitCode;

use deploy_action::Dispatch;
use deploy_core::Exit;
use deploy_core::gha::Actions;

fn main() -> ExitCode {
    match deploy_action::dispatch(std::env::args_os().collect()) {
        Dispatch::Tool { tool, argv } => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    return usage_or_dependency(
                        Exit::Dependency,
                        &format!("error: cannot start the async runtime: {e}"),
                    );
                }
            };
            runtime.block_on(run(tool, argv))
        }
        Dispatch::Print(text) => {
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Dispatch::Usage(msg) => usage_or_dependency(Exit::Usage, &msg),
    }
}

async fn run(tool: &'static str, argv: Vec<OsString>) -> ExitCode {
    match tool {
        "sync-check" => tool_main(tool, argv, sync_check::run).await,
        "ecr-push" => tool_main(tool, argv, ecr_push::run).await,
        "health-check" => tool_main(tool, argv, health_check::run).await,
        "smoke-test" => tool_main(tool, argv, smoke_test::run).await,
        "rollback" => tool_main(tool, argv, rollback::run).await,
        other => usage_or_dependency(Exit::Usage, &format!("error: no tool {other}")),
    }
}

/// What each tool's own `main` was: parse (never exiting), run, map the outcome to the exit code.
/// Refused flags are still answered on GitHub when the run would have published.
async fn tool_main<A, F>(tool: &str, argv: Vec<OsString>, run: impl FnOnce(A) -> F) -> ExitCode
where
    A: clap::Parser,
    F: Future<Output = anyhow::Result<Exit>>,
{
    match deploy_core::cli::parse_reporting::<A, _, _>(argv.clone()) {
        Ok(args) => deploy_core::cli::run(run(args)).await,
        Err((exit, Some(why))) => {
            deploy_core::github::answer_refused_flags(tool, &argv, &why).await;
            exit.into()
        }
        Err((exit, None)) => exit.into(),
    }
}

/// A start that runs no tool: the message on stderr, and the `outcome` and `exit-code` outputs
/// the action promises whatever happened.
fn usage_or_dependency(exit: Exit, msg: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "{msg}");
    let mut gha = Actions::from_env();
    let _ = gha.set_output("outcome", &exit.to_string());
    let _ = gha.set_output("exit-code", &exit.code().to_string());
    exit.into()
}
