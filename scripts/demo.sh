#!/usr/bin/env bash
# The demo: the deploy-action pipeline on this machine, against the local stand-ins.
# Installs and starts the stand-ins (moto for ECS, ECR and CloudWatch, the registry); runs sync-check
# on a real git repository (a behind branch, a safe rebase with push, a conflict); pushes an image
# with ecr-push (and re-pushes it, and is refused an IMMUTABLE tag); starts the stand-in Control
# Center service, then runs what the runbook runs after `cdk deploy`: health-check (4.1, 3.1 step 5,
# section 5 gates, section 7 KPI) and smoke-test (4.2) against a healthy staging; then shows the
# failures users were burnt by: readiness lost with an MCP server down, and an ECS service whose
# PRIMARY deployment is not the new task definition (a rollback "stable" would have hidden); then a
# good deploy marked verified, a bad one detected, and rollback to the verified revisions with the
# incident record and its MTTR. Along the way: chained smoke checks (a login whose secret token a
# later check uses), a certificate 5 days from expiry, the verdicts posted to a local webhook
# (--notify), Mermaid pictures in the job summaries, and at the end the runbook's section-6
# checklist from the reports the steps wrote.
set -Eeuo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
export PATH="${HOME:-/root}/.cargo/bin:$PATH"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

step "installing and starting the stand-ins (scripts/rig.sh)"
bash scripts/rig.sh install
work="$(mktemp -d)"
standin_pid=""
ecs_pid=""
hook_pid=""
tls_pid=""
cleanup() {
    [[ -n "$standin_pid" ]] && kill "$standin_pid" 2>/dev/null || true
    [[ -n "$hook_pid" ]] && kill "$hook_pid" 2>/dev/null || true
    [[ -n "$tls_pid" ]] && kill "$tls_pid" 2>/dev/null || true
    [[ -n "$ecs_pid" ]] && kill "$ecs_pid" 2>/dev/null || true
    bash "$root/scripts/rig.sh" down || true
    rm -rf "$work"
}
trap cleanup EXIT
bash scripts/rig.sh up
eval "$(bash scripts/rig.sh env)"

step "building the tools (cargo build --bins)"
cargo build --quiet --bins
bin="$PWD/target/debug"
bash scripts/link-tools.sh "$bin"

step "runbook 1: sync-check on a feature branch whose base moved on (a real git repo with a bare origin)"
g() { git -c user.name=demo -c user.email=demo@example.com "$@"; }
git init -q --bare -b main "$work/origin.git"
g clone -q "$work/origin.git" "$work/dev" 2>/dev/null
( cd "$work/dev" && g checkout -q -b main && printf 'one\ntwo\nthree\n' > app.txt && g add -A && g commit -qm init && g push -q origin main
  g checkout -q -b feature && echo "feature" > feature.txt && g add -A && g commit -qm "feature work" && g push -q -u origin feature
  g checkout -q main && printf 'one\nTWO\nthree\n' > app.txt && g commit -qam "main moved on" && g push -q origin main
  g checkout -q feature )
"$bin/sync-check" --repo "$work/dev" --publish never
step "runbook 1.2 made safe: sync-check --update rebase --push (backup ref first, lease on push)"
GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.com "$bin/sync-check" --repo "$work/dev" --update rebase --push --publish never
git -C "$work/dev" for-each-ref refs/sync-backup >&2
step "a conflicting change: sync-check names the file and its kind, exit 1"
( cd "$work/dev" && printf 'one\nFEATURE\nthree\n' > app.txt && g commit -qam "feature edits app" )
( cd "$work/dev" && g checkout -q main && g pull -q --ff-only origin main && printf 'one\nMAIN\nthree\n' > app.txt && g commit -qam "main edits app" && g push -q origin main && g checkout -q feature )
set +e
"$bin/sync-check" --repo "$work/dev" --publish never
code=$?
set -e
echo "exit code: $code" >&2
[[ $code -eq 1 ]] || { echo "demo: expected exit 1" >&2; exit 1; }

export AWS_ENDPOINT_URL="$DEPLOY_TEST_MOTO_URL" AWS_REGION=eu-central-1 AWS_DEFAULT_REGION=eu-central-1 \
    AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_EC2_METADATA_DISABLED=true
