//! The leak suite: every tool, in every outcome it can reach (pass, check failure, usage error,
//! dependency error, SIGTERM mid-run, and each of those again with trace logging on), with canary
//! secrets in every input channel: a `${VAR}` in deploy.toml, a bearer token, a custom secret
//! header, credentials in a URL, the registry password, the AWS secret key and `GITHUB_TOKEN`.
//! No canary may appear in stdout, stderr (but `::add-mask::` lines), the job summary, the step
//! outputs, the JSON report, JUnit, anything under RUNNER_TEMP, the bodies sent to the GitHub
//! API (recorded in front of Prism), or a git repository's config and reflog afterwards. And no
//! credential may reach another host: a redirect to another origin, and a registry upload
//! `Location` on another host, are recorded on that host and must carry none.
//!
//! Adding a tool is one more `Case` list (see `health_check`): the sinks and the checks are shared.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use deploy_action_e2e::ecs as moto;
use deploy_action_e2e::faults::{self, Fault};
use deploy_action_e2e::recorder::{Mode, Recorder};
use deploy_action_e2e::rig::{self, Ran, aws_env, git, tool, unique};
use deploy_action_e2e::standin::{Behaviour, StandIn};

const VAR: &str = "canary-config-var-7f3a9e";
const BEARER: &str = "canary-bearer-51c2d8";
const HEADER: &str = "canary-header-9b04e1";
const USERINFO: &str = "canary-userinfo-c0ffee";
const GITHUB: &str = "ghs_canary0github0token0d00d";
const AWS_SECRET: &str = "canary-aws-secret-4e5f6a";
/// moto's registry password (fixed), and the Basic credentials built from it.
const REGISTRY_PASSWORD: &str = "123456789012-auth-token";
const REGISTRY_BASIC: &str = "QVdTOjEyMzQ1Njc4OTAxMi1hdXRoLXRva2Vu";

const CANARIES: [&str; 8] = [
    VAR,
    BEARER,
    HEADER,
    USERINFO,
    GITHUB,
    AWS_SECRET,
    REGISTRY_PASSWORD,
    REGISTRY_BASIC,
];

/// deploy.toml with a secret in every kind of place a user puts one.
fn config(base_url: &str) -> String {
    format!(
        r#"
[environments.leak]
base_url = "{base_url}"
cluster = "${{LEAK_VAR}}"
services = ["svc-${{LEAK_VAR}}"]

[[health.checks]]
name = "health ${{LEAK_VAR}}"
path = "/api/health"
headers = {{ X-Deploy-Key = "${{LEAK_HDR}}" }}

[[health.checks]]
name = "ready"
path = "/api/ready"
assert = [".ready == true"]

[[health.checks]]
name = "workflows"
path = "/api/workflows"
headers = {{ Authorization = "Bearer ${{API_TOKEN}}" }}

[[smoke.checks]]
name = "health ${{LEAK_VAR}}"
path = "/api/health"
headers = {{ X-Deploy-Key = "${{LEAK_HDR}}" }}
body = "key=${{LEAK_VAR}}"
method = "POST"

[[smoke.checks]]
name = "workflows"
path = "/api/workflows?key=${{LEAK_HDR}}"
headers = {{ Authorization = "Bearer ${{API_TOKEN}}" }}
assert = [".workflows != null"]
"#
    )
}

/// Where a run may write, all under one directory the checks read back whole.
struct Sinks {
    dir: tempfile::TempDir,
}

