//! git for the tests: one identity (`dev`), a C locale and no ambient `GIT_DIR`, so a test's
//! repository is the one it names and git's messages are the ones asserted. A failing command
//! panics naming it, with git's stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `git ARGS` in `dir`, ready to run.
pub fn git_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .env("LC_ALL", "C")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    c
}

/// Runs `git ARGS` in `dir` and returns what it did, whatever its status.
pub fn git_raw(dir: &Path, args: &[&str]) -> Output {
    git_cmd(dir, args).output().expect("run git")
}

/// Runs `git ARGS` in `dir`; its stdout, trimmed. Panics when git fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_raw(dir, args);
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `git ARGS` in `dir`: its stdout, trimmed, or `None` when git fails.
pub fn git_ok(dir: &Path, args: &[&str]) -> Option<String> {
    let out = git_raw(dir, args);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Writes `text` to `dir/file`, making its directories.
pub fn write(dir: &Path, file: &str, text: &[u8]) {
    let p = dir.join(file);
    std::fs::create_dir_all(p.parent().expect("a file in a directory")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// Writes `file`, commits everything with `msg`, and returns the new commit.
pub fn commit(dir: &Path, file: &str, text: &str, msg: &str) -> String {
    write(dir, file, text.as_bytes());
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", msg]);
    git(dir, &["rev-parse", "HEAD"])
}

/// [`commit`] with the file's name as the message.
pub fn commit_file(dir: &Path, file: &str, text: &str) -> String {
    commit(dir, file, text, file)
}

/// A bare repository `root/origin.git` with `main` as its branch; its path.
pub fn bare(root: &Path) -> PathBuf {
    let origin = root.join("origin.git");
    let path = origin.to_str().expect("a UTF-8 path");
    git(root, &["init", "-q", "--bare", "-b", "main", path]);
    origin
}

/// Clones `origin` into `root/name`; the clone's path.
pub fn clone(root: &Path, origin: &Path, name: &str) -> PathBuf {
    let path = origin.to_str().expect("a UTF-8 path");
    git(root, &["clone", "-q", path, name]);
    root.join(name)
}

/// [`clone`] of an empty `origin`, on a new branch `main`.
pub fn clone_main(root: &Path, origin: &Path, name: &str) -> PathBuf {
    let work = clone(root, origin, name);
    git(&work, &["checkout", "-q", "-b", "main"]);
    work
}

/// Someone else's commit on `branch`: `clone` fetches, checks out origin's `branch`, commits
/// `file` with `msg` and pushes it. The pushed commit.
pub fn push_theirs(clone: &Path, branch: &str, file: &str, text: &str, msg: &str) -> String {
    git(clone, &["fetch", "-q", "origin"]);
    let upstream = format!("origin/{branch}");
    git(clone, &["checkout", "-q", "-b", branch, &upstream]);
    let theirs = commit(clone, file, text, msg);
    git(clone, &["push", "-q", "origin", branch]);
    theirs
}
