//! sync-check end to end: the real binary on real git repositories with a bare `origin`, and its
//! GitHub calls validated by Prism. Every failure path of the safe sync is checked for lost commits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

use deploy_action_e2e::git::{
    bare, clone, clone_main, commit, git, git_cmd, git_ok, push_theirs, write,
};
use deploy_action_e2e::report::check;
use deploy_action_e2e::rig::{self, Ran, run, tool, words};
use serde_json::Value;

/// A bare origin with `main` (a.txt, f.txt), and a clone with branch `feat` from main's tip.
struct Repos {
    _dir: tempfile::TempDir,
    root: PathBuf,
    origin: PathBuf,
    work: PathBuf,
    /// A second clone: "another developer".
    other: PathBuf,
}

fn repos() -> Repos {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let origin = bare(&root);
    let seed = clone_main(&root, &origin, "seed");
    commit(&seed, "a.txt", "a\n", "init");
    commit(&seed, "f.txt", "one\ntwo\nthree\n", "f");
    git(&seed, &["push", "-q", "origin", "main"]);
    let work = clone(&root, &origin, "work");
    git(&work, &["checkout", "-q", "-b", "feat"]);
    let other = clone(&root, &origin, "other");
    Repos {
        _dir: dir,
        root,
        origin,
        work,
        other,
    }
}

impl Repos {
    /// main and the work clone edit the same line of f.txt: the work clone's new head.
    fn conflicting(&self) -> String {
        self.main_commit("f.txt", "one\nMAIN\nthree\n", "main edits f");
        commit(&self.work, "f.txt", "one\nFEAT\nthree\n", "feat edits f")
    }

    /// sync-check from the root on the work clone, with a JSON report and `--publish publish`.
    fn sync_cmd(&self, publish: &str) -> Command {
        let mut c = tool("sync-check", &self.root);
        let work = self.work.to_str().unwrap();
        c.args(["--repo", work, "--format", "json", "--publish", publish]);
        c
    }

    /// Runs [`sync`] from the root on the work clone with `args`, a command line split at white
    /// space.
    async fn sync(&self, args: &str) -> (Ran, Value) {
        let work = self.work.to_str().unwrap();
        sync(&self.root, &[&["--repo", work][..], &words(args)].concat()).await
    }

    /// Commits on origin's main through the other clone.
    fn main_commit(&self, file: &str, text: &str, msg: &str) -> String {
        git(&self.other, &["checkout", "-q", "main"]);
        git(&self.other, &["pull", "-q", "--ff-only", "origin", "main"]);
        let sha = commit(&self.other, file, text, msg);
        git(&self.other, &["push", "-q", "origin", "main"]);
        sha
    }
}

async fn sync(dir: &Path, args: &[&str]) -> (Ran, Value) {
    let mut c = tool("sync-check", dir);
    c.args(args)
        .args(["--format", "json", "--publish", "never"]);
    let r = run(c).await;
    let v = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    (r, v)
}

fn out<'a>(v: &'a Value, k: &str) -> &'a str {
    v["outputs"][k]
        .as_str()
        .unwrap_or_else(|| panic!("no output {k}: {v:#}"))
}

fn untouched(work: &Path, head: &str) {
    assert_eq!(git(work, &["rev-parse", "HEAD"]), head);
    assert_eq!(git(work, &["status", "--porcelain"]), "");
    assert!(!work.join(".git/MERGE_HEAD").exists() && !work.join(".git/rebase-merge").exists());
}

#[tokio::test]
async fn up_to_date_and_ahead() {
    let r = repos();
    commit(&r.work, "new.txt", "x\n", "feature work");
    let head = git(&r.work, &["rev-parse", "HEAD"]);
    let fetch_head = || std::fs::read(r.work.join(".git/FETCH_HEAD")).ok();
    let before = fetch_head();
    // A file touched a second later: `git status` would refresh (rewrite) the index for it.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(r.work.join("a.txt"), "a\n").unwrap();
    let index = || std::fs::read(r.work.join(".git/index")).unwrap();
    let index_before = index();
    let (ran, v) = r.sync("").await;
    assert_eq!(ran.code, 0, "{ran:?}");
    // Read-only: FETCH_HEAD and the index included.
    assert_eq!(fetch_head(), before);
    assert!(index() == index_before, "the index was rewritten");
    assert_eq!(
        (out(&v, "ahead"), out(&v, "behind"), out(&v, "conflicts")),
        ("1", "0", "0")
    );
    assert_eq!(out(&v, "up-to-date"), "true");
    assert_eq!(out(&v, "head-sha"), head);
    assert_eq!(
        v["summary"],
        "up to date with origin/main, 1 ahead, merges cleanly"
    );
    untouched(&r.work, &head);
}

#[tokio::test]
async fn behind_lists_missing_commits_and_policy_decides() {
    let r = repos();
    for i in 0..3 {
        r.main_commit(&format!("m{i}.txt"), "m\n", &format!("main work {i}"));
    }
    let (ran, v) = r.sync("").await;
    assert_eq!(
        ran.code, 0,
        "behind alone does not fail by default: {ran:?}"
    );
    assert_eq!((out(&v, "behind"), out(&v, "up-to-date")), ("3", "false"));
    let details = &v["checks"][1]["details"];
    assert_eq!(details.as_array().unwrap().len(), 3);
    assert!(
        details[0][1].as_str().unwrap().ends_with("main work 2"),
        "{details}"
    );
    let (ran, _) = r.sync("--fail-on conflicts,behind").await;
    assert_eq!(ran.code, 1);
    let (ran, v) = r.sync("--max-behind 2").await;
    assert_eq!(ran.code, 1);
    assert_eq!(
        v["checks"][1]["reason"],
        "3 commits behind, more than --max-behind 2"
    );
}

