//! The contracts every binary keeps, checked on the real executables: `--help`, `--version`,
//! exit 2 on bad arguments, config errors naming file, line and key, and the exit codes of a
//! run against the stand-in service.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use deploy_action_e2e::rig::{self, run, tool};
use deploy_action_e2e::standin::{Behaviour, StandIn};

const TOOLS: [&str; 5] = [
    "sync-check",
    "ecr-push",
    "health-check",
    "smoke-test",
    "rollback",
];

#[tokio::test]
async fn every_tool_answers_help_and_version() {
    let dir = tempfile::tempdir().unwrap();
    for name in TOOLS {
        let mut c = tool(name, dir.path());
        c.arg("--version");
        let r = run(c).await;
        assert_eq!(r.code, 0, "{name} --version: {r:?}");
        assert_eq!(
            r.stdout.trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION"))
        );

        let mut c = tool(name, dir.path());
        c.arg("--help");
        let r = run(c).await;
        assert_eq!(r.code, 0, "{name} --help: {r:?}");
        for flag in ["--config", "--environment", "--format", "--junit"] {
            assert!(
                r.stdout.contains(flag),
                "{name} --help lacks {flag}:\n{}",
                r.stdout
            );
        }
        // Each tool takes only the common flags it uses: the service URL is for the tools that
        // probe the service.
        let probes = matches!(name, "health-check" | "smoke-test" | "rollback");
        assert_eq!(
            r.stdout.contains("--base-url"),
            probes,
            "{name} --help and --base-url:\n{}",
            r.stdout
        );
        insta::assert_snapshot!(format!("help-{name}"), r.stdout);

        // URLs from the environment with credentials in them: --help names the variables, never
        // their values.
        let mut c = tool(name, dir.path());
        c.arg("--help");
        for var in [
            "DEPLOY_BASE_URL",
            "DEPLOY_REGISTRY_URL",
            "AWS_ENDPOINT_URL",
            "GITHUB_API_URL",
            "DEPLOY_NOTIFY_URL",
        ] {
            c.env(var, "https://deploy:help-canary-pw@h.example/");
        }
        let r = run(c).await;
        assert_eq!(r.code, 0, "{name} --help: {r:?}");
        assert!(
            !r.stdout.contains("help-canary-pw"),
            "{name} --help shows a URL's password:\n{}",
            r.stdout
        );
    }
}

/// The one binary: each tool through a link of its name (what the install lays out, and what
/// `tool()` runs above), or through its first argument; no tool or an unknown one is a usage
/// error naming the five, with the action's outputs set.
#[tokio::test]
async fn the_one_binary_runs_the_tool_it_is_started_as_or_named_by_its_first_argument() {
    let dir = tempfile::tempdir().unwrap();
    let bin = rig::bin("deploy-action");
    for name in TOOLS {
        let link = rig::bin(name);
        assert_eq!(
            std::fs::read_link(&link).ok(),
            Some(std::path::PathBuf::from("deploy-action")),
            "{name} is a link to deploy-action"
        );
        let mut c = std::process::Command::new(&bin);
        c.current_dir(dir.path()).args([name, "--version"]);
        let r = run(c).await;
        assert_eq!(r.code, 0, "deploy-action {name} --version: {r:?}");
        assert_eq!(
            r.stdout.trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION"))
        );
        // The tool's own argument errors, under the tool's name.
        let mut c = std::process::Command::new(&bin);
        c.current_dir(dir.path()).args([name, "--no-such-flag"]);
        let r = run(c).await;
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains(&format!("Usage: {name}")), "{}", r.stderr);
    }
    let mut c = std::process::Command::new(&bin);
    c.arg("--version");
    let r = run(c).await;
    assert_eq!(
        r.stdout.trim(),
        format!("deploy-action {}", env!("CARGO_PKG_VERSION"))
    );
    let mut c = std::process::Command::new(&bin);
    c.arg("--help");
    let r = run(c).await;
    assert_eq!(r.code, 0);
    assert!(TOOLS.iter().all(|t| r.stdout.contains(t)), "{}", r.stdout);

    for args in [&[][..], &["deploy"][..]] {
        let outputs = dir.path().join("outputs");
        std::fs::write(&outputs, "").unwrap();
        let mut c = std::process::Command::new(&bin);
        c.args(args).env("GITHUB_OUTPUT", &outputs);
        let r = run(c).await;
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(
            r.stderr
                .contains("sync-check, ecr-push, health-check, smoke-test, rollback"),
            "{}",
            r.stderr
        );
        let out = std::fs::read_to_string(&outputs).unwrap();
        assert!(out.contains("usage error") && out.contains('2'), "{out}");
    }
}

#[tokio::test]
async fn bad_arguments_exit_2_with_clap_message() {
    let dir = tempfile::tempdir().unwrap();
    for name in TOOLS {
        let mut c = tool(name, dir.path());
        c.arg("--no-such-flag");
        let r = run(c).await;
        assert_eq!(r.code, 2, "{name}: {r:?}");
        assert!(
            r.stderr.contains("unexpected argument '--no-such-flag'"),
            "{}",
            r.stderr
        );
        let mut c = tool(name, dir.path());
        c.args(["--format", "yaml"]);
        assert_eq!(run(c).await.code, 2, "{name} --format yaml");
    }
}

