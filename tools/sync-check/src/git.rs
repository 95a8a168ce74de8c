//! The git plumbing sync-check needs, through the real `git` CLI (merge-tree's semantics live
//! only there): commands with captured output and errors that say which command failed, and
//! parsers for `merge-tree -z`, `status --porcelain=v2 -z` and `rev-list --left-right --count`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use deploy_core::exit;

/// A repository driven through the `git` binary.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
    /// Extra config for every command, passed through the environment (`GIT_CONFIG_*`), never
    /// on the command line where other processes could read it.
    config: Vec<(String, String)>,
}

/// A failed git command.
#[derive(Debug, thiserror::Error)]
#[error("git {args} failed ({status}): {stderr}")]
pub struct GitError {
    /// The arguments, space-joined.
    pub args: String,
    /// Exit status.
    pub status: String,
    /// What git said.
    pub stderr: String,
}

impl Git {
    /// A repository at `dir` (checked with `rev-parse --git-dir`).
    pub fn open(dir: &Path) -> anyhow::Result<Git> {
        let g = Git {
            dir: dir.to_owned(),
            config: Vec::new(),
        };
        g.ok(&["rev-parse", "--git-dir"])
            .map_err(|_| exit::usage(format!("{} is not a git repository", dir.display())))?;
        Ok(g)
    }

    /// Runs git; returns the raw output whatever the exit status.
    pub fn raw(&self, args: &[&str]) -> anyhow::Result<Output> {
        let mut cmd = Command::new("git");
        cmd.args(args)
            .current_dir(&self.dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C");
        if !self.config.is_empty() {
            cmd.env("GIT_CONFIG_COUNT", self.config.len().to_string());
            for (i, (k, v)) in self.config.iter().enumerate() {
                cmd.env(format!("GIT_CONFIG_KEY_{i}"), k)
                    .env(format!("GIT_CONFIG_VALUE_{i}"), v);
            }
        }
        // Its own process group: a Ctrl-C meant for us does not stop git halfway.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.output()
            .map_err(|e| exit::dependency(format!("couldn't run git: {e}")))
    }

    /// Sends `token` as the HTTP credentials for `remote` when it is an https URL on `host`
    /// (what actions/checkout does), so a private repository can be fetched without
    /// persisted credentials.
    pub fn use_token(&mut self, remote: &str, host: &str, token: &str) {
        use base64::Engine;
        let Ok(url) = self.ok(&["remote", "get-url", remote]) else {
            return;
        };
        let prefix = format!("https://{host}/");
        if !url.trim().starts_with(&prefix) {
            return;
        }
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
        deploy_core::secret::register(&basic);
        self.config.push((
            format!("http.{prefix}.extraheader"),
            format!("AUTHORIZATION: basic {basic}"),
        ));
    }

    /// A path git printed, relative to the repository directory.
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    /// Runs git; stdout on success, a [`GitError`] otherwise.
    pub fn ok(&self, args: &[&str]) -> Result<String, GitError> {
        let out = self.raw(args).map_err(|e| GitError {
            args: args.join(" "),
            status: "not run".into(),
            stderr: format!("{e:#}"),
        })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(GitError {
                args: args.join(" "),
                status: out.status.to_string(),
                stderr: deploy_core::secret::redact(String::from_utf8_lossy(&out.stderr).trim()),
            })
        }
    }