#[tokio::test]
async fn diverged_without_conflicts() {
    let r = repos();
    r.main_commit("m.txt", "m\n", "main");
    commit(&r.work, "w.txt", "w\n", "feat 1");
    commit(&r.work, "w2.txt", "w\n", "feat 2");
    let (ran, v) = r.sync("").await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!((out(&v, "ahead"), out(&v, "behind")), ("2", "1"));
    assert_eq!(
        v["summary"],
        "1 behind and 2 ahead of origin/main, merges cleanly"
    );
}

#[tokio::test]
async fn content_conflict_is_found_without_touching_anything() {
    let r = repos();
    let head = r.conflicting();
    let dir = tempfile::tempdir().unwrap();
    let mut c = tool("sync-check", &r.root);
    c.args(["--repo", r.work.to_str().unwrap(), "--publish", "never"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", dir.path().join("out"))
        .env("GITHUB_STEP_SUMMARY", dir.path().join("summary"));
    let ran = run(c).await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stderr.contains("::error file=f.txt,title=merge conflict (content) with origin/main::CONFLICT (content): Merge conflict in f.txt"),
        "{}",
        ran.stderr
    );
    let outputs = std::fs::read_to_string(dir.path().join("out")).unwrap();
    assert!(
        outputs.contains("conflict-files<<") && outputs.contains("\nf.txt\n"),
        "{outputs}"
    );
    untouched(&r.work, &head);
}

#[tokio::test]
async fn rename_modify_delete_and_binary_conflicts_have_their_kinds() {
    let r = repos();
    git(&r.other, &["checkout", "-q", "main"]);
    commit(&r.other, "bin.dat", "\0\u{1}base", "binary");
    git(&r.other, &["push", "-q", "origin", "main"]);
    git(&r.work, &["pull", "-q", "origin", "main"]);
    // main: rename a.txt, delete f.txt, change bin.dat
    git(&r.other, &["mv", "a.txt", "a-main.txt"]);
    git(&r.other, &["rm", "-q", "f.txt"]);
    write(&r.other, "bin.dat", b"\0\x02main");
    git(&r.other, &["add", "-A"]);
    git(&r.other, &["commit", "-qm", "main side"]);
    git(&r.other, &["push", "-q", "origin", "main"]);
    // feat: rename a.txt elsewhere, modify f.txt, change bin.dat
    git(&r.work, &["mv", "a.txt", "a-feat.txt"]);
    write(&r.work, "f.txt", b"one\nFEAT\nthree\n");
    write(&r.work, "bin.dat", b"\0\x03feat");
    git(&r.work, &["add", "-A"]);
    git(&r.work, &["commit", "-qm", "feat side"]);
    let (ran, v) = r.sync("").await;
    assert_eq!(ran.code, 1, "{ran:?}");
    let kinds: Vec<(String, String)> = v["checks"][0]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d[0].as_str().unwrap().to_owned(),
                d[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Exactly git's conflicted list: the old name and both new names of the rename/rename.
    let expected = [
        ("a-feat.txt", "rename/rename (with a.txt, a-main.txt)"),
        ("a-main.txt", "rename/rename (with a.txt, a-feat.txt)"),
        ("a.txt", "rename/rename (with a-main.txt, a-feat.txt)"),
        ("bin.dat", "binary"),
        ("f.txt", "modify/delete"),
    ];
    assert_eq!(kinds, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
    assert_eq!(out(&v, "conflicts"), "5");
    assert_eq!(
        out(&v, "conflict-files"),
        "a-feat.txt\na-main.txt\na.txt\nbin.dat\nf.txt"
    );
    // Annotations point at files this branch has: a.txt and a-main.txt are not on it, so theirs
    // are shown at the rename's name here, and say so.
    let notes: Vec<(&str, &str)> = v["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["file"].as_str().unwrap(), a["message"].as_str().unwrap()))
        .collect();
    assert_eq!(
        notes.iter().map(|n| n.0).collect::<Vec<_>>(),
        ["a-feat.txt", "a-feat.txt", "a-feat.txt", "bin.dat", "f.txt"]
    );
    assert!(
        notes[2]
            .1
            .starts_with("a.txt (conflicted in git) is not on this branch; shown at a-feat.txt. CONFLICT (rename/rename): a.txt renamed to a-main.txt in "),
        "{}",
        notes[2].1
    );
    let json: Value = serde_json::from_str(out(&v, "conflicts-json")).unwrap();
    assert_eq!(json[4]["kinds"], serde_json::json!(["modify/delete"]));
    assert_eq!(json[2]["annotated-at"], "a-feat.txt");
}

#[tokio::test]
async fn odd_paths_are_quoted_in_outputs_and_terminal_and_raw_in_json() {
    let r = repos();
    let names = [
        "new\nline.txt",
        "tab\there.txt",
        "q\"uote\\.txt",
        "ünï cödé.txt",
    ];
    git(&r.other, &["checkout", "-q", "main"]);
    for n in names {
        write(&r.other, n, b"one\ntwo\n");
    }
    git(&r.other, &["add", "-A"]);
    git(&r.other, &["commit", "-qm", "odd names"]);
    git(&r.other, &["push", "-q", "origin", "main"]);
    git(&r.work, &["pull", "-q", "origin", "main"]);
    for n in names {
        write(&r.other, n, b"one\nMAIN\n");
        write(&r.work, n, b"one\nFEAT\n");
    }
    git(&r.other, &["commit", "-qam", "main side"]);
    git(&r.other, &["push", "-q", "origin", "main"]);
    git(&r.work, &["commit", "-qam", "feat side"]);
    let dir = tempfile::tempdir().unwrap();
    let mut c = tool("sync-check", &r.root);
    c.args(["--repo", r.work.to_str().unwrap(), "--publish", "never"])
        .args(["--report", dir.path().join("r.json").to_str().unwrap()])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", dir.path().join("out"))
        .env("GITHUB_STEP_SUMMARY", dir.path().join("summary"));
    let ran = run(c).await;
    assert_eq!(ran.code, 1, "{ran:?}");
    // As git prints them with core.quotePath=false: one line each, C-quoted when needed.
    let quoted = [
        r#""new\nline.txt""#,
        r#""q\"uote\\.txt""#,
        r#""tab\there.txt""#,
        "ünï cödé.txt",
    ];
    let outputs = std::fs::read_to_string(dir.path().join("out")).unwrap();
    assert!(
        outputs.contains(&format!("\n{}\n", quoted.join("\n"))),
        "{outputs}"
    );
    for q in quoted {
        assert!(
            ran.stderr.contains(&format!("      {q}: content")),
            "{}",
            ran.stderr
        );
    }
    // The JSON carries the raw paths.
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    let json: Value =
        serde_json::from_str(report["outputs"]["conflicts-json"].as_str().unwrap()).unwrap();
    let raw: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        raw,
        [
            "new\nline.txt",
            "q\"uote\\.txt",
            "tab\there.txt",
            "ünï cödé.txt"
        ]
    );
}

#[tokio::test]
async fn shallow_clone_is_deepened_step_by_step() {
    let r = repos();
    // 40 commits of history below the branch point, 30 on main after it: a depth-1 clone must be
    // deepened step by step (base fetched at depth 4, then +4, +8, +16) to reach the merge base,
    // and stays shallow.
    git(&r.other, &["checkout", "-q", "main"]);
    for i in 0..40 {
        git(
            &r.other,
            &["commit", "-q", "--allow-empty", "-m", &format!("old {i}")],
        );
    }
    git(&r.other, &["push", "-q", "origin", "main"]);
    git(&r.work, &["checkout", "-q", "main"]);
    git(&r.work, &["pull", "-q", "origin", "main"]);
    commit(&r.work, "feat.txt", "x\n", "feature");
    git(&r.work, &["push", "-q", "origin", "main:feat"]);
    for i in 0..30 {
        git(
            &r.other,
            &["commit", "-q", "--allow-empty", "-m", &format!("main {i}")],
        );
    }
    git(&r.other, &["push", "-q", "origin", "main"]);
    let url = format!("file://{}", r.origin.display());
    git(
        &r.root,
        &[
            "clone", "-q", "--depth", "1", "--branch", "feat", &url, "shallow",
        ],
    );
    let shallow = r.root.join("shallow");
    let (ran, v) = sync(
        &r.root,
        &["--repo", shallow.to_str().unwrap(), "--deepen", "4"],
    )
    .await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!((out(&v, "behind"), out(&v, "ahead")), ("30", "1"));
    assert_eq!(out(&v, "deepened"), "3");
    assert_eq!(
        git(&shallow, &["rev-parse", "--is-shallow-repository"]),
        "true",
        "no blind --unshallow"
    );
}

/// A depth-1 clone of `feat` whose merge base with main is 30 commits down main: main adds
/// `passing.bin` after the fork and deletes it again (no side of the merge has it), and both
/// sides edit f.txt (a conflict, whose contents merge-tree must read). `allow_filter` is the
/// origin's `uploadpack.allowFilter` (GitHub allows filters; a plain git server does not).
/// Returns the clone and the passing file's blob.
fn shallow_feature(r: &Repos, allow_filter: bool) -> (PathBuf, String) {
    git(
        &r.origin,
        &[
            "config",
            "uploadpack.allowFilter",
            &allow_filter.to_string(),
        ],
    );
    r.conflicting();
    git(&r.work, &["push", "-q", "origin", "feat"]);
    let passing = commit(&r.other, "passing.bin", &"x".repeat(50_000), "add passing");
    let blob = git(&r.other, &["rev-parse", &format!("{passing}:passing.bin")]);
    git(&r.other, &["rm", "-q", "passing.bin"]);
    git(&r.other, &["commit", "-q", "-m", "drop passing"]);
    push_empty_commits(&r.other, "main", 30);
    (depth1_feat(r, "d1"), blob)
}

/// `n` empty commits named `prefix i` on the checked-out branch of `clone`, pushed to main.
fn push_empty_commits(clone: &Path, prefix: &str, n: usize) {
    for i in 0..n {
        let msg = format!("{prefix} {i}");
        git(clone, &["commit", "-q", "--allow-empty", "-m", &msg]);
    }
    git(clone, &["push", "-q", "origin", "main"]);
}

/// A depth-1 clone of origin's `feat` (as `actions/checkout` makes) at `root/name`.
fn depth1_feat(r: &Repos, name: &str) -> PathBuf {
    let url = format!("file://{}", r.origin.display());
    git(
        &r.root,
        &[
            "clone", "-q", "--depth", "1", "--branch", "feat", &url, name,
        ],
    );
    r.root.join(name)
}

/// The clone's later fetches are not filtered (`remote.origin.partialclonefilter` unset again),
/// and git finds it whole.
fn filter_put_back_and_sound(clone: &Path) {
    assert_eq!(
        git_ok(clone, &["config", "remote.origin.partialclonefilter"]),
        None
    );
    git(clone, &["fsck", "--no-progress"]);
}

/// sync-check on the shallow clone `clone` of `r`, deepening by 4 commits a step.
async fn sync_deepen_4(r: &Repos, clone: &Path) -> (Ran, Value) {
    sync(
        &r.root,
        &["--repo", clone.to_str().unwrap(), "--deepen", "4"],
    )
    .await
}

/// Whether the clone holds `oid`, asked without fetching it.
fn holds(clone: &Path, oid: &str) -> bool {
    git_cmd(clone, &["cat-file", "-e", oid])
        .env("GIT_NO_LAZY_FETCH", "1")
        .status()
        .unwrap()
        .success()
}

#[tokio::test]
async fn shallow_clone_fetches_commits_only_where_the_server_allows_it() {
    let r = repos();
    let (d1, passing) = shallow_feature(&r, true);
    let (ran, v) = sync_deepen_4(&r, &d1).await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!((out(&v, "behind"), out(&v, "ahead")), ("33", "1"));
    assert_eq!(
        out(&v, "conflicts"),
        "1",
        "merge-tree read both sides' f.txt"
    );
    // Commits alone are small: one deepening step of 20 x --deepen (80) reached the merge base.
    assert_eq!(out(&v, "deepened"), "1");
    assert!(
        !holds(&d1, &passing),
        "a file no side of the merge has was never downloaded"
    );
    // A partial clone of origin now, whose later fetches are not filtered.
    assert_eq!(git(&d1, &["config", "remote.origin.promisor"]), "true");
    assert_eq!(
        git_ok(&d1, &["config", "remote.origin.partialclonefilter"]),
        None
    );
    // git itself works on: a file of the base is fetched when asked for.
    assert_eq!(git(&d1, &["show", "origin/main:f.txt"]), "one\nMAIN\nthree");
    git(&d1, &["fsck", "--no-progress"]);
}

#[tokio::test]
async fn shallow_clone_fetches_everything_where_the_server_does_not_filter() {
    let r = repos();
    let (d1, passing) = shallow_feature(&r, false);
    let (ran, v) = sync_deepen_4(&r, &d1).await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!((out(&v, "behind"), out(&v, "ahead")), ("33", "1"));
    assert_eq!(out(&v, "conflicts"), "1");
    assert!(holds(&d1, &passing), "the server sent every object");
    // Everything came, so the steps stayed small: 4, 8, 16, 32 deep.
    assert_eq!(out(&v, "deepened"), "4");
    git(&d1, &["fsck", "--no-progress"]);
}

/// A depth-1 clone of `feat` whose history below the merge base holds a 20 MB file
/// (`deep.bin`, added and deleted again there): main is 10 commits past the fork, feat 1, and
/// `deep.bin` 22 commits below the fork. With `--deepen 4` the step-by-step fetch (4, then 4 and
/// 8 deeper: 16 commits down each side) reaches the merge base, short of `deep.bin`; the first,
/// deep fetch (4 x 21 = 84 commits) would reach it. Returns the clone and the big file's blob.
fn deep_history(r: &Repos, allow_filter: bool) -> (PathBuf, String) {
    git(
        &r.origin,
        &[
            "config",
            "uploadpack.allowFilter",
            &allow_filter.to_string(),
        ],
    );
    // Incompressible bytes (xorshift), so that the server takes a while to pack them.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let big: Vec<u8> = (0..20 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect();
    git(&r.other, &["checkout", "-q", "main"]);
    write(&r.other, "deep.bin", &big);
    git(&r.other, &["add", "deep.bin"]);
    git(&r.other, &["commit", "-qm", "add deep.bin"]);
    let blob = git(&r.other, &["rev-parse", "HEAD:deep.bin"]);
    git(&r.other, &["rm", "-q", "deep.bin"]);
    git(&r.other, &["commit", "-qm", "drop deep.bin"]);
    push_empty_commits(&r.other, "before the fork", 20);
    git(&r.work, &["pull", "-q", "--ff-only", "origin", "main"]);
    commit(&r.work, "feat.txt", "x\n", "feature");
    git(&r.work, &["push", "-q", "origin", "feat"]);
    push_empty_commits(&r.other, "main", 10);
    (depth1_feat(r, "deep"), blob)
}

#[tokio::test]
async fn a_server_that_does_not_filter_is_stopped_before_it_sends_the_deep_history() {
    let r = repos();
    let (d1, big) = deep_history(&r, false);
    let (ran, v) = sync_deepen_4(&r, &d1).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!((out(&v, "behind"), out(&v, "ahead")), ("10", "1"));
    // The server said it does not filter, so the deep fetch was stopped at once, and the steps
    // of 4 and 8 commits (everything in them) reached the merge base.
    assert_eq!(out(&v, "deepened"), "2");
    assert!(
        !holds(&d1, &big),
        "the 20 MB file below the merge base was not downloaded"
    );
    assert!(
        std::fs::read_dir(d1.join(".git/objects/pack"))
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().starts_with("tmp_")),
        "the stopped fetch left no half-written pack"
    );
    filter_put_back_and_sound(&d1);
}

#[tokio::test]
async fn a_filtering_server_sends_the_deep_history_as_commits_in_one_fetch() {
    let r = repos();
    let (d1, big) = deep_history(&r, true);
    let (ran, v) = sync_deepen_4(&r, &d1).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!((out(&v, "behind"), out(&v, "ahead")), ("10", "1"));
    assert_eq!(out(&v, "deepened"), "1", "one fetch reached the merge base");
    assert!(!holds(&d1, &big), "commits came, not files");
    // Both sides went 84 commits deep: the whole history of 35 commits, as commits.
    assert_eq!(git(&d1, &["rev-parse", "--is-shallow-repository"]), "false");
    assert_eq!(git(&d1, &["config", "remote.origin.promisor"]), "true");
    filter_put_back_and_sound(&d1);
}

#[tokio::test]
async fn a_server_that_refuses_commits_by_id_is_not_filtered() {
    // Protocol v0 without `uploadpack.allowAnySHA1InWant`: only branch tips can be asked for,
    // and the checked-out commit is no longer one (feat moved on), so neither the deep fetch nor
    // a partial clone's later fetches of what it lacks by id would work.
    let r = repos();
    let (d1, passing) = shallow_feature(&r, true);
    git(&d1, &["config", "protocol.version", "0"]);
    commit(&r.work, "later.txt", "l\n", "feat moves on");
    git(&r.work, &["push", "-q", "origin", "feat"]);
    let (ran, v) = sync_deepen_4(&r, &d1).await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!((out(&v, "behind"), out(&v, "ahead")), ("33", "1"));
    assert_eq!(
        out(&v, "conflicts"),
        "1",
        "merge-tree read both sides' f.txt"
    );
    assert!(
        ran.stderr
            .contains("takes no commit by id: fetching step by step"),
        "{}",
        ran.stderr
    );
    // Everything came, in the doubling steps: 4, 8, 16, 32 deep.
    assert_eq!(out(&v, "deepened"), "4");
    assert!(holds(&d1, &passing));
    git(&d1, &["fsck", "--no-progress"]);
}

#[tokio::test]
async fn a_v0_server_without_objects_by_id_fails_clearly_where_it_is_not_detected() {
    // The limit README states: over protocol v0, a server that filters but takes no object by id
    // cannot send a partial clone a file it lacks. The checked-out commit is still a branch tip,
    // so the deep fetch works; merge-tree's own fetch of f.txt then fails: exit 3, git's words.
    let r = repos();
    let (d1, _) = shallow_feature(&r, true);
    git(&d1, &["config", "protocol.version", "0"]);
    let mut c = tool("sync-check", &r.root);
    c.args([
        "--repo",
        d1.to_str().unwrap(),
        "--deepen",
        "4",
        "--publish",
        "never",
    ]);
    let ran = run(c).await;
    assert_eq!(ran.code, 3, "{ran:?}");
    assert!(ran.stderr.contains("unadvertised object"), "{}", ran.stderr);
}

#[tokio::test]
async fn a_shallow_end_the_server_lost_falls_back_to_steps_of_commits() {
    // The clone also fetched a branch at depth 1 that was deleted on the server and pruned since:
    // its commit is a shallow end the server no longer has, so the deep fetch, which asks for
    // every shallow end, fails; the step-by-step fetch, still commits only, takes over.
    let r = repos();
    let (d1, passing) = shallow_feature(&r, true);
    git(&r.other, &["checkout", "-q", "-b", "gone"]);
    commit(&r.other, "gone.txt", "g\n", "gone");
    git(&r.other, &["push", "-q", "origin", "gone"]);
    git(&d1, &["fetch", "-q", "--depth", "1", "origin", "gone"]);
    git(&r.origin, &["branch", "-D", "gone"]);
    git(&r.origin, &["reflog", "expire", "--expire=now", "--all"]);
    git(&r.origin, &["gc", "-q", "--prune=now"]);
    let (ran, v) = sync_deepen_4(&r, &d1).await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!((out(&v, "behind"), out(&v, "ahead")), ("33", "1"));
    assert_eq!(out(&v, "conflicts"), "1");
    assert!(
        ran.stderr.contains("the deep fetch failed"),
        "{}",
        ran.stderr
    );
    // The base at depth 4, then one step of 20 x 4 commits.
    assert_eq!(out(&v, "deepened"), "1");
    assert!(!holds(&d1, &passing), "commits came, not files");
    git(&d1, &["fsck", "--no-progress"]);
}

#[tokio::test]
async fn detached_head_is_checked() {
    let r = repos();
    let head = commit(&r.work, "d.txt", "d\n", "detached work");
    git(&r.work, &["checkout", "-q", "--detach"]);
    let (ran, v) = r.sync("").await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(v["target"], "(detached HEAD) against origin/main");
    assert_eq!(out(&v, "head-sha"), head);
}

#[tokio::test]
async fn unrelated_histories_fail_clearly() {
    let r = repos();
    git(&r.work, &["checkout", "-q", "--orphan", "island"]);
    git(&r.work, &["rm", "-rq", "--cached", "."]);
    std::fs::remove_file(r.work.join("a.txt")).unwrap();
    std::fs::remove_file(r.work.join("f.txt")).unwrap();
    commit(&r.work, "island.txt", "i\n", "unrelated root");
    let (ran, v) = r.sync("").await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!(v["summary"], "no common history with origin/main");
    assert!(
        v["checks"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("unrelated histories")
    );
}

#[tokio::test]
async fn missing_base_branch_is_a_usage_error() {
    let r = repos();
    let mut c = tool("sync-check", &r.root);
    c.args(["--repo", r.work.to_str().unwrap(), "--base", "develop"]);
    let ran = run(c).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr
            .contains("base branch \"develop\" does not exist on remote \"origin\""),
        "{}",
        ran.stderr
    );
}

#[tokio::test]
async fn pull_request_event_uses_the_pr_head_not_github_sha() {
    let r = repos();
    r.main_commit("m.txt", "m\n", "main moved");
    let pr_head = commit(&r.work, "pr.txt", "pr\n", "pr work");
    // GITHUB_SHA is the synthetic merge commit; counting on it would say "0 behind".
    git(&r.work, &["fetch", "-q", "origin"]);
    git(&r.work, &["merge", "-q", "--no-edit", "origin/main"]);
    let merge_sha = git(&r.work, &["rev-parse", "HEAD"]);
    git(&r.work, &["checkout", "-q", "--detach", &merge_sha]);
    let dir = tempfile::tempdir().unwrap();
    let event = rig::pull_request_event(dir.path(), 12, &pr_head);
    let mut c = r.sync_cmd("never");
    c.env("GITHUB_EVENT_NAME", "pull_request")
        .env("GITHUB_EVENT_PATH", &event)
        .env("GITHUB_SHA", &merge_sha);
    let ran = run(c).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    let v: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(out(&v, "head-sha"), pr_head);
    assert_eq!(out(&v, "behind"), "1");
    assert!(out(&v, "note").contains("synthetic merge commit"));
    assert_eq!(v["target"], "feat against origin/main");
}

#[tokio::test]
async fn check_run_is_published_through_the_github_api() {
    let r = repos();
    commit(&r.work, "x.txt", "x\n", "work");
    let mut c = r.sync_cmd("always");
    c.env("GITHUB_API_URL", rig::prism_url())
        .env("GITHUB_TOKEN", "ghs_synccheck_token_123456")
        .env("GITHUB_REPOSITORY", "afu9/control-center");
    let ran = run(c).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    let v: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert!(out(&v, "check-run-id").parse::<u64>().unwrap() > 0);
    assert!(!ran.all().contains("ghs_synccheck_token_123456"));
}

// ---- safe sync ---------------------------------------------------------------------------

fn reachable(dir: &Path, sha: &str, from: &str) -> bool {
    Command::new("git")
        .args(["merge-base", "--is-ancestor", sha, from])
        .current_dir(dir)
        .status()
        .unwrap()
        .success()
}

#[tokio::test]
async fn safe_rebase_and_push_succeed_with_a_backup() {
    let r = repos();
    commit(&r.work, "w.txt", "w\n", "feat work");
    git(&r.work, &["push", "-q", "-u", "origin", "feat"]);
    let start = git(&r.work, &["rev-parse", "HEAD"]);
    let m = r.main_commit("m.txt", "m\n", "main work");
    let (ran, v) = r.sync("--update rebase --push").await;
    assert_eq!(ran.code, 0, "{ran:?}");
    let new_head = git(&r.work, &["rev-parse", "HEAD"]);
    assert!(reachable(&r.work, &m, &new_head), "rebased onto main");
    assert_eq!(git(&r.work, &["show", "HEAD:w.txt"]), "w");
    let backup = out(&v, "backup-ref");
    assert!(backup.starts_with("refs/sync-backup/feat/"), "{backup}");
    assert_eq!(git(&r.work, &["rev-parse", backup]), start);
    assert_eq!(git(&r.origin, &["rev-parse", "refs/heads/feat"]), new_head);
    let actions: Vec<&str> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["git:update-ref", "git:rebase", "git:push"]);
}

#[tokio::test]
async fn safe_merge_succeeds() {
    let r = repos();
    commit(&r.work, "w.txt", "w\n", "feat work");
    let start = git(&r.work, &["rev-parse", "HEAD"]);
    r.main_commit("m.txt", "m\n", "main work");
    let (ran, _) = r.sync("--update merge").await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(reachable(&r.work, &start, "HEAD"));
    assert_eq!(
        git(&r.work, &["rev-list", "--count", "--merges", "-1", "HEAD"]),
        "1"
    );
}

#[tokio::test]
async fn predicted_conflict_changes_nothing() {
    let r = repos();
    let head = r.conflicting();
    let (ran, v) = r.sync("--update rebase").await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!(out(&v, "conflict-files"), "f.txt");
    assert!(
        v["audit"].as_array().unwrap().is_empty(),
        "nothing was done"
    );
    untouched(&r.work, &head);
}

#[tokio::test]
async fn rebase_stopping_midway_is_aborted_and_the_branch_restored() {
    // The branch's net change to f.txt is nil (edit, then revert), so merge-tree predicts a clean
    // merge, but replaying the first commit onto main conflicts.
    let r = repos();
    let c1 = r.conflicting();
    let c2 = commit(&r.work, "f.txt", "one\ntwo\nthree\n", "feat reverts f");
    let c3 = commit(&r.work, "g.txt", "g\n", "feat adds g");
    let (ran, v) = r.sync("--update rebase").await;
    assert_eq!(ran.code, 1, "{ran:?}");
    let reason = v["checks"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("rebase stopped on conflicts in f.txt; aborted and restored feat"),
        "{reason}"
    );
    untouched(&r.work, &c3);
    assert_eq!(git(&r.work, &["symbolic-ref", "--short", "HEAD"]), "feat");
    for c in [&c1, &c2, &c3] {
        assert!(reachable(&r.work, c, "feat"), "commit {c} lost");
    }
    assert_eq!(git(&r.work, &["rev-parse", out(&v, "backup-ref")]), c3);
}

#[tokio::test]
async fn a_rebase_whose_replayed_patch_gains_new_context_is_kept() {
    // main edits line 2, the branch line 5 of the same file: a clean rebase, but the replayed
    // commit's diff now has main's line as context, so its patch id differs from the original's.
    // Patch ids alone called that "changes lost" and undid a correct rebase.
    let r = repos();
    let ten: String = (1..=10).map(|i| format!("{i}\n")).collect();
    r.main_commit("n.txt", &ten, "ten lines");
    git(&r.work, &["pull", "-q", "origin", "main"]);
    r.main_commit("n.txt", &ten.replace("2\n", "two\n"), "main edits line 2");
    commit(
        &r.work,
        "n.txt",
        &ten.replace("5\n", "five\n"),
        "feat edits line 5",
    );
    let (ran, v) = r.sync("--update rebase").await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(
        git(&r.work, &["show", "HEAD:n.txt"]),
        ten.replace("2\n", "two\n")
            .replace("5\n", "five\n")
            .trim_end()
    );
    assert_eq!(out(&v, "new-head"), git(&r.work, &["rev-parse", "HEAD"]));
    // The counts are the branch's after the update: one commit of its own, none missing.
    assert_eq!(out(&v, "behind"), "0");
    assert_eq!(out(&v, "ahead"), "1");
}

/// An ignored file the base adds as a tracked one (a local `.env`): git's rebase would replace it
/// without a word, so the update refuses, naming it, and nothing moves.
#[tokio::test]
async fn an_ignored_file_the_base_would_replace_stops_the_update() {
    let r = repos();
    commit(&r.work, "w.txt", "w\n", "feat work");
    std::fs::write(r.work.join(".git/info/exclude"), "local.env\n").unwrap();
    std::fs::write(r.work.join("local.env"), "MY_SECRET_SETTING=1\n").unwrap();
    r.main_commit("local.env", "FROM_MAIN=1\n", "main adds local.env");
    let head = git(&r.work, &["rev-parse", "HEAD"]);
    for mode in ["rebase", "merge"] {
        let (ran, v) = r.sync(&format!("--update {mode}")).await;
        assert_eq!(ran.code, 1, "{ran:?}");
        let c = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "No ignored file in the way")
            .unwrap_or_else(|| panic!("{v:#}"));
        assert!(c["reason"].as_str().unwrap().contains("local.env"), "{c}");
        untouched(&r.work, &head);
        assert_eq!(
            std::fs::read_to_string(r.work.join("local.env")).unwrap(),
            "MY_SECRET_SETTING=1\n"
        );
    }
    // An ignored file where the base adds a directory (`build` against `build/x.txt`).
    let r = repos();
    commit(&r.work, "w.txt", "w\n", "feat work");
    std::fs::write(r.work.join(".git/info/exclude"), "build\n").unwrap();
    std::fs::write(r.work.join("build"), "precious\n").unwrap();
    r.main_commit("build/x.txt", "x\n", "main adds build/x.txt");
    let (ran, v) = r.sync("--update rebase").await;
    assert_eq!(ran.code, 1, "{ran:?} {v:#}");
    assert_eq!(
        std::fs::read_to_string(r.work.join("build")).unwrap(),
        "precious\n"
    );
}

