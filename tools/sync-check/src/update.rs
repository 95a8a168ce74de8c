//! The safe sync (`--update rebase|merge`, `--push`): the runbook's `git pull origin main
//! --rebase`, made safe. It refuses a dirty tree or a detached HEAD, predicts conflicts with
//! merge-tree before touching anything, writes a backup ref before anything moves, aborts and
//! restores HEAD, index, work tree and branch exactly when git stops, and pushes only with
//! `--force-with-lease` against the remote branch as this clone last saw it. A failed sync
//! leaves the branch as it was.

use deploy_core::report::{AuditAction, AuditOutcome};
use deploy_core::{Check, Exit, Report, Status, exit};

use crate::git::Git;
use crate::{Args, UpdateMode};

fn timestamp() -> String {
    // 2026-11-28T13:15:00Z -> 20261128T131500Z: valid in a ref name, sorts by time.
    deploy_core::report::now_rfc3339().replace(['-', ':'], "")
}

/// `refs/sync-backup/<branch>/<UTC timestamp>`, with `-2`, `-3`... when a sync in the same second
/// already wrote that one: a backup is never overwritten.
fn free_backup_ref(g: &Git, branch: &str) -> String {
    let first = format!("refs/sync-backup/{branch}/{}", timestamp());
    let mut name = first.clone();
    let mut n = 1;
    while g.commit(&name).is_some() {
        n += 1;
        name = format!("{first}-{n}");
    }
    name
}

