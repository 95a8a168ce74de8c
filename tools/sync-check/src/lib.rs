//! `sync-check`: is this branch up to date with its base, and would it merge cleanly? Read-only by
//! default: it fetches the base (deepening a shallow clone until the merge base is there, commits
//! only and deep at once where the server allows), counts ahead/behind, lists the base commits the
//! branch lacks, finds every conflict with `git merge-tree --write-tree` (no work tree, index or ref
//! is touched), and reports through the job summary, annotations, outputs and a `sync-check` check
//! run. `--update rebase|merge` is the runbook's `git pull origin main --rebase` made safe.

pub mod event;
pub mod git;
mod update;

use std::path::PathBuf;
use std::time::Instant;

use deploy_core::cli::CommonArgs;
use deploy_core::github::GithubArgs;
use deploy_core::report::{Annotation, Level};
use deploy_core::{Check, Exit, Report, Status, exit};

use git::{Conflict, Git, TreeState};

/// What fails the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Any merge conflict with the base.
    Conflicts,
    /// Any base commit the branch lacks.
    Behind,
    /// Changed, staged or untracked files in the working tree.
    Dirty,
}

/// How `--update` brings the branch up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpdateMode {
    /// Replay the branch's commits on the base (`git pull --rebase`).
    Rebase,
    /// Merge the base into the branch (`git pull --no-rebase`).
    Merge,
}

/// When to publish the result on the commit (the common `--publish` of deploy-core).
pub use deploy_core::github::Publish;

/// Is this branch up to date with its base, and would it merge cleanly?
#[derive(Debug, clap::Parser)]
#[command(name = "sync-check", version, about, long_about = None)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub github: GithubArgs,
    /// The repository's directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub repo: PathBuf,
    /// The remote to fetch the base from.
    #[arg(long, value_name = "NAME", default_value = "origin")]
    pub remote: String,
    /// Base branch (default: the PR's base, else defaults.base_branch in deploy.toml, else main).
    #[arg(long, value_name = "BRANCH")]
    pub base: Option<String>,
    /// Commit to check (default: the PR head from the event, else GITHUB_SHA, else HEAD).
    #[arg(long, value_name = "REV")]
    pub head: Option<String>,
    /// Fail when more than N base commits are missing.
    #[arg(long, value_name = "N")]
    pub max_behind: Option<u64>,
    /// What fails the check.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "conflicts")]
    pub fail_on: Vec<FailOn>,
    /// Commits to deepen a shallow clone by per step (doubling each step; a commits-only first
    /// fetch goes 21 times as deep at once).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub deepen: u32,
    /// Use the refs already fetched; do not fetch.
    #[arg(long)]
    pub no_fetch: bool,
    /// Publish a `sync-check` check run (commit status as fallback) on the head commit.
    #[arg(long, value_enum, default_value = "auto")]
    pub publish: Publish,
    /// Bring the checked-out branch up to date: backup ref first, abort on conflict, nothing lost.
    #[arg(long, value_enum, help_heading = "Safe sync")]
    pub update: Option<UpdateMode>,
    /// With --update: push the result with --force-with-lease against the commit it started from.
    #[arg(long, requires = "update", help_heading = "Safe sync")]
    pub push: bool,
    /// With --update: tell what would happen, change nothing.
    #[arg(long, help_heading = "Safe sync")]
    pub dry_run: bool,
}

/// What the check found.
#[derive(Debug, Clone)]
pub struct Findings {
    /// The commit checked.
    pub head_sha: String,
    /// The base ref (`origin/main`).
    pub base_ref: String,
    /// The base's commit.
    pub base_sha: String,
    /// Their merge base.
    pub merge_base: Option<String>,
    /// Base commits the head lacks.
    pub behind: u64,
    /// Head commits the base lacks.
    pub ahead: u64,
    /// The first 20 missing base commits, `sha subject`.
    pub missing: Vec<String>,
    /// Conflicts of merging the head into the base: exactly the paths git lists as conflicted.
    pub conflicts: Vec<Conflict>,
    /// Whether git merges the two cleanly (merge-tree's exit status: a merge can be unclean
    /// without a conflicted path, e.g. a directory rename git only suggests).
    pub merges_cleanly: bool,
    /// git's CONFLICT messages, when the merge is not clean.
    pub merge_messages: Vec<String>,
    /// The tree of the clean merge merge-tree wrote, when it merges cleanly.
    pub merged_tree: Option<String>,
    /// The working tree.
    pub tree: TreeState,
    /// How many times the clone was deepened.
    pub deepened: u32,
}

/// What a fetch learnt: the head's commit, how many times the clone was deepened, the merge base
/// it looked for (`None`: the two share no history so far as it is fetched), and the fetch of the
/// merge's trees it started.
pub struct Fetched {
    /// The head's commit.
    pub head_sha: String,
    /// Deepening steps.
    pub deepened: u32,
    /// The merge base of the head and the base.
    pub merge_base: Option<String>,
    /// The fetch of the merge's trees, still running (see [`prefetch_merge_trees`]).
    pub trees: Background,
}

/// Git work on a thread of its own, waited for when dropped (so no git outlives the check).
pub struct Background<T: Send + 'static = ()>(Option<std::thread::JoinHandle<T>>);

impl<T: Send + 'static> Default for Background<T> {
    /// Nothing running.
    fn default() -> Self {
        Background(None)
    }
}

impl<T: Send + 'static> Background<T> {
    fn spawn(name: &str, work: impl FnOnce() -> T + Send + 'static) -> Background<T> {
        Background(
            std::thread::Builder::new()
                .name(name.into())
                .spawn(work)
                .ok(),
        )
    }

    /// Waits for it to end: its result, or `None` when nothing ran (the thread could not be
    /// started, or it panicked); the caller then does the work itself.
    pub fn wait(&mut self) -> Option<T> {
        let r = self.0.take()?.join();
        if r.is_err() {
            tracing::debug!("a background git thread panicked");
        }
        r.ok()
    }
}

impl<T: Send + 'static> Drop for Background<T> {
    fn drop(&mut self) {
        self.wait();
    }
}