/// Changes a rebase would drop although every commit's patch is "in" the result: a merge
/// commit's own change (a rebase without --rebase-merges linearises it away), and a commit
/// whose patch the base applied and then reverted (skipped as applied). The result's tree is not
/// the merge of both sides, so the update is undone (exit 1), nothing moves, and merge keeps all.
#[tokio::test]
async fn a_rebase_that_would_drop_a_change_is_undone() {
    // The evil merge: a merge commit on the branch that adds a file of its own.
    let r = repos();
    git(&r.work, &["checkout", "-q", "-b", "side", "main"]);
    commit(&r.work, "side.txt", "side\n", "side work");
    git(&r.work, &["checkout", "-q", "feat"]);
    git(&r.work, &["merge", "-q", "--no-ff", "--no-commit", "side"]);
    std::fs::write(r.work.join("own.txt"), "only in the merge\n").unwrap();
    git(&r.work, &["add", "own.txt"]);
    git(
        &r.work,
        &["commit", "-qm", "merge side, with a change of its own"],
    );
    r.main_commit("m.txt", "m\n", "main moves on");
    let head = git(&r.work, &["rev-parse", "HEAD"]);
    let (ran, v) = r.sync("--update rebase").await;
    assert_eq!(ran.code, 1, "{ran:?}");
    untouched(&r.work, &head);
    assert!(r.work.join("own.txt").exists());
    assert!(
        check(&v, "Update")["reason"]
            .as_str()
            .unwrap()
            .contains("--update merge keeps every change"),
        "{v:#}"
    );
    let (ran, _) = r.sync("--update merge").await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(r.work.join("own.txt").exists() && r.work.join("m.txt").exists());

    // The base took the branch's commit and reverted it: a rebase skips it as applied.
    let r = repos();
    let c = commit(&r.work, "feature.txt", "feature\n", "feature");
    commit(&r.work, "more.txt", "more\n", "more");
    git(&r.other, &["checkout", "-q", "main"]);
    git(&r.other, &["fetch", "-q", "origin"]);
    git(&r.other, &["fetch", "-q", r.work.to_str().unwrap(), "feat"]);
    // main moves first, so the pick is a commit of its own (not the branch's, fast-forwarded).
    commit(&r.other, "m0.txt", "m0\n", "main moves on");
    git(&r.other, &["cherry-pick", &c]);
    git(&r.other, &["revert", "--no-edit", "HEAD"]);
    git(&r.other, &["push", "-q", "origin", "main"]);
    let head = git(&r.work, &["rev-parse", "HEAD"]);
    let (ran, _) = r.sync("--update rebase").await;
    assert_eq!(ran.code, 1, "{ran:?}");
    untouched(&r.work, &head);
    assert!(r.work.join("feature.txt").exists());
}

