//! The release as `scripts/release.sh` makes it, end to end: origin is a bare git repository on
//! disk, GitHub's release API and downloads are the local HTTPS host of
//! `deploy_action_e2e::release_host`, and the archives are small fakes (five shell scripts that
//! answer `--version`), so no tool is built. After a release, `scripts/action-install.sh` from a
//! checkout of `@vX.Y.Z` and of `@vN` installs verified from the host. Each failure (upload,
//! publish, existing tag) leaves no published release, no new version tag and `vN` unmoved; the
//! token never appears in the script's output. A private action repository's release (anonymous
//! downloads refused) installs with the github-token input, which reaches only the release host.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)] // test code

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use deploy_action_e2e::git::git_ok;
use deploy_action_e2e::release::{BINARY, asset, host_target};
use deploy_action_e2e::release_host::{Mode, ReleaseHost};
use deploy_action_e2e::rig::{self, git};

const REPO: &str = "afu9/deploy-action";
const TOKEN: &str = "ghs_releaseFlowT0kenThatMustNeverBePrinted";
const TARGETS: [&str; 4] = [
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "aarch64-apple-darwin",
    "x86_64-apple-darwin",
];
const OLD_LINE: &str = "1111111111111111111111111111111111111111111111111111111111111111  deploy-action-v0.9.0-x86_64-unknown-linux-musl.tar.gz";

/// The commit a tag on origin points at, if it exists.
fn tag_commit(bare: &Path, tag: &str) -> Option<String> {
    git_ok(
        bare,
        &[
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/tags/{tag}^{{commit}}"),
        ],
    )
}

/// A repository about to release `cargo_version`: origin (bare) with main and a `v1` tag on an
/// earlier commit (a previous release, as far as the tags go), a full checkout of it as the
/// release job has, and the dist dir of fake archives for `tag`.
struct Project {
    dir: tempfile::TempDir,
    bare: PathBuf,
    checkout: PathBuf,
    /// The commit `v1` points at before the release.
    old_v1: String,
    /// The commit to release (main).
    main: String,
    dist: PathBuf,
}

