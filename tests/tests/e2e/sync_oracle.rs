//! sync-check against git as the oracle (issue 13): random histories, several commits on each side,
//! with every kind of change that makes git conflict (content, binary, rename/rename,
//! rename/delete, modify/delete, add/add, file <-> directory, executable bits) on odd file names
//! (spaces, unicode, a leading dash, quotes, backslashes, tabs, newlines, control characters, long
//! and nested paths). For each history, git's own commands answer, and the real `sync-check`
//! binary must say the same: the conflicted paths (`merge-tree --write-tree --name-only`), each
//! path's kinds (from git's messages), the paths as git quotes them (`core.quotePath=false`),
//! ahead/behind and the missing commits (`rev-list`), and the exit code. On a sample it also runs
//! `--update rebase` and compares the result with a plain `git rebase` (`git cherry`, trees), or
//! checks that nothing moved when the merge conflicts.
//!
//! `SYNC_ORACLE_CASES` (default 300) histories from `SYNC_ORACLE_SEED` (default 13) on; a failure
//! prints each failing case's seed: replay one with `SYNC_ORACLE_SEED=<seed> SYNC_ORACLE_CASES=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use deploy_action_e2e::git::{git, git_raw};
use serde_json::Value;

// ---- histories -----------------------------------------------------------------------------

/// File names: spaces, unicode, a leading dash, quotes, backslashes, tabs, newlines, control
/// characters, a long one, and names that are also directory names below (file <-> directory).
const NAMES: &[&str] = &[
    "a.txt",
    "lib.rs",
    "with space.txt",
    "ünïcødé ✓.md",
    "-dash",
    "q\"uote",
    "back\\slash",
    "tab\there",
    "new\nline",
    "cr\rctl\x01",
    "src",
    "docs",
    "x",
    "data.bin",
];
const DIRS: &[&str] = &["", "", "src/", "src/deep/er/", "docs/", "x/", "ä ö/", "-d/"];

fn long_name(rng: &mut fastrand::Rng) -> String {
    format!(
        "long/{}/{}.txt",
        "nested/".repeat(rng.usize(1..6)).trim_end_matches('/'),
        "l".repeat(rng.usize(60..120))
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct File {
    data: Vec<u8>,
    exec: bool,
}

type Tree = BTreeMap<String, File>;

struct Gen {
    rng: fastrand::Rng,
    next_id: u32,
    log: Vec<String>,
}

impl Gen {
    fn path(&mut self) -> String {
        if self.rng.u8(..20) == 0 {
            return long_name(&mut self.rng);
        }
        let d = DIRS[self.rng.usize(..DIRS.len())];
        let n = NAMES[self.rng.usize(..NAMES.len())];
        format!("{d}{n}")
    }

    fn text(&mut self) -> Vec<u8> {
        self.next_id += 1;
        let id = self.next_id;
        let n = self.rng.usize(4..9);
        let mut s = String::new();
        for i in 0..n {
            s.push_str(&format!("line {i} of file {id}: {}\n", self.rng.u32(..)));
        }
        s.into_bytes()
    }

    fn binary(&mut self) -> Vec<u8> {
        self.next_id += 1;
        let mut b = format!("\0BIN {}\0", self.next_id).into_bytes();
        b.extend((0..self.rng.usize(8..64)).map(|_| self.rng.u8(..)));
        b
    }

    fn content(&mut self) -> Vec<u8> {
        if self.rng.u8(..5) == 0 {
            self.binary()
        } else {
            self.text()
        }
    }

    /// Changes one or two lines of a text file (or rewrites a binary one): small files, so the two
    /// sides often touch the same lines.
    fn modify(&mut self, data: &[u8]) -> Vec<u8> {
        if data.contains(&0) {
            return self.binary();
        }
        let text = String::from_utf8_lossy(data);
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        for _ in 0..self.rng.usize(1..3) {
            let tag = self.rng.u32(..);
            match self.rng.u8(..4) {
                0 => lines.push(format!("appended {tag}")),
                _ if !lines.is_empty() => {
                    let i = self.rng.usize(..lines.len());
                    lines[i] = format!("changed {tag}");
                }
                _ => lines.push(format!("added {tag}")),
            }
        }
        let mut s = lines.join("\n");
        s.push('\n');
        s.into_bytes()
    }
}

/// Whether `p` can be added to `t`: not there yet, no file where it needs a directory, no
/// directory where it needs a file.
fn free(t: &Tree, p: &str) -> bool {
    if t.contains_key(p) {
        return false;
    }
    let mut prefix = String::new();
    for part in p.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
        prefix.push_str(part);
        if t.contains_key(&prefix) {
            return false;
        }
        prefix.push('/');
    }
    let dir = format!("{p}/");
    !t.keys().any(|k| k.starts_with(&dir))
}

fn dirs_of(t: &Tree) -> Vec<String> {
    let mut d = BTreeSet::new();
    for k in t.keys() {
        let mut acc = String::new();
        let parts: Vec<&str> = k.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            acc.push_str(part);
            d.insert(acc.clone());
            acc.push('/');
        }
    }
    d.into_iter().collect()
}