/// `--head` naming a branch the clone does not have: fetched from the remote and checked (the
/// README's `--head feature/x`).
#[tokio::test]
async fn a_head_branch_only_on_the_remote_is_fetched_and_checked() {
    let r = repos();
    git(
        &r.other,
        &["checkout", "-q", "-b", "feature/x", "origin/main"],
    );
    let tip = commit(&r.other, "x.txt", "x\n", "feature x");
    git(&r.other, &["push", "-q", "origin", "feature/x"]);
    let (ran, v) = r.sync("--head feature/x").await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(out(&v, "head-sha"), tip);
    assert_eq!(out(&v, "ahead"), "1");
}

/// A remote given as a URL (no remote of that name): its base is fetched under
/// `refs/remotes/sync-check/`, and the check runs as for `origin`.
#[tokio::test]
async fn a_remote_given_as_a_url_is_checked() {
    let r = repos();
    commit(&r.work, "new.txt", "x\n", "feature work");
    r.main_commit("m.txt", "m\n", "main moves on");
    let url = format!("file://{}", r.origin.display());
    let (ran, v) = r.sync(&format!("--remote {url}")).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!((out(&v, "ahead"), out(&v, "behind")), ("1", "1"));
    assert!(!git(&r.work, &["rev-parse", "refs/remotes/sync-check/main"]).is_empty());
}