impl Project {
    fn new(cargo_version: &str, tag: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let bare = d.join("origin.git");
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "-q", "--bare", "-b", "main"]);
        let src = d.join("src");
        std::fs::create_dir_all(src.join("scripts")).unwrap();
        let root = rig::workspace_root();
        for f in [
            "action.yml",
            "scripts/action-install.sh",
            "scripts/action-run.sh",
        ] {
            std::fs::copy(root.join(f), src.join(f)).unwrap();
        }
        std::fs::write(
            src.join("checksums.txt"),
            format!("# sha256  archive\n{OLD_LINE}\n"),
        )
        .unwrap();
        std::fs::write(
            src.join("Cargo.toml"),
            "[workspace.package]\nversion = \"0.9.0\"\n",
        )
        .unwrap();
        git(&src, &["init", "-q", "-b", "main"]);
        git(&src, &["add", "-A"]);
        git(&src, &["commit", "-qm", "earlier"]);
        git(&src, &["tag", "v1"]);
        std::fs::write(
            src.join("Cargo.toml"),
            format!("[workspace.package]\nversion = \"{cargo_version}\"\n"),
        )
        .unwrap();
        git(&src, &["commit", "-qam", "the version"]);
        let bare_s = bare.to_str().unwrap();
        git(&src, &["push", "-q", bare_s, "main", "refs/tags/v1"]);
        let old_v1 = tag_commit(&bare, "v1").unwrap();
        let main = git_ok(&bare, &["rev-parse", "refs/heads/main"]).unwrap();
        git(d, &["clone", "-q", bare_s, "checkout"]);
        let checkout = d.join("checkout");
        let dist = d.join("dist");
        fake_archives(&dist, tag, cargo_version);
        Project {
            dir,
            bare,
            checkout,
            old_v1,
            main,
            dist,
        }
    }

    /// The commit `tag` names on origin, if it is there.
    fn tag(&self, tag: &str) -> Option<String> {
        tag_commit(&self.bare, tag)
    }

    /// [`Project::release`], which must succeed when `ok` and fail otherwise: its log.
    fn released(&self, host: &ReleaseHost, tag: &str, ok: bool) -> String {
        let (done, log) = self.release(host, tag);
        assert_eq!(done, ok, "{log}");
        log
    }

    /// scripts/release.sh (this tree's) in the checkout against `host`, ready to run.
    fn release_cmd(&self, host: &ReleaseHost, tag: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(rig::workspace_root().join("scripts/release.sh"))
            .arg(tag)
            .arg(&self.dist)
            .current_dir(&self.checkout);
        scrub(&mut cmd);
        cmd.env("GH_TOKEN", TOKEN)
            .env("GITHUB_API_URL", &host.url)
            .env("GITHUB_REPOSITORY", REPO)
            .env("CURL_CA_BUNDLE", &host.ca)
            .env("EXPECT_ARCHIVES", "4");
        cmd
    }

    /// Runs scripts/release.sh (this tree's) in the checkout against `host`.
    fn release(&self, host: &ReleaseHost, tag: &str) -> (bool, String) {
        let out = self.release_cmd(host, tag).output().unwrap();
        let log = text(&out);
        eprintln!("release.sh {tag}:\n{log}");
        assert!(!log.contains(TOKEN), "the token was printed:\n{log}");
        (out.status.success(), log)
    }

    /// scripts/action-install.sh from a clone of origin at `at`, downloading from `host`.
    fn install(
        &self,
        host: &ReleaseHost,
        at: &str,
        token: Option<&str>,
        server: Option<&str>,
    ) -> Install {
        let run = rig::unique("run");
        let co = self.dir.path().join(format!("at-{at}-{run}"));
        git(
            self.dir.path(),
            &[
                "clone",
                "-q",
                "--branch",
                at,
                self.bare.to_str().unwrap(),
                co.to_str().unwrap(),
            ],
        );
        let runner = self.dir.path().join(format!("runner-{at}-{run}"));
        std::fs::create_dir_all(runner.join("temp")).unwrap();
        let outputs = runner.join("outputs");
        std::fs::write(&outputs, "").unwrap();
        let mut cmd = Command::new("bash");
        cmd.arg(co.join("scripts/action-install.sh"));
        scrub(&mut cmd);
        cmd.env("INPUT_TOOL", "health-check")
            .env("GITHUB_ACTION_PATH", &co)
            .env("GITHUB_OUTPUT", &outputs)
            .env("RUNNER_TEMP", runner.join("temp"))
            .env("RUNNER_TOOL_CACHE", runner.join("tool-cache"))
            .env("DEPLOY_ACTION_RELEASE_URL", host.download_base(REPO))
            .env("GITHUB_API_URL", &host.url)
            .env("CURL_CA_BUNDLE", &host.ca);
        if let Some(t) = token {
            cmd.env("INPUT_GITHUB_TOKEN", t);
        }
        if let Some(server) = server {
            cmd.env("GITHUB_SERVER_URL", server);
        }
        let out = cmd.output().unwrap();
        let log = text(&out);
        eprintln!("action-install.sh at {at}:\n{log}");
        let outputs = std::fs::read_to_string(&outputs).unwrap();
        let bin = outputs
            .lines()
            .find_map(|l| l.strip_prefix("bin="))
            .map(PathBuf::from);
        let version = bin.as_ref().map(|b| {
            let o = Command::new(b).arg("--version").output().unwrap();
            String::from_utf8_lossy(&o.stdout).trim().to_owned()
        });
        Install {
            ok: out.status.success(),
            log,
            version,
            runner,
        }
    }
}

/// A release host in `mode` and a project at `cargo_version` with archives for `tag`.
fn start(mode: Mode, cargo_version: &str, tag: &str) -> (ReleaseHost, Project) {
    (
        ReleaseHost::start(TOKEN, mode),
        Project::new(cargo_version, tag),
    )
}

/// The install `i` succeeded and installed `version`.
fn installed(i: &Install, version: &str) {
    assert!(i.ok, "{}", i.log);
    assert_eq!(i.version.as_deref(), Some(version), "{}", i.log);
}

struct Install {
    ok: bool,
    log: String,
    version: Option<String>,
    runner: PathBuf,
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// No ambient CI or git configuration reaches the scripts.
fn scrub(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("GITHUB_")
            || k.starts_with("RUNNER_")
            || k.starts_with("INPUT_")
            || k.starts_with("GIT_")
            || k.starts_with("DEPLOY_")
            || k == "GH_TOKEN"
            || k == "CI"
        {
            cmd.env_remove(&k);
        }
    }
    cmd.env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com");
}