/// One random operation on `t`; returns what it did (for the failure message).
fn operate(g: &mut Gen, t: &mut Tree) -> Option<String> {
    let files: Vec<String> = t.keys().cloned().collect();
    let pick = |g: &mut Gen| (!files.is_empty()).then(|| files[g.rng.usize(..files.len())].clone());
    match g.rng.u8(..100) {
        // Modify (the most common change, so the sides collide on content).
        0..=29 => {
            let p = pick(g)?;
            let f = t.get_mut(&p)?;
            let data = f.data.clone();
            f.data = g.modify(&data);
            Some(format!("modify {p:?}"))
        }
        30..=44 => {
            let p = g.path();
            if !free(t, &p) {
                return None;
            }
            // Now and then the same content either side would add (an add/add that merges, or
            // differs only in the executable bit).
            let data = if g.rng.u8(..3) == 0 {
                format!("shared content of {p}\n").into_bytes()
            } else {
                g.content()
            };
            let exec = g.rng.u8(..4) == 0;
            t.insert(p.clone(), File { data, exec });
            Some(format!("add {p:?}{}", if exec { " +x" } else { "" }))
        }
        45..=54 => {
            let p = pick(g)?;
            t.remove(&p);
            Some(format!("delete {p:?}"))
        }
        55..=74 => {
            let p = pick(g)?;
            let f = t.remove(&p)?;
            let q = g.path();
            if !free(t, &q) {
                t.insert(p, f);
                return None;
            }
            let mut f = f;
            let also = g.rng.bool();
            if also {
                f.data = g.modify(&f.data);
            }
            t.insert(q.clone(), f);
            Some(format!(
                "rename {p:?} -> {q:?}{}",
                if also { " and modify" } else { "" }
            ))
        }
        75..=84 => {
            let p = pick(g)?;
            let f = t.get_mut(&p)?;
            f.exec = !f.exec;
            Some(format!("chmod {} {p:?}", if f.exec { "+x" } else { "-x" }))
        }
        85..=91 => {
            // file -> directory
            let p = pick(g)?;
            let f = t.remove(&p)?;
            let q = format!("{p}/inner.txt");
            if !free(t, &q) {
                t.insert(p, f);
                return None;
            }
            let data = g.modify(&f.data);
            t.insert(q, File { data, exec: f.exec });
            Some(format!("file -> directory {p:?}"))
        }
        92..=96 => {
            // directory -> file
            let dirs = dirs_of(t);
            if dirs.is_empty() {
                return None;
            }
            let d = dirs[g.rng.usize(..dirs.len())].clone();
            let under = format!("{d}/");
            t.retain(|k, _| !k.starts_with(&under));
            let data = g.content();
            t.insert(d.clone(), File { data, exec: false });
            Some(format!("directory -> file {d:?}"))
        }
        _ => {
            // A copy under another name (an add/add of equal content when both sides do it).
            let p = pick(g)?;
            let q = g.path();
            if !free(t, &q) {
                return None;
            }
            let f = t.get(&p)?.clone();
            t.insert(q.clone(), f);
            Some(format!("copy {p:?} -> {q:?}"))
        }
    }
}

/// Makes the work tree hold exactly `t` (files outside it removed, empty directories too).
fn materialise(dir: &Path, t: &Tree) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let e = entry.unwrap();
        if e.file_name() != ".git" {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                std::fs::remove_dir_all(p).unwrap();
            } else {
                std::fs::remove_file(p).unwrap();
            }
        }
    }
    for (p, f) in t {
        let full = dir.join(p);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, &f.data).unwrap();
        let mode = if f.exec { 0o755 } else { 0o644 };
        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

fn commit(dir: &Path, t: &Tree, msg: &str) {
    materialise(dir, t);
    git(dir, &["add", "-A"]);
    git(
        dir,
        &["commit", "-q", "--allow-empty", "--no-verify", "-m", msg],
    );
}

