//! Where the rig's stand-ins are (set by `scripts/test.sh` from `scripts/rig.sh env`). A missing
//! one fails the test with a message saying how to start it: never a skip.

use std::path::PathBuf;
use std::process::Command;

/// The value of a `DEPLOY_TEST_*` variable, or a panic naming it.
pub fn var(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: the stand-ins are not running. Run the tests through scripts/test.sh \
             (or `eval \"$(scripts/rig.sh env)\"` after `scripts/rig.sh install && scripts/rig.sh up`)"
        ),
    }
}

/// moto's URL.
pub fn moto_url() -> String {
    var("DEPLOY_TEST_MOTO_URL")
}

/// The registry's URL.
pub fn registry_url() -> String {
    var("DEPLOY_TEST_REGISTRY_URL")
}

/// Prism's URL.
pub fn prism_url() -> String {
    var("DEPLOY_TEST_PRISM_URL")
}

/// The `act` binary.
pub fn act() -> PathBuf {
    PathBuf::from(var("DEPLOY_TEST_ACT"))
}

/// The `zizmor` binary.
pub fn zizmor() -> PathBuf {
    PathBuf::from(var("DEPLOY_TEST_ZIZMOR"))
}

/// The directory holding this workspace's built binaries (`target/debug`), with the five tool
/// names as links to the one `deploy-action` binary, as the action's install lays them out
/// (made here when missing, so `cargo build && cargo test` is enough).
pub fn bin_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/debug/deps/<test> -> target/debug
        let dir = exe
            .parent()
            .and_then(|d| d.parent())
            .expect("target dir")
            .to_path_buf();
        link_tools(&dir);
        dir
    })
    .clone()
}

/// The five tool names in `dir` as links to `deploy-action` (scripts/link-tools.sh's rule).
/// Each link is made under a temporary name and renamed over the old one, so test processes
/// running at once never see a missing tool.
fn link_tools(dir: &std::path::Path) {
    assert!(
        dir.join("deploy-action").is_file(),
        "{}/deploy-action is not built (cargo build --workspace --bins)",
        dir.display()
    );
    for t in crate::release::TOOLS {
        let link = dir.join(t);
        if std::fs::read_link(&link).is_ok_and(|to| to == std::path::Path::new("deploy-action")) {
            continue;
        }
        let tmp = dir.join(format!(".{t}.link.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink("deploy-action", &tmp).expect("make the tool link");
        std::fs::rename(&tmp, &link).expect("put the tool link in place");
    }
}

/// A workspace binary by name.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(p.is_file(), "binary {} is not built", p.display());
    p
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs git in `dir` with the tests' identity; panics when it fails ([`crate::git::git`]).
pub fn git(dir: &std::path::Path, args: &[&str]) {
    crate::git::git(dir, args);
}

/// A git repository holding `files`, with an `origin` remote, as act wants.
pub fn act_repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(
        dir.path(),
        &[
            "remote",
            "add",
            "origin",
            "https://github.com/afu9/act-test.git",
        ],
    );
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "test"]);
    dir
}

/// A command running workspace binary `name` with the ambient CI environment scrubbed
/// (`GITHUB_*`, `RUNNER_*`, `ACTIONS_*`, `AWS_*`, `DEPLOY_*`, `CI`), in a fresh temp directory so
/// no stray deploy.toml is picked up.
pub fn tool(name: &str, cwd: &std::path::Path) -> Command {
    let mut cmd = Command::new(bin(name));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if ["GITHUB_", "RUNNER_", "ACTIONS_", "AWS_", "DEPLOY_"]
            .iter()
            .any(|p| k.starts_with(p))
            || k == "CI"
            || k == "API_TOKEN"
        {
            cmd.env_remove(k.as_ref());
        }
    }
    cmd.env("NO_COLOR", "1").current_dir(cwd);
    cmd
}

/// What a finished command did.
#[derive(Debug)]
pub struct Ran {
    /// Exit code.
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Ran {
    /// stdout and stderr together, for leak checks.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs a command to completion (in a blocking task, so an in-process stand-in keeps serving).
pub async fn run(mut cmd: Command) -> Ran {
    ran(tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap())
}

/// What a finished process did, from its output (a panic when it could not be run).
fn ran(out: std::io::Result<std::process::Output>) -> Ran {
    let out = out.unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `cmd` with `--format json` to completion: what it did and its JSON report (a panic
/// showing what it did when stdout is not JSON).
pub async fn run_report(mut cmd: Command) -> (Ran, serde_json::Value) {
    cmd.args(["--format", "json"]);
    let r = run(cmd).await;
    let report = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    (r, report)
}

/// A command line's arguments: `line` split at white space (for arguments that hold none).
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Starts `cmd` with its stdout and stderr captured, to stop with [`sigterm`].
pub fn spawn(mut cmd: Command) -> std::process::Child {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Writes `dir/event.json`, the event of pull request `number` whose head is `sha` on `feat`,
/// based on `main`: its path.
pub fn pull_request_event(dir: &std::path::Path, number: u32, sha: &str) -> std::path::PathBuf {
    let event = dir.join("event.json");
    std::fs::write(
        &event,
        format!(
            r#"{{"number":{number},"pull_request":{{"head":{{"sha":"{sha}","ref":"feat"}},"base":{{"ref":"main"}}}}}}"#
        ),
    )
    .unwrap();
    event
}

/// Writes `text` as `dir/deploy.toml`.
pub fn write_config(dir: &std::path::Path, text: impl AsRef<[u8]>) {
    std::fs::write(dir.join("deploy.toml"), text).unwrap();
}

/// An SDK config aimed at moto with fixed test credentials, for setting up and reading back
/// AWS state from tests.
pub async fn moto_sdk() -> deploy_core::aws_config::SdkConfig {
    use aws_credential_types::Credentials;
    use deploy_core::aws_config::{BehaviorVersion, Region};
    // Built here, not with deploy_core::aws::sdk_config: that one insists on credentials from
    // the ambient chain, which a test process does not have.
    deploy_core::aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("eu-central-1"))
        .endpoint_url(moto_url())
        .credentials_provider(Credentials::new("test", "test", None, None, "rig"))
        .load()
        .await
}

/// Points a tool at moto the standard way: `AWS_ENDPOINT_URL`, region and test credentials.
pub fn aws_env(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ENDPOINT_URL", moto_url())
        .env("AWS_REGION", "eu-central-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
}

/// A name unique to this test run, for AWS resources in the shared moto.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{:x}-{:x}-{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Sends SIGTERM to a running tool (as GitHub does when it cancels a job) and waits for what it
/// printed and how it exited.
pub async fn sigterm(child: std::process::Child) -> Ran {
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -TERM failed");
    ran(
        tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap(),
    )
}
