#!/usr/bin/env bash
# Benchmark of sync-check (issue: sync-check), in one run: on a generated repository with 50,000
# commits and 5,000 files (bench/gen-repo.py), `sync-check --no-fetch` against the raw git commands
# it needs (`rev-list --left-right --count` + `merge-tree --write-tree`). Target: within 1.3x of raw
# git plus 50 ms; and a depth-1 clone against the shell deepen loop (below). Needs hyperfine (Debian). SYNC_COMMITS / SYNC_FILES make a smaller repository
# (its own directory); BENCH_RESULTS=FILE also appends the row for scripts/bench.sh.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${HOME:-/root}/.cargo/bin:$PATH"
command -v hyperfine >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine; }
cargo build --release --quiet -p deploy-action
bash scripts/link-tools.sh "$PWD/target/release"

COMMITS="${SYNC_COMMITS:-50000}" FILES="${SYNC_FILES:-5000}"
RUNS="${RUNS:-10}"
suffix=""
[[ "$COMMITS/$FILES" == 50000/5000 ]] || suffix="-$COMMITS-$FILES"
work="${BENCH_DIR:-$PWD/.rig/bench-sync$suffix}"
if [[ ! -d "$work/origin.git" ]]; then
    rm -rf "$work" && mkdir -p "$work"
    python3 bench/gen-repo.py "$work/gen" "$COMMITS" "$FILES" 1000 20 >&2
    git clone -q --bare "$work/gen" "$work/origin.git"
    git clone -q "$work/origin.git" "$work/repo"
    git -C "$work/repo" checkout -q feat
    rm -rf "$work/gen"
fi
repo="$work/repo"
git -C "$repo" fetch -q origin
echo "commits: $(git -C "$repo" rev-list --count --all), files: $(git -C "$repo" ls-files | wc -l)" >&2

bin="$PWD/target/release/sync-check"
raw="git -C $repo rev-list --left-right --count origin/main...HEAD && git -C $repo merge-tree --write-tree origin/main HEAD"
hyperfine --style basic --warmup 2 --runs "$RUNS" --export-json "$work/sync.json" \
    -n "raw git (rev-list --count + merge-tree)" "$raw" \
    -n "sync-check --no-fetch" "$bin --repo $repo --no-fetch --publish never" >&2

COMMITS="$COMMITS" python3 - "$work/sync.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
raw, ours = r[0]["mean"], r[1]["mean"]
limit = raw * 1.3 + 0.05
print("| benchmark | mean | ± |")
print("|---|---|---|")
for x in r:
    print(f"| {x['command']} | {x['mean']*1000:.0f} ms | {x['stddev']*1000:.0f} ms |")
print()
print(f"sync-check / raw git = {ours/raw:.2f}x; limit 1.3x + 50 ms = {limit*1000:.0f} ms: {'met' if ours <= limit else 'NOT met'}")
import os
out = os.environ.get("BENCH_RESULTS")
if out:
    with open(out, "a") as f:
        f.write(f"sync: --no-fetch vs raw git ({os.environ.get('COMMITS', '50000')} commits)\t{ours*1000:.0f}\t{raw*1000:.0f}\tms\t<= 1.3x + 50 ms\t{'yes' if ours <= limit else 'no'}\n")
PY

# ---- a depth-1 clone (actions/checkout's default) whose merge base is BEHIND commits down main ----
# The peer is the shell loop users write: fetch the base at depth N, `--deepen=N` until
# `git merge-base` answers, then merge-tree; N in 50, 200, 1000, and the best N counts. ours:
# sync-check on the same clone. The origin allows filters, as GitHub does. Target: <= 0.5x the best
# loop. Every run starts from a fresh copy of the same depth-1 clone (hyperfine --prepare), its index
# refreshed as a fresh checkout's is (a copy's new inodes and ctimes would make sync-check's
# `git status` re-read every file).
git -C "$work/origin.git" config uploadpack.allowFilter true
d1="$work/depth1"
if [[ ! -d "$d1" ]]; then
    git clone -q --depth 1 --branch feat "file://$work/origin.git" "$d1"
fi
run="$work/depth1-run"
loop() {
    printf 'cd %q && s=%s && git fetch -q --no-tags %s --depth=$s origin +refs/heads/main:refs/remotes/origin/main && until git merge-base HEAD origin/main >/dev/null; do git fetch -q --no-tags %s --deepen=$s origin +refs/heads/main:refs/remotes/origin/main; s=$((s*2)); done && git merge-tree --write-tree origin/main HEAD >/dev/null' \
        "$run" "$1" "${2:-}" "${2:-}"
}
hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$work/depth1.json" \
    --prepare "rm -rf $run && cp -a $d1 $run && git -C $run update-index -q --refresh" \
    -n "shell loop, N=50" "$(loop 50)" \
    -n "shell loop, N=200" "$(loop 200)" \
    -n "shell loop, N=1000" "$(loop 1000)" \
    -n "shell loop, N=1000, --filter=tree:0" "$(loop 1000 --filter=tree:0)" \
    -n "sync-check" "$bin --repo $run --publish never" >&2

python3 - "$work/depth1.json" <<'PY'
import json, os, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
plain = [v for k, v in r.items() if k.startswith("shell loop") and "filter" not in k]
best = min(plain, key=lambda x: x["mean"])
ours = r["sync-check"]["mean"]
print()
print("| depth-1 clone | mean | ± |")
print("|---|---|---|")
for k, x in r.items():
    print(f"| {k} | {x['mean']*1000:.0f} ms | {x['stddev']*1000:.0f} ms |")
print()
ratio = ours / best["mean"]
print(f"sync-check / best shell loop ({best['command']}) = {ratio:.2f}x; target <= 0.5x: {'met' if ratio <= 0.5 else 'NOT met'}")
out = os.environ.get("BENCH_RESULTS")
if out:
    with open(out, "a") as f:
        f.write(f"sync: depth-1 clone vs best shell deepen loop\t{ours*1000:.0f}\t{best['mean']*1000:.0f}\tms\tratio <= 0.5\t{'yes' if ratio <= 0.5 else 'no'}\n")
        filt = r["shell loop, N=1000, --filter=tree:0"]["mean"]
        f.write(f"sync: depth-1 clone vs shell loop with --filter=tree:0\t{ours*1000:.0f}\t{filt*1000:.0f}\tms\t-\t-\n")
PY
