#!/usr/bin/env bash
# Every benchmark in one go (not in CI): bench/smoke.sh, bench/sync.sh, bench/ecr.sh,
# bench/health-lag.sh, bench/scale.sh, bench/rollback.sh and bench/install.sh, then one table (case, ours, peer, ratio, target, met)
# and the same as JSON, so two commits can be compared (`jq` over two files).
#
#   scripts/bench.sh                 full runs (several minutes; ecr and rollback start the rig)
#   QUICK=1 scripts/bench.sh         fewer runs, a smaller sync repository, no hurl build
#   BENCH_JSON=FILE                  where the JSON goes (default bench/results.json)
#   BENCH_ONLY="health-lag smoke"    run only these
#
# Each bench script appends its rows to $BENCH_RESULTS (tab-separated: case, ours, peer, unit,
# target, met) besides printing its own Markdown; its full output goes to .rig/bench-logs/.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
export PATH="${HOME:-/root}/.cargo/bin:$PATH"

benches=(${BENCH_ONLY:-smoke sync ecr health-lag scale rollback install})
json="${BENCH_JSON:-$root/bench/results.json}"
logs="$root/.rig/bench-logs"
mkdir -p "$logs"
export BENCH_RESULTS
BENCH_RESULTS="$(mktemp)"
trap 'rm -f "$BENCH_RESULTS"' EXIT

mode=full
if [[ "${QUICK:-0}" == 1 ]]; then
    mode=quick
    export RUNS="${RUNS:-2}" SMOKE_HURL="${SMOKE_HURL:-0}" SYNC_COMMITS="${SYNC_COMMITS:-10000}" \
        SYNC_FILES="${SYNC_FILES:-1000}"
fi

# One release build for all of them up front (each script's own build is then a no-op).
cargo build --release --quiet --workspace --bins
bash scripts/link-tools.sh target/release

failed=()
for b in "${benches[@]}"; do
    start=$(date +%s)
    printf 'bench: %s ...\n' "$b" >&2
    if bash "bench/$b.sh" >"$logs/$b.md" 2>"$logs/$b.err"; then
        printf 'bench: %s done in %ss\n' "$b" "$(($(date +%s) - start))" >&2
    else
        printf 'bench: %s FAILED (see %s)\n' "$b" "$logs/$b.err" >&2
        failed+=("$b")
    fi
done

python3 - "$BENCH_RESULTS" "$json" "$mode" "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- tools bench || echo +dirty)" <<'PY'
import json, os, platform, subprocess, sys, datetime
rows_file, out, mode, commit = sys.argv[1:5]
rows = []
for line in open(rows_file):
    parts = line.rstrip("\n").split("\t")
    if len(parts) != 6:
        continue
    case, ours, peer, unit, target, met = parts
    num = lambda v: None if v in ("", "-") else float(v)
    o, p = num(ours), num(peer)
    rows.append({
        "case": case, "ours": o, "peer": p, "unit": unit,
        "ratio": round(o / p, 3) if o is not None and p else None,
        "target": target, "met": None if met == "-" else met == "yes",
    })
def cpu():
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                return l.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
machine = {"cpus": os.cpu_count(), "cpu": cpu(), "kernel": platform.release(),
           "load": os.getloadavg()[0]}
doc = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
       "commit": commit, "mode": mode, "machine": machine, "rows": rows}
json.dump(doc, open(out, "w"), indent=2)
fmt = lambda v: "-" if v is None else (f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}")
print(f"benchmarks, {doc['date']}, commit {commit}, {mode} mode, {machine['cpus']} CPUs ({machine['cpu']})")
print()
print("| case | ours | peer | ratio | target | met |")
print("|---|---|---|---|---|---|")
for r in rows:
    met = "-" if r["met"] is None else ("yes" if r["met"] else "NO")
    unit = r["unit"]
    print(f"| {r['case']} | {fmt(r['ours'])} {unit} | {fmt(r['peer'])}{'' if r['peer'] is None else ' ' + unit} "
          f"| {fmt(r['ratio'])} | {r['target']} | {met} |")
print()
print(f"JSON: {out}")
PY
if ((${#failed[@]})); then
    printf 'bench: failed: %s\n' "${failed[*]}" >&2
    exit 1
fi