/// Commits of `from` not in `to`, as full SHAs.
fn only_in(g: &Git, from: &str, to: &str) -> anyhow::Result<Vec<String>> {
    Ok(
        g.ok(&["rev-list", "--end-of-options", &format!("{to}..{from}")])
            .map_err(|e| exit::dependency(e.to_string()))?
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

/// Git's state of an unfinished rebase or merge (a path under the git directory), with the
/// command that drops it.
const UNFINISHED: [(&str, [&str; 2]); 3] = [
    ("rebase-merge", ["rebase", "--quit"]),
    ("rebase-apply", ["rebase", "--quit"]),
    ("MERGE_HEAD", ["merge", "--abort"]),
];

/// Whether `name` (one of [`UNFINISHED`]) exists in the git directory.
fn unfinished(g: &Git, name: &str) -> bool {
    g.ok(&["rev-parse", "--git-path", name])
        .is_ok_and(|p| g.path(p.trim()).exists())
}

/// Puts the branch, HEAD, index and work tree back at `start` (the tree was clean when we began,
/// so nothing uncommitted can be lost; the backup ref keeps `start` reachable regardless).
fn restore(g: &Git, branch: &str, start: &str) -> anyhow::Result<()> {
    let head_ok = g.current_branch().as_deref() == Some(branch);
    let tip_ok = g.commit(&format!("refs/heads/{branch}")).as_deref() == Some(start);
    let clean = g
        .raw(&["status", "--porcelain"])
        .map(|o| o.stdout.is_empty())
        .unwrap_or(false);
    if head_ok && tip_ok && clean {
        return Ok(());
    }
    // A rebase or merge git could not abort is dropped (its commits stay reachable: the backup
    // ref holds `start`, and the branch is put back on it below).
    for (name, quit) in UNFINISHED {
        if unfinished(g, name) {
            let _ = g.ok(&quit);
        }
    }
    let steps: [&[&str]; 3] = [
        &["checkout", "-q", "-f", branch],
        &["update-ref", &format!("refs/heads/{branch}"), start],
        &["reset", "-q", "--hard", start],
    ];
    for s in steps {
        g.ok(s)
            .map_err(|e| exit::dependency(format!("couldn't restore {branch} to {start}: {e}")))?;
    }
    Ok(())
}

/// Why a push failed.
#[derive(Debug, PartialEq, Eq)]
enum PushFailure {
    /// The lease: the remote branch is not where this clone last saw it (git's porcelain line).
    Lease(String),
    /// Anything else (auth, network, a hook or rule on the remote): git's reason, redacted.
    Other(String),
}

/// Tells a lease rejection (`[rejected] (stale info)` in `push --porcelain`) from every other
/// failure.
fn push_failure(e: &crate::git::GitError) -> PushFailure {
    let lines = || e.stdout.lines().chain(e.stderr.lines());
    if let Some(l) = lines().find(|l| l.starts_with('!') && l.contains("(stale info)")) {
        return PushFailure::Lease(
            l.rsplit('\t')
                .next()
                .unwrap_or("[rejected] (stale info)")
                .to_owned(),
        );
    }
    let reason = lines()
        .filter(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with("To ") && l != "Done"
        })
        .map(|l| l.trim().trim_start_matches("!\t").replace('\t', " "))
        .collect::<Vec<_>>()
        .join("; ");
    PushFailure::Other(if reason.is_empty() {
        format!("git push exited with {}", e.status)
    } else {
        reason
    })
}

/// Runs the safe sync, recording every mutating git call in the report's audit trail: plan
/// (refuse a dirty tree, predict with merge-tree), back up, rebase or merge (restore when git
/// stops), verify no commit's change was lost, push with the lease (restore when refused).
pub fn run(
    g: &Git,
    args: &Args,
    mode: UpdateMode,
    base_ref: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    report.dry_run = args.dry_run;
    let Some(sync) = Sync::plan(g, args, mode, base_ref, report)? else {
        return Ok(());
    };
    if args.dry_run {
        sync.report_planned(report);
        return Ok(());
    }
    sync.backup(g, report)?;
    let Some(new_head) = sync.rebase_or_merge(g, report)? else {
        return Ok(());
    };
    if !sync.verify(g, &new_head, report)? {
        return Ok(());
    }
    if args.push && !sync.push(g, &new_head, report)? {
        return Ok(());
    }
    let ahead_now = only_in(g, &new_head, base_ref)?.len();
    // The outputs say where the branch stands now, not where it stood before the update.
    report.output("ahead", ahead_now);
    report.output("behind", 0);
    report.summary = format!(
        "{}d {} onto {}: {ahead_now} commits ahead, 0 behind",
        sync.verb, sync.branch, sync.base_name
    );
    Ok(())
}

/// A sync that nothing stands in the way of: what moves, and how to undo it.
struct Sync<'a> {
    args: &'a Args,
    mode: UpdateMode,
    /// `rebase` or `merge`.
    verb: &'static str,
    /// The audit action of that verb.
    action: AuditAction,
    base_ref: &'a str,
    /// The base as a person writes it (`origin/main`).
    base_name: String,
    /// The checked-out branch.
    branch: String,
    /// The branch's commit before the sync: what every failure restores.
    start: String,
    /// `refs/sync-backup/<branch>/<time>`, written before anything moves.
    backup: String,
    /// The remote branch's commit as this clone last saw it (empty: it must not exist yet).
    lease_value: String,
    /// `--force-with-lease=refs/heads/<branch>:<lease_value>`.
    lease: String,
    /// The tree merge-tree predicted for merging the two sides.
    merged_tree: Option<String>,
    /// What will happen, for the report (`rebase feat (2 commits) onto origin/main (3 new commits)`).
    plan: String,
}