step "runbook 3.1 steps 2-3: ecr-push of a built image (an OCI layout) to ECR (moto + the registry)"
python3 bench/gen-oci.py "$work/control-center.oci" 12 3 >&2
python3 bench/gen-oci.py "$work/other.oci" 4 1 >&2
.rig/venv/bin/python -c 'import boto3; boto3.client("ecr").create_repository(repositoryName="afu9/control-center", imageTagMutability="IMMUTABLE")'
push=("$bin/ecr-push" --repository afu9/control-center --registry-url "$DEPLOY_TEST_REGISTRY_URL" --release v0.4.0 --sha 22cdb6a41c42366ad165a0fb4c96282304f6f7ae --tag "{version}" --tag "sha-{sha7}")
"${push[@]}" --source "$work/control-center.oci"
step "re-run of the same push: nothing uploaded, no error on the IMMUTABLE tags"
"${push[@]}" --source "$work/control-center.oci"
step "another image under the same IMMUTABLE version tag: refused, nothing pushed, exit 1"
set +e
"${push[@]}" --source "$work/other.oci"
code=$?
set -e
echo "exit code: $code" >&2
[[ $code -eq 1 ]] || { echo "demo: expected exit 1" >&2; exit 1; }

export API_TOKEN="demo-token-$RANDOM$RANDOM"
step "starting the stand-in Control Center service"
"$bin/standin" --token "$API_TOKEN" >"$work/url" &
standin_pid=$!
for _ in $(seq 50); do [[ -s "$work/url" ]] && break; sleep 0.1; done
url="$(head -n1 "$work/url")"
[[ -n "$url" ]] || { echo "demo: the stand-in did not start" >&2; exit 1; }
echo "service at $url" >&2