impl Sinks {
    fn new() -> Sinks {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("runner-temp")).unwrap();
        Sinks { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Inside Actions, every file sink on, with every secret channel of the environment set.
    fn apply(&self, cmd: &mut Command, github_api: &str) {
        cmd.env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", self.path("summary.md"))
            .env("GITHUB_OUTPUT", self.path("outputs.txt"))
            .env("RUNNER_TEMP", self.path("runner-temp"))
            .env("GITHUB_TOKEN", GITHUB)
            .env("GITHUB_API_URL", github_api)
            .env("GITHUB_REPOSITORY", "afu9/control-center")
            .env("LEAK_VAR", VAR)
            .env("LEAK_HDR", HEADER)
            .env("API_TOKEN", BEARER)
            .arg("--junit")
            .arg(self.path("junit.xml"))
            .arg("--report")
            .arg(self.path("report.json"));
    }

    /// Every file written under the sinks directory: (name, text).
    fn files(&self) -> Vec<(String, String)> {
        fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
                    out.push((p.display().to_string(), text));
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out
    }
}

/// Asserts no canary is in any channel; `::add-mask::` lines are the one place a secret belongs.
fn assert_clean(label: &str, ran: &Ran, sinks: &Sinks, extra: &[(String, String)]) {
    let stderr: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| !l.starts_with("::add-mask::"))
        .collect();
    let mut channels = vec![
        ("stdout".to_owned(), ran.stdout.clone()),
        ("stderr".to_owned(), stderr.join("\n")),
    ];
    channels.extend(sinks.files());
    channels.extend(extra.iter().cloned());
    for (name, text) in &channels {
        for c in CANARIES {
            assert!(
                !text.contains(c),
                "{label}: canary {c} leaked into {name}:\n{text}"
            );
        }
    }
    // A mask is never of a short piece (it would garble the log) and is always the first thing a
    // line could need: no line before a mask carries its value unredacted (checked above), and
    // outputs are always written.
    assert!(
        ran.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("::add-mask::"))
            .all(|m| m.len() >= 4),
        "{label}: short mask\n{}",
        ran.stderr
    );
    // Masks come first: before any other line, whatever the tool logs.
    if ran.stderr.contains("::add-mask::") {
        assert!(
            ran.stderr.starts_with("::add-mask::"),
            "{label}: a line before the masks:\n{}",
            ran.stderr
        );
    }
    let outputs = std::fs::read_to_string(sinks.path("outputs.txt")).unwrap_or_default();
    assert!(
        outputs.contains("exit-code<<"),
        "{label}: no exit-code output\n{ran:?}"
    );
}

/// One run of a tool.
struct Case {
    label: &'static str,
    tool: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
    aws: bool,
    code: i32,
    /// Send SIGTERM after this long.
    sigterm: Option<Duration>,
    cwd: Option<PathBuf>,
}

impl Case {
    fn new<S: AsRef<str>>(label: &'static str, tool: &'static str, code: i32, args: &[S]) -> Case {
        Case {
            label,
            tool,
            args: args.iter().map(|s| s.as_ref().to_owned()).collect(),
            env: Vec::new(),
            aws: false,
            code,
            sigterm: None,
            cwd: None,
        }
    }
    fn env(mut self, k: &str, v: &str) -> Case {
        self.env.push((k.into(), v.into()));
        self
    }
    fn aws(mut self) -> Case {
        self.aws = true;
        self
    }
    fn sigterm(mut self, after: Duration) -> Case {
        self.sigterm = Some(after);
        self
    }
    fn cwd(mut self, dir: &Path) -> Case {
        self.cwd = Some(dir.to_owned());
        self
    }
}

/// `DEPLOY_LOG` asking for every HTTP, AWS SDK and GitHub client crate at trace: they go no
/// further than debug, where none prints a credential (at trace the SDK prints ECR's password).
const DEPS_TRACE: &str = "trace,aws_smithy_runtime=trace,aws_smithy_runtime_api=trace,\
aws_smithy_http_client=trace,aws_sdk_ecr=trace,aws_sdk_ecs=trace,aws_sdk_cloudwatch=trace,\
aws_config=trace,hyper=trace,hyper_util=trace,reqwest=trace,h2=trace,octocrab=trace";