/// One archive per target, each a stand-in for the multi-call binary (a shell script printing
/// `<the name it was started as> <version>` on `--version`, as the real one does through the
/// five links) plus the licence files: what the install path checks, without a cargo build.
fn fake_archives(dist: &Path, tag: &str, version: &str) {
    let stage = dist.with_file_name("stage");
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::create_dir_all(dist).unwrap();
    let p = stage.join(BINARY);
    std::fs::write(&p, format!("#!/bin/sh\necho \"${{0##*/}} {version}\"\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(stage.join("LICENSE-MIT"), "MIT\n").unwrap();
    std::fs::write(stage.join("LICENSE-APACHE"), "Apache-2.0\n").unwrap();
    for target in TARGETS {
        let st = Command::new("tar")
            .arg("-czf")
            .arg(dist.join(asset(tag, target)))
            .arg("-C")
            .arg(&stage)
            .args([BINARY, "LICENSE-MIT", "LICENSE-APACHE"])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

#[test]
fn a_release_tags_publishes_moves_the_major_tag_and_installs_at_both_tags() {
    let (host, p) = start(Mode::Normal, "1.0.0", "v1.0.0");
    p.released(&host, "v1.0.0", true);

    // vX.Y.Z and vN point at the release commit, a child of the chosen commit.
    let release = tag_commit(&p.bare, "v1.0.0").expect("v1.0.0 on origin");
    assert_eq!(tag_commit(&p.bare, "v1").as_deref(), Some(release.as_str()));
    assert_eq!(
        git_ok(&p.bare, &["rev-parse", &format!("{release}^")]).as_deref(),
        Some(p.main.as_str())
    );
    // Its checksums.txt keeps the earlier line and lists this release's archives; VERSION names it.
    let sums = git_ok(&p.bare, &["show", &format!("{release}:checksums.txt")]).unwrap();
    assert!(sums.contains(OLD_LINE), "{sums}");
    for target in TARGETS {
        let a = asset("v1.0.0", target);
        let line = sums
            .lines()
            .find(|l| l.ends_with(&format!("  {a}")))
            .unwrap_or_else(|| panic!("no line for {a}:\n{sums}"));
        let want = Command::new("sha256sum")
            .arg(p.dist.join(&a))
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&want.stdout).starts_with(&line[..64]));
    }
    assert_eq!(
        git_ok(&p.bare, &["show", &format!("{release}:VERSION")]).as_deref(),
        Some("v1.0.0")
    );
    // main is not touched: the release commit is reachable from the tags only.
    assert_eq!(
        git_ok(&p.bare, &["rev-parse", "refs/heads/main"]).as_deref(),
        Some(p.main.as_str())
    );

    // Published, with every archive and sha256sums.txt, created as a draft first.
    let state = host.state();
    let releases: Vec<_> = state.as_object().unwrap().values().collect();
    assert_eq!(releases.len(), 1, "{state}");
    assert_eq!(releases[0]["tag_name"], "v1.0.0");
    assert_eq!(releases[0]["draft"], false);
    let assets: Vec<&str> = releases[0]["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(assets.len(), 5, "{assets:?}");
    assert!(assets.contains(&"sha256sums.txt"));
    let methods: Vec<String> = host
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path.split('?').next().unwrap()))
        .collect();
    assert_eq!(
        methods[0],
        format!("POST /repos/{REPO}/releases"),
        "{methods:?}"
    );
    assert!(methods.last().unwrap().starts_with("PATCH "), "{methods:?}");

    // @v1.0.0 and @v1 install this release's archive, verified.
    for at in ["v1.0.0", "v1"] {
        let i = p.install(&host, at, None, None);
        installed(&i, "health-check 1.0.0");
        assert!(i.log.contains(&asset("v1.0.0", host_target())), "{}", i.log);
    }
}

/// The assertions every failed release shares: nothing published, no version tag, v1 unmoved.
fn assert_nothing_released(p: &Project, host: &ReleaseHost) {
    assert!(
        host.published_tags().is_empty(),
        "published: {:?}",
        host.state()
    );
    assert_eq!(
        host.state().as_object().unwrap().len(),
        0,
        "a draft was left: {}",
        host.state()
    );
    assert_eq!(
        tag_commit(&p.bare, "v1.0.0"),
        None,
        "v1.0.0 was left on origin"
    );
    assert_eq!(p.tag("v1"), Some(p.old_v1.clone()));
    let tags = git_ok(&p.bare, &["tag", "-l"]).unwrap();
    assert_eq!(tags, "v1", "tags on origin: {tags}");
}

#[test]
fn a_failed_upload_deletes_the_draft_and_the_pushed_tag() {
    let (host, p) = start(Mode::FailUpload, "1.0.0", "v1.0.0");
    let log = p.released(&host, "v1.0.0", false);
    assert!(log.contains("HTTP 500"), "{log}");
    assert!(log.contains("deleting the draft release"), "{log}");
    assert!(log.contains("deleting the tag v1.0.0"), "{log}");
    assert_nothing_released(&p, &host);
    // The tag was pushed before the release was created, and deleted after the draft.
    let methods: Vec<String> = host.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods.first().map(String::as_str), Some("POST"));
    assert_eq!(methods.last().map(String::as_str), Some("DELETE"));
}