#[tokio::test]
async fn config_errors_exit_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deploy.toml"),
        "[environments.staging]\nbase_url = \"https://s.example\"\nprotected = \"yes\"\n",
    )
    .unwrap();
    let r = run(tool("health-check", dir.path())).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("deploy.toml:3:13: environments.staging.protected: invalid type"),
        "{}",
        r.stderr
    );

    let mut c = tool("smoke-test", dir.path());
    c.args(["--config", "missing.toml"]);
    let r = run(c).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("couldn't read config file missing.toml"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn missing_variable_in_config_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = tool("smoke-test", dir.path());
    c.args(["--base-url", "http://127.0.0.1:1"]);
    let r = run(c).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("environment variable API_TOKEN is not set"),
        "{}",
        r.stderr
    );
}

/// A fork's pull request has none of the deploy secrets: sync-check, which reads only
/// `[defaults]`, runs with production's `${PROD_URL}` unset; health-check on staging runs too;
/// health-check on production stops with exit 2 naming the file, line, key and variable.
#[tokio::test]
async fn an_unset_variable_stops_only_the_tools_that_read_it() {
    let svc = StandIn::start(Behaviour::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for args in [
        vec!["init", "-q", "-b", "main"],
        vec![
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "init",
        ],
        vec!["remote", "add", "origin", "."],
    ] {
        let st = std::process::Command::new("git")
            .args(&args)
            .current_dir(d)
            .status()
            .unwrap();
        assert!(st.success(), "git {args:?}");
    }
    std::fs::write(
        d.join("deploy.toml"),
        format!(
            "[environments.staging]\nbase_url = \"{}\"\n\n\
             [environments.production]\nbase_url = \"${{PROD_URL}}\"\nprotected = true\n\n\
             [[health.checks]]\nname = \"ready\"\npath = \"/api/ready\"\n",
            svc.url
        ),
    )
    .unwrap();
    let mut c = tool("sync-check", d);
    c.args(["--publish", "never"]);
    let r = run(c).await;
    assert_eq!(r.code, 0, "{r:?}");

    let mut c = tool("health-check", d);
    c.args(["-e", "staging", "--wait", "10s", "--interval", "100ms"]);
    let r = run(c).await;
    assert_eq!(r.code, 0, "{r:?}");

    let mut c = tool("health-check", d);
    c.args(["-e", "production", "--wait", "10s"]);
    let r = run(c).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("deploy.toml:5:13: environments.production.base_url: environment variable PROD_URL is not set"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn unknown_environment_lists_the_defined_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deploy.toml"),
        "[environments.staging]\n[[health.checks]]\nname = \"h\"\npath = \"/api/health\"\n",
    )
    .unwrap();
    let mut c = tool("health-check", dir.path());
    c.args(["-e", "prod"]);
    let r = run(c).await;
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("no environment named \"prod\" (defined: staging)"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn health_check_embedded_default_passes_and_fails_with_the_service() {
    let s = StandIn::start(Behaviour::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = tool("health-check", dir.path());
    c.args(["--base-url", &s.url, "--format", "json"]);
    let r = run(c).await;
    assert_eq!(r.code, 0, "{r:?}");
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["outcome"], "passed");
    assert_eq!(report["checks"].as_array().unwrap().len(), 3);

    s.shared.set(Behaviour {
        ready: false,
        ..Behaviour::default()
    });
    let mut c = tool("health-check", dir.path());
    c.args(["--base-url", &s.url, "--wait", "1s", "--interval", "200ms"]);
    let r = run(c).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("✘ Control Center readiness"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("status 503, expected 200"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn unreachable_service_fails_the_check_not_the_tool() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let mut c = tool("health-check", dir.path());
    c.args(["--base-url", &url, "--wait", "1s", "--interval", "200ms"]);
    let r = run(c).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("couldn't connect to"), "{}", r.stderr);
}

#[tokio::test]
async fn smoke_test_never_prints_the_bearer_token() {
    let s = StandIn::start(Behaviour::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let report = dir.path().join("report.json");
    let summary = dir.path().join("summary.md");
    let outputs = dir.path().join("outputs");
    let secret = "tok-never-print-me-31337";
    let mut c = tool("smoke-test", dir.path());
    c.args(["--base-url", &s.url, "--format", "json"])
        .arg("--junit")
        .arg(&junit)
        .arg("--report")
        .arg(&report)
        .env("API_TOKEN", secret)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &outputs);
    let r = run(c).await;
    // The stand-in expects another token: the Workflow API check fails with 401.
    assert_eq!(r.code, 1, "{r:?}");
    // Workflow commands go to stderr (the runner reads them there too): stdout is only JSON.
    assert!(
        r.stderr.starts_with("::add-mask::"),
        "masks first:\n{}",
        r.stderr
    );
    assert!(
        serde_json::from_str::<serde_json::Value>(&r.stdout).is_ok(),
        "stdout must be the JSON report alone:\n{}",
        r.stdout
    );
    // Masks carry the secret by design (the runner needs it): everything else must not.
    assert!(
        r.stderr.contains(&format!("::add-mask::{secret}\n")),
        "{}",
        r.stderr
    );
    let mut everything: String = r
        .all()
        .lines()
        .filter(|l| !l.starts_with("::add-mask::"))
        .collect::<Vec<_>>()
        .join("\n");
    for f in [&junit, &report, &summary, &outputs] {
        everything.push_str(&std::fs::read_to_string(f).unwrap());
    }
    assert!(everything.contains("status 401"), "{everything}");
    assert!(!everything.contains(secret), "token leaked:\n{everything}");
}

#[test]
fn workspace_root_has_the_documented_layout() {
    let root = rig::workspace_root();
    for p in [
        "action.yml",
        "deploy.example.toml",
        "README.md",
        ".ci/run",
        ".github/workflows/ci.yml",
        "workflows-examples",
    ] {
        assert!(root.join(p).exists(), "{p} is missing");
    }
}

/// A base URL with a query or fragment would send every check to the same place (the path is
/// added to it): refused, from the flag and from the config, before any request.
#[tokio::test]
async fn a_base_url_with_a_query_or_fragment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deploy.toml"),
        "[environments.s]\nbase_url = \"http://127.0.0.1:9/api?x=1\"\n",
    )
    .unwrap();
    for name in ["health-check", "smoke-test"] {
        let mut c = tool(name, dir.path());
        c.args(["--base-url", "http://127.0.0.1:9/api?x=1#frag"]);
        let r = run(c).await;
        assert_eq!(r.code, 2, "{name}: {r:?}");
        assert!(
            r.stderr
                .contains("--base-url: a base URL takes no query (?) or fragment (#)"),
            "{name}: {}",
            r.stderr
        );
        let mut c = tool(name, dir.path());
        c.args(["-e", "s"]);
        let r = run(c).await;
        assert_eq!(r.code, 2, "{name}: {r:?}");
        assert!(
            r.stderr
                .contains("environments.s.base_url: a base URL takes no query"),
            "{name}: {}",
            r.stderr
        );
    }
}

/// A file a tool writes at its end, in a directory that does not exist: a usage error when the
/// flags are read, before any change (a push, a rollback) could happen.
#[tokio::test]
async fn an_output_file_in_a_missing_directory_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("outputs");
    for name in TOOLS {
        for flag in ["--junit", "--report"] {
            std::fs::write(&outputs, "").unwrap();
            let mut c = tool(name, dir.path());
            c.args([flag, "/no-such-dir-7e1/out.xml"])
                .env("GITHUB_OUTPUT", &outputs);
            let r = run(c).await;
            assert_eq!(r.code, 2, "{name} {flag}: {r:?}");
            assert!(
                r.stderr
                    .contains("directory /no-such-dir-7e1 does not exist"),
                "{name} {flag}: {}",
                r.stderr
            );
            let out = std::fs::read_to_string(&outputs).unwrap();
            assert!(out.contains("exit-code<<"), "{name} {flag}: {out}");
        }
    }
    let mut c = tool("rollback", dir.path());
    c.args(["--incident-file", "/no-such-dir-7e1/incident.json"]);
    let r = run(c).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--incident-file"), "{}", r.stderr);
}

/// An endless input file (`/dev/zero`) is an error saying it is too large, not a tool that
/// fills the memory: the config of every tool, and sync-check's event payload.
#[tokio::test]
async fn an_endless_config_or_event_file_is_refused_not_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    for name in TOOLS {
        let mut c = tool(name, dir.path());
        c.args(["--config", "/dev/zero"]);
        let r = run(c).await;
        assert_eq!(r.code, 2, "{name}: {r:?}");
        assert!(
            r.stderr.contains("larger than 8 MiB"),
            "{name}: {}",
            r.stderr
        );
    }
    let mut c = tool("sync-check", dir.path());
    c.args(["--publish", "never"])
        .env("GITHUB_EVENT_NAME", "pull_request")
        .env("GITHUB_EVENT_PATH", "/dev/zero");
    let r = run(c).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("larger than 64 MiB"), "{}", r.stderr);
}

/// A `${VAR}` set to bytes that are not UTF-8 is named as such, not as unset (and never sent as a
/// lossy copy of what may be a secret).
#[tokio::test]
async fn a_variable_that_is_not_utf8_is_named_as_such() {
    use std::os::unix::ffi::OsStringExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deploy.toml"),
        "[environments.s]\nbase_url = \"http://127.0.0.1:9\"\n\n[[smoke.checks]]\nname = \"a\"\npath = \"/\"\nheaders = { Authorization = \"Bearer ${API_TOKEN}\" }\n",
    )
    .unwrap();
    let mut c = tool("smoke-test", dir.path());
    c.args(["-e", "s"]).env(
        "API_TOKEN",
        std::ffi::OsString::from_vec(b"tok\xff\xfe".to_vec()),
    );
    let r = run(c).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("environment variable API_TOKEN is set but not valid UTF-8"),
        "{}",
        r.stderr
    );
}