struct History {
    _tmp: tempfile::TempDir,
    work: PathBuf,
    log: Vec<String>,
}

/// A repository with `main` (checked out as `refs/remotes/origin/main` too) and `feat` (checked
/// out), both from one base commit.
fn history(seed: u64) -> History {
    let mut g = Gen {
        rng: fastrand::Rng::with_seed(seed),
        next_id: 0,
        log: Vec::new(),
    };
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    for (k, v) in [
        ("user.name", "dev"),
        ("user.email", "dev@example.com"),
        ("core.quotePath", "true"),
        ("commit.gpgSign", "false"),
    ] {
        git(&work, &["config", k, v]);
    }
    let mut base = Tree::new();
    for _ in 0..g.rng.usize(3..9) {
        let p = g.path();
        if free(&base, &p) {
            let data = g.content();
            let exec = g.rng.u8(..5) == 0;
            base.insert(p, File { data, exec });
        }
    }
    g.log
        .push(format!("base: {:?}", base.keys().collect::<Vec<_>>()));
    commit(&work, &base, "base");
    git(&work, &["branch", "feat"]);
    // A side has no commits now and then (up to date, or nothing ahead).
    for side in ["main", "feat"] {
        git(&work, &["checkout", "-q", "-f", side]);
        let mut t = base.clone();
        materialise(&work, &t);
        let commits = if g.rng.u8(..10) == 0 {
            0
        } else {
            g.rng.usize(1..4)
        };
        for c in 0..commits {
            let mut did = Vec::new();
            for _ in 0..g.rng.usize(1..4) {
                if let Some(op) = operate(&mut g, &mut t) {
                    did.push(op);
                }
            }
            g.log.push(format!("{side} commit {c}: {}", did.join("; ")));
            commit(&work, &t, &format!("{side} {c}"));
        }
    }
    git(
        &work,
        &["update-ref", "refs/remotes/origin/main", "refs/heads/main"],
    );
    git(
        &work,
        &["remote", "add", "origin", "https://example.invalid/r.git"],
    );
    History {
        _tmp: tmp,
        work,
        log: g.log,
    }
}

// ---- the oracle ----------------------------------------------------------------------------

/// What git says about merging feat into main.
#[derive(Debug)]
struct Oracle {
    behind: u64,
    ahead: u64,
    /// `rev-list feat..main`, newest first.
    missing: Vec<String>,
    /// merge-tree's exit status: 0 clean, 1 conflicted.
    status: i32,
    /// `--name-only -z`: the conflicted paths, raw.
    paths: Vec<String>,
    /// The same list as git prints it with `core.quotePath=false` (no `-z`).
    quoted: Vec<String>,
    /// Each conflicted path's kinds, from git's messages (and the stages' modes).
    kinds: BTreeMap<String, BTreeSet<String>>,
}

/// The kind of one of git's messages, written from git's `merge-ort.c` type names.
fn message_kind(kind: &str, text: &str) -> Option<&'static str> {
    Some(match kind {
        "CONFLICT (contents)" if text.starts_with("CONFLICT (add/add)") => "add/add",
        "CONFLICT (contents)" => "content",
        "CONFLICT (binary)" => "binary",
        "CONFLICT (file/directory)" => "file/directory",
        "CONFLICT (distinct modes)" => "mode",
        "CONFLICT (modify/delete)" => "modify/delete",
        "CONFLICT (rename/rename)" => "rename/rename",
        "CONFLICT (rename/delete)" => "rename/delete",
        "CONFLICT (rename involved in collision)" => "rename collision",
        "CONFLICT (directory rename suggested)"
        | "CONFLICT (file in way of directory rename)"
        | "CONFLICT(directory rename collision)"
        | "CONFLICT(directory rename unclear split)" => "directory rename",
        k if k.starts_with("CONFLICT (submodule") => "submodule",
        k if k.starts_with("CONFLICT") => "other",
        _ => return None,
    })
}

