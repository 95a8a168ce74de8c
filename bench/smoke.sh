#!/usr/bin/env bash
# Benchmark of smoke-test (issue: health-check and smoke-test), in one run, against the stand-in
# service with 50 ms added latency per response:
#   1. the runbook's own bash smoke test (section 4.2: curl + jq, 5 checks) vs smoke-test, same 5 checks
#   2. 100 checks: smoke-test at its defaults (up to 128 in flight, adaptive) vs the bash loop vs
#      hurl 8.0.x at its defaults and with --jobs 16, 32, 64 and 100 (its best counts); target
#      <= 150 ms
#   3. smoke-test's peak RSS on the 100 checks, and `smoke-test --version` start-up time
# Needs: hyperfine, GNU time, curl, jq (Debian) and hurl (cargo install --locked hurl@~8.0; this
# script installs it into .rig/hurl when missing; SMOKE_HURL=0 leaves hurl out). Prints a Markdown
# table of means and ratios; with BENCH_RESULTS=FILE it also appends its rows for scripts/bench.sh.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${HOME:-/root}/.cargo/bin:$PWD/.rig/hurl/bin:$PATH"

JOBS=(16 32 64 100)
RUNS="${RUNS:-10}"
HURL="${SMOKE_HURL:-1}"

need_apt=()
command -v hyperfine >/dev/null || need_apt+=(hyperfine)
[[ -x /usr/bin/time ]] || need_apt+=(time)
command -v jq >/dev/null || need_apt+=(jq)
command -v curl >/dev/null || need_apt+=(curl)
if [[ "$HURL" == 1 ]] && ! command -v hurl >/dev/null; then
    need_apt+=(libcurl4-openssl-dev libxml2-dev pkg-config libclang-dev)
