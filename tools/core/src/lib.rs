//! deploy-core: what the five deploy-action tools share.
//!
//! Layering (each module uses only those listed after it): [`cli`] (flags, config loading, sinks)
//! and the renderers; [`report`], [`gha`], [`http`], [`retry`]; [`config`]; [`duration`], [`urls`],
//! [`secret`]; [`exit`], which knows no other module (a `ConfigError` converts into a classified
//! usage error). AWS and GitHub
//! clients are behind the `aws`/`ecs`/`ecr`/`cloudwatch` and `github` features, so a tool compiles
//! only the SDKs it calls.

pub mod checks;
pub mod cli;
#[cfg(feature = "cloudwatch")]
pub mod cloudwatch;
pub mod config;
#[cfg(feature = "diagnose")]
pub mod diagnose;
pub mod duration;
pub mod ecs;
pub mod exit;
pub mod gha;
pub mod http;
pub mod incidents;
pub mod jq;
#[cfg(feature = "logs")]
pub mod logs;
pub mod notify;
#[cfg(test)]
mod proptests;
pub mod render;
pub mod report;
pub mod retry;
pub mod secret;
pub mod settings;
pub mod taskdef;
pub mod testing;
pub mod urls;
pub mod x509;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "github")]
pub mod github;

pub use exit::Exit;
pub use report::{Check, Report, Status};

#[cfg(feature = "aws")]
pub use aws_config;
#[cfg(feature = "cloudwatch")]
pub use aws_sdk_cloudwatch;
#[cfg(feature = "logs")]
pub use aws_sdk_cloudwatchlogs;
#[cfg(feature = "ecr")]
pub use aws_sdk_ecr;
/// Re-exported SDKs, so tools and tests use the exact versions core was built with.
#[cfg(feature = "ecs")]
pub use aws_sdk_ecs;
#[cfg(feature = "github")]
pub use octocrab;

/// Reads a file of at most `limit` bytes: a larger one (or an endless one, `/dev/zero`) is an
/// `InvalidData` error saying so, after reading no more than `limit + 1` bytes, instead of
/// filling the memory.
pub fn read_file_capped(path: &std::path::Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} MiB", limit / (1024 * 1024)),
        ));
    }
    Ok(bytes)
}
