//! The exit codes every tool returns: public API, documented in README.md.

use std::fmt;

/// How a tool run ended. The numeric values are a contract with workflows and scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exit {
    /// 0: everything checked passed, or the change was made.
    Passed,
    /// 1: the check ran and failed (behind, conflicts, unhealthy, assertion failed, rollback failed).
    Failed,
    /// 2: usage or configuration error: bad flags, bad `deploy.toml`, bad input files.
    Usage,
    /// 3: an outside dependency failed: AWS or GitHub API error, auth, registry, network.
    Dependency,
}

impl Exit {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Passed => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Dependency => 3,
        }
    }

    /// The worse of two outcomes: usage and dependency errors outrank a failed check.
    pub fn worst(self, other: Exit) -> Exit {
        fn rank(e: Exit) -> u8 {
            match e {
                Exit::Passed => 0,
                Exit::Failed => 1,
                Exit::Dependency => 2,
                Exit::Usage => 3,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Exit::Passed => "passed",
            Exit::Failed => "failed",
            Exit::Usage => "usage error",
            Exit::Dependency => "dependency error",
        };
        f.write_str(s)
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

/// An error that knows which exit code it maps to. Put it anywhere in an `anyhow` chain
/// (as the root or as context) and [`classify`] finds it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Classified {
    /// The exit code this error stands for.
    pub exit: Exit,
    /// What went wrong, one line, lowercase.
    pub message: String,
}

/// A usage or configuration error (exit 2).
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Classified {
        exit: Exit::Usage,
        message: message.into(),
    })
}

/// An outside-dependency error (exit 3).
pub fn dependency(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Classified {
        exit: Exit::Dependency,
        message: message.into(),
    })
}

/// The exit code for an error chain: the first classified error wins (configuration errors
/// arrive classified as usage errors); anything else is an outside dependency failing (exit 3).
pub fn classify(err: &anyhow::Error) -> Exit {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Classified>())
        .map_or(Exit::Dependency, |c| c.exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        assert_eq!(Exit::Passed.code(), 0);
        assert_eq!(Exit::Failed.code(), 1);
        assert_eq!(Exit::Usage.code(), 2);
        assert_eq!(Exit::Dependency.code(), 3);
    }

    #[test]
    fn classify_finds_a_classified_cause_under_context() {
        let err = usage("bad flag").context("while parsing");
        assert_eq!(classify(&err), Exit::Usage);
        let err = anyhow::anyhow!("socket closed");
        assert_eq!(classify(&err), Exit::Dependency);
    }

    #[test]
    fn worst_prefers_errors_over_failures() {
        assert_eq!(Exit::Passed.worst(Exit::Failed), Exit::Failed);
        assert_eq!(Exit::Failed.worst(Exit::Dependency), Exit::Dependency);
        assert_eq!(Exit::Usage.worst(Exit::Failed), Exit::Usage);
    }
}