/// Fetches the base (deepening a shallow clone until the merge base is present) and makes sure the
/// head commit is present, filtered as `filter` says. Touches only `refs/remotes/<remote>/<base>`
/// (and the shallow file; with a filter, also the remote's promisor flag: see [`CommitsOnly`]).
pub fn fetch(
    g: &Git,
    args: &Args,
    target: &event::Target,
    mut head_here: Background<Option<String>>,
    base: &str,
    filter: &CommitsOnly,
) -> anyhow::Result<Fetched> {
    let base_ref = format!("refs/remotes/{}/{base}", remote_namespace(&args.remote));
    let spec = format!("+refs/heads/{base}:{base_ref}");
    let deep = if filter.on {
        fetch_deep(g, args, base, &spec, filter)?
    } else {
        Deep::NotTried
    };
    // Where the server ignores filters, asking again only repeats its warning; and the first
    // filtered fetch set the filter as the remote's default, which `--no-filter` overrides.
    let filtered = filter.on && deep != Deep::Unfiltered;
    let options: &[&str] = match (filtered, filter.on) {
        (true, _) => filter.options(),
        (false, true) => &["--no-filter"],
        (false, false) => &[],
    };
    if deep != Deep::Done {
        fetch_base(g, args, base, &spec, options)?;
    }
    let head_sha = match head_here.wait().flatten() {
        Some(sha) => sha,
        None => fetch_head(g, args, target)?,
    };
    let steps = if deep == Deep::Done {
        Steps::After(args.deepen.max(1).saturating_mul(FILTERED_STEP))
    } else if filtered {
        Steps::Probe
    } else {
        Steps::Doubling
    };
    let (deepened, merge_base) =
        deepen_to_merge_base(g, args, &head_sha, &base_ref, &spec, options, steps)?;
    // The trees come while inspect counts and labels the two sides, which need commits only;
    // merge-tree waits for them.
    let trees = match (filtered, &merge_base) {
        (true, Some(mb)) => {
            let (g, remote) = (g.clone(), args.remote.clone());
            let revs = [mb.clone(), head_sha.clone(), base_ref];
            Background::spawn("git-prefetch", move || {
                prefetch_merge_trees(&g, &remote, &revs);
            })
        }
        _ => Background::default(),
    };
    Ok(Fetched {
        head_sha,
        deepened: deepened + u32::from(deep == Deep::Done),
        merge_base,
        trees,
    })
}

/// What the first, deep commits-only fetch of a shallow clone came to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Deep {
    /// Not tried: no filter.
    NotTried,
    /// Done: the base and the clone's shallow ends, commits only, deep.
    Done,
    /// The server said it does not filter (git was stopped before the objects came), or it takes
    /// no commit by id, which a partial clone's later fetches need.
    Unfiltered,
    /// It failed otherwise (a shallow end the server no longer has), or was not tried (more
    /// shallow ends than [`MAX_SHALLOW_WANTS`]): the step-by-step fetch, commits only, takes over.
    Failed,
}

/// What git prints when the server does not allow the filter; it then sends everything.
const FILTER_IGNORED: &str = "filtering not recognized by server";

/// Most shallow ends a deep fetch asks the server for by id (a clone fetched shallow branch by
/// branch can have many; then the step-by-step fetch deepens them all).
const MAX_SHALLOW_WANTS: usize = 16;

/// A shallow clone's first fetch, commits only: the base and the clone's shallow ends (the
/// checked-out commit in a depth-1 clone), `--deepen` x 21 deep (1,050 commits) in one round trip,
/// as far as the step-by-step fetch's first two steps reach. Commits alone are small; a shallow
/// end, asked for by id and `--depth`, is deepened below itself (protocol v2: "Wants can be
/// anything and are not limited to advertised objects", <https://git-scm.com/docs/protocol-v2>;
/// GitHub serves reachable commits by id, which `actions/checkout` relies on). A server that does
/// not allow filters says so before it sends anything (git warns, [`FILTER_IGNORED`]): git is
/// stopped then, so a server that would send every file does not send 1,050 commits of them.
fn fetch_deep(
    g: &Git,
    args: &Args,
    base: &str,
    spec: &str,
    filter: &CommitsOnly,
) -> anyhow::Result<Deep> {
    let ends = g.shallow_ends();
    if ends.is_empty() || ends.len() > MAX_SHALLOW_WANTS {
        return Ok(Deep::Failed);
    }
    let depth = format!(
        "--depth={}",
        args.deepen.max(1).saturating_mul(FILTERED_STEP + 1)
    );
    let mut argv = FETCH.to_vec();
    argv.extend([
        "--no-write-fetch-head",
        "--no-show-forced-updates",
        CommitsOnly::OPTION,
        &depth,
        "--end-of-options",
        &args.remote,
        spec,
    ]);
    argv.extend(ends.iter().map(String::as_str));
    match g.transport_unless(&argv, FILTER_IGNORED) {
        (_, true) => {
            tracing::info!("{} does not filter: fetching step by step", args.remote);
            Ok(Deep::Unfiltered)
        }
        (Ok(_), false) => {
            g.became_partial();
            filter.restore_early();
            Ok(Deep::Done)
        }
        (Err(e), false) if e.stderr.contains("couldn't find remote ref") => {
            Err(missing_base(base, &args.remote))
        }
        // git's own check, before it asks: the server takes no commit by id (protocol v0
        // without `uploadpack.allowAnySHA1InWant`), so it cannot send a partial clone the
        // objects it lacks either (merge-tree's trees and files): no filter then.
        (Err(e), false) if e.stderr.contains("unadvertised object") => {
            tracing::info!(
                "{} takes no commit by id: fetching step by step",
                args.remote
            );
            Ok(Deep::Unfiltered)
        }
        (Err(e), false) => {
            tracing::info!("the deep fetch failed ({e}): fetching step by step");
            Ok(Deep::Failed)
        }
    }
}

fn missing_base(base: &str, remote: &str) -> anyhow::Error {
    exit::usage(format!(
        "base branch {base:?} does not exist on remote {remote:?}"
    ))
}

/// The filter of a shallow clone's fetches: commits only (`--filter=tree:0`). Deepening a
/// shallow clone until the merge base turns up then moves commits, not every tree and file of
/// every commit it passes; the merge prediction's trees are fetched once the merge base is known
/// ([`prefetch_merge_trees`]) and its blobs by git as merge-tree needs them.
///
/// A server that does not allow filters (`uploadpack.allowFilter`) says so and sends everything,
/// as before; GitHub allows them ("partial clone",
/// <https://github.blog/open-source/git/get-up-to-speed-with-partial-clone-and-shallow-clone/>).
/// The first filtered fetch makes the clone a partial clone of the remote: git records
/// `remote.<remote>.promisor` (kept: objects are missing, and later git commands fetch what they
/// need from it) and `remote.<remote>.partialclonefilter`. git's own fetches of missing objects
/// (merge-tree's blobs) record `blob:none` there too, so the value is put back as it was when the
/// guard is dropped, after the merge check: later fetches are not filtered. Not used with
/// `--update`, whose rebase or merge needs every file, nor with `--no-fetch`.
pub struct CommitsOnly {
    on: bool,
    git: Git,
    key: String,
    before: Option<String>,
    /// The early restore ([`CommitsOnly::restore_early`]), once started: true when it is done.
    restoring: std::sync::Mutex<Background<bool>>,
}

