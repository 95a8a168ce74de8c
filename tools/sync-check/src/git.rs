//! The git plumbing sync-check needs, through the real `git` CLI (merge-tree's semantics live
//! only there): commands with captured output and errors that say which command failed, and
//! parsers for `merge-tree -z`, `status --porcelain=v2 -z` and `log --left-right`.
//!
//! Porcelain output is parsed by hand rather than with a git library: no library implements
//! `merge-tree --write-tree`'s conflict semantics, and these `-z` formats are stable, documented
//! and covered by the property tests and the oracle test against git itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use deploy_core::exit;

/// A repository driven through the `git` binary.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
    /// `rev-parse --git-common-dir`, where the `shallow` file of a shallow clone is.
    common_dir: PathBuf,
    /// The credentials for the remote (`http.<url>.extraheader`), passed through the environment
    /// (`GIT_CONFIG_*`), never on the command line where other processes could read it, and only
    /// to the fetches and pushes that need them ([`Git::transport`]).
    credentials: Vec<(String, String)>,
    /// When set, a fetch or push in flight is stopped (SIGTERM to git's process group, so git
    /// removes its lock files) once a signal arrives. Unset while an update must finish.
    cancel: Option<deploy_core::cli::Cancel>,
    /// Set once the repository is known to be a partial clone (a clone never stops being one:
    /// nothing here removes a promisor), so that is not asked again.
    partial: std::sync::Arc<std::sync::OnceLock<()>>,
    /// A config value every git run gets on top of the repository's (through the environment,
    /// as the credentials), once set: see [`Git::pin_config`].
    pinned: std::sync::Arc<std::sync::OnceLock<(String, String)>>,
}

/// A failed git command.
#[derive(Debug, thiserror::Error)]
#[error("git {args} failed ({status}): {stderr}")]
pub struct GitError {
    /// The arguments, space-joined.
    pub args: String,
    /// How git ended (`exit status: 1`), or `not run` when it could not be started.
    pub status: String,
    /// What git said (secrets redacted).
    pub stderr: String,
    /// What git printed on stdout (secrets redacted): `push --porcelain` reports there.
    pub stdout: String,
}

/// Config for a fetch or push that may carry credentials: no hook, credential helper, askpass
/// program or automatic gc/maintenance may run as its child (they would inherit the credentials
/// from the environment), and no submodule is fetched.
const TRANSPORT_CONFIG: [&str; 10] = [
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "credential.helper=",
    "-c",
    "core.askPass=",
    "-c",
    "gc.auto=0",
    "-c",
    "maintenance.auto=false",
];

/// Environment variables no git command gets (tokens the workflow set for us, and programs git
/// would hand credentials to).
const SCRUBBED_ENV: [&str; 4] = ["GITHUB_TOKEN", "GH_TOKEN", "GIT_ASKPASS", "SSH_ASKPASS"];

/// The `git` that `PATH` names, found once (a check runs twenty gits or more, and each would
/// search `PATH` again); plain `git` when none is found, so that spawning it reports the error.
fn git_program() -> &'static std::ffi::OsStr {
    static GIT: std::sync::OnceLock<std::ffi::OsString> = std::sync::OnceLock::new();
    GIT.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join("git"))
            .find(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .map_or_else(|| "git".into(), PathBuf::into_os_string)
    })
}

/// Runs `cmd` like [`Command::output`], but sends SIGTERM to git's process group (git removes its
/// lock files on SIGTERM) once `cancel` sees a signal, or as soon as git's stderr says `stop_on`,
/// and then returns the output so far, whose status is then a failure. The flag: `stop_on` was
/// seen.
fn output_or_stop(
    mut cmd: Command,
    cancel: Option<&deploy_core::cli::Cancel>,
    stop_on: Option<&'static str>,
) -> std::io::Result<(Output, bool)> {
    use std::io::Read;
    use std::process::Stdio;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    // Once git is waited for, its process group id may name another group: no signal then.
    let reaped = std::sync::Arc::new(AtomicBool::new(false));
    let stop = {
        let reaped = reaped.clone();
        std::sync::Arc::new(move || {
            if let Some(pid) = pid
                && !reaped.load(Ordering::SeqCst)
            {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::TERM);
            }
        })
    };
    let seen = std::sync::Arc::new(AtomicBool::new(false));
    let drain = |r: Option<Box<dyn Read + Send>>, watch: Option<&'static str>| {
        let (seen, stop) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let Some(mut r) = r else { return buf };
            let mut chunk = [0u8; 8192];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                if let Some(p) = watch
                    && !seen.load(Ordering::Relaxed)
                    && buf.windows(p.len()).any(|w| w == p.as_bytes())
                {
                    seen.store(true, Ordering::Relaxed);
                    stop();
                }
            }
            buf
        })
    };
    let stdout = drain(child.stdout.take().map(|r| Box::new(r) as _), None);
    let stderr = drain(child.stderr.take().map(|r| Box::new(r) as _), stop_on);
    // The child is waited for on a thread of its own, so its exit is seen at once; this thread
    // looks for a signal every 20 ms meanwhile.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let status = child.wait();
        reaped.store(true, Ordering::SeqCst);
        let _ = tx.send(status);
    });
    let mut signalled = false;
    let status = loop {
        match rx.recv_timeout(std::time::Duration::from_millis(20)) {
            Ok(status) => break status?,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(std::io::Error::other("git's waiter thread ended"));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if !signalled && cancel.is_some_and(|c| c.signal().is_some()) {
            signalled = true;
            stop();
        }
    };
    let out = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    Ok((out, seen.load(Ordering::Relaxed)))
}

