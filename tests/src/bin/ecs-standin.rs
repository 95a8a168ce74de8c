//! The ECS stand-in as a process, for the demo and the rollback benchmark:
//! `ecs-standin --moto URL [--port N] [--log FILE] [--answer OP=FILE]...` prints its URL on stdout,
//! forwards to moto what moto can do, completes each UpdateService's rollout, answers OP with the
//! recorded JSON in FILE, and with `--log` appends one line per call (`EPOCH_MS OPERATION`) to FILE.

use clap::Parser;
use deploy_action_e2e::ecs_standin::EcsStandIn;

/// Serve the ECS stand-in on loopback in front of moto.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// moto's URL.
    #[arg(long)]
    moto: String,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Append `EPOCH_MS OPERATION` per call to this file.
    #[arg(long)]
    log: Option<std::path::PathBuf>,
    /// Answer ECS operation OP with the JSON in FILE (what moto cannot produce, e.g. stopped tasks
    /// with their reasons); repeat.
    #[arg(long, value_name = "OP=FILE")]
    answer: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use std::io::Write;
    let args = Args::parse();
    let standin = EcsStandIn::start_on(&format!("127.0.0.1:{}", args.port), &args.moto).await?;
    if let Some(path) = &args.log {
        standin.log_to(path)?;
    }
    for a in &args.answer {
        let (op, file) = a
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--answer {a}: write OP=FILE"))?;
        let body: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file)?)?;
        standin.answer(op, body);
    }
    let mut out = std::io::stdout();
    writeln!(out, "{}", standin.url)?;
    out.flush()?;
    std::future::pending::<()>().await;
    Ok(())
}