/// Runs every case three times (default logging, `DEPLOY_LOG=trace`, and [`DEPS_TRACE`]), each
/// with fresh sinks, and checks each run's exit code and every channel. `github` records what
/// reached the GitHub API.
async fn run_cases(cases: Vec<Case>, conf_dir: &Path, github: &Recorder) {
    for case in cases {
        for log in [None, Some("trace"), Some(DEPS_TRACE)] {
            let trace = log == Some("trace");
            let label = format!(
                "{} {}{}",
                case.tool,
                case.label,
                match log {
                    None => "",
                    Some("trace") => " (trace)",
                    Some(_) => " (dependencies at trace)",
                }
            );
            let sinks = Sinks::new();
            let cwd = case.cwd.clone().unwrap_or_else(|| conf_dir.to_owned());
            let mut cmd = tool(case.tool, &cwd);
            if case.aws {
                aws_env(&mut cmd).env("AWS_SECRET_ACCESS_KEY", AWS_SECRET);
            }
            sinks.apply(&mut cmd, &github.url);
            cmd.args(&case.args);
            for (k, v) in &case.env {
                cmd.env(k, v);
            }
            if let Some(log) = log {
                cmd.env("DEPLOY_LOG", log);
            }
            let ran = match case.sigterm {
                None => rig::run(cmd).await,
                Some(after) => {
                    cmd.stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped());
                    let child = cmd.spawn().unwrap();
                    tokio::time::sleep(after).await;
                    rig::sigterm(child).await
                }
            };
            assert_eq!(ran.code, case.code, "{label}: {ran:?}");
            if trace {
                // Trace logging is really on (our crates log), and the HTTP stack's is not.
                assert!(
                    !ran.stderr.contains("hyper") && !ran.stderr.contains("reqwest::"),
                    "{label}: third-party debug logs:\n{}",
                    ran.stderr
                );
            }
            assert_clean(
                &label,
                &ran,
                &sinks,
                &[("GitHub API".into(), bodies(github))],
            );
        }
    }
}

/// What reached the GitHub API, without the Authorization header (where the token belongs).
fn bodies(github: &Recorder) -> String {
    github
        .requests()
        .iter()
        .map(|r| {
            let h: Vec<String> = r
                .headers
                .iter()
                .filter(|(k, _)| k != "authorization")
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            format!("{} {}\n{}\n{}\n", r.method, r.uri, h.join("\n"), r.body)
        })
        .collect()
}

async fn github() -> Recorder {
    Recorder::start("127.0.0.1", Mode::Forward(rig::prism_url())).await
}

/// A stand-in behaving as `b` that takes the leak tests' bearer token.
async fn with_bearer(b: Behaviour) -> StandIn {
    StandIn::start(Behaviour {
        token: BEARER.into(),
        ..b
    })
    .await
    .unwrap()
}

/// A directory holding the leak tests' deploy.toml for a service at `base_url`.
fn configured(base_url: &str) -> tempfile::TempDir {
    let conf = tempfile::tempdir().unwrap();
    rig::write_config(conf.path(), config(base_url));
    conf
}

fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

fn userinfo_url(port_url: &str) -> String {
    port_url.replace("http://", &format!("http://leak:{USERINFO}@"))
}

#[tokio::test]
async fn health_check_leaks_nothing_in_any_outcome() {
    let gh = github().await;
    let ok = with_bearer(Behaviour::default()).await;
    let sick = with_bearer(Behaviour {
        ready: false,
        ..Behaviour::default()
    })
    .await;
    let conf = configured(&ok.url);
    let fast = [
        "--wait",
        "3s",
        "--interval",
        "100ms",
        "--success-threshold",
        "1",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        ["-e", "leak"]
            .iter()
            .chain(fast.iter())
            .chain(extra.iter())
            .map(|s| (*s).to_owned())
            .collect()
    };
    let cases = vec![
        Case::new("pass", "health-check", 0, &with(&[])),
        Case::new(
            "check failure",
            "health-check",
            1,
            &with(&["--base-url", &sick.url]),
        ),
        Case::new("usage error", "health-check", 2, &with(&[]))
            .env("DEPLOY_BASE_URL", &userinfo_url(&ok.url)),
        Case::new("dependency error", "health-check", 3, &with(&["--ecs"]))
            .aws()
            .env("AWS_ENDPOINT_URL", &closed_port_url()),
        Case::new(
            "SIGTERM",
            "health-check",
            1,
            &[
                "-e",
                "leak",
                "--base-url",
                &sick.url,
                "--wait",
                "60s",
                "--interval",
                "100ms",
            ],
        )
        .sigterm(Duration::from_millis(1500)),
    ];
    run_cases(cases, conf.path(), &gh).await;
}