impl CommitsOnly {
    const OPTION: &str = "--filter=tree:0";

    /// Whether the fetches are filtered: in a shallow clone that `args` does not update or forbid
    /// to fetch.
    fn wanted(g: &Git, args: &Args) -> bool {
        !args.no_fetch && args.update.is_none() && g.is_shallow()
    }

    /// The config key the filtered fetches set.
    fn key(args: &Args) -> String {
        format!("remote.{}.partialclonefilter", args.remote)
    }

    /// Filters the fetches where [`CommitsOnly::wanted`]; `before` is the value of
    /// [`CommitsOnly::key`] before the check, put back when the guard is dropped.
    fn begin(g: &Git, args: &Args, before: Option<String>) -> CommitsOnly {
        let on = Self::wanted(g, args);
        CommitsOnly {
            on,
            git: g.clone(),
            key: Self::key(args),
            before: before.filter(|_| on),
            restoring: std::sync::Mutex::default(),
        }
    }

    /// After the first filtered fetch, which set the filter: unsets it again at once, on a thread
    /// of its own, rather than after the merge check. Meanwhile every later fetch, and git's own
    /// fetches of missing objects, see the filter set (pinned, [`Git::pin_config`]): git records
    /// a filter only where none is set ("partial_clone_register" in git's `list-objects-filter-
    /// options.c`), so nothing writes it again. Only where it was unset before: a value of the
    /// user's is put back when the guard is dropped.
    fn restore_early(&self) {
        if !self.on || self.before.is_some() {
            return;
        }
        self.git
            .pin_config(&self.key, &Self::OPTION["--filter=".len()..]);
        let (g, key) = (self.git.clone(), self.key.clone());
        let work = Background::spawn("git-config", move || match g.config_set(&key, None) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!("couldn't unset {key} early: {e}");
                false
            }
        });
        if let Ok(mut r) = self.restoring.lock() {
            *r = work;
        }
    }

    fn options(&self) -> &[&str] {
        if self.on { &[Self::OPTION] } else { &[] }
    }
}

impl Drop for CommitsOnly {
    fn drop(&mut self) {
        let restored = self
            .restoring
            .get_mut()
            .ok()
            .and_then(Background::wait)
            .unwrap_or(false);
        // The filtered fetches always set it (to tree:0, merge-tree's to blob:none): put back.
        if self.on
            && !restored
            && let Err(e) = self.git.config_set(&self.key, self.before.as_deref())
        {
            tracing::warn!("couldn't restore {}: {e}", self.key);
        }
    }
}

/// Where a remote's branches are kept: `refs/remotes/<name>/` for a named remote; a remote given
/// as a URL (or a path) has no name, and its branches go under `refs/remotes/sync-check/`.
pub(crate) fn remote_namespace(remote: &str) -> &str {
    let plain = !remote.is_empty()
        && remote
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !remote.starts_with('.');
    if plain { remote } else { "sync-check" }
}

/// Every fetch here: no tags, no submodules, no progress.
const FETCH: [&str; 4] = ["fetch", "--no-tags", "--quiet", "--no-recurse-submodules"];

/// `git fetch` of one refspec from `remote`, without tags or submodules, with extra `options`.
fn fetch_refspec(
    g: &Git,
    options: &[&str],
    remote: &str,
    refspec: &str,
) -> Result<String, git::GitError> {
    let mut argv = FETCH.to_vec();
    // FETCH_HEAD is a ref of sorts too: left as it was (README: read-only but the fetched refs).
    argv.push("--no-write-fetch-head");
    argv.extend_from_slice(options);
    argv.extend(["--end-of-options", remote, refspec]);
    g.transport(&argv)
}

/// Fetches the base branch (`--deepen` commits deep in a shallow clone), with `options` (the
/// filter or none).
fn fetch_base(
    g: &Git,
    args: &Args,
    base: &str,
    spec: &str,
    options: &[&str],
) -> anyhow::Result<()> {
    let depth = format!("--depth={}", args.deepen.max(1));
    let mut options = options.to_vec();
    if g.is_shallow() {
        options.push(&depth);
    }
    let Err(e) = fetch_refspec(g, &options, &args.remote, spec) else {
        return Ok(());
    };
    if e.stderr.contains("couldn't find remote ref") {
        return Err(missing_base(base, &args.remote));
    }
    Err(exit::dependency(format!(
        "couldn't fetch {base} from {}: {e}",
        args.remote
    )))
}

/// Makes sure the head commit is here: when it is not local (a checkout of another ref), fetches
/// it by SHA, or else the PR's head ref.
fn fetch_head(g: &Git, args: &Args, target: &event::Target) -> anyhow::Result<String> {
    if let Some(sha) = g.commit(&target.head) {
        return Ok(sha);
    }
    let by_sha = fetch_refspec(g, &[], &args.remote, &target.head);
    if by_sha.is_err()
        && let Some(n) = target.pr_number
    {
        let pr = format!(
            "+refs/pull/{n}/head:refs/remotes/{}/pr/{n}",
            remote_namespace(&args.remote)
        );
        fetch_refspec(g, &[], &args.remote, &pr).map_err(|e| {
            exit::dependency(format!("couldn't fetch the PR head {}: {e}", target.head))
        })?;
    }
    // A branch name fetched from a named remote lands in its remote-tracking ref.
    let tracking = format!(
        "refs/remotes/{}/{}",
        remote_namespace(&args.remote),
        target.head
    );
    g.commit(&target.head)
        .or_else(|| g.commit(&tracking))
        .ok_or_else(|| {
            exit::usage(format!(
                "head commit {} is not in the repository",
                target.head
            ))
        })
}

/// How many times `--deepen` a step of a commits-only fetch goes.
const FILTERED_STEP: u32 = 20;