impl Git {
    /// A repository at `dir`, not checked yet: [`Git::find_common_dir`] checks it. Until its
    /// result is set ([`Git::set_common_dir`]), the repository does not look shallow.
    pub fn unchecked(dir: &Path) -> Git {
        Git {
            dir: dir.to_owned(),
            common_dir: PathBuf::new(),
            credentials: Vec::new(),
            cancel: None,
            partial: std::sync::Arc::default(),
            pinned: std::sync::Arc::default(),
        }
    }

    /// `rev-parse --git-common-dir`: where the repository's shared files are (a usage error
    /// where `dir` is no repository).
    pub fn find_common_dir(&self) -> anyhow::Result<PathBuf> {
        let common = self
            .ok(&["rev-parse", "--git-common-dir"])
            .map_err(|_| exit::usage(format!("{} is not a git repository", self.dir.display())))?;
        Ok(self.dir.join(common.trim_end_matches(['\n', '\r'])))
    }

    /// Sets what [`Git::find_common_dir`] found.
    pub fn set_common_dir(&mut self, common_dir: PathBuf) {
        self.common_dir = common_dir;
    }

    fn command(&self, args: &[&str], transport: bool) -> Command {
        let mut cmd = Command::new(git_program());
        if transport {
            cmd.args(TRANSPORT_CONFIG);
        }
        cmd.args(args)
            .current_dir(&self.dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C");
        // git and everything it starts (hooks, editors, helpers) see no secret of ours: not the
        // token's variable, nor any other variable holding a registered secret (8 characters or
        // more: a short value would match unrelated variables).
        let secrets = deploy_core::secret::registered();
        for (k, v) in std::env::vars_os() {
            let v = v.to_string_lossy();
            let scrub = SCRUBBED_ENV.iter().any(|s| k == *s)
                || secrets
                    .iter()
                    .any(|s| s.len() >= 8 && v.contains(s.as_str()));
            if scrub {
                cmd.env_remove(&k);
            }
        }
        // The pinned value goes to every git (any may fetch a missing object), the credentials
        // only to transport commands.
        let credentials = if transport {
            &self.credentials[..]
        } else {
            &[]
        };
        let extra: Vec<&(String, String)> = credentials.iter().chain(self.pinned.get()).collect();
        if !extra.is_empty() {
            cmd.env("GIT_CONFIG_COUNT", extra.len().to_string());
            for (i, (k, v)) in extra.into_iter().enumerate() {
                cmd.env(format!("GIT_CONFIG_KEY_{i}"), k)
                    .env(format!("GIT_CONFIG_VALUE_{i}"), v);
            }
        }
        // Its own process group: a Ctrl-C meant for us does not stop git halfway.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd
    }

    /// Runs git; returns the raw output whatever the exit status. No credentials, no secret in
    /// the environment.
    pub fn raw(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.command(args, false)
            .output()
            .map_err(|e| exit::dependency(format!("couldn't run git: {e}")))
    }

    /// Like [`Git::raw`], for a command that may fetch: in a partial clone git fetches the objects
    /// it lacks from the promisor remote as it goes (merge-tree's trees and blobs), so the command
    /// runs as a transport command does, with the credentials and no hook or helper.
    pub fn raw_fetching(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.command(args, self.is_partial())
            .output()
            .map_err(|e| exit::dependency(format!("couldn't run git: {e}")))
    }

    /// Whether the repository is a partial clone: some remote is a promisor of objects it lacks.
    pub fn is_partial(&self) -> bool {
        if self.partial.get().is_some() {
            return true;
        }
        let partial = self
            .ok(&["config", "--get-regexp", r"^remote\..*\.promisor$"])
            .is_ok_and(|out| out.lines().any(|l| l.ends_with(" true")));
        if partial {
            self.became_partial();
        }
        partial
    }

    /// From now on every git run here sees `key` = `value`, whatever the repository's config
    /// says; the first pin stays.
    pub fn pin_config(&self, key: &str, value: &str) {
        let _ = self.pinned.set((key.to_owned(), value.to_owned()));
    }

    /// Records that the repository is a partial clone now (a filtered fetch made it one).
    pub fn became_partial(&self) {
        let _ = self.partial.set(());
    }

    /// A config value of the repository (`None` when unset).
    pub fn config_get(&self, key: &str) -> Option<String> {
        self.ok(&["config", "--get", "--end-of-options", key])
            .ok()
            .map(|s| s.trim().to_owned())
    }

    /// Sets a config value of the repository, or unsets it (`None`).
    pub fn config_set(&self, key: &str, value: Option<&str>) -> Result<(), GitError> {
        match value {
            Some(v) => self.ok(&["config", "--end-of-options", key, v]),
            None => self
                .ok(&["config", "--unset", "--end-of-options", key])
                .or_else(|e| {
                    // 5: the key was not set, which is what was asked.
                    if e.status.contains("exit status: 5") {
                        Ok(String::new())
                    } else {
                        Err(e)
                    }
                }),
        }
        .map(drop)
    }

    /// Sends `token` as the HTTP credentials for `remote` when its URL is on `server`
    /// (`GITHUB_SERVER_URL`, e.g. `https://github.com`), as actions/checkout does, so a private
    /// repository can be fetched without persisted credentials. Only [`Git::transport`] calls
    /// (fetch, push) get them.
    pub fn use_token(&mut self, remote: &str, server: &str, token: &str) {
        use base64::Engine;
        let Ok(url) = self.ok(&["remote", "get-url", "--end-of-options", remote]) else {
            return;
        };
        let prefix = format!("{}/", server.trim_end_matches('/'));
        if !url.trim().starts_with(&prefix) {
            return;
        }
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
        deploy_core::secret::register(&basic);
        self.credentials.push((
            format!("http.{prefix}.extraheader"),
            format!("AUTHORIZATION: basic {basic}"),
        ));
    }

    /// Runs a fetch or push: with the credentials, and with hooks, credential helpers, askpass
    /// and automatic maintenance off (see [`TRANSPORT_CONFIG`]).
    pub fn transport(&self, args: &[&str]) -> Result<String, GitError> {
        let cmd = self.command(args, true);
        let out = match &self.cancel {
            Some(cancel) => output_or_stop(cmd, Some(cancel), None).map(|(out, _)| out),
            None => {
                let mut cmd = cmd;
                cmd.output()
            }
        };
        self.check(args, out)
    }

    /// Like [`Git::transport`], but stops git (SIGTERM to its process group) as soon as its
    /// stderr says `stop_on`; the flag says whether it did (its result is then usually an
    /// error).
    pub fn transport_unless(
        &self,
        args: &[&str],
        stop_on: &'static str,
    ) -> (Result<String, GitError>, bool) {
        let cmd = self.command(args, true);
        let started = std::time::SystemTime::now();
        match output_or_stop(cmd, self.cancel.as_ref(), Some(stop_on)) {
            Ok((out, seen)) => {
                if seen {
                    self.drop_lock_left_by_the_stop(started);
                }
                (self.check(args, Ok(out)), seen)
            }
            Err(e) => (self.check(args, Err(e)), false),
        }
    }

    /// git creates `shallow.lock` and only then arms the handler that removes it on a signal: a
    /// fetch stopped in between leaves it behind, and the next fetch fails on it ("File
    /// exists"). Once the stopped git and everything it started are gone (its pipes closed), a
    /// `shallow.lock` made since it started is that one's, and goes.
    fn drop_lock_left_by_the_stop(&self, started: std::time::SystemTime) {
        let lock = self.common_dir.join("shallow.lock");
        let ours = std::fs::metadata(&lock)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= started);
        if ours && std::fs::remove_file(&lock).is_ok() {
            tracing::debug!("removed the shallow.lock the stopped fetch left");
        }
    }

