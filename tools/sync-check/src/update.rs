//! The safe sync (`--update rebase|merge`, `--push`): the runbook's `git pull origin main
//! --rebase`, made safe. It refuses a dirty tree or a detached HEAD, predicts conflicts with
//! merge-tree before touching anything, writes a backup ref before anything moves, aborts and
//! restores HEAD, index, work tree and branch exactly when git stops, and pushes only with
//! `--force-with-lease` against the remote branch as this clone last saw it. A failed sync
//! leaves the branch as it was.

use deploy_core::{Check, Exit, Report, Status, exit};

use crate::git::Git;
use crate::{Args, UpdateMode};

fn timestamp() -> String {
    // 2026-11-28T13:15:00Z -> 20261128T131500Z: valid in a ref name, sorts by time.
    deploy_core::report::now_rfc3339().replace(['-', ':'], "")
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
    for (dir, quit) in [
        ("rebase-merge", ["rebase", "--quit"]),
        ("rebase-apply", ["rebase", "--quit"]),
        ("MERGE_HEAD", ["merge", "--abort"]),
    ] {
        let in_progress = g
            .ok(&["rev-parse", "--git-path", dir])
            .is_ok_and(|p| g.path(p.trim()).exists());
        if in_progress {
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

/// Runs the safe sync, recording every mutating git call in the report's audit trail.
pub fn run(
    g: &Git,
    args: &Args,
    mode: UpdateMode,
    base_ref: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    report.dry_run = args.dry_run;
    let verb = match mode {
        UpdateMode::Rebase => "rebase",
        UpdateMode::Merge => "merge",
    };
    let base_name = base_ref.trim_start_matches("refs/remotes/").to_owned();
    let branch = g
        .current_branch()
        .ok_or_else(|| exit::usage("HEAD is detached: --update needs a checked-out branch"))?;
    let in_progress = ["rebase-merge", "rebase-apply", "MERGE_HEAD"]
        .iter()
        .any(|p| {
            g.ok(&["rev-parse", "--git-path", p])
                .is_ok_and(|path| g.path(path.trim()).exists())
        });
    let f = crate::inspect(g, "HEAD", base_ref, 0)?;
    report.output("behind", f.behind);
    report.output("ahead", f.ahead);
    if in_progress || !f.tree.clean() {
        report.push(
            Check::new("Working tree clean", Status::Failed).reason(format!(
                "refusing to {verb}: {}; commit or stash first",
                if in_progress {
                    "a rebase or merge is in progress".to_owned()
                } else {
                    format!(
                        "{} modified, {} staged, {} untracked files",
                        f.tree.modified.len(),
                        f.tree.staged.len(),
                        f.tree.untracked.len()
                    )
                }
            )),
        );
        report.summary = format!("refused to {verb} {branch}: the working tree is not clean");
        return Ok(());
    }
    let start = f.head_sha.clone();
    report.output("old-head", &start);
    if f.merge_base.is_none() {
        report.push(
            Check::new("Shares history with the base", Status::Failed).reason(format!(
                "{branch} and {base_name} have no common history: nothing was changed"
            )),
        );
        report.summary = format!("refused to {verb}: unrelated histories");
        return Ok(());
    }
    if !f.conflicts.is_empty() || !f.merges_cleanly {
        let c = Check::new("Merges cleanly", Status::Failed).reason(format!(
            "{} conflicting files with {base_name}: nothing was changed",
            f.conflicts.len()
        ));
        report.push(crate::conflict_details(c, &f.conflicts));
        crate::conflict_outputs(report, &f.conflicts);
        report.summary = format!("did not {verb} {branch}: it would conflict with {base_name}");
        return Ok(());
    }
    if f.behind == 0 {
        report.push(
            Check::new(format!("Up to date with {base_name}"), Status::Passed)
                .reason("nothing to do"),
        );
        report.output("new-head", &start);
        report.summary = format!("{branch} is already up to date with {base_name}");
        return Ok(());
    }

    let backup = format!("refs/sync-backup/{branch}/{}", timestamp());
    let tracking = format!("refs/remotes/{}/{branch}", args.remote);
    let lease_value = g.commit(&tracking).unwrap_or_default();
    let lease = format!("--force-with-lease=refs/heads/{branch}:{lease_value}");
    let plan = format!(
        "{verb} {branch} ({} commits) onto {base_name} ({} new commits)",
        f.ahead, f.behind
    );
    if args.dry_run {
        report.audit(
            "git:update-ref",
            &backup,
            "planned",
            Some(format!("backup of {start}")),
        );
        report.audit(
            &format!("git:{verb}"),
            &branch,
            "planned",
            Some(plan.clone()),
        );
        if args.push {
            report.audit(
                "git:push",
                &format!("{}/{branch}", args.remote),
                "planned",
                Some(lease.clone()),
            );
        }
        report.push(
            Check::new("Update", Status::Passed)
                .reason(format!("would {plan}; no conflicts predicted")),
        );
        report.summary = format!("dry run: would {plan}");
        return Ok(());
    }

    // 1. Backup before anything moves.
    g.ok(&["update-ref", &backup, &start])
        .map_err(|e| exit::dependency(format!("couldn't write backup ref {backup}: {e}")))?;
    report.audit(
        "git:update-ref",
        &backup,
        "done",
        Some(format!("backup of {start}")),
    );
    report.output("backup-ref", &backup);

    // 2. Rebase or merge, with an identity when the repository has none (CI checkouts).
    let identity = g
        .ok(&["config", "user.email"])
        .is_ok_and(|s| !s.trim().is_empty());
    let mut cmd: Vec<String> = Vec::new();
    if !identity {
        cmd.extend(
            [
                "-c",
                "user.name=deploy-action",
                "-c",
                "user.email=deploy-action@users.noreply.github.com",
            ]
            .map(String::from),
        );
    }
    match mode {
        UpdateMode::Rebase => cmd.extend(
            [
                "rebase",
                "--no-autostash",
                "--quiet",
                "--end-of-options",
                base_ref,
            ]
            .map(String::from),
        ),
        UpdateMode::Merge => cmd.extend(
            [
                "merge",
                "--no-edit",
                "--no-autostash",
                "--quiet",
                "--end-of-options",
                base_ref,
            ]
            .map(String::from),
        ),
    }
    let argv: Vec<&str> = cmd.iter().map(String::as_str).collect();
    if let Err(e) = g.ok(&argv) {
        let conflicted: Vec<String> = g
            .ok(&["diff", "--name-only", "--diff-filter=U"])
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        let _ = g.ok(&[verb, "--abort"]);
        restore(g, &branch, &start)?;
        report.audit(
            &format!("git:{verb}"),
            &branch,
            "failed",
            Some(format!("{e}; aborted, {branch} restored to {start}")),
        );
        let mut c = Check::new("Update", Status::Failed).reason(format!(
            "{verb} stopped{}; aborted and restored {branch} to {}",
            if conflicted.is_empty() {
                format!(": {}", e.stderr)
            } else {
                format!(" on conflicts in {}", conflicted.join(", "))
            },
            crate::short(&start)
        ));
        for p in conflicted {
            c = c.detail(p, "conflict");
        }
        report.push(c);
        report.output("new-head", &start);
        report.summary = format!("{verb} of {branch} failed; nothing was lost ({backup})");
        return Ok(());
    }
    let new_head = g
        .commit("HEAD")
        .ok_or_else(|| exit::dependency("HEAD is not a commit after the update"))?;
    report.audit(
        &format!("git:{verb}"),
        &branch,
        "done",
        Some(format!("{start} -> {new_head}")),
    );
    report.output("new-head", &new_head);
    // Every original commit's change must still be in the branch. The result holds every change
    // of both sides when its tree is the one merge-tree predicted for merging them. Otherwise
    // (a rebase can end on another tree, replaying commit by commit) each old commit must have its
    // patch in the result (`cherry`: a `+` line is a commit whose change is missing). Patch ids
    // alone would not do: a replayed commit's patch changes when the base renamed or edited
    // nearby lines, though nothing is lost.
    let new_tree = g.ok(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{new_head}^{{tree}}"),
    ]);
    let as_predicted = matches!((&f.merged_tree, &new_tree), (Some(p), Ok(t)) if p == t.trim());
    let lost: Vec<String> = if as_predicted {
        Vec::new()
    } else {
        g.ok(&["cherry", &new_head, &start])
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with('+'))
            .map(str::to_owned)
            .collect()
    };
    if !lost.is_empty() {
        restore(g, &branch, &start)?;
        if let Some(last) = report.audit.last_mut() {
            last.outcome = "failed".into();
            last.detail = Some(format!(
                "{start} -> {new_head}, undone: the changes of {} commits were missing",
                lost.len()
            ));
        }
        report.output("new-head", &start);
        report.summary =
            format!("{verb} of {branch} undone: it would have lost changes ({backup})");
        report.push(Check::new("Update", Status::Failed).reason(format!(
            "{} commits' changes would be missing after the {verb}; restored {branch} to {start}",
            lost.len()
        )));
        return Ok(());
    }
    report.push(Check::new("Update", Status::Passed).reason(format!(
        "{plan}: {} -> {}",
        crate::short(&start),
        crate::short(&new_head)
    )));

    // 3. Push with a lease.
    if args.push {
        let refspec = format!("HEAD:refs/heads/{branch}");
        match g.transport(&[
            "push",
            "--porcelain",
            "--quiet",
            "--no-verify",
            "--no-recurse-submodules",
            &lease,
            "--end-of-options",
            &args.remote,
            &refspec,
        ]) {
            Ok(_) => {
                report.audit(
                    "git:push",
                    &format!("{}/{branch}", args.remote),
                    "done",
                    Some(format!("{lease} {new_head}")),
                );
                report.output("pushed", true);
                report.push(Check::new("Push", Status::Passed).reason(format!(
                    "pushed {} to {}/{branch} (lease: {})",
                    crate::short(&new_head),
                    args.remote,
                    if lease_value.is_empty() {
                        "branch must not exist"
                    } else {
                        crate::short(&lease_value)
                    }
                )));
            }
            Err(e) => {
                restore(g, &branch, &start)?;
                report.audit(
                    "git:push",
                    &format!("{}/{branch}", args.remote),
                    "failed",
                    Some(e.to_string()),
                );
                report.output("pushed", false);
                report.output("new-head", &start);
                let restored = format!(
                    "restored {branch} to {}, backup {backup}",
                    crate::short(&start)
                );
                match push_failure(&e) {
                    PushFailure::Lease(line) => {
                        report.push(Check::new("Push", Status::Failed).reason(format!(
                            "push rejected ({line}): {}/{branch} moved since this clone last saw it; {restored}",
                            args.remote,
                        )));
                        report.fail_with(Exit::Failed, "push rejected by the lease");
                        report.summary = format!(
                            "{verb} done but push rejected; {branch} restored, nothing lost"
                        );
                    }
                    PushFailure::Other(reason) => {
                        report.push(Check::new("Push", Status::Error).reason(format!(
                            "couldn't push to {}/{branch}: {reason}; {restored}",
                            args.remote,
                        )));
                        report.fail_with(
                            Exit::Dependency,
                            format!("couldn't push to {}: {reason}", args.remote),
                        );
                        report.summary = format!(
                            "{verb} done but the push failed; {branch} restored, nothing lost"
                        );
                    }
                }
                return Ok(());
            }
        }
    }
    let ahead_now = only_in(g, &new_head, base_ref)?.len();
    report.summary =
        format!("{verb}d {branch} onto {base_name}: {ahead_now} commits ahead, 0 behind");
    Ok(())
}
