//! sync-check's fetch and push with a token (issue 10), against a real git smart-HTTP server
//! (`git http-backend` behind a small axum front that demands the token as Basic auth, as
//! github.com does): the token reaches the fetch and push and nothing else (no hook sees it, no
//! file under `.git` keeps it, no output prints it); user input cannot become a git option; and a
//! failed push says why: the lease (exit 1) or anything else (exit 3).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine;
use deploy_action_e2e::git::{bare, clone, clone_main, commit, git, push_theirs};
use deploy_action_e2e::report::check;
use deploy_action_e2e::rig::{Ran, run, tool};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

const TOKEN: &str = "ghs_transportTOKEN_4f9a8b7c6d5e";

/// The HTTP git server's state.
struct Server {
    root: PathBuf,
    /// The Authorization header it accepts.
    expected: String,
    /// Requests that carried the right token.
    authorized: AtomicUsize,
    /// Refuse pushes with 403 (a token without write access).
    deny_push: AtomicBool,
}

async fn cgi(State(s): State<Arc<Server>>, req: Request) -> Response {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if auth.as_deref().map(str::to_ascii_lowercase) != Some(s.expected.to_ascii_lowercase()) {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("WWW-Authenticate", "Basic realm=\"git\"")
            .body(Body::from("no token"))
            .unwrap();
    }
    s.authorized.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let pushing = path.ends_with("git-receive-pack") || query.contains("git-receive-pack");
    if pushing && s.deny_push.load(Ordering::SeqCst) {
        return Response::builder()
            .status(StatusCode::FORBIDDEN)
            .body(Body::from("write access to this repository is not granted"))
            .unwrap();
    }
    let method = req.method().to_string();
    let (content_type, encoding) = {
        let header = |k: &str| {
            req.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        (header("content-type"), header("content-encoding"))
    };
    let body = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .unwrap();
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("GIT_PROJECT_ROOT", &s.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", "x-access-token")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("PATH_INFO", &path)
        .env("QUERY_STRING", &query)
        .env("REQUEST_METHOD", &method)
        .env("CONTENT_TYPE", &content_type)
        .env("HTTP_CONTENT_ENCODING", &encoding)
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&body).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    // CGI: headers, a blank line, the body.
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| {
            out.stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, 2))
        })
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout[..split.0]).into_owned();
    let mut resp = Response::builder().status(StatusCode::OK);
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            let code: u16 = v.split(' ').next().unwrap().parse().unwrap();
            resp = resp.status(code);
        } else {
            resp = resp.header(k, HeaderValue::from_str(v).unwrap());
        }
    }
    resp.body(Body::from(out.stdout[split.0 + split.1..].to_vec()))
        .unwrap()
}

async fn serve(root: &Path) -> (SocketAddr, Arc<Server>) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"));
    let state = Arc::new(Server {
        root: root.to_owned(),
        expected: format!("basic {basic}"),
        authorized: AtomicUsize::new(0),
        deny_push: AtomicBool::new(false),
    });
    let app = axum::Router::new().fallback(cgi).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, state)
}

/// Hooks that append their name and whole environment to `<repo>/../hook-env`.
const HOOKS: &[&str] = &[
    "reference-transaction",
    "post-checkout",
    "post-rewrite",
    "pre-rebase",
    "post-merge",
    "pre-push",
    "pre-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-auto-gc",
];

fn install_hooks(work: &Path, log: &Path) {
    let hooks = work.join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    for h in HOOKS {
        let p = hooks.join(h);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\n{{ echo \"== {h}\"; env; }} >> '{}'\ncat >/dev/null 2>&1 || true\nexit 0\n",
                log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Every file under `.git` except objects, as lossy text.
fn git_dir_text(work: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![work.join(".git")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("objects") {
                    stack.push(p);
                }
            } else {
                out.push((
                    p.clone(),
                    String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned(),
                ));
            }
        }
    }
    out
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    work: PathBuf,
    other: PathBuf,
    origin: PathBuf,
    url: String,
    server: Arc<Server>,
    addr: SocketAddr,
}

/// A bare origin served over HTTP with the token, `work` cloned from it (feat pushed, then main
/// moved on) and `other`, a clone on the file system.
async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let origin = bare(&root);
    git(&origin, &["config", "http.receivepack", "true"]);
    let other = clone_main(&root, &origin, "other");
    commit(&other, "a.txt", "a\n", "init");
    git(&other, &["push", "-q", "origin", "main"]);
    let (addr, server) = serve(&root).await;
    let url = format!("http://{addr}/origin.git");
    let work = clone(&root, &origin, "work");
    git(&work, &["remote", "set-url", "origin", &url]);
    git(&work, &["config", "user.name", "dev"]);
    git(&work, &["config", "user.email", "dev@example.com"]);
    git(&work, &["checkout", "-q", "-b", "feat"]);
    commit(&work, "w.txt", "w\n", "feat work");
    // Push feat through the file system (the test's own git has no token).
    let path = origin.to_str().unwrap().to_owned();
    git(&work, &["push", "-q", &path, "feat"]);
    git(&work, &["update-ref", "refs/remotes/origin/feat", "feat"]);
    commit(&other, "m.txt", "m\n", "main work");
    git(&other, &["push", "-q", "origin", "main"]);
    Setup {
        _dir: dir,
        root,
        work,
        other,
        origin,
        url,
        server,
        addr,
    }
}

async fn sync(s: &Setup, args: &[&str]) -> (Ran, Value) {
    let r = sync_raw(s, args).await;
    let v = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    (r, v)
}

async fn sync_raw(s: &Setup, args: &[&str]) -> Ran {
    let mut c = tool("sync-check", &s.root);
    c.args(["--repo", s.work.to_str().unwrap()])
        .args(args)
        .args(["--format", "json", "--publish", "never"])
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_SERVER_URL", format!("http://{}", s.addr))
        // A variable that merely holds the token is scrubbed too.
        .env("MY_COPY_OF_THE_TOKEN", format!("token={TOKEN}"));
    run(c).await
}

fn basic() -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"))
}