    /// Makes fetches and pushes stop when `cancel` sees a signal (`None`: they run to the end).
    pub fn cancel_with(&mut self, cancel: Option<deploy_core::cli::Cancel>) {
        self.cancel = cancel;
    }

    /// A path git printed, relative to the repository directory.
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    /// Runs git; stdout on success, a [`GitError`] otherwise.
    pub fn ok(&self, args: &[&str]) -> Result<String, GitError> {
        let out = self.command(args, false).output();
        self.check(args, out)
    }

    fn check(&self, args: &[&str], out: std::io::Result<Output>) -> Result<String, GitError> {
        let redact = |b: &[u8]| deploy_core::secret::redact(String::from_utf8_lossy(b).trim());
        let out = out.map_err(|e| GitError {
            args: args.join(" "),
            status: "not run".into(),
            stderr: format!("couldn't run git: {e}"),
            stdout: String::new(),
        })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(GitError {
                args: args.join(" "),
                status: out.status.to_string(),
                stderr: redact(&out.stderr),
                stdout: redact(&out.stdout),
            })
        }
    }

    /// `rev-parse --verify --quiet REV^{commit}`: the full SHA, or None.
    pub fn commit(&self, rev: &str) -> Option<String> {
        self.ok(&[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ])
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
    }

    /// The checked-out branch, or None when HEAD is detached.
    pub fn current_branch(&self) -> Option<String> {
        self.ok(&["symbolic-ref", "--short", "-q", "HEAD"])
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    }

    /// Whether the repository is a shallow clone: it has a non-empty `shallow` file, which is
    /// what `rev-parse --is-shallow-repository` reads (read here without starting git: a
    /// deepening asks after every step).
    pub fn is_shallow(&self) -> bool {
        std::fs::metadata(self.common_dir.join("shallow")).is_ok_and(|m| m.len() > 0)
    }

    /// The shallow ends of a shallow clone: the commits in its `shallow` file, whose parents were
    /// not fetched (empty when it is not shallow, or the file holds anything but object ids).
    pub fn shallow_ends(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.common_dir.join("shallow")).unwrap_or_default();
        let ends: Vec<String> = text.lines().map(str::to_owned).collect();
        let oid =
            |l: &String| matches!(l.len(), 40 | 64) && l.bytes().all(|b| b.is_ascii_hexdigit());
        if ends.iter().all(oid) {
            ends
        } else {
            Vec::new()
        }
    }

    /// The merge base of two commits, if they share history (so far as it is fetched).
    pub fn merge_base(&self, a: &str, b: &str) -> Option<String> {
        self.ok(&["merge-base", "--end-of-options", a, b])
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    }

    /// git's version as (major, minor).
    pub fn version(&self) -> anyhow::Result<(u32, u32)> {
        let v = self
            .ok(&["version"])
            .map_err(|e| exit::dependency(format!("{e}")))?;
        parse_version(&v)
            .ok_or_else(|| exit::dependency(format!("couldn't read git's version from {v:?}")))
    }
}

