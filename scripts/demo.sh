#!/usr/bin/env bash
# The demo: the deploy-action pipeline on this machine, against the local stand-ins.
# Builds the tools, starts the stand-in Control Center service, then runs what the runbook runs
# after a deployment: health-check (runbook 4.1) and smoke-test (runbook 4.2), first against a
# healthy service, then against one whose readiness fails, with the job summary a workflow would get.
set -Eeuo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${HOME:-/root}/.cargo/bin:$PATH"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

step "building the tools (cargo build --bins)"
cargo build --quiet --bins
bin=target/debug

work="$(mktemp -d)"
standin_pid=""
cleanup() {
    [[ -n "$standin_pid" ]] && kill "$standin_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

export API_TOKEN="demo-token-$RANDOM$RANDOM"
step "starting the stand-in Control Center service"
"$bin/standin" --token "$API_TOKEN" >"$work/url" &
standin_pid=$!
for _ in $(seq 50); do [[ -s "$work/url" ]] && break; sleep 0.1; done
url="$(head -n1 "$work/url")"
[[ -n "$url" ]] || { echo "demo: the stand-in did not start" >&2; exit 1; }
echo "service at $url" >&2

step "health-check --base-url $url   (no deploy.toml: the runbook's three checks)"
"$bin/health-check" --base-url "$url"

step "smoke-test --base-url $url   (the runbook's five smoke tests, bearer token from \$API_TOKEN)"
"$bin/smoke-test" --base-url "$url"

step "the service loses readiness; health-check fails with exit 1 and says why"
curl -fsS -X POST -H 'content-type: application/json' \
    -d "{\"token\":\"$API_TOKEN\",\"ready\":false}" "$url/__standin/behaviour"
set +e
GITHUB_ACTIONS=true GITHUB_STEP_SUMMARY="$work/summary.md" GITHUB_OUTPUT="$work/outputs" \
    "$bin/health-check" --base-url "$url" --format json >"$work/report.json" 2>"$work/stderr"
code=$?
set -e
cat "$work/stderr" >&2
echo "exit code: $code" >&2
step "the job summary a workflow would show"
cat "$work/summary.md" >&2
step "the step outputs (GITHUB_OUTPUT)"
cat "$work/outputs" >&2
[[ $code -eq 1 ]] || { echo "demo: expected exit 1" >&2; exit 1; }
step "demo done: the token never appeared above ($(grep -c "$API_TOKEN" "$work/report.json" "$work/summary.md" | awk -F: '{s+=$2} END {print s}') occurrences in report and summary)"