/// How the deepening steps go.
#[derive(Clone, Copy, Debug)]
enum Steps {
    /// `--deepen`, doubling: everything comes.
    Doubling,
    /// Commits only, if the first filtered fetch brought commits only ([`commits_only`]): 20 x
    /// `--deepen`, growing four-fold; else as [`Steps::Doubling`].
    Probe,
    /// After the deep fetch: from four times this many commits, growing four-fold.
    After(u32),
}

/// Deepens a shallow clone, step by step as `steps` says, with `options` (the filter or none),
/// until the merge base of the head and the base is there; returns the number of steps and the
/// merge base.
fn deepen_to_merge_base(
    g: &Git,
    args: &Args,
    head: &str,
    base_ref: &str,
    spec: &str,
    options: &[&str],
    steps: Steps,
) -> anyhow::Result<(u32, Option<String>)> {
    let mut deepened = 0;
    let mut merge_base = g.merge_base(head, base_ref);
    if merge_base.is_some() || !g.is_shallow() {
        return Ok((0, merge_base));
    }
    let step = args.deepen.max(1);
    // Commits alone are small: where the server honoured the filter, step 20 times as far and
    // grow 4 times each step (one or two round trips instead of five or six).
    let (mut step, grow) = match steps {
        Steps::After(reached) => (reached.saturating_mul(4), 4),
        Steps::Probe if commits_only(g, base_ref) => (step.saturating_mul(FILTERED_STEP), 4),
        Steps::Probe | Steps::Doubling => (step, 2),
    };
    while merge_base.is_none() && g.is_shallow() {
        deepened += 1;
        tracing::info!("no merge base yet: deepening the clone by {step} commits");
        let d = format!("--deepen={step}");
        let mut options = options.to_vec();
        options.push(&d);
        fetch_refspec(g, &options, &args.remote, spec)
            .map_err(|e| exit::dependency(format!("couldn't deepen the clone: {e}")))?;
        step = step.saturating_mul(grow);
        merge_base = g.merge_base(head, base_ref);
    }
    Ok((deepened, merge_base))
}

/// Whether the filtered fetch brought commits only: the tree of `rev` is not here (asked with
/// `--no-lazy-fetch`, git 2.44+, so asking does not fetch it). On an older git, or a server that
/// ignored the filter and sent the trees, false.
fn commits_only(g: &Git, rev: &str) -> bool {
    // `REV^{tree}` reads the tree object itself, so it fails where only the commit came.
    let tree = format!("{rev}^{{tree}}");
    g.ok(&[
        "--no-lazy-fetch",
        "rev-parse",
        "--verify",
        "-q",
        "--end-of-options",
        &tree,
    ])
    .is_err()
        && g.ok(&["--no-lazy-fetch", "cat-file", "-t", rev]).is_ok()
}

/// After a commits-only fetch: the trees merge-tree reads (the merge base's, the head's and the
/// base's, each with its subtrees, no file contents) in one fetch, rather than one lazy fetch per
/// tree. Best effort: what this does not bring, git fetches when merge-tree asks for it.
fn prefetch_merge_trees(g: &Git, remote: &str, revs: &[String; 3]) {
    let trees = trees_of(g, &revs.each_ref().map(String::as_str));
    // The one commit offered as had: the checked-out one, whose trees the checkout holds, so the
    // server sends only the trees it lacks (and may send them as deltas against its trees).
    let mut argv = FETCH.to_vec();
    argv.extend([
        "--no-write-fetch-head",
        "--negotiation-tip=HEAD",
        "--filter=blob:none",
        "--end-of-options",
        remote,
    ]);
    argv.extend(trees.iter().map(String::as_str));
    if let Err(e) = g.transport(&argv) {
        tracing::debug!("prefetch of the merge's trees failed (git fetches them lazily): {e}");
    }
}

/// The tree ids of some commits, in one git: `rev-list --no-walk --format=%T` reads the commit
/// objects alone (`rev-parse REV^{tree}` would look for the tree object, which a commits-only
/// fetch did not bring). Empty when git cannot say (the prefetch is best effort).
fn trees_of(g: &Git, revs: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "rev-list",
        "--no-walk=unsorted",
        "--format=%T",
        "--end-of-options",
    ];
    argv.extend_from_slice(revs);
    let Ok(out) = g.ok(&argv) else {
        return Vec::new();
    };
    let mut trees: Vec<String> = out
        .lines()
        .filter(|l| !l.starts_with("commit ") && is_oid(l))
        .map(str::to_owned)
        .collect();
    trees.dedup();
    trees
}