/// Both sides of `git log --left-right --format=%m%h %s BASE...HEAD`: how many commits are
/// base-only (`<`, behind) and head-only (`>`, ahead), and the first `keep` base-only ones as
/// `sha subject`. Lines without a side mark are not counted.
pub fn parse_sides(out: &str, keep: usize) -> (u64, u64, Vec<String>) {
    let (mut behind, mut ahead, mut first) = (0, 0, Vec::new());
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix('<') {
            behind += 1;
            if first.len() < keep {
                first.push(rest.to_owned());
            }
        } else if line.starts_with('>') {
            ahead += 1;
        }
    }
    (behind, ahead, first)
}

/// Parses `git version 2.47.3` (and vendor suffixes) into (2, 47).
pub fn parse_version(s: &str) -> Option<(u32, u32)> {
    let v = s.split_whitespace().nth(2)?;
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// What kind of conflict a path has: the conflict types of git's own messages (`merge-ort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum ConflictKind {
    /// Both sides changed the same lines (`CONFLICT (content)`).
    #[serde(rename = "content")]
    Content,
    /// A binary file changed on both sides (`CONFLICT (binary)`; git also reports it as a content
    /// conflict, which this kind includes).
    #[serde(rename = "binary")]
    Binary,
    /// Added on both sides with different contents or modes (`CONFLICT (add/add)`).
    #[serde(rename = "add/add")]
    AddAdd,
    /// Modified on one side, deleted on the other.
    #[serde(rename = "modify/delete")]
    ModifyDelete,
    /// Renamed to different names on the two sides.
    #[serde(rename = "rename/rename")]
    RenameRename,
    /// Renamed on one side, deleted on the other.
    #[serde(rename = "rename/delete")]
    RenameDelete,
    /// A rename whose target collides with another path.
    #[serde(rename = "rename collision")]
    RenameCollision,
    /// A file on one side where the other has a directory.
    #[serde(rename = "file/directory")]
    FileDirectory,
    /// Different file modes (executable bit) or types (file, symlink, submodule) on the two sides.
    #[serde(rename = "mode")]
    Mode,
    /// A conflict from a directory rename (suggested, collision, unclear split, file in the way).
    #[serde(rename = "directory rename")]
    DirectoryRename,
    /// A submodule that could not be merged.
    #[serde(rename = "submodule")]
    Submodule,
    /// Any other conflict type git reports.
    #[serde(rename = "other")]
    Other,
}

impl ConflictKind {
    /// The kind of one of git's messages (`conflict-type` and message text from `merge-tree -z`),
    /// or None for informational messages (`Auto-merging`, `Path updated due to directory rename`).
    pub fn of_message(kind: &str, text: &str) -> Option<ConflictKind> {
        let t = kind.strip_prefix("CONFLICT")?.trim_start();
        let t = t.strip_prefix('(')?.trim_end_matches(')');
        Some(match t {
            "contents" if text.starts_with("CONFLICT (add/add)") => ConflictKind::AddAdd,
            "contents" => ConflictKind::Content,
            "binary" => ConflictKind::Binary,
            "modify/delete" => ConflictKind::ModifyDelete,
            "file/directory" => ConflictKind::FileDirectory,
            "distinct modes" | "distinct types" => ConflictKind::Mode,
            "rename/rename" => ConflictKind::RenameRename,
            "rename/delete" => ConflictKind::RenameDelete,
            "rename involved in collision" => ConflictKind::RenameCollision,
            t if t.starts_with("directory rename") || t.contains("directory rename") => {
                ConflictKind::DirectoryRename
            }
            t if t.starts_with("submodule") => ConflictKind::Submodule,
            _ => ConflictKind::Other,
        })
    }

    /// As people say it (also its JSON form).
    pub fn label(self) -> &'static str {
        match self {
            ConflictKind::Content => "content",
            ConflictKind::Binary => "binary",
            ConflictKind::AddAdd => "add/add",
            ConflictKind::ModifyDelete => "modify/delete",
            ConflictKind::RenameRename => "rename/rename",
            ConflictKind::RenameDelete => "rename/delete",
            ConflictKind::RenameCollision => "rename collision",
            ConflictKind::FileDirectory => "file/directory",
            ConflictKind::Mode => "mode",
            ConflictKind::DirectoryRename => "directory rename",
            ConflictKind::Submodule => "submodule",
            ConflictKind::Other => "other",
        }
    }
}

