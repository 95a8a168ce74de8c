//! Which tool a start of the `deploy-action` binary means. The release ships one binary; the
//! five tool names are links to it (the action's install makes them), so a user still runs
//! `health-check --wait 5m`. Started under its own name, the binary takes the tool from its first
//! argument: `deploy-action health-check --wait 5m`. Kept apart from `main.rs` so the rule is
//! tested without linking the tools.

use std::ffi::{OsStr, OsString};
use std::path::Path;

/// The tools, by the names users call them (and the links are named).
pub const TOOLS: [&str; 5] = [
    "sync-check",
    "ecr-push",
    "health-check",
    "smoke-test",
    "rollback",
];

/// The binary's own name.
pub const NAME: &str = "deploy-action";

/// What one start of the binary does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatch {
    /// Run `tool` with `argv` (its first element is the tool's name, as clap expects).
    Tool {
        tool: &'static str,
        argv: Vec<OsString>,
    },
    /// Print this on stdout and exit 0 (`--help`, `--version`).
    Print(String),
    /// Print this on stderr and exit 2: no tool, or one that does not exist.
    Usage(String),
}

/// The tool a program name stands for: its file name, without a `.exe`, when that is one of
/// [`TOOLS`] (`/opt/hostedtoolcache/deploy-action/1.2.0/x64/health-check` is health-check).
pub fn tool_named(program: &OsStr) -> Option<&'static str> {
    let file = Path::new(program).file_name()?.to_str()?;
    let file = file.strip_suffix(".exe").unwrap_or(file);
    TOOLS.iter().copied().find(|t| *t == file)
}

/// Decides what to run for the process's arguments (`args[0]` is the program name).
pub fn dispatch(mut args: Vec<OsString>) -> Dispatch {
    if let Some(tool) = args.first().and_then(|a| tool_named(a)) {
        return Dispatch::Tool { tool, argv: args };
    }
    let Some(first) = args.get(1).and_then(|a| a.to_str().map(str::to_owned)) else {
        return Dispatch::Usage(if args.len() < 2 {
            format!(
                "error: no tool given; {NAME} runs one of: {}\n\n{}",
                TOOLS.join(", "),
                help()
            )
        } else {
            // Not UTF-8: no tool has such a name.
            format!(
                "error: {NAME} has no tool by that name (it is not UTF-8); it runs one of: {}",
                TOOLS.join(", ")
            )
        });
    };
    match first.as_str() {
        "-h" | "--help" | "help" => Dispatch::Print(help()),
        "-V" | "--version" => Dispatch::Print(format!("{NAME} {}\n", version())),
        name => match TOOLS.iter().copied().find(|t| *t == name) {
            Some(tool) => {
                // The tool's argv: its own name first, then the rest as given.
                args.drain(..2);
                args.insert(0, OsString::from(tool));
                Dispatch::Tool { tool, argv: args }
            }
            None => Dispatch::Usage(format!(
                "error: {NAME} has no tool '{}'; it runs one of: {}\n\nUsage: {NAME} <TOOL> [ARGS]...",
                shown(name),
                TOOLS.join(", ")
            )),
        },
    }
}

/// The release version every tool reports.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// An argument as shown in a message: at most 64 characters, control characters escaped.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(64).flat_map(char::escape_debug).collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

fn help() -> String {
    let mut h = format!(
        "{NAME} {}: the deploy-action tools in one binary\n\n\
         Usage: {NAME} <TOOL> [ARGS]...\n   or: <TOOL> [ARGS]...   (a link named after the tool)\n\nTools:\n",
        version()
    );
    for t in TOOLS {
        h.push_str("  ");
        h.push_str(t);
        h.push('\n');
    }
    h.push_str("\n`<TOOL> --help` shows a tool's flags.\n");
    h
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_link_named_after_a_tool_runs_that_tool_with_its_arguments_untouched() {
        let args = os(&[
            "/cache/deploy-action/1.0.0/x64/health-check",
            "--wait",
            "5m",
        ]);
        assert_eq!(
            dispatch(args.clone()),
            Dispatch::Tool {
                tool: "health-check",
                argv: args
            }
        );
        assert_eq!(tool_named(OsStr::new("rollback.exe")), Some("rollback"));
        assert_eq!(tool_named(OsStr::new("/usr/bin/health-check-old")), None);
    }

    #[test]
    fn the_binary_under_its_own_name_takes_the_tool_from_its_first_argument() {
        assert_eq!(
            dispatch(os(&["./deploy-action", "smoke-test", "--jobs", "4"])),
            Dispatch::Tool {
                tool: "smoke-test",
                argv: os(&["smoke-test", "--jobs", "4"])
            }
        );
        assert!(
            matches!(dispatch(os(&["deploy-action", "--version"])), Dispatch::Print(v) if v == format!("deploy-action {}\n", version()))
        );
        assert!(
            matches!(dispatch(os(&["deploy-action", "--help"])), Dispatch::Print(h) if TOOLS.iter().all(|t| h.contains(t)))
        );
    }

    #[test]
    fn no_tool_or_an_unknown_one_is_a_usage_error_naming_the_tools() {
        for args in [
            os(&[]),
            os(&["deploy-action"]),
            os(&["deploy-action", "deploy"]),
        ] {
            let Dispatch::Usage(msg) = dispatch(args.clone()) else {
                panic!("{args:?} is not a usage error");
            };
            assert!(
                msg.contains("sync-check, ecr-push, health-check, smoke-test, rollback"),
                "{msg}"
            );
        }
        let Dispatch::Usage(msg) = dispatch(os(&["deploy-action", "deploy"])) else {
            unreachable!()
        };
        assert!(msg.contains("no tool 'deploy'"), "{msg}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, rng_seed: proptest::test_runner::RngSeed::Fixed(17), ..ProptestConfig::default() })]

        /// Any argv: no panic; a tool is run only under its exact name, with the arguments after
        /// the tool's name passed through in order; messages stay short.
        #[test]
        fn any_argv_dispatches_without_panic(program in "\\PC{0,40}", first in "\\PC{0,80}", rest in proptest::collection::vec("\\PC{0,20}", 0..4)) {
            let mut args = vec![OsString::from(&program), OsString::from(&first)];
            args.extend(rest.iter().map(OsString::from));
            match dispatch(args.clone()) {
                Dispatch::Tool { tool, argv } => {
                    prop_assert!(TOOLS.contains(&tool));
                    if tool_named(OsStr::new(&program)).is_some() {
                        prop_assert_eq!(argv, args);
                    } else {
                        prop_assert_eq!(first.as_str(), tool);
                        prop_assert_eq!(&argv[1..], &args[2..]);
                    }
                }
                Dispatch::Print(_) => prop_assert!(matches!(first.as_str(), "-h" | "--help" | "help" | "-V" | "--version")),
                Dispatch::Usage(msg) => prop_assert!(msg.chars().count() < 400, "{}", msg),
            }
        }
    }
}