step "a local incoming webhook that records what it gets (the stakeholders' channel, for --notify)"
python3 -u - "$work/hook.log" >"$work/hook.url" <<'PY' &
import http.server, sys
log = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with open(log, "ab") as f:
            f.write(body + b"\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(f"http://127.0.0.1:{s.server_address[1]}", flush=True)
s.serve_forever()
PY
hook_pid=$!
for _ in $(seq 50); do [[ -s "$work/hook.url" ]] && break; sleep 0.1; done
# The path is the webhook's secret, as in Slack's URLs: masked, never printed.
export DEPLOY_NOTIFY_URL="$(head -n1 "$work/hook.url")/services/T0DEMO/B0DEMO/demo-hook-secret-$RANDOM"
echo "webhook at $(head -n1 "$work/hook.url") (its path is a secret)" >&2
export SMOKE_PASSWORD="standin-password"
mkdir -p "$work/reports"

step "creating staging in moto: cluster afu9-staging, four services on task definition revision 1, an alarm"
.rig/venv/bin/python - <<'PY'
import boto3
ecs = boto3.client("ecs")
cw = boto3.client("cloudwatch")
ecs.create_cluster(clusterName="afu9-staging")
for svc in ["control-center", "mcp-github", "mcp-deploy", "mcp-observability"]:
    for tag in ["v0.3.9", "v0.4.0"]:
        ecs.register_task_definition(family=f"afu9-{svc}", containerDefinitions=[
            {"name": svc, "image": f"123456789012.dkr.ecr.eu-central-1.amazonaws.com/afu9/{svc}:{tag}", "memory": 512}])
    ecs.create_service(cluster="afu9-staging", serviceName=svc, taskDefinition=f"afu9-{svc}:1", desiredCount=1)
cw.put_metric_alarm(AlarmName="afu9-staging-5xx", Namespace="AWS/ApplicationELB", MetricName="HTTPCode_Target_5XX_Count",
    Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=5, ComparisonOperator="GreaterThanThreshold")
cw.set_alarm_state(AlarmName="afu9-staging-5xx", StateValue="OK", StateReason="demo")
PY

cd "$work"
cat >deploy.toml <<TOML
[defaults]
region = "eu-central-1"

[environments.staging]
base_url = "$url"
cluster = "afu9-staging"
services = ["control-center", "mcp-github", "mcp-deploy", "mcp-observability"]
load_balancer = "app/afu9-staging-alb/123456"
alarms = { prefix = "afu9-staging-" }

[health]
wait = "30s"
interval = "1s"
success_threshold = 2

[[health.checks]]
name = "Control Center health"
path = "/api/health"
status = 200

[[health.checks]]
name = "Control Center readiness"
path = "/api/ready"
assert = [".ready == true"]

[[health.checks]]
name = "MCP servers"
path = "/api/mcp/health"
assert = ['.status == "healthy"']

[[smoke.checks]]
name = "Homepage"
path = "/"

[[smoke.checks]]
name = "API health"
path = "/api/health"
assert = ['.status == "ok"']

[[smoke.checks]]
name = "Workflow API"
path = "/api/workflows"
headers = { Authorization = "Bearer \${API_TOKEN}" }
assert = [".workflows | length > 0"]

# Chained: log in with a password from the environment, capture the session token (secret),
# call the API with it.
[[smoke.checks]]
name = "Log in"
path = "/api/login"
method = "POST"
headers = { Content-Type = "application/json" }
body = '{"user": "smoke", "password": "\${SMOKE_PASSWORD}"}'
capture = { session = { jq = ".token", secret = true } }

[[smoke.checks]]
name = "Workflow API (logged in)"
path = "/api/workflows"
headers = { Authorization = "Bearer {{session}}" }
assert = [".workflows != null"]
TOML
echo "deploy.toml written in $work" >&2

step "health-check -e staging --ecs --expect-task-definition afu9-control-center:1 --expect-version 22cdb6a --alb-5xx-threshold 5 --emit-metric (--notify from DEPLOY_NOTIFY_URL)"
"$bin/health-check" -e staging --ecs --expect-task-definition control-center=afu9-control-center:1 \
    --expect-version 22cdb6a --alb-5xx-threshold 5 --emit-metric --report "$work/reports/health-staging.json"
step "what the stakeholders' webhook received (Slack's format)"
jq -r .text "$work/hook.log" >&2

step "smoke-test -e staging --junit smoke.xml   (bearer token from \$API_TOKEN; a login's token captured as a secret; neither printed)"
env -u DEPLOY_NOTIFY_URL "$bin/smoke-test" -e staging --junit smoke.xml --report "$work/reports/smoke-staging.json"
grep -c "<testcase" smoke.xml | xargs printf 'JUnit: %s test cases in smoke.xml\n' >&2

step "an https check whose certificate expires in 5 days: a warning naming host, subject and date (--cert-warn 14 by default)"
mkdir -p "$work/tls/www/api"
echo '{"status":"ok"}' >"$work/tls/www/api/health"
(
    cd "$work/tls"
    ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
    openssl req -x509 -nodes -days 2 "${ec[@]}" -keyout ca.key -out ca.pem -subj "/CN=demo CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    openssl req -nodes "${ec[@]}" -keyout server.key -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 5 -out server.pem \
        -extfile ext.cnf 2>/dev/null
)
python3 -u - "$work/tls" >"$work/tls/url" <<'PY' &
import functools, http.server, ssl, sys
d = sys.argv[1]
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(H, directory=d + "/www"))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(d + "/server.pem", d + "/server.key")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(f"https://127.0.0.1:{srv.server_address[1]}", flush=True)
srv.serve_forever()
PY
tls_pid=$!
for _ in $(seq 50); do [[ -s "$work/tls/url" ]] && break; sleep 0.1; done
printf '[[smoke.checks]]\nname = "TLS health"\npath = "/api/health"\n' >"$work/tls/suite.toml"
env -u DEPLOY_NOTIFY_URL SSL_CERT_FILE="$work/tls/ca.pem" \
    "$bin/smoke-test" --base-url "$(head -n1 "$work/tls/url")" --suite "$work/tls/suite.toml"

step "the service loses readiness and mcp-github goes down: health-check fails at its deadline, exit 1"
curl -fsS -X POST -H 'content-type: application/json' \
    -d "{\"token\":\"$API_TOKEN\",\"ready\":false,\"mcp_down\":[\"mcp-github\"]}" "$url/__standin/behaviour"
set +e
GITHUB_ACTIONS=true GITHUB_STEP_SUMMARY="$work/summary.md" GITHUB_OUTPUT="$work/outputs" \
    "$bin/health-check" -e staging --wait 4s >/dev/null
code=$?
set -e
echo "exit code: $code" >&2
[[ $code -eq 1 ]] || { echo "demo: expected exit 1" >&2; exit 1; }
step "the job summary a workflow would show (GitHub draws the Mermaid timeline of the wait)"
cat "$work/summary.md" >&2