/// One entry of merge-tree's conflicted file info: `<mode> <object> <stage>\t<path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageEntry {
    /// The file mode, octal as git prints it (`100644`, `100755`, `120000`, `160000`).
    pub mode: String,
    /// The object id.
    pub oid: String,
    /// 1 base, 2 ours (the base branch), 3 theirs (the head).
    pub stage: u8,
    /// The conflicted path, raw (`-z` output does not quote it).
    pub path: String,
}

/// One of merge-tree's informational messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeMessage {
    /// The paths it is about (for a rename: the old name and the new ones).
    pub paths: Vec<String>,
    /// git's conflict type (`CONFLICT (rename/rename)`, `Auto-merging`...).
    pub kind: String,
    /// The message, without its trailing newline.
    pub text: String,
}

/// The parsed output of `git merge-tree --write-tree -z` (without `--name-only`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeTree {
    /// The merged tree (with conflict markers where it did not merge).
    pub tree: String,
    /// The conflicted file info, in git's order.
    pub stages: Vec<StageEntry>,
    /// The messages, in git's order.
    pub messages: Vec<MergeMessage>,
}

/// A path from git's output. Paths are bytes to git; a path that is not UTF-8 keeps U+FFFD in
/// place of the bad bytes.
fn path_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses `git merge-tree --write-tree -z` output. Never panics: anything after a malformed part
/// is ignored (`None` only when there is no tree id at all).
pub fn parse_merge_tree(out: &[u8]) -> Option<MergeTree> {
    let mut tokens = out.split(|b| *b == 0);
    let tree = String::from_utf8_lossy(tokens.next()?).trim().to_owned();
    if tree.is_empty() {
        return None;
    }
    let mut mt = MergeTree {
        tree,
        ..MergeTree::default()
    };
    // Conflicted file info, up to an empty token.
    for t in tokens.by_ref() {
        if t.is_empty() {
            break;
        }
        let Some(tab) = t.iter().position(|b| *b == b'\t') else {
            continue;
        };
        let (head, path) = (&t[..tab], &t[tab + 1..]);
        let head = String::from_utf8_lossy(head);
        let mut f = head.split(' ');
        let (Some(mode), Some(oid), Some(stage)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let Ok(stage) = stage.parse::<u8>() else {
            continue;
        };
        mt.stages.push(StageEntry {
            mode: mode.to_owned(),
            oid: oid.to_owned(),
            stage,
            path: path_of(path),
        });
    }
    // Messages: <count> NUL <path>{count} NUL <type> NUL <message> NUL.
    while let Some(count) = tokens.next() {
        let Some(n) = std::str::from_utf8(count)
            .ok()
            .and_then(|c| c.trim().parse::<usize>().ok())
        else {
            break;
        };
        let mut paths = Vec::new();
        for _ in 0..n {
            match tokens.next() {
                Some(p) => paths.push(path_of(p)),
                None => return Some(mt),
            }
        }
        let (Some(kind), Some(text)) = (tokens.next(), tokens.next()) else {
            break;
        };
        mt.messages.push(MergeMessage {
            paths,
            kind: String::from_utf8_lossy(kind).into_owned(),
            text: String::from_utf8_lossy(text).trim_end().to_owned(),
        });
    }
    Some(mt)
}

/// One conflicting path: a path git lists as conflicted, with every kind its messages give it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Conflict {
    /// The path, exactly as git names it (raw: may hold any character but NUL).
    pub path: String,
    /// The kinds, at least one.
    pub kinds: Vec<ConflictKind>,
    /// The other paths git's messages name with it: for a rename, the old and the new names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<String>,
    /// git's messages about it.
    pub messages: Vec<String>,
    /// Where to point an annotation: the path itself when it is a file on the head, else the
    /// first related path that is (a rename's new name on the head); None when neither is.
    #[serde(rename = "annotated-at", skip_serializing_if = "Option::is_none")]
    pub head_path: Option<String>,
}

