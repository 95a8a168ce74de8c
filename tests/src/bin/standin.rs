//! The stand-in service as a process, for the demo and for manual runs:
//! `standin [--port N] [--token T]` prints its URL on stdout and serves until killed.

use clap::Parser;
use deploy_action_e2e::standin::{Behaviour, Shared, router};

/// Serve the Control Center contract on loopback.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Bearer token /api/workflows accepts.
    #[arg(long, env = "STANDIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// commitSha /api/health reports.
    #[arg(long)]
    commit_sha: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut b = Behaviour::default();
    if let Some(t) = args.token {
        b.token = t;
    }
    if let Some(c) = args.commit_sha {
        b.commit_sha = c;
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let shared = Shared::default();
    shared.set(b);
    use std::io::Write;
    let mut out = std::io::stdout();
    writeln!(out, "http://{}", listener.local_addr()?)?;
    out.flush()?;
    axum::serve(listener, router(shared)).await?;
    Ok(())
}