    /// `rev-parse --verify --quiet REV^{commit}`: the full SHA, or None.
    pub fn commit(&self, rev: &str) -> Option<String> {
        self.ok(&[
            "rev-parse",
            "--verify",
            "--quiet",
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

    /// Whether the repository is a shallow clone.
    pub fn is_shallow(&self) -> bool {
        self.ok(&["rev-parse", "--is-shallow-repository"])
            .is_ok_and(|s| s.trim() == "true")
    }

    /// The merge base of two commits, if they share history (so far as it is fetched).
    pub fn merge_base(&self, a: &str, b: &str) -> Option<String> {
        self.ok(&["merge-base", a, b])
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

/// Parses `git version 2.47.3` (and vendor suffixes) into (2, 47).
pub fn parse_version(s: &str) -> Option<(u32, u32)> {
    let v = s.split_whitespace().nth(2)?;
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// `rev-list --left-right --count BASE...HEAD` -> (behind, ahead).
pub fn parse_counts(s: &str) -> Option<(u64, u64)> {
    let mut it = s.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// What kind of conflict a path has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictKind {
    /// Both sides changed the same lines.
    Content,
    /// A binary file changed on both sides.
    Binary,
    /// A rename on one side collides with a rename or delete on the other.
    Rename,
    /// Modified on one side, deleted on the other.
    ModifyDelete,
    /// A file on one side where the other has a directory.
    DirectoryFile,
    /// Anything else git reports (modes, submodules).
    Other,
}

impl ConflictKind {
    fn from_type(t: &str) -> Option<ConflictKind> {
        let t = t.strip_prefix("CONFLICT (")?.trim_end_matches(')');
        Some(match t {
            "contents" => ConflictKind::Content,
            "binary" => ConflictKind::Binary,
            "modify/delete" => ConflictKind::ModifyDelete,
            "file/directory" | "directory rename split" => ConflictKind::DirectoryFile,
            t if t.starts_with("rename") => ConflictKind::Rename,
            _ => ConflictKind::Other,
        })
    }

    /// As people say it.
    pub fn label(self) -> &'static str {
        match self {
            ConflictKind::Content => "content",
            ConflictKind::Binary => "binary",
            ConflictKind::Rename => "rename",
            ConflictKind::ModifyDelete => "modify/delete",
            ConflictKind::DirectoryFile => "directory/file",
            ConflictKind::Other => "other",
        }
    }
}

/// One conflicting path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Conflict {
    /// The path (the first one git names for the conflict).
    pub path: String,
    /// The kind.
    pub kind: ConflictKind,
    /// git's message.
    pub message: String,
}

/// Parses `git merge-tree --write-tree -z` output into conflicts, one per path (a binary conflict
/// also reported as a content conflict counts once, as binary).
pub fn parse_merge_tree(out: &[u8]) -> Vec<Conflict> {
    let text = String::from_utf8_lossy(out);
    let mut tokens = text.split('\0');
    let _tree = tokens.next();
    // Conflicted file info, up to an empty token.
    for t in tokens.by_ref() {
        if t.is_empty() {
            break;
        }
    }
    let mut conflicts: Vec<Conflict> = Vec::new();
    while let Some(count) = tokens.next() {
        let Ok(n) = count.trim().parse::<usize>() else {
            break;
        };
        let paths: Vec<&str> = tokens.by_ref().take(n).collect();
        let (Some(kind), Some(message)) = (tokens.next(), tokens.next()) else {
            break;
        };
        let Some(kind) = ConflictKind::from_type(kind) else {
            continue;
        };
        let Some(path) = paths.first() else { continue };
        let message = message.trim().to_owned();
        match conflicts.iter_mut().find(|c| c.path == *path) {
            Some(existing) => {
                if kind == ConflictKind::Binary
                    || existing.kind == ConflictKind::Content && kind != ConflictKind::Content
                {
                    existing.kind = kind;
                    existing.message = message;
                }
            }
            None => conflicts.push(Conflict {
                path: (*path).to_owned(),
                kind,
                message,
            }),
        }
    }
    conflicts.sort_by(|a, b| a.path.cmp(&b.path));
    conflicts
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

    #[test]
    fn merge_tree_output_is_parsed_by_kind() {
        let out = "2474966c\x00100644 88 1\tb.bin\x00100644 e7 2\tb.bin\0\0\
1\0b.bin\0CONFLICT (binary)\0warning: Cannot merge binary files: b.bin (main vs. feat)\n\0\
1\0b.bin\0Auto-merging\0Auto-merging b.bin\n\0\
1\0b.bin\0CONFLICT (contents)\0CONFLICT (content): Merge conflict in b.bin\n\0\
2\0dir~main\0dir\0CONFLICT (file/directory)\0CONFLICT (file/directory): directory in the way\n\0\
1\0f.txt\0CONFLICT (contents)\0CONFLICT (content): Merge conflict in f.txt\n\0\
1\0md.txt\0CONFLICT (modify/delete)\0CONFLICT (modify/delete): md.txt deleted in main\n\0\
3\0ren.txt\0ren-main.txt\0ren-feat.txt\0CONFLICT (rename/rename)\0CONFLICT (rename/rename): ren.txt renamed\n\0";
        let c = parse_merge_tree(out.as_bytes());
        let kinds: Vec<(&str, ConflictKind)> =
            c.iter().map(|c| (c.path.as_str(), c.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("b.bin", ConflictKind::Binary),
                ("dir~main", ConflictKind::DirectoryFile),
                ("f.txt", ConflictKind::Content),
                ("md.txt", ConflictKind::ModifyDelete),
                ("ren.txt", ConflictKind::Rename),
            ]
        );
        assert_eq!(c[2].message, "CONFLICT (content): Merge conflict in f.txt");
    }

    #[test]
    fn clean_merge_has_no_conflicts() {
        assert!(parse_merge_tree(b"2474966c\0").is_empty());
        assert!(parse_merge_tree(b"2474966c\0\0").is_empty());
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
    fn versions_and_counts() {
        assert_eq!(parse_version("git version 2.47.3\n"), Some((2, 47)));
        assert_eq!(
            parse_version("git version 2.39.5 (Apple Git-154)"),
            Some((2, 39))
        );
        assert_eq!(parse_counts("3\t5\n"), Some((3, 5)));
    }
}