impl<'a> Sync<'a> {
    /// Inspects the branch against the base and plans the sync; `None` when it must not or need
    /// not run (the report then says why).
    fn plan(
        g: &Git,
        args: &'a Args,
        mode: UpdateMode,
        base_ref: &'a str,
        report: &mut Report,
    ) -> anyhow::Result<Option<Sync<'a>>> {
        let (verb, action) = match mode {
            UpdateMode::Rebase => ("rebase", AuditAction::GitRebase),
            UpdateMode::Merge => ("merge", AuditAction::GitMerge),
        };
        let base_name = base_ref.trim_start_matches("refs/remotes/").to_owned();
        // A rebase in progress detaches HEAD: say that (exit 1, like a dirty tree), not "detached".
        let in_progress = UNFINISHED.iter().any(|(name, _)| unfinished(g, name));
        if in_progress && g.current_branch().is_none() {
            report.push(
                Check::new("Working tree clean", Status::Failed).reason(format!(
                    "refusing to {verb}: a rebase or merge is in progress; finish or abort it first"
                )),
            );
            report.summary = format!("refused to {verb}: a rebase or merge is in progress");
            return Ok(None);
        }
        let branch = g
            .current_branch()
            .ok_or_else(|| exit::usage("HEAD is detached: --update needs a checked-out branch"))?;
        let f = crate::inspect(g, "HEAD", base_ref, crate::Known::default())?;
        report.output("behind", f.behind);
        report.output("ahead", f.ahead);
        if refuse_dirty(&f, in_progress, verb, &branch, report) {
            return Ok(None);
        }
        if refuse_overwritten(g, &f, base_ref, verb, &branch, report)? {
            return Ok(None);
        }
        report.output("old-head", &f.head_sha);
        if stop_before_update(&f, verb, &branch, &base_name, report) {
            return Ok(None);
        }
        let tracking = format!(
            "refs/remotes/{}/{branch}",
            crate::remote_namespace(&args.remote)
        );
        let lease_value = g.commit(&tracking).unwrap_or_default();
        Ok(Some(Sync {
            args,
            mode,
            verb,
            action,
            base_ref,
            backup: free_backup_ref(g, &branch),
            lease: format!("--force-with-lease=refs/heads/{branch}:{lease_value}"),
            lease_value,
            merged_tree: f.merged_tree,
            plan: format!(
                "{verb} {branch} ({} commits) onto {base_name} ({} new commits)",
                f.ahead, f.behind
            ),
            start: f.head_sha,
            base_name,
            branch,
        }))
    }

    /// `remote/branch`, where the push goes.
    fn push_target(&self) -> String {
        format!("{}/{}", self.args.remote, self.branch)
    }

    /// `--dry-run`: the audit trail of what would be done, nothing done.
    fn report_planned(&self, report: &mut Report) {
        report.audit(
            AuditAction::GitUpdateRef,
            &self.backup,
            AuditOutcome::Planned,
            Some(format!("backup of {}", self.start)),
        );
        report.audit(
            self.action,
            &self.branch,
            AuditOutcome::Planned,
            Some(self.plan.clone()),
        );
        if self.args.push {
            report.audit(
                AuditAction::GitPush,
                &self.push_target(),
                AuditOutcome::Planned,
                Some(self.lease.clone()),
            );
        }
        report.push(
            Check::new("Update", Status::Passed)
                .reason(format!("would {}; no conflicts predicted", self.plan)),
        );
        report.summary = format!("dry run: would {}", self.plan);
    }

    /// The backup ref, before anything moves.
    fn backup(&self, g: &Git, report: &mut Report) -> anyhow::Result<()> {
        // The empty old value: created only if it does not exist yet (never an overwrite).
        g.ok(&["update-ref", &self.backup, &self.start, ""])
            .map_err(|e| {
                exit::dependency(format!("couldn't write backup ref {}: {e}", self.backup))
            })?;
        report.audit(
            AuditAction::GitUpdateRef,
            &self.backup,
            AuditOutcome::Done,
            Some(format!("backup of {}", self.start)),
        );
        report.output("backup-ref", &self.backup);
        Ok(())
    }

    /// Rebases or merges; the new head, or `None` when git stopped and the branch was restored.
    fn rebase_or_merge(&self, g: &Git, report: &mut Report) -> anyhow::Result<Option<String>> {
        let identity = g
            .ok(&["config", "user.email"])
            .is_ok_and(|s| !s.trim().is_empty());
        if let Err(e) = g.ok(&update_argv(identity, self.mode, self.base_ref)) {
            self.abort_and_restore(g, &e, report)?;
            return Ok(None);
        }
        let new_head = g
            .commit("HEAD")
            .ok_or_else(|| exit::dependency("HEAD is not a commit after the update"))?;
        report.audit(
            self.action,
            &self.branch,
            AuditOutcome::Done,
            Some(format!("{} -> {new_head}", self.start)),
        );
        report.output("new-head", &new_head);
        Ok(Some(new_head))
    }

    /// Git stopped the rebase or merge: abort it, put the branch back, say which files conflicted.
    fn abort_and_restore(
        &self,
        g: &Git,
        e: &crate::git::GitError,
        report: &mut Report,
    ) -> anyhow::Result<()> {
        let (verb, branch, start) = (self.verb, &self.branch, &self.start);
        let conflicted: Vec<String> = g
            .ok(&["diff", "--name-only", "--diff-filter=U"])
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        let _ = g.ok(&[verb, "--abort"]);
        restore(g, branch, start)?;
        report.audit(
            self.action,
            branch,
            AuditOutcome::Failed,
            Some(format!("{e}; aborted, {branch} restored to {start}")),
        );
        let mut c = Check::new("Update", Status::Failed).reason(format!(
            "{verb} stopped{}; aborted and restored {branch} to {}",
            if conflicted.is_empty() {
                format!(": {}", e.stderr)
            } else {
                format!(" on conflicts in {}", conflicted.join(", "))
            },
            crate::short(start)
        ));
        for p in conflicted {
            c = c.detail(p, "conflict");
        }
        report.push(c);
        report.output("new-head", start);
        report.summary = format!(
            "{verb} of {branch} failed; nothing was lost ({})",
            self.backup
        );
        Ok(())
    }

    /// Checks that every original commit's change is still in the branch; when one is missing,
    /// undoes the update and returns false.
    fn verify(&self, g: &Git, new_head: &str, report: &mut Report) -> anyhow::Result<bool> {
        let (verb, branch, start) = (self.verb, &self.branch, &self.start);
        let lost = lost_changes(g, self.merged_tree.as_deref(), new_head, start);
        if lost.is_empty() {
            report.push(Check::new("Update", Status::Passed).reason(format!(
                "{}: {} -> {}",
                self.plan,
                crate::short(start),
                crate::short(new_head)
            )));
            return Ok(true);
        }
        restore(g, branch, start)?;
        if let Some(last) = report.audit.last_mut() {
            last.outcome = AuditOutcome::Failed;
            last.detail = Some(format!(
                "{start} -> {new_head}, undone: changes were missing ({})",
                lost.first().map(String::as_str).unwrap_or_default()
            ));
        }
        report.output("new-head", start);
        report.summary = format!(
            "{verb} of {branch} undone: it would have lost changes ({})",
            self.backup
        );
        report.push(Check::new("Update", Status::Failed).reason(format!(
            "changes would be missing after the {verb} ({}); restored {branch} to {start}{}",
            lost.first().map(String::as_str).unwrap_or_default(),
            if self.mode == UpdateMode::Rebase {
                "; --update merge keeps every change"
            } else {
                ""
            }
        )));
        Ok(false)
    }

    /// Pushes with the lease; when the push fails, restores the branch and returns false.
    fn push(&self, g: &Git, new_head: &str, report: &mut Report) -> anyhow::Result<bool> {
        let refspec = format!("HEAD:refs/heads/{}", self.branch);
        let pushed = g.transport(&[
            "push",
            "--porcelain",
            "--quiet",
            "--no-verify",
            "--no-recurse-submodules",
            &self.lease,
            "--end-of-options",
            &self.args.remote,
            &refspec,
        ]);
        match pushed {
            Ok(_) => {
                self.report_pushed(new_head, report);
                Ok(true)
            }
            Err(e) => {
                restore(g, &self.branch, &self.start)?;
                self.report_push_failed(&e, report);
                Ok(false)
            }
        }
    }

    fn report_pushed(&self, new_head: &str, report: &mut Report) {
        report.audit(
            AuditAction::GitPush,
            &self.push_target(),
            AuditOutcome::Done,
            Some(format!("{} {new_head}", self.lease)),
        );
        report.output("pushed", true);
        report.push(Check::new("Push", Status::Passed).reason(format!(
            "pushed {} to {} (lease: {})",
            crate::short(new_head),
            self.push_target(),
            if self.lease_value.is_empty() {
                "branch must not exist"
            } else {
                crate::short(&self.lease_value)
            }
        )));
    }

    /// The push failed and the branch is restored: a lease rejection fails the check (exit 1),
    /// anything else is an error of the remote (exit 2).
    fn report_push_failed(&self, e: &crate::git::GitError, report: &mut Report) {
        let (verb, branch, remote) = (self.verb, &self.branch, &self.args.remote);
        report.audit(
            AuditAction::GitPush,
            &self.push_target(),
            AuditOutcome::Failed,
            Some(e.to_string()),
        );
        report.output("pushed", false);
        report.output("new-head", &self.start);
        let restored = format!(
            "restored {branch} to {}, backup {}",
            crate::short(&self.start),
            self.backup
        );
        match push_failure(e) {
            PushFailure::Lease(line) => {
                report.push(Check::new("Push", Status::Failed).reason(format!(
                    "push rejected ({line}): {remote}/{branch} moved since this clone last saw it; {restored}",
                )));
                report.fail_with(Exit::Failed, "push rejected by the lease");
                report.summary =
                    format!("{verb} done but push rejected; {branch} restored, nothing lost");
            }
            PushFailure::Other(reason) => {
                report.push(Check::new("Push", Status::Error).reason(format!(
                    "couldn't push to {remote}/{branch}: {reason}; {restored}",
                )));
                report.fail_with(
                    Exit::Dependency,
                    format!("couldn't push to {remote}: {reason}"),
                );
                report.summary =
                    format!("{verb} done but the push failed; {branch} restored, nothing lost");
            }
        }
    }
}