/// A run cancelled mid-upload (SIGTERM, as a cancelled job or its timeout sends) undoes like a
/// failure: the draft and the tag it pushed are deleted, so the version can be released again.
#[test]
fn a_cancelled_release_deletes_the_draft_and_the_pushed_tag() {
    let (host, p) = start(Mode::StallUpload, "1.0.0", "v1.0.0");
    let mut cmd = p.release_cmd(&host, "v1.0.0");
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !host.requests().iter().any(|r| r.path.contains("/uploads/")) {
        assert!(std::time::Instant::now() < deadline, "no upload started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SIGTERM to the script (curl, its child, is killed with it by the runner; here the script's
    // own trap must do the undo).
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("deleting the draft release"), "{log}");
    assert!(log.contains("deleting the tag v1.0.0"), "{log}");
    assert_nothing_released(&p, &host);
}

#[test]
fn a_failed_publish_deletes_the_draft_and_the_pushed_tag() {
    let (host, p) = start(Mode::FailPublish, "1.0.0", "v1.0.0");
    let log = p.released(&host, "v1.0.0", false);
    assert!(log.contains("PATCH"), "{log}");
    assert_nothing_released(&p, &host);
}

#[test]
fn an_existing_tag_is_refused_before_anything_changes_and_is_left_alone() {
    let (host, p) = start(Mode::Normal, "1.0.0", "v1.0.0");
    // Someone pushed v1.0.0 already (on the earlier commit).
    git(&p.bare, &["tag", "v1.0.0", &p.old_v1]);
    let log = p.released(&host, "v1.0.0", false);
    assert!(log.contains("already exists"), "{log}");
    assert_eq!(p.tag("v1.0.0"), Some(p.old_v1.clone()));
    assert_eq!(p.tag("v1"), Some(p.old_v1.clone()));
    assert!(
        host.requests().is_empty(),
        "the API was called: {:?}",
        host.requests()
    );
}

#[test]
fn a_version_that_is_not_the_workspace_version_is_refused() {
    let (host, p) = start(Mode::Normal, "1.0.0", "v1.0.1");
    let log = p.released(&host, "v1.0.1", false);
    assert!(
        log.contains("does not match the workspace version '1.0.0'"),
        "{log}"
    );
    let log = p.released(&host, "1.0.0", false);
    assert!(log.contains("must look like v1.2.3"), "{log}");
    assert_eq!(git_ok(&p.bare, &["tag", "-l"]).as_deref(), Some("v1"));
    assert!(host.requests().is_empty());
}

#[test]
fn a_refused_anonymous_download_is_retried_once_with_the_token_and_the_redirect_gets_none() {
    let (host, p) = start(Mode::Private, "1.0.0", "v1.0.0");
    p.released(&host, "v1.0.0", true);
    let before = host.requests().len();

    // Without a token the refusal is an install failure that says why.
    let anon = p.install(&host, "v1.0.0", None, Some(&host.url));
    assert!(!anon.ok, "{}", anon.log);
    assert!(anon.log.contains("HTTP 404"), "{}", anon.log);
    assert!(anon.log.contains("no github-token input"), "{}", anon.log);

    // A token is never sent to a URL off the workflow's GitHub server (a mirror).
    let off = p.install(&host, "v1.0.0", Some(TOKEN), Some("https://github.example"));
    assert!(!off.ok, "{}", off.log);
    assert!(
        off.log.contains("not retrying with the github-token input"),
        "{}",
        off.log
    );
    assert!(!off.log.contains(TOKEN), "{}", off.log);

    let i = p.install(&host, "v1", Some(TOKEN), Some(&host.url));
    installed(&i, "health-check 1.0.0");
    assert!(
        i.log.contains(
            "deploy-action: the anonymous download was refused (HTTP 404); retrying with the github-token input"
        ),
        "{}",
        i.log
    );
    assert!(!i.log.contains(TOKEN), "the token was printed:\n{}", i.log);
    // Nor is it in any file the install left (tool cache, RUNNER_TEMP, step outputs).
    for f in deploy_action_e2e::release::files_under(&i.runner) {
        let bytes = std::fs::read(i.runner.join(&f)).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(TOKEN),
            "the token is in {}",
            f.display()
        );
    }

    // After one anonymous refusal of the browser URL (which, as on GitHub, takes no token), the
    // token went to the REST API twice (the release by tag, then the asset as
    // application/octet-stream), and never to the redirect's other origin.
    let downloads: Vec<_> = host.requests()[before..]
        .iter()
        .filter(|r| {
            r.path.contains("/releases/download/")
                || r.path.contains("/releases/tags/")
                || r.path.contains("/releases/assets/")
                || r.srv == "objects"
        })
        .cloned()
        .collect();
    eprintln!("{downloads:#?}");
    let auth = format!("Bearer {TOKEN}");
    let with_token: Vec<_> = downloads
        .iter()
        .filter(|r| r.auth.as_deref() == Some(auth.as_str()))
        .collect();
    let paths: Vec<&str> = with_token.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths.len(), 2, "{downloads:#?}");
    assert_eq!(paths[0], format!("/repos/{REPO}/releases/tags/v1.0.0"));
    assert!(
        paths[1].starts_with(&format!("/repos/{REPO}/releases/assets/")),
        "{paths:?}"
    );
    assert!(with_token.iter().all(|r| r.srv == "api"));
    assert!(
        downloads
            .iter()
            .filter(|r| r.path.contains("/releases/download/"))
            .all(|r| r.auth.is_none()),
        "the browser download URL never gets the token"
    );
    let objects: Vec<_> = downloads.iter().filter(|r| r.srv == "objects").collect();
    assert_eq!(objects.len(), 1, "{downloads:#?}");
    assert_eq!(objects[0].auth, None, "the redirect target saw a token");
    assert!(downloads.iter().all(|r| r.auth.is_none() || r.srv == "api"));
}