#[tokio::test]
async fn smoke_test_leaks_nothing_in_any_outcome() {
    let gh = github().await;
    let ok = with_bearer(Behaviour::default()).await;
    let other_token = StandIn::start(Behaviour::default()).await.unwrap();
    let slow = with_bearer(Behaviour {
        delay_ms: 30_000,
        ..Behaviour::default()
    })
    .await;
    let conf = configured(&ok.url);
    // smoke-test has no dependency-error outcome: every HTTP failure is a failed check.
    let cases = vec![
        Case::new("pass", "smoke-test", 0, &["-e", "leak"]),
        Case::new(
            "check failure",
            "smoke-test",
            1,
            &["-e", "leak", "--base-url", &other_token.url],
        ),
        Case::new(
            "usage error",
            "smoke-test",
            2,
            &["-e", "leak", "--base-url", &userinfo_url(&ok.url)],
        ),
        Case::new(
            "SIGTERM",
            "smoke-test",
            1,
            &["-e", "leak", "--base-url", &slow.url],
        )
        .sigterm(Duration::from_millis(1000)),
    ];
    run_cases(cases, conf.path(), &gh).await;
}

#[tokio::test]
async fn ecr_push_leaks_nothing_in_any_outcome() {
    let gh = github().await;
    let dir = tempfile::tempdir().unwrap();
    let repo = format!("{}/{VAR}", unique("leak"));
    let ecr = deploy_core::aws::ecr(&rig::moto_sdk().await);
    ecr.create_repository()
        .repository_name(&repo)
        .image_tag_mutability(deploy_core::aws_sdk_ecr::types::ImageTagMutability::Immutable)
        .send()
        .await
        .unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    deploy_action_e2e::oci::oci_layout(&a, &[deploy_action_e2e::oci::random_bytes(3000, 1)], 1);
    deploy_action_e2e::oci::oci_layout(&b, &[deploy_action_e2e::oci::random_bytes(3000, 2)], 2);
    let refused = faults::start(
        rig::registry_url().trim_start_matches("http://").to_owned(),
        Fault::Unauthorized,
    )
    .await;
    let reg = rig::registry_url();
    // The repository comes from `${LEAK_REPO}` (its name holds the config canary): every place that
    // names it (target, outputs, summary, errors) must show it redacted.
    let image = |name: &str, src: &Path| {
        format!(
            "[images.{name}]\nrepository = \"${{LEAK_REPO}}\"\nsource = \"{}\"\ntags = [\"v1\"]\n",
            src.display()
        )
    };
    // Image c goes to its own repository through a proxy that holds every upload: SIGTERM then
    // lands mid-push.
    let c = dir.path().join("c");
    deploy_action_e2e::oci::oci_layout(&c, &[deploy_action_e2e::oci::random_bytes(3000, 3)], 3);
    ecr.create_repository()
        .repository_name(format!("{repo}-c"))
        .send()
        .await
        .unwrap();
    let stalled = faults::start(
        rig::registry_url().trim_start_matches("http://").to_owned(),
        Fault::StallUploads,
    )
    .await;
    let image_c = format!(
        "[images.c]\nrepository = \"${{LEAK_REPO}}-c\"\nsource = \"{}\"\ntags = [\"v1\"]\n",
        c.display()
    );
    std::fs::write(
        dir.path().join("deploy.toml"),
        format!("{}\n{}\n{image_c}", image("a", &a), image("b", &b)),
    )
    .unwrap();
    let push = |name: &str, url: &str| {
        vec![
            "--image".to_owned(),
            name.to_owned(),
            "--sha".into(),
            "22cdb6a41c42366ad165a0fb4c96282304f6f7ae".into(),
            "--registry-url".into(),
            url.to_owned(),
        ]
    };
    let case = |label, code, args: Vec<String>| {
        Case::new(label, "ecr-push", code, &args)
            .aws()
            .env("LEAK_REPO", &repo)
    };
    let cases = vec![
        case("pass", 0, push("a", &reg)),
        // The same immutable tag for another image: refused, nothing pushed.
        case("check failure", 1, push("b", &reg)),
        case("usage error", 2, push("a", &userinfo_url(&reg))),
        case("dependency error", 3, push("b", &refused.url)),
        case("SIGTERM", 1, push("c", &stalled.url)).sigterm(Duration::from_millis(1500)),
    ];
    run_cases(cases, dir.path(), &gh).await;
}