step "ECS: control-center updated to revision 2, but its PRIMARY deployment still runs revision 1"
curl -fsS -X POST -H 'content-type: application/json' -d "{\"token\":\"$API_TOKEN\"}" "$url/__standin/behaviour"
"$root/.rig/venv/bin/python" -c 'import boto3; boto3.client("ecs").update_service(cluster="afu9-staging", service="control-center", taskDefinition="afu9-control-center:2")'
set +e
"$bin/health-check" -e staging --ecs --service control-center --expect-task-definition afu9-control-center:2 --wait 10s
code=$?
set -e
echo "exit code: $code ('aws ecs wait services-stable' would have said stable)" >&2
[[ $code -eq 1 ]] || { echo "demo: expected exit 1" >&2; exit 1; }

step "runbook 3.3: rollback. moto cannot move a rollout, so the ECS stand-in (tests/src/ecs_standin.rs) sits in front of it"
# What moto cannot produce either: the bad revision's stopped task, as ECS reports it (for "why it failed").
cat >"$work/list-tasks.json" <<'JSON'
{ "taskArns": ["arn:aws:ecs:eu-central-1:123456789012:task/afu9-staging/0f3c9d2e"] }
JSON
cat >"$work/describe-tasks.json" <<'JSON'
{ "failures": [], "tasks": [{
  "taskArn": "arn:aws:ecs:eu-central-1:123456789012:task/afu9-staging/0f3c9d2e",
  "taskDefinitionArn": "arn:aws:ecs:eu-central-1:123456789012:task-definition/afu9-control-center:3",
  "lastStatus": "STOPPED", "stopCode": "EssentialContainerExited",
  "stoppedReason": "Essential container in task exited",
  "containers": [{ "name": "control-center", "exitCode": 1, "lastStatus": "STOPPED" }] }] }
JSON
"$bin/ecs-standin" --moto "$DEPLOY_TEST_MOTO_URL" --answer "ListTasks:control-center=$work/list-tasks.json" \
    --answer "DescribeTasks=$work/describe-tasks.json" >"$work/ecs-url" &
ecs_pid=$!
for _ in $(seq 50); do [[ -s "$work/ecs-url" ]] && break; sleep 0.1; done
export AWS_ENDPOINT_URL="$(head -n1 "$work/ecs-url")"
cat >>deploy.toml <<TOML

[rollback]
interval = "500ms"
wait = "2m"
incident_log_group = "/afu9/incidents"
changelog = "CHANGELOG.md"
TOML
"$root/.rig/venv/bin/python" - <<'PY'
import os, boto3
ecs = boto3.client("ecs", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
ecr = boto3.client("ecr")
for svc in ["control-center", "mcp-github", "mcp-deploy", "mcp-observability"]:
    ecs.update_service(cluster="afu9-staging", service=svc, taskDefinition=f"afu9-{svc}:1")
    # The images the revisions name, as ECR lists them (the registry and moto do not know of each other).
    try:
        ecr.create_repository(repositoryName=f"afu9/{svc}")
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    for n, tag in enumerate(["v0.3.9", "v0.4.1"]):
        digest = "sha256:%064x" % (hash((svc, tag)) & (2**256 - 1))
        manifest = '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"%s"},"layers":[]}' % digest
        ecr.put_image(repositoryName=f"afu9/{svc}", imageManifest=manifest, imageTag=tag, imageDigest=digest)
PY
step "a good deploy (v0.3.9, revision 1 of each service): health-check --ecs --mark-verified tags the revisions verified"
"$bin/health-check" -e staging --ecs --expect-version 22cdb6a41c42366ad165a0fb4c96282304f6f7ae --mark-verified
step "the next deploy (v0.4.1, revision 3; what cdk deploy does) breaks readiness"
"$root/.rig/venv/bin/python" - <<'PY'
import os, boto3
ecs = boto3.client("ecs", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
logs = boto3.client("logs")
logs.create_log_group(logGroupName="/ecs/afu9-staging")
for svc in ["control-center", "mcp-github", "mcp-deploy", "mcp-observability"]:
    ecs.register_task_definition(family=f"afu9-{svc}", containerDefinitions=[
        {"name": svc, "image": f"123456789012.dkr.ecr.eu-central-1.amazonaws.com/afu9/{svc}:v0.4.1", "memory": 512,
         "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/afu9-staging", "awslogs-stream-prefix": "ecs", "awslogs-region": "eu-central-1"}}}])
    ecs.update_service(cluster="afu9-staging", service=svc, taskDefinition=f"afu9-{svc}:3")
