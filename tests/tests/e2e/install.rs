//! The install path of the composite action, run by act exactly as a user writes it
//! (`uses: afu9/deploy-action@v1`, the action replaced by a copy of this tree): a release archive
//! built from this tree is served by a real local HTTPS server (its own CA handed to curl), and
//! the action's checksums.txt decides what may run. Each run gets its own act cache directory
//! (`XDG_CACHE_HOME`), so its tool cache and RUNNER_TEMP are its own and can be inspected.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)] // test code

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use deploy_action_e2e::https::HttpsServer;
use deploy_action_e2e::release::{self, archive, asset, host_target, sha256_hex};
use deploy_action_e2e::rig::{self, act_repo};
use deploy_action_e2e::standin::{Behaviour, StandIn};

const WORKFLOW: &str = r#"name: install
on: push
jobs:
  install:
    runs-on: ubuntu-latest
    steps:
      - shell: bash
        run: date +%s%N > "$OUT_DIR/t0"
      - id: tool
        uses: afu9/deploy-action@__REF__
        with:
__WITH__
      - if: always()
        shell: bash
        env:
          OUTCOME: ${{ steps.tool.outputs.outcome }}
          EXIT_CODE: ${{ steps.tool.outputs.exit-code }}
          PASSED: ${{ steps.tool.outputs.passed }}
        run: |
          date +%s%N > "$OUT_DIR/t1"
          printf 'outcome=%s\nexit-code=%s\npassed=%s\n' "$OUTCOME" "$EXIT_CODE" "$PASSED" > "$OUT_DIR/outputs"
"#;

struct Run {
    ok: bool,
    log: String,
    outputs: BTreeMap<String, String>,
    /// From the step before the action to the step after it.
    took: Duration,
}

/// One act run of the workflow with `with` (YAML lines under `with:`), the action replaced by
/// `action_dir`, act's caches (tool cache, RUNNER_TEMP) under `cache_home`.
async fn act(action_dir: &Path, cache_home: &Path, with: &str, env: &[(&str, String)]) -> Run {
    act_at("v1", action_dir, cache_home, with, env).await
}