#[tokio::test]
async fn sync_check_leaks_nothing_and_leaves_no_token_in_git() {
    let gh = github().await;
    let root = tempfile::tempdir().unwrap();
    let origin = deploy_action_e2e::git::bare(root.path());
    let work = deploy_action_e2e::git::clone_main(root.path(), &origin, "work");
    std::fs::write(work.join("a.txt"), "a\n").unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "init"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let behind = deploy_action_e2e::git::clone(root.path(), &origin, "behind");
    std::fs::write(work.join("b.txt"), "b\n").unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "more"]);
    git(&work, &["push", "-q", "origin", "main"]);
    // Accepts connections (the kernel does) and never answers them.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stuck = format!("http://{}/origin.git", silent.local_addr().unwrap());
    git(&work, &["remote", "add", "stuck", &stuck]);
    let repo = |p: &Path| p.to_str().unwrap().to_owned();
    let w = repo(&work);
    let bh = repo(&behind);
    let cases = vec![
        Case::new(
            "pass",
            "sync-check",
            0,
            &["--repo", &w, "--publish", "always"],
        ),
        Case::new(
            "check failure",
            "sync-check",
            1,
            &["--repo", &bh, "--fail-on", "behind", "--publish", "always"],
        ),
        Case::new(
            "usage error",
            "sync-check",
            2,
            &[
                "--repo",
                &w,
                "--base",
                "no-such-branch",
                "--publish",
                "never",
            ],
        ),
        Case::new(
            "dependency error",
            "sync-check",
            3,
            &["--repo", &w, "--publish", "always"],
        )
        .env("GITHUB_API_URL", &closed_port_url()),
        // A fetch from a remote that never answers, cut short by SIGTERM.
        Case::new(
            "SIGTERM",
            "sync-check",
            1,
            &["--repo", &w, "--remote", "stuck", "--publish", "always"],
        )
        .sigterm(Duration::from_millis(1000)),
        // A remote given as a URL with credentials, on a port nothing listens on: the fetch
        // fails and its error, the summary and the report name the remote without them.
        Case::new(
            "remote URL with credentials",
            "sync-check",
            3,
            &[
                "--repo",
                &w,
                "--remote",
                &format!("{}/origin.git", userinfo_url(&closed_port_url())),
                "--publish",
                "always",
            ],
        ),
    ]
    .into_iter()
    .map(|c| c.cwd(root.path()))
    .collect();
    run_cases(cases, root.path(), &gh).await;
    assert!(
        !gh.requests().is_empty(),
        "sync-check published nothing: the GitHub channel was not exercised"
    );
    // The token never lands in a repository: config, reflog, logs.
    for r in [&work, &behind] {
        let mut text = std::fs::read_to_string(r.join(".git/config")).unwrap();
        let out = Command::new("git")
            .args(["reflog", "--all"])
            .current_dir(r)
            .output()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        for c in CANARIES {
            assert!(
                !text.contains(c),
                "{c} in the git config or reflog of {}",
                r.display()
            );
        }
    }
}

