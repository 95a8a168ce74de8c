//! Bad input through the real binaries: a `deploy.toml` of arbitrary bytes (and arbitrary
//! mutations of the example file) never makes a tool panic or exit with anything but 0 or 2, and
//! a refused file is named with its line and column. Seeded; `PROPTEST_CASES=N` for more.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use deploy_action_e2e::rig::tool;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config(ci: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ci);
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x0f02_2c11),
        failure_persistence: None,
        ..Config::default()
    }
}

fn example() -> Vec<u8> {
    std::fs::read(deploy_action_e2e::rig::workspace_root().join("deploy.example.toml")).unwrap()
}

/// Runs `smoke-test --help`-free: loading the config is all that happens before the base URL is
/// needed, and the closed port keeps any check that does run from going anywhere.
fn load(bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("deploy.toml"), bytes).unwrap();
    let out = tool("smoke-test", dir.path())
        .args([
            "--base-url",
            "http://127.0.0.1:9",
            "--retry-for",
            "0s",
            "--timeout",
            "2s",
        ])
        .env("API_TOKEN", "tok-fuzz-1234")
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    prop_assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "{stderr}"
    );
    // 1: the file was fine and its checks failed against the closed port; 2: refused, located.
    prop_assert!(code == 1 || code == 2, "exit {code}: {stderr}");
    if code == 2 && !stderr.contains("no [[smoke.checks]]") {
        // The file, line and column: `error: ./deploy.toml:3:7: key: message`.
        let located = stderr
            .strip_prefix("error: ./deploy.toml:")
            .and_then(|rest| {
                rest.split(':')
                    .take(2)
                    .map(|n| n.parse::<u32>().ok())
                    .collect::<Option<Vec<_>>>()
            })
            .is_some_and(|lc| lc.len() == 2 && lc.iter().all(|n| *n >= 1));
        prop_assert!(located, "{stderr}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(200))]

    #[test]
    fn arbitrary_bytes_as_deploy_toml(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        load(&bytes)?;
    }

    #[test]
    fn mutated_example_file(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = example();
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len()));
        }
        load(&bytes)?;
    }
}