# What the crashed control-center task logged (awslogs: PREFIX/CONTAINER/TASK_ID).
import time
logs.create_log_stream(logGroupName="/ecs/afu9-staging", logStreamName="ecs/control-center/0f3c9d2e")
now = int(time.time() * 1000)
lines = ["Starting Control Center v0.4.1", "Connecting to database afu9-staging.cluster-x.eu-central-1.rds.amazonaws.com:5432",
         "Error: connect ETIMEDOUT 10.0.3.12:5432", "    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)", "Database not reachable, exiting"]
logs.put_log_events(logGroupName="/ecs/afu9-staging", logStreamName="ecs/control-center/0f3c9d2e",
    logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(lines)])
PY
deploy_start="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
curl -fsS -X POST -H 'content-type: application/json' \
    -d "{\"token\":\"$API_TOKEN\",\"ready\":false}" "$url/__standin/behaviour"
set +e
"$bin/health-check" -e staging --ecs --wait 4s --emit-metric
code=$?
set -e
echo "exit code: $code: the deploy is bad, and the report says why (the runbook's section 8 hint included)" >&2
[[ $code -eq 1 ]] || { echo "demo: expected exit 1" >&2; exit 1; }
step "rollback -e staging: plan all four services (revision 2 is unverified, revision 1 verified), roll back, wait, verify, record"
# The stand-in service cannot know which revision runs: it turns ready again as the old tasks would.
( sleep 2; curl -fsS -X POST -H 'content-type: application/json' -d "{\"token\":\"$API_TOKEN\"}" "$url/__standin/behaviour" >/dev/null ) &
# A deploy starting while the rollback runs: its first step, health-check --preflight, finds the
# incident open (rollback records it as in-progress before its first change) and refuses.
( sleep 1.5; set +e; "$bin/health-check" -e staging --preflight >preflight.out 2>&1; echo "exit code: $?" >>preflight.out ) &
preflight_pid=$!
GITHUB_ACTIONS=true GITHUB_STEP_SUMMARY="$work/rollback-summary.md" GITHUB_OUTPUT="$work/outputs" \
    "$bin/rollback" -e staging --reason "readiness lost after v0.4.1" --incident-start "$deploy_start" \
    --incident-file incident.json --emit-metric --report "$work/reports/rollback.json" 2> >(grep -v '^::' >&2)
wait "$preflight_pid" || true
step "meanwhile, a deploy started during the rollback: health-check -e staging --preflight refused to roll forward over it"
cat preflight.out >&2
step "rollback's picture in its job summary: per service, planned, rolling until steady, verified"
sed -n '/^```mermaid/,/^```$/p' "$work/rollback-summary.md" >&2
step "what the stakeholders' webhook received of the rollback"
tail -n1 "$work/hook.log" | jq -r .text >&2
step "after the rollback recovered: health-check -e staging --preflight finds no open incident, a deploy may go"
"$bin/health-check" -e staging --preflight
step "the incident record (also in CloudWatch Logs /afu9/incidents, stream incidents, and CHANGELOG.md)"
cat incident.json >&2
printf 'MTTR: %s s\n' "$(jq -r .mttr_seconds incident.json)" >&2
cat CHANGELOG.md >&2
step "runbook 7: the KPI report from the Availability metric and the incident records this demo wrote"
GITHUB_ACTIONS=true GITHUB_STEP_SUMMARY="$work/kpi-summary.md" GITHUB_OUTPUT="$work/outputs" \
    "$bin/health-check" -e staging --kpi 1d --uptime-target 40 --mttr-target 15m 2> >(grep -v '^::' >&2)
step "the KPI picture in its job summary: availability per day, the target as a line, incidents marked"
sed -n '/^```mermaid/,/^```$/p' "$work/kpi-summary.md" >&2
kill "$ecs_pid" 2>/dev/null || true

step "runbook 6: the deployment checklist from the reports this job's steps wrote (health-check --checklist)"
env -u DEPLOY_NOTIFY_URL "$bin/health-check" --checklist "$work/reports"

leaks=$(cat "$work"/summary.md "$work"/*-summary.md "$work"/outputs "$work"/reports/*.json smoke.xml incident.json preflight.out |
    grep -c -e "$API_TOKEN" -e "demo-hook-secret" || true)
step "demo done: the API token and the webhook's secret appeared $leaks times in summaries, outputs, reports and JUnit"