/// Refuses to sync a tree with changes or an unfinished rebase or merge; true when it refused.
fn refuse_dirty(
    f: &crate::Findings,
    in_progress: bool,
    verb: &str,
    branch: &str,
    report: &mut Report,
) -> bool {
    if !in_progress && f.tree.clean() {
        return false;
    }
    let why = if in_progress {
        "a rebase or merge is in progress".to_owned()
    } else {
        format!(
            "{} modified, {} staged, {} untracked files",
            f.tree.modified.len(),
            f.tree.staged.len(),
            f.tree.untracked.len()
        )
    };
    report.push(
        Check::new("Working tree clean", Status::Failed)
            .reason(format!("refusing to {verb}: {why}; commit or stash first")),
    );
    report.summary = format!("refused to {verb} {branch}: the working tree is not clean");
    true
}

/// Files the base added since the merge base that sit in the work tree untracked: ignored ones,
/// since a clean tree has no other untracked files (`.env`, a local build output). git's rebase or
/// merge replaces an ignored file with the base's without a word, so the sync refuses, as for a
/// dirty tree, naming them; true when it did.
fn refuse_overwritten(
    g: &Git,
    f: &crate::Findings,
    base_ref: &str,
    verb: &str,
    branch: &str,
    report: &mut Report,
) -> anyhow::Result<bool> {
    let Some(merge_base) = &f.merge_base else {
        return Ok(false);
    };
    let git_err = |e: crate::git::GitError| exit::dependency(e.to_string());
    let added = g
        .ok(&[
            "diff",
            "--name-only",
            "-z",
            "--no-renames",
            "--diff-filter=A",
            "--end-of-options",
            merge_base,
            base_ref,
        ])
        .map_err(git_err)?;
    // The paths are the top level's; `--repo` may be a directory below it.
    let top = g
        .ok(&["rev-parse", "--show-toplevel"])
        .map_err(git_err)?
        .trim_end_matches('\n')
        .to_owned();
    // The path itself, and any directory above it that is a file here (`build` where the base
    // adds `build/x.txt`): git replaces either.
    let mut here: Vec<&str> = Vec::new();
    for p in added.split('\0').filter(|p| !p.is_empty()) {
        let in_the_way = |q: &str| {
            std::path::Path::new(&top)
                .join(q)
                .symlink_metadata()
                .is_ok_and(|m| q == p || !m.is_dir())
        };
        let ancestors = p.match_indices('/').map(|(i, _)| &p[..i]);
        for q in ancestors.chain(std::iter::once(p)) {
            if in_the_way(q) && !here.contains(&q) {
                here.push(q);
            }
        }
    }
    if here.is_empty() {
        return Ok(false);
    }
    // What of it is tracked: a path itself, or (a directory the base turns into a file) the
    // files under it. Those the rebase or merge handles as tracked changes.
    let mut argv = vec!["-C", &top, "--literal-pathspecs", "ls-files", "-z", "--"];
    argv.extend(here.iter().copied());
    let tracked = g.ok(&argv).map_err(git_err)?;
    let tracked: Vec<&str> = tracked.split('\0').filter(|t| !t.is_empty()).collect();
    let over: Vec<&str> = here
        .into_iter()
        .filter(|p| {
            !tracked
                .iter()
                .any(|t| t == p || t.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
        })
        .collect();
    if over.is_empty() {
        return Ok(false);
    }
    let mut c = Check::new("No ignored file in the way", Status::Failed).reason(format!(
        "refusing to {verb}: the base adds {} that this work tree has as untracked (ignored) files, which git would replace: move them away first",
        over.iter().take(5).copied().collect::<Vec<_>>().join(", ")
            + if over.len() > 5 { ", ..." } else { "" }
    ));
    for p in &over {
        c = c.detail(*p, "ignored here, added by the base");
    }
    report.push(c);
    report.summary = format!("refused to {verb} {branch}: ignored files in the way");
    Ok(true)
}

/// Stops a sync that cannot or need not run (unrelated histories, conflicts predicted by
/// merge-tree, already up to date) before anything moves; true when it stopped.
fn stop_before_update(
    f: &crate::Findings,
    verb: &str,
    branch: &str,
    base_name: &str,
    report: &mut Report,
) -> bool {
    if f.merge_base.is_none() {
        report.push(
            Check::new("Shares history with the base", Status::Failed).reason(format!(
                "{branch} and {base_name} have no common history: nothing was changed"
            )),
        );
        report.summary = format!("refused to {verb}: unrelated histories");
    } else if !f.conflicts.is_empty() || !f.merges_cleanly {
        let c = Check::new("Merges cleanly", Status::Failed).reason(format!(
            "{} conflicting files with {base_name}: nothing was changed",
            f.conflicts.len()
        ));
        report.push(crate::conflict_details(c, &f.conflicts));
        crate::conflict_outputs(report, &f.conflicts);
        report.summary = format!("did not {verb} {branch}: it would conflict with {base_name}");
    } else if f.behind == 0 {
        report.push(
            Check::new(format!("Up to date with {base_name}"), Status::Passed)
                .reason("nothing to do"),
        );
        report.output("new-head", &f.head_sha);
        report.summary = format!("{branch} is already up to date with {base_name}");
    } else {
        return false;
    }
    true
}

/// The rebase or merge command, with an identity when the repository has none (CI checkouts).
fn update_argv(identity: bool, mode: UpdateMode, base_ref: &str) -> Vec<&str> {
    let mut argv = Vec::new();
    if !identity {
        argv.extend([
            "-c",
            "user.name=deploy-action",
            "-c",
            "user.email=deploy-action@users.noreply.github.com",
        ]);
    }
    match mode {
        UpdateMode::Rebase => argv.extend(["rebase", "--no-autostash"]),
        UpdateMode::Merge => argv.extend(["merge", "--no-edit", "--no-autostash"]),
    }
    argv.extend(["--quiet", "--end-of-options", base_ref]);
    argv
}

/// What is missing from `new_head` of the two sides' changes: nothing when its tree is the one
/// merge-tree predicted for merging them. A rebase that ends on another tree has lost something
/// even when every commit's patch is found in it (`git cherry`): a merge commit's own changes
/// (a rebase without `--rebase-merges` drops them), or a commit whose patch the base applied and
/// then reverted (the rebase skips it as applied). So a different tree undoes the update; the
/// commits `cherry` cannot find are named, else the tree's difference is. Without a prediction,
/// `cherry` alone decides.
fn lost_changes(g: &Git, predicted: Option<&str>, new_head: &str, start: &str) -> Vec<String> {
    let new_tree = g.ok(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{new_head}^{{tree}}"),
    ]);
    if matches!((predicted, &new_tree), (Some(p), Ok(t)) if p == t.trim()) {
        return Vec::new();
    }
    let mut lost: Vec<String> = g
        .ok(&["cherry", new_head, start])
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with('+'))
        .map(str::to_owned)
        .collect();
    if lost.is_empty() && predicted.is_some() {
        lost.push(
            "the result's files differ from the merge of both sides (a merge commit's own changes, or a change the base applied and reverted)".to_owned(),
        );
    }
    lost
}
