#!/usr/bin/env bash
# Benchmark of ecr-push (issue: ecr-push), in one run, against the local registry (htpasswd with
# moto's ECR token) and moto: a 200 MB, 5-layer image pushed cold into an empty repository by
# ecr-push and by `skopeo copy`, then the re-push of the unchanged image by both; and ecr-push's
# peak RSS pushing a 1 GB image. Targets: cold at least as fast as skopeo (aim 1.3x), re-push
# under 0.2 s, peak RSS under 64 MB for 1 GB. BENCH_RESULTS=FILE also appends the rows for
# scripts/bench.sh.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
export PATH="${HOME:-/root}/.cargo/bin:$PATH"
RUNS="${RUNS:-3}"

bash scripts/rig.sh install
trap 'bash "$root/scripts/rig.sh" down' EXIT
bash scripts/rig.sh up
eval "$(bash scripts/rig.sh env)"
[[ -x /usr/bin/time ]] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time; }
cargo build --release --quiet -p deploy-action
bash scripts/link-tools.sh "$root/target/release"
bin="$root/target/release/ecr-push"

work="${BENCH_DIR:-$root/.rig/bench-ecr}"
[[ -d "$work/img200" ]] || python3 bench/gen-oci.py "$work/img200" 200 5 >&2
[[ -d "$work/img1g" ]] || python3 bench/gen-oci.py "$work/img1g" 1024 5 >&2

export AWS_ENDPOINT_URL="$DEPLOY_TEST_MOTO_URL" AWS_REGION=eu-central-1 AWS_DEFAULT_REGION=eu-central-1 \
    AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true
mkrepo() { .rig/venv/bin/python -c "import boto3,sys; boto3.client('ecr').create_repository(repositoryName=sys.argv[1], imageTagMutability='MUTABLE')" "$1"; }
host="${DEPLOY_TEST_REGISTRY_URL#http://}"
creds="$DEPLOY_TEST_REGISTRY_USER:$DEPLOY_TEST_REGISTRY_PASSWORD"
now() { date +%s.%N; }
ours=() theirs=() ours_re=() theirs_re=()
for i in $(seq "$RUNS"); do
    a="bench/ecr-push-$RANDOM$i" b="bench/skopeo-$RANDOM$i"
    mkrepo "$a"; mkrepo "$b"
    t=$(now); "$bin" --repository "$a" --source "$work/img200" --tag v1 --registry-url "$DEPLOY_TEST_REGISTRY_URL" >/dev/null 2>&1
    ours+=("$(awk -v a="$t" -v b="$(now)" 'BEGIN { print b - a }')")
    # skopeo remembers where it saw each blob (its blob-info cache) and mounts it from an earlier
    # repository instead of uploading: clear it so the cold push really uploads, as ecr-push does.
    rm -rf /var/lib/containers/cache "${HOME:-/root}/.local/share/containers/cache"
    t=$(now); skopeo copy -q --dest-tls-verify=false --dest-creds "$creds" "oci:$work/img200:latest" "docker://$host/$b:v1"
    theirs+=("$(awk -v a="$t" -v b="$(now)" 'BEGIN { print b - a }')")
    t=$(now); "$bin" --repository "$a" --source "$work/img200" --tag v1 --registry-url "$DEPLOY_TEST_REGISTRY_URL" >/dev/null 2>&1
    ours_re+=("$(awk -v a="$t" -v b="$(now)" 'BEGIN { print b - a }')")
    t=$(now); skopeo copy -q --dest-tls-verify=false --dest-creds "$creds" "oci:$work/img200:latest" "docker://$host/$b:v1"
    theirs_re+=("$(awk -v a="$t" -v b="$(now)" 'BEGIN { print b - a }')")
done
big="bench/ecr-push-1g-$RANDOM"; mkrepo "$big"
rss_kb="$(/usr/bin/time -f %M "$bin" --repository "$big" --source "$work/img1g" --tag v1 --registry-url "$DEPLOY_TEST_REGISTRY_URL" 2>&1 >/dev/null | tail -n1)"

python3 - "$rss_kb" "${ours[*]}" "${theirs[*]}" "${ours_re[*]}" "${theirs_re[*]}" <<'PY'
import sys, statistics as st
rss = int(sys.argv[1])
o, t, ore, tre = ([float(x) for x in a.split()] for a in sys.argv[2:6])
m = lambda v: st.mean(v)
print("| benchmark | mean | runs |")
print("|---|---|---|")
print(f"| ecr-push cold, 200 MB / 5 layers | {m(o):.2f} s ({200/m(o):.0f} MB/s) | {len(o)} |")
print(f"| skopeo copy cold, same image | {m(t):.2f} s ({200/m(t):.0f} MB/s) | {len(t)} |")
print(f"| ecr-push re-push (unchanged) | {m(ore)*1000:.0f} ms | {len(ore)} |")
print(f"| skopeo copy re-push (unchanged) | {m(tre)*1000:.0f} ms | {len(tre)} |")
print(f"| ecr-push peak RSS, 1 GB / 5 layers | {rss/1024:.1f} MB | 1 |")
print()
print(f"cold: ecr-push is {m(t)/m(o):.2f}x skopeo's speed (target >= 1.0, aim 1.3); re-push {m(ore)*1000:.0f} ms (target < 200 ms); RSS {rss/1024:.1f} MB (target < 64 MB)")
import os
out = os.environ.get("BENCH_RESULTS")
if out:
    yes = lambda b: "yes" if b else "no"
    with open(out, "a") as f:
        f.write(f"ecr: cold push 200 MB vs skopeo\t{m(o):.2f}\t{m(t):.2f}\ts\tratio <= 1.0\t{yes(m(o) <= m(t))}\n")
        f.write(f"ecr: re-push unchanged vs skopeo\t{m(ore)*1000:.0f}\t{m(tre)*1000:.0f}\tms\t< 200 ms\t{yes(m(ore) < 0.2)}\n")
        f.write(f"ecr: peak RSS, 1 GB push\t{rss/1024:.1f}\t-\tMB\t< 64 MB\t{yes(rss/1024 < 64)}\n")
PY