/// [`act`] with the action used at `uses_ref` (`v1`, `v1.2.3`, a commit SHA).
async fn act_at(
    uses_ref: &str,
    action_dir: &Path,
    cache_home: &Path,
    with: &str,
    env: &[(&str, String)],
) -> Run {
    let with: String = with.lines().map(|l| format!("          {l}\n")).collect();
    let repo = act_repo(&[(
        ".github/workflows/install.yml",
        &WORKFLOW
            .replace("__WITH__\n", &with)
            .replace("__REF__", uses_ref),
    )]);
    let out_dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(rig::act());
    cmd.current_dir(repo.path())
        .args(["push", "-P", "ubuntu-latest=-self-hosted"])
        .arg("--local-repository")
        .arg(format!(
            "afu9/deploy-action@{uses_ref}={}",
            action_dir.display()
        ))
        .env("XDG_CACHE_HOME", cache_home)
        .env("OUT_DIR", out_dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().await.unwrap();
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let read = |f: &str| std::fs::read_to_string(out_dir.path().join(f));
    let outputs = read("outputs")
        .unwrap_or_else(|e| panic!("{e}\n{log}"))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let nanos = |f: &str| read(f).unwrap().trim().parse::<u128>().unwrap();
    let took = Duration::from_nanos((nanos("t1") - nanos("t0")) as u64);
    Run {
        ok: output.status.success(),
        log,
        outputs,
        took,
    }
}

/// A test's release: a unique version (so nothing is shared through any cache), its archive on
/// the server, and an action copy whose checksums.txt lists `listed_sum` for it.
struct Fixture {
    server: HttpsServer,
    version: String,
    asset: String,
    action: tempfile::TempDir,
    cache_home: tempfile::TempDir,
}

impl Fixture {
    fn new(served: &[u8], listed_sum: &str) -> Fixture {
        let version = format!("v0.1.0-test.{}", rig::unique("i").replace('-', "."));
        let asset = asset(&version, host_target());
        let server = HttpsServer::start();
        server.put(&format!("{version}/{asset}"), served);
        let action = release::action_copy(&version, &[(listed_sum.to_owned(), asset.clone())]);
        Fixture {
            server,
            version,
            asset,
            action,
            cache_home: tempfile::tempdir().unwrap(),
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DEPLOY_ACTION_RELEASE_URL", self.server.url.clone()),
            ("CURL_CA_BUNDLE", self.server.ca.display().to_string()),
        ]
    }

    async fn run(&self, with: &str) -> Run {
        self.run_with(with, &[]).await
    }

    async fn run_with(&self, with: &str, extra: &[(&'static str, String)]) -> Run {
        let mut env = self.env();
        env.extend_from_slice(extra);
        act(self.action.path(), self.cache_home.path(), with, &env).await
    }

    /// `<tool cache>/deploy-action/<version without v>/<arch>`
    fn installed(&self) -> PathBuf {
        let arch = if host_target().starts_with("aarch64") {
            "arm64"
        } else {
            "x64"
        };
        self.cache_home
            .path()
            .join("act/tool_cache/deploy-action")
            .join(self.version.trim_start_matches('v'))
            .join(arch)
    }

    /// What the download and extraction left in RUNNER_TEMP and next to the install.
    fn leftovers(&self) -> Vec<PathBuf> {
        release::files_under(self.cache_home.path())
            .into_iter()
            .filter(|p| {
                let s = p.to_string_lossy();
                s.contains("deploy-action-download") || s.contains(".partial")
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_released_archive_installs_verified_into_the_tool_cache_and_runs() {
    let bytes = archive();
    let f = Fixture::new(bytes, &sha256_hex(bytes));
    let standin = StandIn::start(Behaviour {
        token: "tok-install-4711".into(),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let run = f
        .run_with(
            &format!(
                "tool: smoke-test\nbase-url: {}\ngithub-token: \"\"\nargs: --retry-for=1s",
                standin.url
            ),
            &[("API_TOKEN", "tok-install-4711".into())],
        )
        .await;
    assert!(run.ok, "act failed:\n{}", run.log);
    assert_eq!(run.outputs["outcome"], "passed", "{}", run.log);
    assert_eq!(run.outputs["passed"], "5", "{}", run.log);
    assert_eq!(
        f.server.requests(),
        vec![format!("/{}/{}", f.version, f.asset)],
        "one download of the archive, nothing else"
    );
    let dir = f.installed();
    assert!(
        dir.join("deploy-action").is_file(),
        "deploy-action missing in {}",
        dir.display()
    );
    for t in release::TOOLS {
        // Each tool is a link to the one binary, beside it (so the install dir moves as one).
        assert_eq!(
            std::fs::read_link(dir.join(t)).ok(),
            Some(std::path::PathBuf::from("deploy-action")),
            "{t} in {} is not a link to deploy-action",
            dir.display()
        );
    }
    let marker = std::fs::read_to_string(dir.with_extension("complete")).unwrap();
    assert_eq!(
        marker,
        sha256_hex(bytes),
        "completion marker holds the archive's sha256"
    );
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());
    assert!(
        run.log.contains(&format!("installed {}", f.asset)),
        "{}",
        run.log
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_archive_is_refused_and_nothing_runs() {
    let genuine = archive();
    let mut tampered = genuine.to_vec();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x55;
    let f = Fixture::new(&tampered, &sha256_hex(genuine));
    let standin = StandIn::start(Behaviour::default()).await.unwrap();
    let run = f
        .run(&format!(
            "tool: smoke-test\nbase-url: {}\ngithub-token: \"\"",
            standin.url
        ))
        .await;
    assert!(!run.ok, "the job must fail:\n{}", run.log);
    assert_eq!(run.outputs["outcome"], "dependency error", "{}", run.log);
    assert_eq!(run.outputs["exit-code"], "3", "{}", run.log);
    assert!(
        run.log.contains(&format!(
            "checksum mismatch for {}: checksums.txt says {}, the download is {}; refusing to install or run it",
            f.asset,
            sha256_hex(genuine),
            sha256_hex(&tampered)
        )),
        "{}",
        run.log
    );
    assert!(
        standin.shared.hits().is_empty(),
        "no tool ran: {:?}",
        standin.shared.hits()
    );
    let dir = f.installed();
    assert!(!dir.exists(), "nothing installed at {}", dir.display());
    assert!(!dir.with_extension("complete").exists());
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_tool_cache_downloads_nothing_whatever_the_ref_and_starts_the_tool_at_once() {
    let bytes = archive();
    let f = Fixture::new(bytes, &sha256_hex(bytes));
    let with = "tool: health-check\ngithub-token: \"\"\nargs: --version";
    let cold = f.run(with).await;
    assert!(cold.ok, "{}", cold.log);
    assert!(
        cold.log
            .contains(&format!("health-check {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        cold.log
    );
    assert_eq!(f.server.requests().len(), 1);
    let warm = f.run(with).await;
    assert!(warm.ok, "{}", warm.log);
    assert!(warm.log.contains("from the tool cache"), "{}", warm.log);
    assert!(
        warm.log
            .contains(&format!("health-check {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        warm.log
    );
    assert_eq!(
        f.server.requests().len(),
        1,
        "the warm run downloaded: {:?}",
        f.server.requests()
    );
    // The ref the action is used at does not choose the binaries: the VERSION file does.
    for uses_ref in ["v0.1.0", "0123456789abcdef0123456789abcdef01234567"] {
        let other = act_at(
            uses_ref,
            f.action.path(),
            f.cache_home.path(),
            with,
            &f.env(),
        )
        .await;
        assert!(other.ok, "{}", other.log);
        assert!(
            other
                .log
                .contains(&format!("health-check {} from the tool cache", f.version)),
            "@{uses_ref}: {}",
            other.log
        );
    }
    assert_eq!(f.server.requests().len(), 1, "{:?}", f.server.requests());
    eprintln!(
        "FIGURE install: action start to tool run: warm tool cache {} ms, download from the local server {} ms ({} bytes)",
        warm.took.as_millis(),
        cold.took.as_millis(),
        bytes.len()
    );
    assert!(warm.took < Duration::from_secs(3), "warm: {:?}", warm.took);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_install_failure_still_sets_outcome_and_exit_code() {
    // An explicit version with no checksum line: a clear error, no download, outputs set.
    let bytes = archive();
    let f = Fixture::new(bytes, &sha256_hex(bytes));
    let run = f
        .run("tool: smoke-test\nversion: v9.9.9\ngithub-token: \"\"")
        .await;
    assert!(!run.ok, "{}", run.log);
    assert_eq!(run.outputs["outcome"], "usage error", "{}", run.log);
    assert_eq!(run.outputs["exit-code"], "2", "{}", run.log);
    assert!(
        run.log.contains(&format!(
            "no checksum for {} in this action's checksums.txt, so v9.9.9 (from input 'version') cannot be installed verified",
            asset("v9.9.9", host_target())
        )),
        "{}",
        run.log
    );
    assert!(f.server.requests().is_empty(), "{:?}", f.server.requests());
}

/// The install script alone, for the refusals that need a runner act cannot pretend to be.
fn install_script(env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(rig::workspace_root().join("scripts/action-install.sh"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("GITHUB_OUTPUT", &out)
        .env("RUNNER_TEMP", dir.path())
        .env("GITHUB_ACTION_PATH", rig::workspace_root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        std::fs::read_to_string(out).unwrap_or_default(),
    )
}

/// The action's own VERSION without its checksum line is the release's packaging fault (exit 3),
/// not the user's input (an explicit `version:` without one stays a usage error, above).
#[test]
fn a_version_file_without_its_checksum_is_a_packaging_fault_not_a_usage_error() {
    let action = tempfile::tempdir().unwrap();
    std::fs::create_dir(action.path().join("scripts")).unwrap();
    std::fs::copy(
        rig::workspace_root().join("scripts/action-install.sh"),
        action.path().join("scripts/action-install.sh"),
    )
    .unwrap();
    std::fs::write(action.path().join("VERSION"), "v1.0.0\n").unwrap();
    std::fs::write(action.path().join("checksums.txt"), "# none\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = std::process::Command::new("bash")
        .arg(action.path().join("scripts/action-install.sh"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("GITHUB_OUTPUT", &out)
        .env("RUNNER_TEMP", dir.path())
        .env("GITHUB_ACTION_PATH", action.path())
        .env("INPUT_TOOL", "smoke-test")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{log}");
    assert!(log.contains("a packaging fault, not your input"), "{log}");
    let outputs = std::fs::read_to_string(out).unwrap();
    assert!(
        outputs.contains("outcome=dependency error\nexit-code=3\n"),
        "{outputs}"
    );
}

#[test]
fn an_unsupported_runner_is_refused_by_name() {
    let (code, log, outputs) = install_script(&[
        ("INPUT_TOOL", "smoke-test"),
        ("INPUT_VERSION", "v0.1.0"),
        ("RUNNER_OS", "Windows"),
        ("RUNNER_ARCH", "X64"),
    ]);
    assert_eq!(code, 2, "{log}");
    assert!(
        log.contains("no release binary for this runner (RUNNER_OS=Windows, RUNNER_ARCH=X64)"),
        "{log}"
    );
    assert!(
        outputs.contains("outcome=usage error\nexit-code=2\n"),
        "{outputs}"
    );
}

#[test]
fn bad_inputs_are_named() {
    for (env, want) in [
        (
            vec![("INPUT_TOOL", "deploy")],
            "input 'tool' must be one of sync-check, ecr-push, health-check, smoke-test, rollback (got 'deploy')",
        ),
        (
            vec![("INPUT_TOOL", "smoke-test"), ("INPUT_VERSION", "latest")],
            "input 'version' is not a release version like v1.2.3: 'latest'",
        ),
        (
            vec![
                ("INPUT_TOOL", "smoke-test"),
                ("INPUT_BUILD_FROM_SOURCE", "yes"),
            ],
            "input 'build-from-source' must be true or false (got 'yes')",
        ),
    ] {
        let (code, log, _) = install_script(&env);
        assert_eq!(code, 2, "{log}");
        assert!(log.contains(want), "{log}");
    }
}

/// This tree's files as an action checkout (tracked and untracked-but-not-ignored: no target/).
fn source_copy() -> tempfile::TempDir {
    let root = rig::workspace_root();
    let list = Command::new("git")
        .args(["ls-files", "-co", "--exclude-standard", "-z"])
        .current_dir(&root)
        .output()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for f in list.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let f = String::from_utf8_lossy(f).into_owned();
        let (from, to) = (root.join(&f), dir.path().join(&f));
        if from.is_file() {
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(from, to).unwrap();
        }
    }
    dir
}

// A `cargo` first on PATH that records the environment and arguments the build gets (asserted
// below exactly as the action passed them), checks that the action's copy of the source is this
// workspace's (byte for byte: the manifests, the lock file and every file under tools/), then
// runs the real cargo, in the environment the action gave it, as the test command's build phase
// ran it on this workspace (`build --locked --workspace --bins`, dev profile, target/): cargo
// finds it fresh, so the proof costs seconds, not a cold build of the AWS SDK, and no binary
// another test is running is rebuilt (`-p deploy-action` alone would unify features differently
// and relink it). The test command's build runs with clippy's driver as the workspace wrapper
// (scripts/test.sh), so the shim passes those variables on as that build had them (the action
// itself rightly passes none), or cargo would see other flags and rebuild. What is tested is the
// action's call and environment, not the compiler. The binary is copied to where the action
// expects it.
const CARGO_SHIM: &str = r#"#!/usr/bin/env bash
set -euo pipefail
env > "__RECORD__/env"
printf '%s\n' "$@" > "__RECORD__/args"
wanted="$CARGO_TARGET_DIR"
tool="${*: -1}"
manifest=""
prev=""
for a in "$@"; do
  if [[ "$prev" == --manifest-path ]]; then manifest="$a"; fi
  prev="$a"
done
copy="$(dirname "$manifest")"
diff -r -q "$copy/tools" "__WORKSPACE__/tools" >&2
for f in Cargo.toml Cargo.lock tests/Cargo.toml; do cmp "$copy/$f" "__WORKSPACE__/$f" >&2; done
env __BUILD_ENV__ CARGO_TARGET_DIR="__WORKSPACE__/target" "__CARGO__" build --locked --manifest-path "__WORKSPACE__/Cargo.toml" --workspace --bins
mkdir -p "$wanted/release"
cp "__WORKSPACE__/target/debug/$tool" "$wanted/release/$tool"
"#;

/// The variables of the test command's build that change how cargo compiles, as `NAME='value'`
/// words for `env` (none of them holds a quote).
fn test_command_build_env() -> String {
    [
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CARGO_INCREMENTAL",
    ]
    .into_iter()
    .filter_map(|name| Some(format!("{name}='{}'", std::env::var(name).ok()?)))
    .collect::<Vec<_>>()
    .join(" ")
}

#[tokio::test(flavor = "multi_thread")]
async fn build_from_source_runs_cargo_without_credentials_in_a_log_group() {
    let action = source_copy();
    let shim = tempfile::tempdir().unwrap();
    let record = tempfile::tempdir().unwrap();
    let real = String::from_utf8(
        Command::new("bash")
            .args(["-c", "command -v cargo"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let workspace = rig::workspace_root();
    std::fs::write(
        shim.path().join("cargo"),
        CARGO_SHIM
            .replace("__RECORD__", &record.path().display().to_string())
            .replace("__WORKSPACE__", &workspace.display().to_string())
            .replace("__CARGO__", real.trim())
            .replace("__BUILD_ENV__", &test_command_build_env()),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(shim.path().join("cargo"))
        .status()
        .unwrap();
    let cache_home = tempfile::tempdir().unwrap();
    let secret = "aws-secret-never-in-a-build-0815";
    let run = act(
        action.path(),
        cache_home.path(),
        "tool: smoke-test\nbuild-from-source: true\nargs: --version",
        &[
            (
                "PATH",
                format!(
                    "{}:{}",
                    shim.path().display(),
                    std::env::var("PATH").unwrap()
                ),
            ),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEBUILD".into()),
            ("AWS_SECRET_ACCESS_KEY", secret.into()),
            ("GITHUB_TOKEN", "ghs_build_env_token_0123".into()),
            ("ACTIONS_RUNTIME_TOKEN", "runtime-token-0123".into()),
        ],
    )
    .await;
    assert!(run.ok, "{}", run.log);
    assert!(
        run.log
            .contains("deploy-action: building smoke-test from source (build-from-source: true)"),
        "{}",
        run.log
    );
    assert!(
        run.log
            .contains(&format!("smoke-test {}", env!("CARGO_PKG_VERSION"))),
        "the built tool ran: {}",
        run.log
    );
    let env = std::fs::read_to_string(record.path().join("env")).unwrap();
    for leak in ["AWS_", "GITHUB_", "ACTIONS_", "TOKEN", secret] {
        assert!(!env.contains(leak), "{leak} reached the build: {env}");
    }
    assert!(env.contains("\nHOME=") || env.starts_with("HOME="), "{env}");
    let args = std::fs::read_to_string(record.path().join("args")).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(args.len(), 7, "{args:?}");
    assert_eq!(
        [args[0], args[1], args[2], args[3], args[5], args[6]],
        [
            "build",
            "--release",
            "--locked",
            "--manifest-path",
            "-p",
            "deploy-action"
        ]
    );
    // The action's own checked-out copy (the shim compared it with this workspace), not this
    // workspace's manifest.
    assert!(
        args[4].ends_with("/Cargo.toml")
            && std::path::Path::new(args[4]) != workspace.join("Cargo.toml"),
        "{args:?}"
    );
    eprintln!(
        "FIGURE install: action start to tool run, build from source (cargo finds the test command's build fresh): {} ms",
        run.took.as_millis()
    );
}

/// The install script run as a step would run it, with `tool_cache` shared: its exit code, its
/// log and its outputs.
fn install_into(f: &Fixture, tool_cache: &Path) -> std::process::Child {
    let temp = tempfile::tempdir().unwrap().keep();
    let arch = if host_target().starts_with("aarch64") {
        "ARM64"
    } else {
        "X64"
    };
    std::process::Command::new("bash")
        .arg(f.action.path().join("scripts/action-install.sh"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("GITHUB_OUTPUT", temp.join("outputs"))
        .env("RUNNER_TEMP", &temp)
        .env("RUNNER_TOOL_CACHE", tool_cache)
        .env("RUNNER_OS", "Linux")
        .env("RUNNER_ARCH", arch)
        .env("GITHUB_ACTION_PATH", f.action.path())
        .env("INPUT_TOOL", "smoke-test")
        .env("DEPLOY_ACTION_RELEASE_URL", &f.server.url)
        .env("CURL_CA_BUNDLE", &f.server.ca)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Jobs on one runner share its tool cache: eight installs of one release at once all succeed,
/// and each job's binary runs (none removed an install another job had already checked).
#[test]
fn parallel_installs_into_one_tool_cache_all_succeed() {
    let bytes = archive();
    let f = Fixture::new(bytes, &sha256_hex(bytes));
    let cache = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..8).map(|_| install_into(&f, cache.path())).collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        // The line that names the binary it runs: `deploy-action: <its --version> (<path>)`.
        let bin = log
            .lines()
            .filter(|l| l.starts_with("deploy-action: ") && l.ends_with(')'))
            .find_map(|l| {
                l.rsplit_once(" (/")
                    .map(|(_, p)| format!("/{}", p.trim_end_matches(')')))
            })
            .unwrap_or_else(|| panic!("no binary named: {log}"));
        let ran = std::process::Command::new(&bin)
            .arg("--version")
            .output()
            .unwrap();
        assert!(ran.status.success(), "{bin}: {ran:?}");
    }
}

/// A failure the script does not foresee (the tool cache is a file, not a directory) still
/// writes the outputs and exits 3, not a bare exit 1 with nothing written.
#[test]
fn an_unforeseen_install_failure_sets_the_outputs() {
    let bytes = archive();
    let f = Fixture::new(bytes, &sha256_hex(bytes));
    let not_a_dir = tempfile::NamedTempFile::new().unwrap();
    let child = install_into(&f, not_a_dir.path());
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(
        log.contains("::error title=deploy-action install::install failed at line"),
        "{log}"
    );
}