fn assert_no_token(what: &str, text: &str) {
    assert!(
        !text.contains(TOKEN) && !text.contains(&basic()),
        "{what} holds the token:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_reaches_fetch_and_push_only_never_hooks_files_or_output() {
    let s = setup().await;
    let log = s.root.join("hook-env");
    install_hooks(&s.work, &log);
    let (ran, v) = sync(&s, &["--update", "rebase", "--push"]).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        s.server.authorized.load(Ordering::SeqCst) >= 2,
        "the fetch and the push were authorised with the token"
    );
    // The push really happened, over HTTP with the token.
    let new_head = git(&s.work, &["rev-parse", "HEAD"]);
    assert_eq!(git(&s.origin, &["rev-parse", "refs/heads/feat"]), new_head);
    assert_eq!(v["outputs"]["pushed"], "true");
    // Hooks ran (the rebase's), and none saw the token, its Basic form or the credential config.
    let env = std::fs::read_to_string(&log).unwrap();
    assert!(
        env.contains("== post-rewrite"),
        "the rebase's hooks ran:\n{env}"
    );
    assert!(
        !env.contains("== pre-push"),
        "hooks are off for the push that carries the token"
    );
    assert_no_token("a hook's environment", &env);
    assert!(!env.contains("extraheader"), "{env}");
    assert!(!env.contains("MY_COPY_OF_THE_TOKEN"), "{env}");
    // Nothing under .git keeps it (config, reflogs, FETCH_HEAD, packed-refs...).
    for (p, text) in git_dir_text(&s.work) {
        assert_no_token(&p.display().to_string(), &text);
    }
    assert_no_token("sync-check's output", &ran.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_without_the_token_is_refused_by_the_server() {
    // The control for the test above: the server really demands the token.
    let s = setup().await;
    let out = std::process::Command::new("git")
        .args(["fetch", "-q", &s.url])
        .current_dir(&s.work)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(s.server.authorized.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_and_remotes_that_look_like_options_are_refused() {
    let s = setup().await;
    let marker = s.root.join("pwned");
    for (flag, value) in [
        (
            "--head",
            format!("--upload-pack=touch {}", marker.display()),
        ),
        ("--head", "-x".to_owned()),
        (
            "--remote",
            format!("--upload-pack=touch {}", marker.display()),
        ),
    ] {
        let ran = sync_raw(&s, &[&format!("{flag}={value}")]).await;
        assert_eq!(ran.code, 2, "{flag}={value}: {ran:?}");
        assert!(
            ran.stderr.contains(&format!("{flag} \"{value}")) && ran.stderr.contains("with '-'"),
            "{}",
            ran.stderr
        );
    }
    let ran = sync_raw(&s, &["--base", "main:refs/heads/x"]).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains("is not a valid branch name"),
        "{}",
        ran.stderr
    );
    assert!(!marker.exists(), "no option reached git");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_the_server_denies_is_exit_3_with_gits_reason() {
    let s = setup().await;
    s.server.deny_push.store(true, Ordering::SeqCst);
    let start = git(&s.work, &["rev-parse", "HEAD"]);
    let (ran, v) = sync(&s, &["--update", "rebase", "--push"]).await;
    assert_eq!(ran.code, 3, "{ran:?}");
    let push = check(&v, "Push");
    let reason = push["reason"].as_str().unwrap();
    assert!(reason.contains("403"), "git's reason is there: {reason}");
    assert!(!reason.contains("moved since"), "{reason}");
    assert_eq!(git(&s.work, &["rev-parse", "HEAD"]), start, "restored");
    assert_no_token("sync-check's output", &ran.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_an_unreachable_remote_is_exit_3() {
    let s = setup().await;
    git(
        &s.work,
        &[
            "config",
            "remote.origin.pushurl",
            "http://127.0.0.1:9/nowhere.git",
        ],
    );
    let start = git(&s.work, &["rev-parse", "HEAD"]);
    let (ran, v) = sync(&s, &["--update", "rebase", "--push"]).await;
    assert_eq!(ran.code, 3, "{ran:?}");
    let reason = v["error"].as_str().unwrap();
    assert!(
        reason.contains("couldn't push to origin") && reason.contains("127.0.0.1"),
        "{reason}"
    );
    assert_eq!(git(&s.work, &["rev-parse", "HEAD"]), start);
    assert_eq!(v["outputs"]["pushed"], "false");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_losing_the_lease_race_is_exit_1() {
    let s = setup().await;
    // Someone else pushes to feat after this clone last fetched it.
    let theirs = push_theirs(&s.other, "feat", "t.txt", "t\n", "their work");
    let start = git(&s.work, &["rev-parse", "HEAD"]);
    let (ran, v) = sync(&s, &["--update", "rebase", "--push"]).await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(v["error"].as_str().unwrap().contains("lease"), "{v:#}");
    let push = check(&v, "Push");
    let reason = push["reason"].as_str().unwrap();
    assert!(
        reason.contains("stale info") && reason.contains("moved since this clone last saw it"),
        "{reason}"
    );
    assert_eq!(git(&s.origin, &["rev-parse", "refs/heads/feat"]), theirs);
    assert_eq!(git(&s.work, &["rev-parse", "HEAD"]), start);
}
