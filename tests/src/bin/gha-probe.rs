//! Writes one step output through deploy-core's Actions writer: `PROBE_NAME` = `PROBE_VALUE`.
//! The act wiring test runs it inside a composite action and reads the value back in a later step.

fn main() -> std::io::Result<()> {
    let name = std::env::var("PROBE_NAME").unwrap_or_else(|_| "message".into());
    let value = std::env::var("PROBE_VALUE").unwrap_or_default();
    let mut gha = deploy_core::gha::Actions::from_env();
    gha.set_output(&name, &value)?;
    gha.append_summary(&format!("probe wrote `{name}`"))
}