fi
if ((${#need_apt[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
if [[ "$HURL" == 1 ]] && ! command -v hurl >/dev/null; then
    cargo install --locked 'hurl@~8.0' --root "$PWD/.rig/hurl"
fi

cargo build --release --quiet -p deploy-action -p deploy-action-e2e --bin deploy-action --bin standin
bash scripts/link-tools.sh target/release
bin=target/release

work="$(mktemp -d)"
pid=""
trap '[[ -n "$pid" ]] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
export API_TOKEN="bench-token-$RANDOM"
"$bin/standin" --token "$API_TOKEN" >"$work/url" &
pid=$!
for _ in $(seq 50); do [[ -s "$work/url" ]] && break; sleep 0.1; done
url="$(head -n1 "$work/url")"
curl -fsS -X POST -H 'content-type: application/json' \
    -d "{\"token\":\"$API_TOKEN\",\"delay_ms\":50}" "$url/__standin/behaviour"

# 1. The runbook's smoke-test-production.sh (section 4.2), pointed at the stand-in.
cat >"$work/runbook-smoke.sh" <<'SH'
#!/bin/bash
BASE="$1"
FAILED=0
curl -sf "$BASE" > /dev/null || FAILED=$((FAILED + 1))
[ "$(curl -s "$BASE/api/health" | jq -r '.status')" == "ok" ] || FAILED=$((FAILED + 1))
[ "$(curl -s "$BASE/api/ready" | jq -r '.ready')" == "true" ] || FAILED=$((FAILED + 1))
[ "$(curl -s "$BASE/api/mcp/health" | jq -r '.status')" == "healthy" ] || FAILED=$((FAILED + 1))
curl -s "$BASE/api/workflows" -H "Authorization: Bearer $API_TOKEN" | jq -e '.workflows' > /dev/null 2>&1 || FAILED=$((FAILED + 1))
[ $FAILED -eq 0 ]
SH

# 2. 100 checks: the same five endpoints and assertions, 20 times.
paths=("/" "/api/health" "/api/ready" "/api/mcp/health" "/api/workflows")
jqs=("" '.status == "ok"' '.ready == true' '.status == "healthy"' '.workflows != null')
hurl_asserts=("" 'jsonpath "$.status" == "ok"' 'jsonpath "$.ready" == true' 'jsonpath "$.status" == "healthy"' 'jsonpath "$.workflows" exists')
mkdir -p "$work/hurl"
echo "[smoke]" >"$work/suite.toml"
echo '#!/bin/bash' >"$work/loop.sh"
echo 'BASE="$1"; FAILED=0' >>"$work/loop.sh"
for i in $(seq 0 99); do
    k=$((i % 5))
    p="${paths[$k]}"
    {
        echo "[[smoke.checks]]"
        echo "name = \"check $i\""
        echo "path = \"$p\""
        if [[ $k -eq 4 ]]; then echo 'headers = { Authorization = "Bearer ${API_TOKEN}" }'; fi
        if [[ -n "${jqs[$k]}" ]]; then echo "assert = ['${jqs[$k]}']"; fi
    } >>"$work/suite.toml"
    auth=""
    [[ $k -eq 4 ]] && auth='-H "Authorization: Bearer $API_TOKEN"'
    if [[ -n "${jqs[$k]}" ]]; then
        echo "curl -s \"\$BASE$p\" $auth | jq -e '${jqs[$k]}' >/dev/null || FAILED=\$((FAILED + 1))" >>"$work/loop.sh"
    else
        echo "curl -sf \"\$BASE$p\" >/dev/null || FAILED=\$((FAILED + 1))" >>"$work/loop.sh"
    fi
    {
        echo "GET $url$p"
        [[ $k -eq 4 ]] && echo "Authorization: Bearer {{token}}"
        echo "HTTP 200"
        if [[ -n "${hurl_asserts[$k]}" ]]; then
            echo "[Asserts]"
            echo "${hurl_asserts[$k]}"
        fi
    } >"$work/hurl/check$(printf '%03d' "$i").hurl"
done
echo '[ $FAILED -eq 0 ]' >>"$work/loop.sh"
chmod +x "$work"/*.sh

# Sanity: every contender passes before it is timed.
"$work/runbook-smoke.sh" "$url"
"$work/loop.sh" "$url"
"$bin/smoke-test" --base-url "$url" 2>/dev/null
"$bin/smoke-test" --base-url "$url" --suite "$work/suite.toml" 2>/dev/null
if [[ "$HURL" == 1 ]]; then
    hurl --test --no-output --variable "token=$API_TOKEN" "$work"/hurl/*.hurl >/dev/null 2>&1
fi
hurl_cmds=()
if [[ "$HURL" == 1 ]]; then
    hurl_cmds=(-n "hurl --test (100 files, defaults)" "hurl --test --no-output --variable token=$API_TOKEN $work/hurl/*.hurl")
    for j in "${JOBS[@]}"; do
        hurl_cmds+=(-n "hurl --test --jobs $j (100 files)" "hurl --test --no-output --jobs $j --variable token=$API_TOKEN $work/hurl/*.hurl")
    done
fi

hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$work/five.json" \
    -n "bash (runbook 4.2, 5 checks)" "$work/runbook-smoke.sh $url" \
    -n "smoke-test (5 checks)" "$bin/smoke-test --base-url $url" >&2
hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$work/hundred.json" \
    -n "bash loop (100 checks)" "$work/loop.sh $url" \
    -n "smoke-test (100 checks, defaults)" "$bin/smoke-test --base-url $url --suite $work/suite.toml" \
    "${hurl_cmds[@]}" >&2
hyperfine --style basic -N --warmup 5 --runs 50 --export-json "$work/version.json" "$bin/smoke-test --version" >&2

rss_kb="$(/usr/bin/time -f %M "$bin/smoke-test" --base-url "$url" --suite "$work/suite.toml" 2>&1 >/dev/null | tail -n1)"

python3 - "$work" "$rss_kb" <<'PY'
import json, sys
work, rss = sys.argv[1], int(sys.argv[2])
def load(n):
    return [(r["command"], r["mean"], r["stddev"]) for r in json.load(open(f"{work}/{n}.json"))["results"]]
five, hundred, version = load("five"), load("hundred"), load("version")
print("| benchmark | mean | ± | ratio |")
print("|---|---|---|---|")
base = five[1][1]
for name, mean, sd in five:
    print(f"| {name} | {mean*1000:.0f} ms | {sd*1000:.0f} ms | {mean/base:.1f}x of smoke-test |")
base = hundred[1][1]
for name, mean, sd in hundred:
    print(f"| {name} | {mean*1000:.0f} ms | {sd*1000:.0f} ms | {mean/base:.1f}x of smoke-test |")
print(f"| smoke-test --version | {version[0][1]*1000:.2f} ms | {version[0][2]*1000:.2f} ms | target < 10 ms |")
print(f"| smoke-test peak RSS, 100 checks | {rss/1024:.1f} MB | | target < 20 MB |")
bash100, ours = hundred[0][1], hundred[1][1]
hurl_best = min(hundred[2:], key=lambda r: r[1]) if len(hundred) > 2 else None
hurl_jobs = hurl_best[1] if hurl_best else None
print()
print(f"100 checks: {ours*1000:.0f} ms (target <= 150 ms); smoke-test is {bash100/ours:.1f}x faster than the bash loop (target >= 10x)" +
      (f", {ours/hurl_jobs:.2f}x the time of hurl at its best ({hurl_best[0]}; target <= 1.0)." if hurl_jobs else "; hurl left out (SMOKE_HURL=0)."))
import os
out = os.environ.get("BENCH_RESULTS")
if out:
    yes = lambda b: "yes" if b else "no"
    with open(out, "a") as f:
        f.write(f"smoke: 5 checks vs runbook 4.2 bash\t{five[1][1]*1000:.0f}\t{five[0][1]*1000:.0f}\tms\t-\t-\n")
        f.write(f"smoke: 100 checks vs bash loop\t{ours*1000:.0f}\t{bash100*1000:.0f}\tms\tratio <= 0.1\t{yes(ours / bash100 <= 0.1)}\n")
        f.write(f"smoke: 100 checks at 50 ms latency\t{ours*1000:.0f}\t-\tms\t<= 150 ms\t{yes(ours <= 0.150)}\n")
        if hurl_jobs:
            f.write(f"smoke: 100 checks vs hurl at its best ({hurl_best[0].split(' (')[0].replace('hurl --test ', '') or 'defaults'})\t{ours*1000:.0f}\t{hurl_jobs*1000:.0f}\tms\tratio <= 1.0\t{yes(ours <= hurl_jobs)}\n")
        f.write(f"smoke: --version start-up\t{version[0][1]*1000:.2f}\t-\tms\t< 10 ms\t{yes(version[0][1] < 0.01)}\n")
        f.write(f"smoke: peak RSS, 100 checks\t{rss/1024:.1f}\t-\tMB\t< 20 MB\t{yes(rss/1024 < 20)}\n")
PY