impl Conflict {
    /// The kinds as people say them, comma-separated.
    pub fn kinds_label(&self) -> String {
        self.kinds
            .iter()
            .map(|k| k.label())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn regular(mode: &str) -> bool {
    mode == "100644" || mode == "100755"
}

/// The conflicts of a merge: exactly the paths of the conflicted file info (what `--name-only`
/// lists), each with the kinds of the `CONFLICT` messages that name it. A binary conflict is not
/// also counted as a content conflict; a path whose two sides are regular files with different
/// modes (and the base has neither or is missing) also gets [`ConflictKind::Mode`]; a path no
/// message explains is [`ConflictKind::Other`].
pub fn conflicts(mt: &MergeTree) -> Vec<Conflict> {
    use std::collections::{BTreeSet, HashMap};
    // path -> (modes by stage 1..=3), and path -> the messages naming it.
    let mut modes: HashMap<&str, [Option<&str>; 3]> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for e in &mt.stages {
        let slot = modes.entry(e.path.as_str()).or_insert_with(|| {
            order.push(e.path.as_str());
            [None; 3]
        });
        if let Some(m) = (1..=3)
            .contains(&e.stage)
            .then(|| slot.get_mut(usize::from(e.stage) - 1))
            .flatten()
        {
            *m = Some(e.mode.as_str());
        }
    }
    let mut naming: HashMap<&str, Vec<(ConflictKind, &MergeMessage)>> = HashMap::new();
    for m in &mt.messages {
        let Some(k) = ConflictKind::of_message(&m.kind, &m.text) else {
            continue;
        };
        for p in &m.paths {
            if modes.contains_key(p.as_str()) {
                naming.entry(p.as_str()).or_default().push((k, m));
            }
        }
    }
    let mut out: Vec<Conflict> = Vec::with_capacity(order.len());
    for path in order {
        let mut kinds = BTreeSet::new();
        let mut related: Vec<String> = Vec::new();
        let mut messages: Vec<String> = Vec::new();
        for (k, m) in naming.get(path).map(Vec::as_slice).unwrap_or_default() {
            kinds.insert(*k);
            if !messages.contains(&m.text) {
                messages.push(m.text.clone());
            }
            for p in &m.paths {
                if p != path && !related.contains(p) {
                    related.push(p.clone());
                }
            }
        }
        if kinds.contains(&ConflictKind::Binary) {
            kinds.remove(&ConflictKind::Content);
        }
        if let Some([base, Some(ours), Some(theirs)]) = modes.get(path).copied()
            && regular(ours)
            && regular(theirs)
            && ours != theirs
            && base.is_none_or(|b| b != ours && b != theirs)
        {
            kinds.insert(ConflictKind::Mode);
        }
        if kinds.is_empty() {
            kinds.insert(ConflictKind::Other);
        }
        out.push(Conflict {
            path: path.to_owned(),
            kinds: kinds.into_iter().collect(),
            related,
            messages,
            head_path: None,
        });
    }
    out.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    out
}

/// A path as git prints it with `core.quotePath=false`: as is, unless it holds a control
/// character, a double quote or a backslash; then in double quotes with C escapes (`\n`, `\t`,
/// `\"`, `\\`, octal for the other control characters).
pub fn quote_path(p: &str) -> std::borrow::Cow<'_, str> {
    let needs = |c: char| (c as u32) < 0x20 || c == '\x7f' || c == '"' || c == '\\';
    if !p.chars().any(needs) {
        return std::borrow::Cow::Borrowed(p);
    }
    let mut q = String::with_capacity(p.len() + 8);
    q.push('"');
    for c in p.chars() {
        match c {
            '\x07' => q.push_str("\\a"),
            '\x08' => q.push_str("\\b"),
            '\t' => q.push_str("\\t"),
            '\n' => q.push_str("\\n"),
            '\x0b' => q.push_str("\\v"),
            '\x0c' => q.push_str("\\f"),
            '\r' => q.push_str("\\r"),
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if needs(c) => q.push_str(&format!("\\{:03o}", c as u32)),
            c => q.push(c),
        }
    }
    q.push('"');
    std::borrow::Cow::Owned(q)
}

/// The working tree's state (`status --porcelain=v2 -z`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TreeState {
    /// Paths with staged changes.
    pub staged: Vec<String>,
    /// Paths with unstaged changes.
    pub modified: Vec<String>,
    /// Untracked paths.
    pub untracked: Vec<String>,
    /// Unmerged paths (a merge or rebase in progress).
    pub unmerged: Vec<String>,
}

impl TreeState {
    /// Whether nothing is changed, staged or untracked.
    pub fn clean(&self) -> bool {
        self.staged.is_empty()
            && self.modified.is_empty()
            && self.untracked.is_empty()
            && self.unmerged.is_empty()
    }
}

