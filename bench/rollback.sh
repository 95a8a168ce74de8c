#!/usr/bin/env bash
# Benchmark of rollback (issue: rollback): against moto behind the ECS stand-in, four services
# (then 50, target for the whole run < 5 s), each with a verified revision to go back to, it measures
#   1. the time from invoking `rollback` to the fourth UpdateService reaching ECS (target < 2 s):
#      the stand-in logs each call's epoch milliseconds;
#   2. the whole run (plan, act, wait, health verification, incident record) and its peak RSS.
# Median of RUNS runs (default 5). Needs the rig (scripts/rig.sh) and GNU time. BENCH_RESULTS=FILE
# also appends the rows for scripts/bench.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_runs 5
need_gnu_time
rig_up
build_release -p deploy-action-e2e --bin deploy-action --bin ecs-standin --bin standin

work="$(mktemp -d)"
pids=()
on_exit 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"'
"$bin/ecs-standin" --moto "$DEPLOY_TEST_MOTO_URL" --log "$work/calls.log" >"$work/ecs-url" &
pids+=($!)
"$bin/standin" >"$work/svc-url" &
pids+=($!)
for _ in $(seq 50); do [[ -s "$work/ecs-url" && -s "$work/svc-url" ]] && break; sleep 0.1; done
aws_env "$(head -n1 "$work/ecs-url")"
url="$(head -n1 "$work/svc-url")"

ms() { date +%s%3N; }
# One case: N services (4: the runbook's, named as in it; 50: svc-00..svc-49).
bench_case() {
    local n="$1" run cluster services
    first=() whole=() rss=()
    for run in $(seq "$RUNS"); do
        cluster="bench-$n-$run-$RANDOM"
        services="$("$root/.rig/venv/bin/python" - "$cluster" "$n" <<'PY'
import os, sys, boto3
cluster, n = sys.argv[1], int(sys.argv[2])
ecs = boto3.client("ecs", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
ecs.create_cluster(clusterName=cluster)
names = ["control-center", "mcp-github", "mcp-deploy", "mcp-observability"] if n == 4 else [f"svc-{i:02}" for i in range(n)]
for svc in names:
    fam = f"{cluster}-{svc}"
    for rev in range(1, 4):
        td = ecs.register_task_definition(family=fam, containerDefinitions=[{"name": svc, "image": f"nginx:{rev}", "memory": 128}])
        arn = td["taskDefinition"]["taskDefinitionArn"]
        if rev == 2:
            ecs.tag_resource(resourceArn=arn, tags=[{"key": "deploy-action:verified", "value": "2026-11-28T00:00:00Z"}])
    ecs.create_service(cluster=cluster, serviceName=svc, taskDefinition=f"{fam}:3", desiredCount=1)
print(", ".join(f'"{s}"' for s in names))
PY
)"
        cat >"$work/deploy.toml" <<TOML
[environments.staging]
base_url = "$url"
cluster = "$cluster"
services = [$services]
[health]
interval = "200ms"
success_threshold = 1
[[health.checks]]
name = "health"
path = "/api/health"
[rollback]
interval = "200ms"
TOML
        : >"$work/calls.log"
        local start end fourth
        start=$(ms)
        (cd "$work" && /usr/bin/time -f '%M' -o "$work/rss" "$bin/rollback" -e staging >/dev/null 2>"$work/err") ||
            { cat "$work/err" >&2; exit 1; }
        end=$(ms)
        fourth=$(awk -v n="$n" '$2 == "UpdateService" { c++; if (c == n) print $1 }' "$work/calls.log")
        [[ -n "$fourth" ]] || { echo "bench: fewer than $n UpdateService calls" >&2; cat "$work/calls.log" >&2; exit 1; }
        first+=($((fourth - start)))
        whole+=($((end - start)))
        rss+=($(cat "$work/rss"))
    done
    # The medians of the case: ms to the Nth UpdateService, ms of the whole run, peak RSS in MB.
    to="$(median "${first[@]}")" whole_ms="$(median "${whole[@]}")"
    rss_mb="$(awk -v k="$(median "${rss[@]}")" 'BEGIN { printf "%.1f", k / 1024 }')"
}

printf '| benchmark | median | target |\n|---|---|---|\n'
bench_case 4
to4="$to" whole4="$whole_ms" rss4="$rss_mb"
printf '| rollback: invocation to the 4th UpdateService (4 services) | %s ms | < 2000 ms |\n' "$to4"
printf '| rollback: whole run incl. wait and health verification | %s ms | |\n' "$whole4"
printf '| rollback: peak RSS | %s MB | |\n' "$rss4"
bench_case 50
to50="$to" whole50="$whole_ms" rss50="$rss_mb"
printf '| rollback: 50 services, invocation to the 50th UpdateService | %s ms | |\n' "$to50"
printf '| rollback: 50 services, whole run (plan, roll, wait, verify) | %s ms | < 5000 ms |\n' "$whole50"
printf '| rollback: 50 services, peak RSS | %s MB | |\n' "$rss50"
if [[ -n "${BENCH_RESULTS:-}" ]]; then
    {
        printf 'rollback: to the 4th UpdateService\t%s\t-\tms\t< 2000 ms\t%s\n' "$to4" "$( ((to4 < 2000)) && echo yes || echo no)"
        printf 'rollback: whole run\t%s\t-\tms\t-\t-\n' "$whole4"
        printf 'rollback: peak RSS\t%s\t-\tMB\t-\t-\n' "$rss4"
        printf 'rollback: 50 services, whole run\t%s\t-\tms\t< 5000 ms\t%s\n' "$whole50" "$( ((whole50 < 5000)) && echo yes || echo no)"
        printf 'rollback: 50 services, peak RSS\t%s\t-\tMB\t-\t-\n' "$rss50"
    } >>"$BENCH_RESULTS"
fi