/// smoke-test on `leak` with every secret channel set, its base URL a host (`127.0.0.1`) that
/// answers every request with a `status` redirect to another (`localhost`, answering 200): what
/// ran, its sinks, and what each host received.
async fn smoke_through_a_redirect(status: u16) -> (Ran, Sinks, Recorder, Recorder) {
    let other = Recorder::start(
        "localhost",
        Mode::Answer(200, r#"{"status":"ok","workflows":[]}"#.into()),
    )
    .await;
    let redirecting =
        Recorder::start("127.0.0.1", Mode::RedirectWith(status, other.url.clone())).await;
    let conf = configured(&redirecting.url);
    let sinks = Sinks::new();
    let gh = github().await;
    let mut cmd = tool("smoke-test", conf.path());
    sinks.apply(&mut cmd, &gh.url);
    cmd.args(["-e", "leak", "--retry-for", "0s"]);
    (rig::run(cmd).await, sinks, redirecting, other)
}

/// A secret header is never sent across a redirect to another origin (here `127.0.0.1` to
/// `localhost`): the other host records what it got.
#[tokio::test]
async fn a_redirect_to_another_host_receives_no_credential() {
    let (ran, sinks, redirecting, other) = smoke_through_a_redirect(302).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    // The redirect was followed (the other host answered every check)...
    let seen = other.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    // ...with the secret headers sent to the origin they were configured for only.
    let first = redirecting.text();
    assert!(first.contains(HEADER) && first.contains(BEARER), "{first}");
    let text = other.text();
    for c in CANARIES {
        assert!(!text.contains(c), "{c} reached the other host:\n{text}");
    }
    assert!(
        seen.iter().all(|r| !r
            .headers
            .iter()
            .any(|(k, _)| k == "authorization" || k == "x-deploy-key")),
        "{seen:?}"
    );
    assert_clean("redirect", &ran, &sinks, &[]);
}

/// A 307 or 308 to another origin would send the request body again: a body that carries a
/// secret (the POST check's `key=${LEAK_VAR}`) is not sent there, and the check says why; the
/// check without a body follows the redirect as before.
#[tokio::test]
async fn a_body_with_a_secret_does_not_follow_a_redirect_to_another_host() {
    for status in [307, 308] {
        let (ran, sinks, _, other) = smoke_through_a_redirect(status).await;
        assert_eq!(ran.code, 1, "{status}: {ran:?}");
        let seen = other.requests();
        assert!(
            seen.iter().all(|r| r.method == "GET"),
            "{status}: the POST reached the other host: {seen:?}"
        );
        assert_eq!(seen.len(), 1, "{status}: {seen:?}");
        let text = other.text();
        for c in CANARIES {
            assert!(
                !text.contains(c),
                "{status}: {c} reached the other host:\n{text}"
            );
        }
        assert!(
            ran.stderr.contains(&format!(
                "redirected ({status}) to another origin, {}: the request body carries a secret",
                other.url.trim_end_matches('/')
            )),
            "{status}: {}",
            ran.stderr
        );
        assert_clean("redirect with a body", &ran, &sinks, &[]);
    }
}

/// A registry whose upload `Location` points at another host gets the upload there without the
/// credentials: the other host records what it got.
#[tokio::test]
async fn a_registry_location_on_another_host_receives_no_credential() {
    let other = Recorder::start(
        "localhost",
        Mode::Answer(
            401,
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}"#.into(),
        ),
    )
    .await;
    let registry = Recorder::start(
        "127.0.0.1",
        Mode::ForeignUploads {
            upstream: rig::registry_url(),
            foreign: other.url.clone(),
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let repo = unique("leak/location");
    let ecr = deploy_core::aws::ecr(&rig::moto_sdk().await);
    ecr.create_repository()
        .repository_name(&repo)
        .send()
        .await
        .unwrap();
    let src = dir.path().join("img");
    deploy_action_e2e::oci::oci_layout(&src, &[deploy_action_e2e::oci::random_bytes(2000, 7)], 7);
    let sinks = Sinks::new();
    let gh = github().await;
    let mut cmd = tool("ecr-push", dir.path());
    aws_env(&mut cmd);
    sinks.apply(&mut cmd, &gh.url);
    cmd.args([
        "--repository",
        &repo,
        "--source",
        src.to_str().unwrap(),
        "--tag",
        "v1",
    ])
    .args(["--registry-url", &registry.url]);
    let ran = rig::run(cmd).await;
    // The other host refused the credential-less upload: a registry failure, exit 3.
    assert_eq!(ran.code, 3, "{ran:?}");
    let seen = other.requests();
    assert!(
        seen.iter().any(|r| r.method == "PUT"),
        "the upload never went to the other host: {seen:?}"
    );
    assert!(
        seen.iter()
            .all(|r| !r.headers.iter().any(|(k, _)| k == "authorization")),
        "{seen:?}"
    );
    let text = other.text();
    for c in CANARIES {
        assert!(!text.contains(c), "{c} reached the other host:\n{text}");
    }
    // The registry itself did get the credentials (the test would pass vacuously otherwise).
    assert!(registry.text().contains(REGISTRY_BASIC));
    assert_clean("registry location", &ran, &sinks, &[]);
}

#[tokio::test]
async fn rollback_leaks_nothing_in_any_outcome() {
    use deploy_core::aws_sdk_ecs as ecs;
    let gh = github().await;
    let ok = with_bearer(Behaviour::default()).await;
    let standin = deploy_action_e2e::ecs_standin::EcsStandIn::start(&rig::moto_url())
        .await
        .unwrap();
    let client = moto::client().await;
    // The cluster's name holds the config canary (it comes from `${LEAK_CLUSTER}`).
    let cluster = format!("{VAR}-{}", unique("c"));
    moto::cluster(&client, &cluster).await;
    let (good, bare, stuck) = (unique("good"), unique("bare"), unique("stuck"));
    for svc in [&good, &bare, &stuck] {
        for rev in 1..=5 {
            let web = moto::container("web", format!("nginx:{rev}")).build();
            let td = moto::register(&client, svc, web).await;
            if svc != &bare && rev < 5 {
                let arn = td.task_definition().unwrap().task_definition_arn().unwrap();
                client
                    .tag_resource()
                    .resource_arn(arn)
                    .tags(
                        ecs::types::Tag::builder()
                            .key("deploy-action:verified")
                            .value("2026-11-01T00:00:00Z")
                            .build(),
                    )
                    .tags(
                        ecs::types::Tag::builder()
                            .key("deploy-action:sha")
                            .value("22cdb6a41c42366ad165a0fb4c96282304f6f7ae")
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
        }
        moto::service(&client, &cluster, svc, &format!("{svc}:5"), 1).await;
    }
    standin.script(
        &stuck,
        deploy_action_e2e::ecs_standin::Script::after_update(vec![serde_json::json!({
            "deployments": [
                { "id": "{new}", "status": "PRIMARY", "taskDefinition": format!("{stuck}:4"), "desiredCount": 1, "runningCount": 0, "pendingCount": 1, "rolloutState": "IN_PROGRESS" },
                { "id": "ecs-svc/old", "status": "ACTIVE", "taskDefinition": format!("{stuck}:5"), "desiredCount": 1, "runningCount": 1, "rolloutState": "COMPLETED" }
            ]
        })]),
    );
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(
        conf.path().join("deploy.toml"),
        format!(
            r#"
[environments.leak]
base_url = "{url}"
cluster = "${{LEAK_CLUSTER}}"
services = ["{good}"]

[health]
interval = "100ms"
success_threshold = 1

[[health.checks]]
name = "workflows ${{LEAK_VAR}}"
path = "/api/workflows"
headers = {{ Authorization = "Bearer ${{API_TOKEN}}", X-Deploy-Key = "${{LEAK_HDR}}" }}

[rollback]
interval = "100ms"
wait = "30s"
"#,
            url = ok.url
        ),
    )
    .unwrap();
    let case = |label, code, args: &[&str]| {
        let mut a = vec!["-e", "leak", "--reason", "leak test", "--github-deployment"];
        a.extend_from_slice(args);
        Case::new(label, "rollback", code, &a)
            .aws()
            .env("AWS_ENDPOINT_URL", &standin.url)
            .env("LEAK_CLUSTER", &cluster)
    };
    let incident = conf.path().join("incident.json");
    let incident = incident.to_str().unwrap();
    // Two more sinks: the changelog and the notification webhook (whose headline names the
    // target, here the cluster holding the config canary).
    let changelog = conf.path().join("CHANGELOG.md");
    let hook = Recorder::start("127.0.0.1", Mode::Answer(200, "{}".into())).await;
    let notify = format!("{}/services/leak/hook-0001", hook.url);
    let cases = vec![
        case(
            "pass",
            0,
            &[
                "--incident-file",
                incident,
                "--changelog",
                changelog.to_str().unwrap(),
                "--notify",
                &notify,
            ],
        ),
        case(
            "check failure (no verified revision)",
            1,
            &["--service", &bare],
        ),
        case("usage error", 2, &["--base-url", &userinfo_url(&ok.url)]),
        case("dependency error", 3, &[]).env("AWS_ENDPOINT_URL", &closed_port_url()),
        case(
            "SIGTERM",
            1,
            &["--service", &stuck, "--incident-file", incident],
        )
        .sigterm(Duration::from_millis(2500)),
    ];
    run_cases(cases, conf.path(), &gh).await;
    let record = std::fs::read_to_string(conf.path().join("incident.json")).unwrap();
    let entry = std::fs::read_to_string(&changelog).unwrap();
    let sent = hook.text();
    assert!(sent.contains("rollback"), "the webhook got nothing: {sent}");
    for c in CANARIES {
        assert!(!record.contains(c), "{c} in the incident record:\n{record}");
        assert!(!entry.contains(c), "{c} in the changelog:\n{entry}");
        assert!(!sent.contains(c), "{c} sent to the webhook:\n{sent}");
    }
    assert!(
        gh.requests().iter().any(|r| r.uri.contains("/deployments")),
        "the GitHub deployment channel was not exercised"
    );
}