fn oracle(work: &Path) -> Oracle {
    let counts = git(
        work,
        &["rev-list", "--left-right", "--count", "main...feat"],
    );
    let mut it = counts.split_whitespace();
    let behind = it.next().unwrap().parse().unwrap();
    let ahead = it.next().unwrap().parse().unwrap();
    let missing = git(work, &["rev-list", "feat..main"])
        .lines()
        .map(str::to_owned)
        .collect();

    let out = git_raw(
        work,
        &[
            "merge-tree",
            "--write-tree",
            "--name-only",
            "-z",
            "origin/main",
            "feat",
        ],
    );
    let status = out.status.code().unwrap();
    assert!(status == 0 || status == 1, "merge-tree: {out:?}");
    let mut tokens = out.stdout.split(|b| *b == 0);
    tokens.next();
    let mut paths = Vec::new();
    for t in tokens.by_ref() {
        if t.is_empty() {
            break;
        }
        paths.push(String::from_utf8(t.to_vec()).unwrap());
    }
    let mut kinds: BTreeMap<String, BTreeSet<String>> =
        paths.iter().map(|p| (p.clone(), BTreeSet::new())).collect();
    while let Some(n) = tokens.next() {
        let Ok(n) = std::str::from_utf8(n).unwrap_or("x").parse::<usize>() else {
            break;
        };
        let named: Vec<String> = (0..n)
            .map(|_| String::from_utf8(tokens.next().unwrap().to_vec()).unwrap())
            .collect();
        let kind = String::from_utf8(tokens.next().unwrap().to_vec()).unwrap();
        let text = String::from_utf8(tokens.next().unwrap().to_vec()).unwrap();
        if let Some(k) = message_kind(&kind, &text) {
            for p in &named {
                if let Some(set) = kinds.get_mut(p) {
                    set.insert(k.to_owned());
                }
            }
        }
    }
    // Modes: the stages of the conflicted paths (`<mode> <oid> <stage>\t<path>`).
    let staged = git_raw(
        work,
        &["merge-tree", "--write-tree", "-z", "origin/main", "feat"],
    );
    let mut modes: BTreeMap<String, [Option<String>; 3]> = BTreeMap::new();
    for t in staged.stdout.split(|b| *b == 0).skip(1) {
        if t.is_empty() {
            break;
        }
        let s = String::from_utf8(t.to_vec()).unwrap();
        let (head, path) = s.split_once('\t').unwrap();
        let f: Vec<&str> = head.split(' ').collect();
        let stage: usize = f[2].parse().unwrap();
        modes.entry(path.to_owned()).or_default()[stage - 1] = Some(f[0].to_owned());
    }
    for (p, set) in kinds.iter_mut() {
        if set.contains("binary") {
            set.remove("content");
        }
        if let Some([None, Some(a), Some(b)]) = modes.get(p)
            && a != b
            && [a, b].iter().all(|m| *m == "100644" || *m == "100755")
        {
            set.insert("mode".into());
        }
        if set.is_empty() {
            set.insert("other".into());
        }
    }

    let human = git_raw(
        work,
        &[
            "-c",
            "core.quotePath=false",
            "merge-tree",
            "--write-tree",
            "--name-only",
            "origin/main",
            "feat",
        ],
    );
    let text = String::from_utf8(human.stdout).unwrap();
    let quoted = text
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    Oracle {
        behind,
        ahead,
        missing,
        status,
        paths,
        quoted,
        kinds,
    }
}

// ---- sync-check ----------------------------------------------------------------------------

fn sync_check(work: &Path, extra: &[&str]) -> (i32, Value, String) {
    let mut c = Command::new(deploy_action_e2e::rig::bin("sync-check"));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if ["GITHUB_", "RUNNER_", "ACTIONS_", "DEPLOY_"]
            .iter()
            .any(|p| k.starts_with(p))
            || k == "CI"
        {
            c.env_remove(k.as_ref());
        }
    }
    c.args(["--repo", work.to_str().unwrap()])
        .args(["--no-fetch", "--format", "json", "--publish", "never"])
        .args(extra)
        .env("NO_COLOR", "1");
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("sync-check printed no JSON ({e}): {stdout}\n{stderr}"));
    (out.status.code().unwrap_or(-1), v, stderr)
}

fn out<'a>(v: &'a Value, k: &str) -> &'a str {
    v["outputs"][k].as_str().unwrap_or("")
}