/// Two syncs in the same second keep both backups: the second gets `-2`, never overwrites.
#[tokio::test]
async fn two_syncs_in_one_second_keep_both_backups() {
    let r = repos();
    commit(&r.work, "w.txt", "w\n", "feat work");
    r.main_commit("m1.txt", "1\n", "main 1");
    let (ran, v1) = r.sync("--update rebase").await;
    assert_eq!(ran.code, 0, "{ran:?}");
    r.main_commit("m2.txt", "2\n", "main 2");
    let (ran, v2) = r.sync("--update rebase").await;
    assert_eq!(ran.code, 0, "{ran:?}");
    let (b1, b2) = (out(&v1, "backup-ref"), out(&v2, "backup-ref"));
    assert_ne!(b1, b2);
    assert_eq!(git(&r.work, &["rev-parse", b1]), out(&v1, "old-head"));
    assert_eq!(git(&r.work, &["rev-parse", b2]), out(&v2, "old-head"));
}

#[tokio::test]
async fn push_rejected_by_the_lease_loses_nothing() {
    let r = repos();
    commit(&r.work, "w.txt", "w\n", "feat work");
    git(&r.work, &["push", "-q", "-u", "origin", "feat"]);
    let start = git(&r.work, &["rev-parse", "HEAD"]);
    // Someone else pushes to feat; this clone does not know.
    let theirs = push_theirs(&r.other, "feat", "theirs.txt", "t\n", "their work on feat");
    r.main_commit("m.txt", "m\n", "main work");
    let (ran, v) = r.sync("--update rebase --push").await;
    assert_eq!(ran.code, 1, "{ran:?}");
    let push = check(&v, "Push");
    assert!(
        push["reason"]
            .as_str()
            .unwrap()
            .starts_with("push rejected ([rejected] (stale info)): origin/feat moved since this clone last saw it"),
        "{push}"
    );
    untouched(&r.work, &start);
    assert_eq!(
        git(&r.origin, &["rev-parse", "refs/heads/feat"]),
        theirs,
        "their commit survives"
    );
    assert_eq!(git(&r.work, &["rev-parse", out(&v, "backup-ref")]), start);
}