#[test]
fn an_older_patch_release_is_published_and_leaves_the_major_tag_on_the_newest() {
    let (host, p) = start(Mode::Normal, "1.0.1", "v1.0.1");
    // v1.1.0 is out already (v1 points at it); a patch of the 1.0 line follows.
    git(&p.bare, &["tag", "v1.1.0", &p.old_v1]);
    let log = p.released(&host, "v1.0.1", true);
    assert!(
        log.contains("v1 stays where it is: v1.1.0 is newer than v1.0.1"),
        "{log}"
    );
    assert_eq!(host.published_tags(), ["v1.0.1"]);
    assert!(tag_commit(&p.bare, "v1.0.1").is_some());
    assert_eq!(
        p.tag("v1"),
        Some(p.old_v1.clone()),
        "v1 moved to an older release"
    );
    assert_eq!(p.tag("v1.1.0"), Some(p.old_v1.clone()));
    let i = p.install(&host, "v1.0.1", None, None);
    installed(&i, "health-check 1.0.1");
}

#[test]
fn a_refused_major_tag_move_leaves_it_where_it_was_and_says_the_release_is_published() {
    let (host, p) = start(Mode::Normal, "1.0.0", "v1.0.0");
    // Origin refuses any update of v1 (a tag ruleset would): the release is out, v1 is not moved.
    let hook = p.bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nwhile read old new ref; do\n  if [ \"$ref\" = refs/tags/v1 ]; then echo \"refs/tags/v1 is protected\" >&2; exit 1; fi\ndone\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (ok, log) = p.release(&host, "v1.0.0");
    assert!(!ok, "the run must fail when v1 is not moved:\n{log}");
    assert!(
        log.contains("v1.0.0 is published, but moving v1 failed: move it by hand"),
        "{log}"
    );
    assert!(
        !log.contains("deleting the"),
        "nothing published is undone:\n{log}"
    );
    assert_eq!(host.published_tags(), ["v1.0.0"]);
    assert!(
        tag_commit(&p.bare, "v1.0.0").is_some(),
        "the version tag stays"
    );
    assert_eq!(p.tag("v1"), Some(p.old_v1.clone()), "v1 is where it was");
    let i = p.install(&host, "v1.0.0", None, None);
    installed(&i, "health-check 1.0.0");
}