/// Compares one history; returns the differences found, and counts the kinds git reported.
fn compare(h: &History, seen: &Mutex<BTreeMap<String, usize>>) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut differ = |what: &str, git: String, ours: String| {
        if git != ours {
            diffs.push(format!(
                "{what}:\n    git:        {git}\n    sync-check: {ours}"
            ));
        }
    };
    let o = oracle(&h.work);
    {
        let mut seen = seen.lock().unwrap();
        for k in o.kinds.values().flatten() {
            *seen.entry(k.clone()).or_default() += 1;
        }
        if o.quoted.iter().any(|q| q.starts_with('"')) {
            *seen.entry("quoted path".into()).or_default() += 1;
        }
    }
    let (code, v, stderr) = sync_check(&h.work, &[]);
    if code != o.status {
        differ(
            "exit code",
            format!("{}", o.status),
            format!("{code}\n{stderr}"),
        );
    }
    differ(
        "ahead/behind",
        format!("{}/{}", o.ahead, o.behind),
        format!("{}/{}", out(&v, "ahead"), out(&v, "behind")),
    );
    // The missing-commit list: the first 20 of rev-list, abbreviated.
    let details = v["checks"][1]["details"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let listed: Vec<String> = details
        .iter()
        .filter_map(|d| d[1].as_str())
        .filter(|l| !l.starts_with('…'))
        .map(|l| l.split(' ').next().unwrap_or("").to_owned())
        .collect();
    let expected: Vec<String> = o.missing.iter().take(20).cloned().collect();
    let matches = listed.len() == expected.len()
        && listed
            .iter()
            .zip(&expected)
            .all(|(s, full)| full.starts_with(s.as_str()));
    if !matches {
        differ(
            "missing commits",
            format!("{expected:?}"),
            format!("{listed:?}"),
        );
    }
    differ(
        "conflict count",
        o.paths.len().to_string(),
        out(&v, "conflicts").to_owned(),
    );
    differ(
        "conflict-files (quoted as git prints them)",
        format!("{:?}", o.quoted.join("\n")),
        format!("{:?}", out(&v, "conflict-files")),
    );
    let json: Vec<Value> = serde_json::from_str(out(&v, "conflicts-json")).unwrap_or_default();
    let ours: BTreeMap<String, BTreeSet<String>> = json
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap_or("").to_owned(),
                c["kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect(),
            )
        })
        .collect();
    let raw: Vec<String> = json
        .iter()
        .map(|c| c["path"].as_str().unwrap_or("").to_owned())
        .collect();
    differ(
        "conflicted paths (raw)",
        format!("{:?}", o.paths),
        format!("{raw:?}"),
    );
    differ("kinds", format!("{:?}", o.kinds), format!("{ours:?}"));
    // One annotation per conflicted path, at a file that exists on the head when git's path
    // does not (and then saying so).
    let notes = v["annotations"].as_array().cloned().unwrap_or_default();
    differ(
        "annotations",
        o.paths.len().to_string(),
        notes.len().to_string(),
    );
    for (a, p) in notes.iter().zip(&o.paths) {
        let file = a["file"].as_str().unwrap_or("");
        let on_head = git_raw(&h.work, &["cat-file", "-e", &format!("feat:{file}")])
            .status
            .success();
        let git_on_head = git_raw(&h.work, &["cat-file", "-e", &format!("feat:{p}")])
            .status
            .success();
        if git_on_head && file != p {
            differ(
                "annotation of a path on the head",
                p.clone(),
                file.to_owned(),
            );
        }
        if !git_on_head && file != p && !on_head {
            differ(
                "annotation points at a file on the head",
                p.clone(),
                file.to_owned(),
            );
        }
        if file != p
            && !a["message"]
                .as_str()
                .unwrap_or("")
                .contains("is not on this branch")
        {
            differ("annotation says it moved", p.clone(), a.to_string());
        }
    }
    diffs
}

fn status_clean(work: &Path) -> bool {
    git(work, &["status", "--porcelain"]).is_empty()
}