#[tokio::test]
async fn dirty_tree_is_refused_and_dry_run_changes_nothing() {
    let r = repos();
    let head = commit(&r.work, "w.txt", "w\n", "feat work");
    r.main_commit("m.txt", "m\n", "main work");
    write(&r.work, "w.txt", b"uncommitted\n");
    let (ran, v) = r.sync("--update rebase").await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        v["checks"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("refusing to rebase: 1 modified")
    );
    assert_eq!(
        std::fs::read_to_string(r.work.join("w.txt")).unwrap(),
        "uncommitted\n"
    );
    git(&r.work, &["checkout", "-q", "--", "w.txt"]);

    let (ran, v) = r.sync("--update rebase --push --dry-run").await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(v["dry_run"], true);
    assert_eq!(
        v["summary"],
        "dry run: would rebase feat (1 commits) onto origin/main (1 new commits)"
    );
    let outcomes: Vec<&str> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["planned", "planned", "planned"]);
    untouched(&r.work, &head);
    assert_eq!(git(&r.work, &["for-each-ref", "refs/sync-backup"]), "");
}

/// A cancelled job (SIGTERM) while a fetch hangs on a remote that never answers: sync-check stops
/// git (its connection closes), writes a partial report, exits 1, and leaves the refs and the
/// work tree as they were, with no lock file behind.
#[tokio::test]
async fn sigterm_during_a_fetch_stops_git_and_changes_nothing() {
    use tokio::io::AsyncReadExt;
    let r = repos();
    let head = git(&r.work, &["rev-parse", "HEAD"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/origin.git", listener.local_addr().unwrap());
    git(&r.work, &["remote", "add", "stuck", &url]);
    let refs = git(&r.work, &["for-each-ref"]);
    let mut c = tool("sync-check", &r.work);
    c.args([
        "--remote",
        "stuck",
        "--format",
        "json",
        "--publish",
        "never",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let wait = std::time::Duration::from_secs(60);
    let (mut conn, _) = tokio::time::timeout(wait, listener.accept())
        .await
        .expect("git never connected")
        .unwrap();
    let out = rig::sigterm(child).await;
    assert_eq!(out.code, 1, "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(v["outcome"], "failed", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("interrupted by SIGTERM during the fetch"),
        "{v}"
    );
    // git was stopped, not left behind: the connection it held is closed.
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("git still holds the connection: it was not stopped");
        if !matches!(read, Ok(n) if n > 0) {
            break;
        }
    }
    untouched(&r.work, &head);
    assert_eq!(git(&r.work, &["for-each-ref"]), refs);
    let locks = Command::new("find")
        .args([".git", "-name", "*.lock"])
        .current_dir(&r.work)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&locks.stdout),
        "",
        "lock files left"
    );
}
