#!/usr/bin/env bash
# Benchmark of health-check at scale (issue 20): one environment whose ECS services span several
# clusters (`CLUSTER/NAME`) and whose alarm gate covers many alarms, against moto. Two cases, each
# set up once and then timed RUNS times (default 5), median wall time and peak RSS:
#   200 services in 1 cluster and 50 alarms       (the figure before issue 20)
#   1,000 services in 5 clusters and 200 alarms   (target < 3 s and < 32 MiB)
# One round of polling is enough (--success-threshold 1: every service has finished its rollout), so
# the time is the start-up, the DescribeServices calls (10 services each), the alarm pages and the
# report. Needs the rig (scripts/rig.sh) and GNU time. BENCH_RESULTS=FILE also appends the rows for
# scripts/bench.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_runs 5
need_gnu_time
rig_up
build_release --bin deploy-action

work="$(mktemp -d)"
on_exit 'rm -rf "$work"'
aws_env "$DEPLOY_TEST_MOTO_URL"

# Sets up `clusters` clusters of `per` services each and `alarms` alarms (state OK) under a fresh
# prefix, writes deploy.toml, then times health-check RUNS times: sets $ms and $mb (medians).
bench_case() {
    local clusters="$1" per="$2" alarms="$3" prefix="scale-$1x$2-$RANDOM" services
    services="$("$root/.rig/venv/bin/python" - "$prefix" "$clusters" "$per" "$alarms" <<'PY'
import os, sys, boto3
prefix, clusters, per, alarms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ecs = boto3.client("ecs", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
cw = boto3.client("cloudwatch", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
td = ecs.register_task_definition(family=f"{prefix}-web", containerDefinitions=[{"name": "web", "image": "nginx:1", "memory": 128}])
arn = td["taskDefinition"]["taskDefinitionArn"]
names = []
for c in range(clusters):
    cluster = f"{prefix}-c{c}"
    ecs.create_cluster(clusterName=cluster)
    for s in range(per):
        svc = f"svc-{s:03}"
        ecs.create_service(cluster=cluster, serviceName=svc, taskDefinition=arn, desiredCount=1)
        # The environment's own cluster by bare name, the others as CLUSTER/NAME.
        names.append(svc if c == 0 else f"{cluster}/{svc}")
for a in range(alarms):
    name = f"{prefix}-alarm-{a:03}"
    cw.put_metric_alarm(AlarmName=name, MetricName="Errors", Namespace="Bench", Statistic="Sum",
                        Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="bench")
print(", ".join(f'"{n}"' for n in names))
PY
)"
    cat >"$work/deploy.toml" <<TOML
[environments.scale]
cluster = "$prefix-c0"
services = [$services]
alarms = { prefix = "$prefix-alarm-" }
TOML
    # The gate reads every alarm: the last one (past the first page of 100) in ALARM fails it.
    local last
    last="$prefix-alarm-$(printf '%03d' $((alarms - 1)))"
    aws_alarm() { "$root/.rig/venv/bin/python" -c 'import os,sys,boto3; boto3.client("cloudwatch", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).set_alarm_state(AlarmName=sys.argv[1], StateValue=sys.argv[2], StateReason="bench")' "$@"; }
    aws_alarm "$last" ALARM
    if (cd "$work" && "$bin/health-check" -e scale --ecs --success-threshold 1 --wait 5s --no-diagnose \
        --format json >"$work/report.json" 2>"$work/err"); then
        echo "bench: the gate passed with $last in ALARM" >&2; exit 1
    fi
    grep -q "$last" "$work/report.json" || { echo "bench: $last not named" >&2; exit 1; }
    aws_alarm "$last" OK
    local times=() rss=() run start end
    for run in $(seq "$RUNS"); do
        start=$(date +%s%3N)
        (cd "$work" && /usr/bin/time -f '%M' -o "$work/rss" "$bin/health-check" -e scale --ecs \
            --success-threshold 1 --interval 200ms --wait 60s --no-diagnose --format json \
            >"$work/report.json" 2>"$work/err") || { cat "$work/err" >&2; exit 1; }
        end=$(date +%s%3N)
        local checked
        checked="$(jq '[.checks[] | select(.status == "passed")] | length' "$work/report.json")"
        # every service, plus the alarm gate
        [[ "$checked" == "$((clusters * per + 1))" ]] ||
            { echo "bench: $checked checks passed, not $((clusters * per + 1))" >&2; exit 1; }
        times+=($((end - start)))
        rss+=($(cat "$work/rss"))
    done
    ms="$(median "${times[@]}")"
    mb="$(awk -v k="$(median "${rss[@]}")" 'BEGIN { printf "%.1f", k / 1024 }')"
}

printf '| benchmark | median | peak RSS | target |\n|---|---|---|---|\n'
bench_case 1 200 50
ms200="$ms" mb200="$mb"
printf '| health-check: 200 services (1 cluster), 50 alarms | %s ms | %s MB | - |\n' "$ms200" "$mb200"
bench_case 5 200 200
printf '| health-check: 1,000 services (5 clusters), 200 alarms | %s ms | %s MB | < 3000 ms, < 32 MiB |\n' "$ms" "$mb"
if [[ -n "${BENCH_RESULTS:-}" ]]; then
    met_t=$( ((ms < 3000)) && echo yes || echo no)
    met_m=$(awk -v m="$mb" 'BEGIN { print (m < 32 * 1.048576) ? "yes" : "no" }')
    {
        printf 'health: 200 services, 50 alarms\t%s\t-\tms\t-\t-\n' "$ms200"
        printf 'health: 1,000 services (5 clusters), 200 alarms\t%s\t-\tms\t< 3000 ms\t%s\n' "$ms" "$met_t"
        printf 'health: peak RSS, 1,000 services\t%s\t-\tMB\t< 32 MiB\t%s\n' "$mb" "$met_m"
    } >>"$BENCH_RESULTS"
fi