/// `--update rebase` against a plain `git rebase` (clean merges), or nothing moved (conflicts).
fn compare_rebase(h: &History, conflicted: bool) -> Vec<String> {
    let w = &h.work;
    let mut diffs = Vec::new();
    let start = git(w, &["rev-parse", "feat"]);
    git(w, &["branch", "plain", "feat"]);
    let (code, v, stderr) = sync_check(w, &["--update", "rebase"]);
    if conflicted {
        if code != 1 {
            diffs.push(format!(
                "update on a conflicted history: exit {code}: {stderr}"
            ));
        }
        if git(w, &["rev-parse", "HEAD"]) != start
            || git(w, &["symbolic-ref", "--short", "HEAD"]) != "feat"
            || !status_clean(w)
            || !git(w, &["for-each-ref", "refs/sync-backup"]).is_empty()
        {
            diffs.push("update on a conflicted history moved something".into());
        }
        return diffs;
    }
    git(w, &["checkout", "-q", "plain"]);
    let plain_ok = git_raw(w, &["rebase", "-q", "refs/remotes/origin/main"])
        .status
        .success();
    if !plain_ok {
        git_raw(w, &["rebase", "--abort"]);
    }
    git(w, &["checkout", "-q", "-f", "feat"]);
    let new = git(w, &["rev-parse", "feat"]);
    match (code, plain_ok) {
        (0, true) => {
            let plain = git(w, &["rev-parse", "plain"]);
            let tree = |c: &str| git(w, &["rev-parse", &format!("{c}^{{tree}}")]);
            if tree(&new) != tree(&plain) {
                diffs.push(format!(
                    "rebase tree differs from git rebase's ({new} vs {plain})"
                ));
            }
            let count = |c: &str| git(w, &["rev-list", "--count", &format!("main..{c}")]);
            if count(&new) != count(&plain) {
                diffs.push("rebase commit count differs from git rebase's".into());
            }
            for (a, b) in [(&new, &plain), (&plain, &new)] {
                let cherry = git(w, &["cherry", a, b]);
                if cherry.lines().any(|l| l.starts_with('+')) {
                    diffs.push(format!(
                        "git cherry {a} {b} lists a missing change:\n{cherry}"
                    ));
                }
            }
            if !git_raw(w, &["merge-base", "--is-ancestor", "main", &new])
                .status
                .success()
            {
                diffs.push("the rebased branch does not contain main".into());
            }
            if out(&v, "new-head") != new {
                diffs.push("new-head output is not the branch".into());
            }
        }
        (1, false) => {
            if new != start || !status_clean(w) {
                diffs.push("a rebase that stopped left the branch moved".into());
            }
        }
        _ => diffs.push(format!(
            "sync-check --update rebase exit {code}, plain git rebase {}: {stderr}",
            if plain_ok { "succeeded" } else { "failed" }
        )),
    }
    diffs
}

#[test]
fn sync_check_agrees_with_git_on_random_histories() {
    let cases: u64 = std::env::var("SYNC_ORACLE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let first: u64 = std::env::var("SYNC_ORACLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(13);
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let stats: Mutex<BTreeMap<&'static str, usize>> = Mutex::new(BTreeMap::new());
    let seen: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst) as u64;
                    if i >= cases {
                        break;
                    }
                    let seed = first + i;
                    let h = history(seed);
                    let mut diffs = compare(&h, &seen);
                    let conflicted = git_raw(
                        &h.work,
                        &["merge-tree", "--write-tree", "origin/main", "feat"],
                    )
                    .status
                    .code()
                        == Some(1);
                    {
                        let mut st = stats.lock().unwrap();
                        *st.entry(if conflicted { "conflicted" } else { "clean" })
                            .or_default() += 1;
                    }
                    // --update rebase on every fourth history.
                    if diffs.is_empty() && seed.is_multiple_of(4) {
                        diffs.extend(compare_rebase(&h, conflicted));
                        *stats.lock().unwrap().entry("rebased").or_default() += 1;
                    }
                    if !diffs.is_empty() {
                        failures.lock().unwrap().push(format!(
                            "seed {seed} (replay: SYNC_ORACLE_SEED={seed} SYNC_ORACLE_CASES=1)\n  history:\n    {}\n  differences:\n  {}",
                            h.log.join("\n    "),
                            diffs.join("\n  ")
                        ));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let stats = stats.into_inner().unwrap();
    let seen = seen.into_inner().unwrap();
    eprintln!("sync oracle: {cases} histories from seed {first}: {stats:?}");
    eprintln!("sync oracle: conflicted paths by kind: {seen:?}");
    assert!(
        failures.is_empty(),
        "{} of {cases} histories differ from git (first seed {first}):\n\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    // The generator must really produce conflicts and clean merges, or the test proves little.
    assert!(
        stats.get("conflicted").copied().unwrap_or(0) * 5 >= cases as usize
            && stats.get("clean").copied().unwrap_or(0) * 10 >= cases as usize,
        "too few conflicted or clean histories: {stats:?}"
    );
    if cases >= 100 {
        for k in [
            "content",
            "binary",
            "add/add",
            "modify/delete",
            "rename/rename",
            "rename/delete",
            "file/directory",
            "mode",
            "quoted path",
        ] {
            assert!(
                seen.contains_key(k),
                "no history had a {k} conflict: {seen:?}"
            );
        }
    }
}