/// Parses `git status --porcelain=v2 -z`.
pub fn parse_status(out: &[u8]) -> TreeState {
    let text = String::from_utf8_lossy(out);
    let mut st = TreeState::default();
    let mut tokens = text.split('\0');
    // Field counts before the path: ordinary 8, rename/copy 9, unmerged 10 (paths may hold spaces).
    let path_after = |entry: &str, fields: usize| {
        entry
            .splitn(fields + 1, ' ')
            .nth(fields)
            .unwrap_or_default()
            .to_owned()
    };
    while let Some(entry) = tokens.next() {
        let xy: Vec<char> = entry.get(2..4).unwrap_or_default().chars().collect();
        let path = match entry.as_bytes().first() {
            Some(b'1') => path_after(entry, 8),
            Some(b'2') => {
                // A rename/copy entry is followed by the original path.
                tokens.next();
                path_after(entry, 9)
            }
            Some(b'u') => {
                st.unmerged.push(path_after(entry, 10));
                continue;
            }
            Some(b'?') => {
                st.untracked
                    .push(entry.get(2..).unwrap_or_default().to_owned());
                continue;
            }
            _ => continue,
        };
        if xy.first().is_some_and(|c| *c != '.') {
            st.staged.push(path.clone());
        }
        if xy.get(1).is_some_and(|c| *c != '.') {
            st.modified.push(path);
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real `git merge-tree --write-tree -z` output (git 2.47): a rename/rename, a modify/delete,
    /// a binary conflict and a file/directory conflict.
    const REAL: &[u8] = b"89f763cf\0\
100644 f0f2 1\ta\x00100644 f0f2 3\ta-feat\x00100644 f0f2 2\ta-main\0\
100644 587b 1\tb\x00100644 b77b 3\tb\0\
100644 e899 1\tc.bin\x00100644 7240 2\tc.bin\x00100644 867a 3\tc.bin\0\
100644 1a9c 2\tpth~main\0\0\
3\0a\0a-main\0a-feat\0CONFLICT (rename/rename)\0CONFLICT (rename/rename): a renamed to a-main in main and to a-feat in feat.\n\0\
1\0b\0CONFLICT (modify/delete)\0CONFLICT (modify/delete): b deleted in main and modified in feat.  Version feat of b left in tree.\n\0\
1\0c.bin\0CONFLICT (binary)\0warning: Cannot merge binary files: c.bin (main vs. feat)\n\0\
1\0c.bin\0Auto-merging\0Auto-merging c.bin\n\0\
1\0c.bin\0CONFLICT (contents)\0CONFLICT (content): Merge conflict in c.bin\n\0\
2\0pth~main\0pth\0CONFLICT (file/directory)\0CONFLICT (file/directory): directory in the way of pth from main; moving it to pth~main instead.\n\0";

    #[test]
    fn every_conflicted_path_is_listed_with_the_kinds_of_its_messages() {
        let mt = parse_merge_tree(REAL).unwrap();
        assert_eq!(mt.tree, "89f763cf");
        assert_eq!(mt.stages.len(), 9);
        let c = conflicts(&mt);
        let got: Vec<(&str, String, Vec<&str>)> = c
            .iter()
            .map(|c| {
                (
                    c.path.as_str(),
                    c.kinds_label(),
                    c.related.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", "rename/rename".into(), vec!["a-main", "a-feat"]),
                ("a-feat", "rename/rename".into(), vec!["a", "a-main"]),
                ("a-main", "rename/rename".into(), vec!["a", "a-feat"]),
                ("b", "modify/delete".into(), vec![]),
                ("c.bin", "binary".into(), vec![]),
                ("pth~main", "file/directory".into(), vec!["pth"]),
            ]
        );
        assert_eq!(
            c[4].messages,
            [
                "warning: Cannot merge binary files: c.bin (main vs. feat)",
                "CONFLICT (content): Merge conflict in c.bin"
            ]
        );
    }

    #[test]
    fn add_add_with_different_modes_is_also_a_mode_conflict() {
        let out =
            b"t\x00100755 12 2\tmm\x00100644 12 3\tmm\x00100644 65 2\taa\x00100644 5e 3\taa\0\0\
1\0mm\0CONFLICT (contents)\0CONFLICT (add/add): Merge conflict in mm\n\0\
1\0aa\0CONFLICT (contents)\0CONFLICT (add/add): Merge conflict in aa\n\0\
2\0ln\0ln~main\0CONFLICT (distinct modes)\0CONFLICT (distinct types): ln had different types\n\0";
        let c = conflicts(&parse_merge_tree(out).unwrap());
        let got: Vec<(&str, Vec<ConflictKind>)> = c
            .iter()
            .map(|c| (c.path.as_str(), c.kinds.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("aa", vec![ConflictKind::AddAdd]),
                ("mm", vec![ConflictKind::AddAdd, ConflictKind::Mode]),
            ],
            "ln is named by a message but is not in the conflicted list"
        );
    }

    #[test]
    fn a_conflicted_path_no_message_explains_is_other() {
        let c = conflicts(&parse_merge_tree(b"t\x00100644 1 2\tx\x00100644 2 3\tx\0\0").unwrap());
        assert_eq!(c[0].kinds, [ConflictKind::Other]);
    }

    #[test]
    fn clean_merge_has_no_conflicts() {
        assert!(conflicts(&parse_merge_tree(b"2474966c\0").unwrap()).is_empty());
        assert!(conflicts(&parse_merge_tree(b"2474966c\0\0").unwrap()).is_empty());
        assert!(parse_merge_tree(b"").is_none());
    }

    #[test]
    fn paths_are_quoted_as_git_quotes_them() {
        assert_eq!(quote_path("src/lib.rs"), "src/lib.rs");
        assert_eq!(quote_path("ünï cödé -x.md"), "ünï cödé -x.md");
        assert_eq!(quote_path("new\nline"), r#""new\nline""#);
        assert_eq!(quote_path("tab\there"), r#""tab\there""#);
        assert_eq!(quote_path("q\"uote"), r#""q\"uote""#);
        assert_eq!(quote_path("back\\slash"), r#""back\\slash""#);
        assert_eq!(quote_path("c\x01r\r\x7f"), r#""c\001r\r\177""#);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngSeed};

        /// Seeded, so CI runs the same cases every time; PROPTEST_CASES runs more locally, and
        /// PROPTEST_RNG_SEED another sequence.
        fn config() -> Config {
            let seed = std::env::var("PROPTEST_RNG_SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0x5_13c4);
            Config {
                rng_seed: RngSeed::Fixed(seed),
                failure_persistence: None,
                ..Config::default()
            }
        }

        /// Bytes that look like git's output: NULs, tabs, digits, spaces and CONFLICT words.
        fn gitish() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                Just(b"\0".to_vec()),
                Just(b"\t".to_vec()),
                Just(b" ".to_vec()),
                Just(b"100644 ".to_vec()),
                Just(b"CONFLICT (contents)".to_vec()),
                Just(b"CONFLICT (rename/rename)".to_vec()),
                Just(b"CONFLICT (add/add)".to_vec()),
                Just(b"1 ".to_vec()),
                Just(b"u UU N... ".to_vec()),
                Just(b"2 R. ".to_vec()),
                Just(b"? ".to_vec()),
                "[0-9]{1,3}".prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..8),
            ];
            proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn merge_tree_parser_never_panics(out in prop_oneof![gitish(), proptest::collection::vec(any::<u8>(), 0..300)]) {
                if let Some(mt) = parse_merge_tree(&out) {
                    let c = conflicts(&mt);
                    // Every conflict is a conflicted path, listed once, with a kind.
                    for x in &c {
                        prop_assert!(mt.stages.iter().any(|s| s.path == x.path));
                        prop_assert!(!x.kinds.is_empty());
                    }
                    let mut paths: Vec<&str> = c.iter().map(|x| x.path.as_str()).collect();
                    paths.dedup();
                    prop_assert_eq!(paths.len(), c.len());
                }
            }

            #[test]
            fn status_parser_never_panics(out in prop_oneof![gitish(), proptest::collection::vec(any::<u8>(), 0..300)]) {
                let _ = parse_status(&out);
            }

            #[test]
            fn sides_parser_never_panics_and_keeps_at_most_what_it_is_told(s in "([<>x]?[^\n]{0,12}\n){0,30}", keep in 0usize..25) {
                let (behind, _, first) = parse_sides(&s, keep);
                prop_assert!(first.len() <= keep && first.len() as u64 <= behind);
            }

            #[test]
            fn version_parser_never_panics(s in ".{0,40}") {
                let _ = parse_version(&s);
            }

            /// A quoted path is one line, and reads back to the path with C unquoting.
            #[test]
            fn quoted_paths_are_one_line_and_round_trip(p in "[a-z\\\\\"\t\n\r\x01é ]{0,20}") {
                let q = quote_path(&p);
                prop_assert!(!q.contains('\n') && !q.contains('\t'));
                prop_assert_eq!(unquote(&q), p);
            }

            /// A parsed stage entry or message path is exactly what was written, whatever bytes
            /// (but NUL) it holds.
            #[test]
            fn paths_survive_parsing(p in "[^\0]{1,30}") {
                let out = format!("t\x00100644 1 2\t{p}\0\x001\0{p}\0CONFLICT (contents)\0CONFLICT (content): x\n\0");
                let c = conflicts(&parse_merge_tree(out.as_bytes()).unwrap());
                prop_assert_eq!(c.len(), 1);
                prop_assert_eq!(&c[0].path, &p);
                prop_assert_eq!(&c[0].kinds, &vec![ConflictKind::Content]);
            }
        }

        fn unquote(q: &str) -> String {
            let Some(inner) = q.strip_prefix('"').and_then(|q| q.strip_suffix('"')) else {
                return q.to_owned();
            };
            let mut out = String::new();
            let mut it = inner.chars();
            while let Some(c) = it.next() {
                if c != '\\' {
                    out.push(c);
                    continue;
                }
                match it.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('a') => out.push('\x07'),
                    Some('b') => out.push('\x08'),
                    Some('v') => out.push('\x0b'),
                    Some('f') => out.push('\x0c'),
                    Some(d @ '0'..='7') => {
                        let o: String = std::iter::once(d).chain(it.by_ref().take(2)).collect();
                        out.push(char::from(u8::from_str_radix(&o, 8).unwrap()));
                    }
                    Some(c) => out.push(c),
                    None => {}
                }
            }
            out
        }
    }

    #[test]
    fn status_is_parsed() {
        let out = "1 M. N... 100644 100644 100644 a b staged.txt\x001 .M N... 100644 100644 100644 a b mod file.txt\0\
2 R. N... 100644 100644 100644 a b R100 new.txt\0old.txt\0? new dir/x\0u UU N... 100644 100644 100644 100644 a b c conflict.txt\0";
        let st = parse_status(out.as_bytes());
        assert_eq!(st.staged, ["staged.txt", "new.txt"]);
        assert_eq!(st.modified, ["mod file.txt"]);
        assert_eq!(st.untracked, ["new dir/x"]);
        assert_eq!(st.unmerged, ["conflict.txt"]);
        assert!(!st.clean());
        assert!(parse_status(b"").clean());
    }

    #[test]
    fn both_sides_are_counted_and_the_first_base_commits_kept() {
        let out = ">abc1234 head work\n<def5678 base one\n<0123456 base two\n<89abcde base three\n";
        let (behind, ahead, first) = parse_sides(out, 2);
        assert_eq!((behind, ahead), (3, 1));
        assert_eq!(first, ["def5678 base one", "0123456 base two"]);
        assert_eq!(parse_sides("", 20), (0, 0, Vec::new()));
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("git version 2.47.3\n"), Some((2, 47)));
        assert_eq!(
            parse_version("git version 2.39.5 (Apple Git-154)"),
            Some((2, 39))
        );
    }
}