/// A full object id (SHA-1 or SHA-256), hex.
fn is_oid(s: &str) -> bool {
    s.len() >= 40 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// What is known before [`inspect`] runs: the fetch's findings (`None` without a fetch) and the
/// working tree's state, read on a thread of its own while the fetch ran (`None`: read here).
#[derive(Default)]
pub struct Known {
    /// What the fetch learnt.
    pub fetched: Option<Fetched>,
    /// `git status`, started before the fetch.
    pub tree: Background<anyhow::Result<TreeState>>,
}

impl Known {
    /// Starts reading the working tree's state on its own thread (nothing the fetch writes is in
    /// it: the fetch touches a remote-tracking ref, objects and the shallow file).
    pub fn read_tree_meanwhile(g: &Git) -> Background<anyhow::Result<TreeState>> {
        let g = g.clone();
        Background::spawn("git-status", move || tree_state(&g))
    }
}

/// Computes the findings, read-only (git >= 2.38 for `merge-tree --write-tree`).
pub fn inspect(g: &Git, head: &str, base_ref: &str, known: Known) -> anyhow::Result<Findings> {
    let head_sha = match known.fetched.as_ref() {
        Some(f) => f.head_sha.clone(),
        None => g
            .commit(head)
            .ok_or_else(|| exit::usage(format!("{head:?} is not a commit")))?,
    };
    let base_sha = g
        .commit(base_ref)
        .ok_or_else(|| exit::usage(format!("base {base_ref:?} is not a commit")))?;
    let deepened = known.fetched.as_ref().map_or(0, |f| f.deepened);
    let (merge_base, mut trees) = match known.fetched {
        Some(f) => (f.merge_base, f.trees),
        None => (g.merge_base(&head_sha, &base_sha), Background::default()),
    };
    let (behind, ahead, missing) = sides(g, &base_sha, &head_sha)?;
    let mut merge = if merge_base.is_some() {
        let labels = merge_labels(g, head, &head_sha, base_ref, &base_sha);
        trees.wait();
        predict_merge(g, &labels)?
    } else {
        MergePrediction::clean(None)
    };
    locate_on_head(g, &head_sha, &mut merge.conflicts);
    let mut status = known.tree;
    let tree = match status.wait() {
        Some(state) => state?,
        None => tree_state(g)?,
    };
    Ok(Findings {
        head_sha,
        base_ref: base_ref.to_owned(),
        base_sha,
        merge_base,
        behind,
        ahead,
        missing,
        conflicts: merge.conflicts,
        merges_cleanly: merge.clean,
        merge_messages: merge.messages,
        merged_tree: merge.tree,
        tree,
        deepened,
    })
}

/// Base commits the head lacks (behind), head commits the base lacks (ahead), and the first 20
/// of the former, `sha subject`: one walk of both sides.
fn sides(g: &Git, base_sha: &str, head_sha: &str) -> anyhow::Result<(u64, u64, Vec<String>)> {
    let range = format!("{base_sha}...{head_sha}");
    let out = g
        .ok(&[
            "log",
            "--no-show-signature",
            "--left-right",
            "--format=%m%h %s",
            "--end-of-options",
            &range,
        ])
        .map_err(|e| exit::dependency(e.to_string()))?;
    Ok(git::parse_sides(&out, 20))
}

/// What merge-tree says of merging the head into the base.
struct MergePrediction {
    conflicts: Vec<Conflict>,
    clean: bool,
    /// git's CONFLICT messages, when the merge is not clean.
    messages: Vec<String>,
    /// The merged tree, when the merge is clean.
    tree: Option<String>,
}

impl MergePrediction {
    fn clean(tree: Option<String>) -> MergePrediction {
        MergePrediction {
            conflicts: Vec::new(),
            clean: true,
            messages: Vec::new(),
            tree,
        }
    }
}

/// Runs `merge-tree --write-tree` on the two sides (they share history): no work tree, index or
/// ref is touched.
fn predict_merge(g: &Git, labels: &(String, String)) -> anyhow::Result<MergePrediction> {
    let (base_label, head_label) = labels;
    let out = g.raw_fetching(&[
        "merge-tree",
        "--write-tree",
        "-z",
        "--end-of-options",
        base_label,
        head_label,
    ])?;
    match out.status.code() {
        Some(0) => Ok(MergePrediction::clean(
            git::parse_merge_tree(&out.stdout).map(|mt| mt.tree),
        )),
        Some(1) => {
            let mt = git::parse_merge_tree(&out.stdout).ok_or_else(|| {
                exit::dependency("couldn't read git merge-tree's output (no tree id)")
            })?;
            let messages = mt
                .messages
                .iter()
                .filter(|m| git::ConflictKind::of_message(&m.kind, &m.text).is_some())
                .map(|m| m.text.clone())
                .collect();
            Ok(MergePrediction {
                conflicts: git::conflicts(&mt),
                clean: false,
                messages,
                tree: None,
            })
        }
        _ => Err(exit::dependency(format!(
            "git merge-tree failed: {}",
            deploy_core::secret::redact(String::from_utf8_lossy(&out.stderr).trim())
        ))),
    }
}

/// The working tree's state (empty when git cannot tell).
fn tree_state(g: &Git) -> anyhow::Result<TreeState> {
    // --no-optional-locks: `git status` would otherwise refresh and rewrite the index, and this
    // check is read-only.
    let status = g.raw(&[
        "--no-optional-locks",
        "status",
        "--porcelain=v2",
        "-z",
        "--untracked-files=normal",
    ])?;
    Ok(if status.status.success() {
        git::parse_status(&status.stdout)
    } else {
        TreeState::default()
    })
}

/// The names to give merge-tree for the two sides, as a person would type them: git names the
/// sides' versions of a file it must move aside after them (`src~feat`, `src~origin_main`). The
/// base is `origin/main` and the head its branch (or the revision as given) when those names resolve
/// to the commits checked; else the full ref or the SHA.
fn merge_labels(
    g: &Git,
    head: &str,
    head_sha: &str,
    base_ref: &str,
    base_sha: &str,
) -> (String, String) {
    let resolves = |name: &str, sha: &str| g.commit(name).as_deref() == Some(sha);
    let short = base_ref.trim_start_matches("refs/remotes/");
    let base = if resolves(short, base_sha) {
        short.to_owned()
    } else if resolves(base_ref, base_sha) {
        base_ref.to_owned()
    } else {
        base_sha.to_owned()
    };
    let branch = (head == "HEAD")
        .then(|| g.current_branch())
        .flatten()
        .filter(|b| resolves(b, head_sha));
    let head = match branch {
        Some(b) => b,
        None if resolves(head, head_sha) => head.to_owned(),
        None => head_sha.to_owned(),
    };
    (base, head)
}

/// Sets each conflict's [`Conflict::head_path`]: the path itself when it is a file on the head,
/// else the first related path (a rename's other name) that is.
fn locate_on_head(g: &Git, head_sha: &str, conflicts: &mut [Conflict]) {
    if conflicts.is_empty() {
        return;
    }
    let mut wanted: Vec<&str> = Vec::new();
    for c in conflicts.iter() {
        for p in std::iter::once(&c.path).chain(&c.related) {
            if !wanted.contains(&p.as_str()) {
                wanted.push(p);
            }
        }
    }
    let mut argv = vec![
        "--literal-pathspecs",
        "ls-tree",
        "-r",
        "-z",
        "--name-only",
        "--full-tree",
        "--end-of-options",
        head_sha,
        "--",
    ];
    argv.extend(wanted);
    let Ok(out) = g.raw(&argv) else { return };
    if !out.status.success() {
        return;
    }
    let on_head: std::collections::HashSet<&[u8]> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .collect();
    for c in conflicts.iter_mut() {
        c.head_path = std::iter::once(&c.path)
            .chain(&c.related)
            .find(|p| on_head.contains(p.as_bytes()))
            .cloned();
    }
}

/// Refuses a revision that git could read as an option (`--upload-pack=...`), or that is empty.
fn validate_rev(what: &str, rev: &str) -> anyhow::Result<()> {
    if rev.is_empty() || rev.starts_with('-') {
        return Err(exit::usage(format!(
            "{what} {rev:?} is not a revision: it is empty or starts with '-'"
        )));
    }
    Ok(())
}

/// A SHA's first seven characters, as git abbreviates it.
pub(crate) fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

/// The `conflicts`, `conflict-files` (one per line, quoted as git quotes paths) and
/// `conflicts-json` (the raw paths with their kinds) outputs.
pub fn conflict_outputs(report: &mut Report, conflicts: &[Conflict]) {
    report.output("conflicts", conflicts.len());
    report.output(
        "conflict-files",
        conflicts
            .iter()
            .map(|c| git::quote_path(&c.path))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    report.output(
        "conflicts-json",
        serde_json::to_string(conflicts).unwrap_or_else(|_| "[]".to_owned()),
    );
}

/// A conflict's line in the check's details: the kinds, and the other names of a rename.
fn conflict_detail(c: &Conflict) -> String {
    if c.related.is_empty() {
        c.kinds_label()
    } else {
        format!(
            "{} (with {})",
            c.kinds_label(),
            c.related
                .iter()
                .map(|p| git::quote_path(p))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// The conflicts as check details: (quoted path, kinds and related paths).
pub(crate) fn conflict_details(mut c: Check, conflicts: &[Conflict]) -> Check {
    for x in conflicts {
        c = c.detail(git::quote_path(&x.path), conflict_detail(x));
    }
    c
}

/// Builds the report's checks, annotations and outputs from the findings and the policy.
pub fn judge(f: &Findings, args: &Args, report: &mut Report) {
    let base_name = f.base_ref.trim_start_matches("refs/remotes/");
    report.push(merge_check(f, args, base_name));
    report.push(behind_check(f, args, base_name));
    report.push(tree_check(&f.tree, args));
    annotate_conflicts(f, args, base_name, report);
    findings_outputs(f, report);
}

impl Args {
    /// Whether `--fail-on` lists `x`.
    fn fails_on(&self, x: FailOn) -> bool {
        self.fail_on.contains(&x)
    }
}

/// Failed when `fails`, else passed.
fn failed_if(fails: bool) -> Status {
    if fails {
        Status::Failed
    } else {
        Status::Passed
    }
}

/// "Shares history with the base", or "Merges cleanly" with each conflict (or git's messages).
fn merge_check(f: &Findings, args: &Args, base_name: &str) -> Check {
    if f.merge_base.is_none() {
        return Check::new("Shares history with the base", Status::Failed).reason(format!(
            "{} and {base_name} have no common history (unrelated histories)",
            short(&f.head_sha)
        ));
    }
    if f.conflicts.is_empty() && f.merges_cleanly {
        return Check::new("Merges cleanly", Status::Passed)
            .reason(format!("no conflicts with {base_name}"));
    }
    let status = failed_if(args.fails_on(FailOn::Conflicts));
    if f.conflicts.is_empty() {
        let mut c = Check::new("Merges cleanly", status).reason(format!(
            "git does not merge it cleanly with {base_name}, though no path is conflicted"
        ));
        for m in &f.merge_messages {
            c = c.detail("git", m.clone());
        }
        return c;
    }
    let c = Check::new("Merges cleanly", status).reason(format!(
        "{} conflicting files with {base_name}",
        f.conflicts.len()
    ));
    conflict_details(c, &f.conflicts)
}

/// "Up to date with <base>", listing the base commits the head lacks.
fn behind_check(f: &Findings, args: &Args, base_name: &str) -> Check {
    let over_max = args.max_behind.is_some_and(|m| f.behind > m);
    let behind_fails = over_max || (args.fails_on(FailOn::Behind) && f.behind > 0);
    let mut c = Check::new(
        format!("Up to date with {base_name}"),
        failed_if(behind_fails),
    )
    .reason(match (f.behind, args.max_behind) {
        (0, _) => format!("0 behind, {} ahead", f.ahead),
        (b, Some(m)) if b > m => format!("{b} commits behind, more than --max-behind {m}"),
        (b, _) => format!("{b} commits behind, {} ahead", f.ahead),
    });
    for line in &f.missing {
        c = c.detail("missing", line.clone());
    }
    if f.behind > f.missing.len() as u64 {
        c = c.detail(
            "missing",
            format!("… and {} more", f.behind - f.missing.len() as u64),
        );
    }
    c
}

/// "Working tree clean", listing up to 20 paths of each kind.
fn tree_check(t: &TreeState, args: &Args) -> Check {
    let mut c = Check::new(
        "Working tree clean",
        failed_if(!t.clean() && args.fails_on(FailOn::Dirty)),
    )
    .reason(if t.clean() {
        "nothing changed, staged or untracked".to_owned()
    } else {
        format!(
            "{} modified, {} staged, {} untracked, {} unmerged",
            t.modified.len(),
            t.staged.len(),
            t.untracked.len(),
            t.unmerged.len()
        )
    });
    for (k, list) in [
        ("modified", &t.modified),
        ("staged", &t.staged),
        ("untracked", &t.untracked),
        ("unmerged", &t.unmerged),
    ] {
        for p in list.iter().take(20) {
            c = c.detail(k, p.clone());
        }
    }
    c
}

/// One annotation per conflict, on the file as it is on this branch (an error when conflicts
/// fail the check, else a warning).
fn annotate_conflicts(f: &Findings, args: &Args, base_name: &str, report: &mut Report) {
    let level = if args.fails_on(FailOn::Conflicts) {
        Level::Error
    } else {
        Level::Warning
    };
    for x in &f.conflicts {
        let shown = git::quote_path(&x.path);
        let (file, note) = match &x.head_path {
            Some(p) if *p == x.path => (p.clone(), String::new()),
            Some(p) => (
                p.clone(),
                format!(
                    "{shown} (conflicted in git) is not on this branch; shown at {}. ",
                    git::quote_path(p)
                ),
            ),
            None => (
                x.path.clone(),
                format!("{shown} (conflicted in git) is not a file on this branch. "),
            ),
        };
        report.annotations.push(Annotation {
            level,
            file,
            title: format!("merge conflict ({}) with {base_name}", x.kinds_label()),
            message: format!("{note}{}", x.messages.join("\n")),
        });
    }
}

/// The step outputs of a check: counts, conflicts and the commits compared.
fn findings_outputs(f: &Findings, report: &mut Report) {
    report.output("ahead", f.ahead);
    report.output("behind", f.behind);
    conflict_outputs(report, &f.conflicts);
    report.output("up-to-date", f.behind == 0);
    report.output("head-sha", &f.head_sha);
    report.output("base-sha", &f.base_sha);
    if let Some(mb) = &f.merge_base {
        report.output("merge-base", mb);
    }
}

/// Runs the tool. Every path answers the check run `sync-check` when publishing: passed,
/// failed, a usage or dependency error, and a cancelled job (`cancelled`, with the signal), so a
/// required check never waits at "Expected".
pub async fn run(args: Args) -> anyhow::Result<Exit> {
    match deploy_core::cli::catching(check(&args)).await {
        Ok(exit) => Ok(exit),
        // `--update` is a local sync, not the pull request's check: it publishes nothing.
        Err(e) if args.update.is_some() => Err(e),
        Err(e) => {
            let on = deploy_core::github::On {
                name: "sync-check",
                // GitHub takes a check run on a commit SHA only: `--head feature/x` (a ref not
                // resolved before the error) leaves it to the event's head commit.
                head_sha: args
                    .head
                    .clone()
                    .filter(|h| h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit())),
                annotation_path: None,
            };
            deploy_core::github::publish_error(&e, "sync-check", &args.github, args.publish, on)
                .await;
            Err(e)
        }
    }
}

async fn check(args: &Args) -> anyhow::Result<Exit> {
    let started = Instant::now();
    // From here on a cancelled job (SIGINT/SIGTERM) gets a partial report, never a half-done step.
    let cancel = deploy_core::cli::Cancel::watch();
    let Opened {
        mut g,
        target,
        base,
        mut version,
        mut branch,
        head_here,
        filter_before,
    } = open(args)?;
    g.cancel_with(Some(cancel.clone()));
    // Dropped when the check ends, after merge-tree's own fetches.
    let filter = CommitsOnly::begin(&g, args, filter_before);
    let tree = if args.update.is_none() {
        Known::read_tree_meanwhile(&g)
    } else {
        Background::default()
    };
    let fetched = if args.no_fetch {
        Ok(None)
    } else {
        fetch(&g, args, &target, head_here, &base, &filter).map(Some)
    };
    // A git too old says so, rather than how its fetch failed; nothing but the remote-tracking
    // ref has been touched yet.
    check_version(version.wait())?;
    let mut report = new_report(args, branch.wait().flatten(), &target, &base);
    if let Some(signal) = cancel.signal() {
        let stop = Stop {
            signal,
            step: "fetch",
        };
        return interrupted(args, report, &target.head, stop, started).await;
    }
    let fetched = fetched?;
    let deepened = fetched.as_ref().map_or(0, |f| f.deepened);
    let base_ref = format!("refs/remotes/{}/{base}", remote_namespace(&args.remote));

    if let Some(mode) = args.update {
        // The update runs to its end (or its restore): a signal is only reported afterwards.
        g.cancel_with(None);
        update::run(&g, args, mode, &base_ref, &mut report)?;
        if let Some(signal) = cancel.signal() {
            report.interrupted(
                signal,
                format!("interrupted by {signal}: the update finished or was rolled back first"),
            );
        }
        report.finish(started.elapsed());
        return deploy_core::cli::emit(&report, &args.common.output);
    }

    // The commit the fetch found (a `--head` branch the clone lacked is only a remote-tracking
    // ref now), else the head as given.
    let head_rev = fetched
        .as_ref()
        .map_or_else(|| target.head.clone(), |f| f.head_sha.clone());
    let f = inspect(&g, &head_rev, &base_ref, Known { fetched, tree })?;
    if let Some(signal) = cancel.signal() {
        let stop = Stop {
            signal,
            step: "merge check",
        };
        return interrupted(args, report, &target.head, stop, started).await;
    }
    judge(&f, args, &mut report);
    if deepened > 0 {
        report.output("deepened", deepened);
    }
    report.summary = summary(&f, &args.remote, &base);
    publish(args, &f.head_sha, &mut report).await;
    report.finish(started.elapsed());
    deploy_core::cli::emit(&report, &args.common.output)
}

/// What [`open`] found out; the answers that nothing before the first fetch needs come on
/// threads of their own.
struct Opened {
    g: Git,
    target: event::Target,
    base: String,
    /// git's version (checked with [`check_version`] once the fetch is under way or done).
    version: Background<anyhow::Result<(u32, u32)>>,
    /// The checked-out branch (`None`: detached).
    branch: Background<Option<String>>,
    /// The head commit, where it was already here and no fetch can move it (`HEAD` or an id).
    head_here: Background<Option<String>>,
    /// `remote.<remote>.partialclonefilter` before the check ([`CommitsOnly`]).
    filter_before: Option<String>,
}

/// git 2.38 or newer (`merge-tree --write-tree`); `None`: the version could not be read.
fn check_version(version: Option<anyhow::Result<(u32, u32)>>) -> anyhow::Result<()> {
    let (major, minor) =
        version.ok_or_else(|| exit::dependency("couldn't read git's version".to_owned()))??;
    if (major, minor) < (2, 38) {
        return Err(exit::dependency(format!(
            "git {major}.{minor} is too old: sync-check needs git 2.38 or newer for merge-tree --write-tree"
        )));
    }
    Ok(())
}

/// Whether `name` is a branch name git certainly takes (`git check-ref-format` rules: no `..`,
/// `@{`, `//`, control or special characters, no component starting with `.` or ending in
/// `.lock`, no `/` or `.` at the end): letters, digits and `-_./` only, so git need not be asked.
fn plainly_valid_branch(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        && !name.starts_with('-')
        && !name.ends_with(['/', '.'])
        && !name.contains("..")
        && !name.contains("//")
        && name
            .split('/')
            .all(|c| !c.is_empty() && !c.starts_with('.') && !c.ends_with(".lock"))
}

/// Checks the arguments and opens the repository: the git version, the commit to check (from the
/// event or `--head`) and the base branch (flag, event, config, `main`). Nothing is fetched yet.
/// The small gits that ask the repository run at once, each on a thread of its own.
fn open(args: &Args) -> anyhow::Result<Opened> {
    if args.remote.starts_with('-') || args.remote.is_empty() {
        return Err(exit::usage(format!(
            "--remote {:?}: a remote name or URL cannot be empty or start with '-'",
            args.remote
        )));
    }
    if let Some(h) = &args.head {
        validate_rev("--head", h)?;
    }
    // A remote given as a URL with credentials: they are scrubbed wherever the remote is shown
    // (errors, logs, the report and summary); git gets it as given.
    deploy_core::secret::register_url_credentials(&args.remote);
    let mut g = Git::unchecked(&args.repo);
    if let Some(token) = &args.github.github_token {
        let server = std::env::var("GITHUB_SERVER_URL")
            .ok()
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .unwrap_or_else(|| "https://github.com".to_owned());
        g.use_token(&args.remote, &server, token.expose());
    }
    let mut target = event::resolve(
        std::env::var("GITHUB_EVENT_NAME").ok().as_deref(),
        std::env::var_os("GITHUB_EVENT_PATH")
            .map(PathBuf::from)
            .as_deref(),
        std::env::var("GITHUB_SHA").ok().as_deref(),
        std::env::var("GITHUB_REF").ok().as_deref(),
    )?;
    if let Some(h) = &args.head {
        target.head = h.clone();
        target.note = None;
    }
    let config_base = args
        .common
        .load_config(&["defaults"])?
        .and_then(|c| c.defaults.base_branch);
    let base = args
        .base
        .clone()
        .or_else(|| target.base.clone())
        .or(config_base)
        .unwrap_or_else(|| "main".to_owned());
    validate_rev("the head commit", &target.head)?;
    let base_ref = format!("refs/heads/{base}");
    let filter_key = CommitsOnly::key(args);
    let (common_dir, valid_base, filter_before) = std::thread::scope(|s| {
        let before = s.spawn(|| g.config_get(&filter_key));
        let valid_base = s.spawn(|| {
            plainly_valid_branch(&base) || g.ok(&["check-ref-format", &base_ref]).is_ok()
        });
        let common_dir = g.find_common_dir();
        (
            common_dir,
            valid_base.join().unwrap_or(false),
            before.join().ok().flatten(),
        )
    });
    g.set_common_dir(common_dir?);
    if !valid_base {
        return Err(exit::usage(format!(
            "base branch {base:?} is not a valid branch name"
        )));
    }
    let on_thread = |name: &str| (g.clone(), name.to_owned());
    let (gv, name) = on_thread("git-version");
    let version = Background::spawn(&name, move || gv.version());
    let (gb, name) = on_thread("git-branch");
    let branch = Background::spawn(&name, move || gb.current_branch());
    // A fetch moves remote-tracking refs, never HEAD nor what an id names.
    let (gh, name) = on_thread("git-head");
    let head = target.head.clone();
    let head_here = if head == "HEAD" || is_oid(&head) {
        Background::spawn(&name, move || gh.commit(&head))
    } else {
        Background::default()
    };
    Ok(Opened {
        g,
        target,
        base,
        version,
        branch,
        head_here,
        filter_before,
    })
}

/// The report, named after the branch checked (`branch`: the checked-out one) and the base it is
/// checked against.
fn new_report(args: &Args, branch: Option<String>, target: &event::Target, base: &str) -> Report {
    let head_label = target
        .head_ref
        .clone()
        .or(branch)
        .unwrap_or_else(|| "(detached HEAD)".to_owned());
    let mut report = Report::new(
        "sync-check",
        env!("CARGO_PKG_VERSION"),
        format!("{head_label} against {}/{base}", args.remote),
    );
    if let Some(note) = &target.note {
        report.output("note", note);
    }
    report
}

/// The partial report of a run a signal cut short (exit 1): what was under way, and that no
/// branch was changed. Published as `cancelled` (the runner gives a cancelled step a few seconds
/// between SIGINT and SIGTERM, and more before it kills it), so the required check is answered.
/// The signal that cut a run short, and the step it stopped.
struct Stop<'a> {
    signal: &'a str,
    step: &'a str,
}

async fn interrupted(
    args: &Args,
    mut report: Report,
    head: &str,
    stop: Stop<'_>,
    started: Instant,
) -> anyhow::Result<Exit> {
    let Stop { signal, step } = stop;
    report.push(
        Check::new(step, Status::Skipped).reason(format!("not finished: interrupted by {signal}")),
    );
    report.interrupted(
        signal,
        format!("interrupted by {signal} during the {step}: partial report; no branch was changed"),
    );
    report.summary = format!("cancelled during the {step} ({signal}): no branch was changed");
    if args.update.is_none() {
        publish(args, head, &mut report).await;
    }
    report.finish(started.elapsed());
    deploy_core::cli::emit(&report, &args.common.output)
}

/// One line on where the head stands against the base.
fn summary(f: &Findings, remote: &str, base: &str) -> String {
    match (f.merge_base.is_some(), f.conflicts.len(), f.behind) {
        (false, ..) => format!("no common history with {remote}/{base}"),
        (true, 0, b) if !f.merges_cleanly => format!(
            "does not merge cleanly with {remote}/{base} ({b} behind, {} ahead)",
            f.ahead
        ),
        (true, 0, 0) => format!(
            "up to date with {remote}/{base}, {} ahead, merges cleanly",
            f.ahead
        ),
        (true, 0, b) => format!(
            "{b} behind and {} ahead of {remote}/{base}, merges cleanly",
            f.ahead
        ),
        (true, n, b) => format!(
            "{n} conflicting files with {remote}/{base} ({b} behind, {} ahead)",
            f.ahead
        ),
    }
}

async fn publish(args: &Args, head_sha: &str, report: &mut Report) {
    // The check run keeps its plain name `sync-check`: branch protection rules require it by name.
    let on = deploy_core::github::On {
        name: "sync-check",
        head_sha: Some(head_sha.to_owned()),
        annotation_path: None,
    };
    deploy_core::github::publish_report(report, &args.github, args.publish, on).await;
}

#[cfg(test)]
mod tests {
    use super::plainly_valid_branch;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    /// Whether git itself takes `refs/heads/<name>`.
    fn git_takes(name: &str) -> bool {
        std::process::Command::new("git")
            .args(["check-ref-format", &format!("refs/heads/{name}")])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    #[test]
    fn plain_branch_names_are_taken_without_asking_git() {
        for name in ["main", "release/1.2", "feat_x-y", "v1.0.1"] {
            assert!(plainly_valid_branch(name), "{name}");
        }
        for name in [
            "", "a..b", "a//b", ".a", "a/.b", "a.lock", "a/", "a.", "-a", "a b", "a@{0}",
        ] {
            assert!(!plainly_valid_branch(name), "{name}");
        }
    }

    proptest! {
        // Seeded, so CI runs the same cases every time.
        #![proptest_config(Config {
            rng_seed: RngSeed::Fixed(0x5_13c5),
            failure_persistence: None,
            cases: 200,
            ..Config::default()
        })]

        /// The shortcut never takes a name git refuses (it may leave git to decide on more).
        #[test]
        fn what_the_shortcut_takes_git_takes(name in "[a-zA-Z0-9._/@{}~^: -]{0,24}|(\\.|/|lock|a|-){1,8}") {
            if plainly_valid_branch(&name) {
                prop_assert!(git_takes(&name), "{name:?}");
            }
        }
    }
}
