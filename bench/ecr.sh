#!/usr/bin/env bash
# Benchmark of ecr-push (issue: ecr-push), in one run, against the local registry (htpasswd with
# moto's ECR token) and moto: a 200 MB, 5-layer image pushed cold into an empty repository by
# ecr-push and by `skopeo copy`, then the re-push of the unchanged image by both; and ecr-push's
# peak RSS pushing a 1 GB image; then 4 images of 50 MB pushed in one run against one of 200 MB
# (and, for context, against one of 200 MB in as many layers).
# Targets: cold at least as fast as skopeo (aim 1.3x), re-push <= 25 ms (issue 20), peak RSS under
# 64 MB for 1 GB, 4x50 MB <= 1.1x the time of 1x200 MB. BENCH_RESULTS=FILE also appends the rows for
# scripts/bench.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_runs 3
need_gnu_time
rig_up
build_release
bin="$bin/ecr-push"

work="${BENCH_DIR:-$root/.rig/bench-ecr}"
[[ -d "$work/img200" ]] || python3 bench/gen-oci.py "$work/img200" 200 5 >&2
[[ -d "$work/img1g" ]] || python3 bench/gen-oci.py "$work/img1g" 1024 5 >&2

aws_env "$DEPLOY_TEST_MOTO_URL"
mkrepo() { .rig/venv/bin/python -c "import boto3,sys; boto3.client('ecr').create_repository(repositoryName=sys.argv[1], imageTagMutability='MUTABLE')" "$1"; }
host="${DEPLOY_TEST_REGISTRY_URL#http://}"
creds="$DEPLOY_TEST_REGISTRY_USER:$DEPLOY_TEST_REGISTRY_PASSWORD"
# Times from bash's own clock ($EPOCHREALTIME): no `date` process inside what is timed.
ours=() theirs=() ours_re=() theirs_re=()
for i in $(seq "$RUNS"); do
    a="bench/ecr-push-$RANDOM$i" b="bench/skopeo-$RANDOM$i"
    mkrepo "$a"; mkrepo "$b"
    t=$EPOCHREALTIME; "$bin" --repository "$a" --source "$work/img200" --tag v1 --registry-url "$DEPLOY_TEST_REGISTRY_URL" >/dev/null 2>&1
    ours+=("$(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')")
    # skopeo remembers where it saw each blob (its blob-info cache) and mounts it from an earlier
    # repository instead of uploading: clear it so the cold push really uploads, as ecr-push does.
    rm -rf /var/lib/containers/cache "${HOME:-/root}/.local/share/containers/cache"
    t=$EPOCHREALTIME; skopeo copy -q --dest-tls-verify=false --dest-creds "$creds" "oci:$work/img200:latest" "docker://$host/$b:v1"
    theirs+=("$(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')")
    t=$EPOCHREALTIME; "$bin" --repository "$a" --source "$work/img200" --tag v1 --registry-url "$DEPLOY_TEST_REGISTRY_URL" >/dev/null 2>&1
    ours_re+=("$(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')")
    t=$EPOCHREALTIME; skopeo copy -q --dest-tls-verify=false --dest-creds "$creds" "oci:$work/img200:latest" "docker://$host/$b:v1"
    theirs_re+=("$(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')")
done
# 4 images of 50 MB (5 layers each, no blob shared) in one run, against one image of 200 MB in 5
# layers (the target), and against one of 200 MB in 20 layers: the same 20 layers of 10 MB, so that
# row differs only in the number of images. The registry's work grows with the number of blobs
# (24 against 6: each is a HEAD, a POST and a PUT, each checked against htpasswd's bcrypt, about
# 2.5 ms of the registry's CPU a request here), which the second row holds equal.
for k in 1 2 3 4; do [[ -d "$work/img50-$k" ]] || python3 bench/gen-oci.py "$work/img50-$k" 50 5 >&2; done
[[ -d "$work/img200x20" ]] || python3 bench/gen-oci.py "$work/img200x20" 200 20 >&2
# reg_cpu : the registry's CPU seconds so far (user + system, from /proc), to show where the time goes.
reg_pid="$(cat "$root/.rig/pids/registry.pid")"
tck="$(getconf CLK_TCK)"
reg_cpu() { awk -v t="$tck" '{ sub(/^.*\) /, ""); print ($12 + $13) / t }' "/proc/$reg_pid/stat"; }
four=() one=() one20=() four_cpu=() one_cpu=()
for i in $(seq "$RUNS"); do
    id="$RANDOM$i"
    {
        for k in 1 2 3 4; do
            mkrepo "bench/four-$id-$k"
            printf '[images.img%s]\nrepository = "bench/four-%s-%s"\nsource = "%s"\ntags = ["v1"]\n\n' "$k" "$id" "$k" "$work/img50-$k"
        done
    } >"$work/four.toml"
    c=$(reg_cpu); t=$EPOCHREALTIME; "$bin" --config "$work/four.toml" --registry-url "$DEPLOY_TEST_REGISTRY_URL" >/dev/null 2>"$work/four.err" ||
        { cat "$work/four.err" >&2; exit 1; }
    four+=("$(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')")
    four_cpu+=("$(awk -v a="$c" -v b="$(reg_cpu)" 'BEGIN { print b - a }')")
    mkrepo "bench/one-$id"
    c=$(reg_cpu); t=$EPOCHREALTIME; "$bin" --repository "bench/one-$id" --source "$work/img200" --tag v1 --registry-url "$DEPLOY_TEST_REGISTRY_URL" >/dev/null 2>&1
    one+=("$(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')")
    one_cpu+=("$(awk -v a="$c" -v b="$(reg_cpu)" 'BEGIN { print b - a }')")
    mkrepo "bench/one20-$id"
    t=$EPOCHREALTIME; "$bin" --repository "bench/one20-$id" --source "$work/img200x20" --tag v1 --registry-url "$DEPLOY_TEST_REGISTRY_URL" >/dev/null 2>&1
    one20+=("$(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')")
done
big="bench/ecr-push-1g-$RANDOM"; mkrepo "$big"
rss_kb="$(/usr/bin/time -f %M "$bin" --repository "$big" --source "$work/img1g" --tag v1 --registry-url "$DEPLOY_TEST_REGISTRY_URL" 2>&1 >/dev/null | tail -n1)"

python3 - "$rss_kb" "${ours[*]}" "${theirs[*]}" "${ours_re[*]}" "${theirs_re[*]}" "${four[*]}" "${one[*]}" "${one20[*]}" "${four_cpu[*]}" "${one_cpu[*]}" <<'PY'
import sys, statistics as st
rss = int(sys.argv[1])
o, t, ore, tre, four, one, one20, fourc, onec = ([float(x) for x in a.split()] for a in sys.argv[2:11])
m = lambda v: st.mean(v)
print("| benchmark | mean | runs |")
print("|---|---|---|")
print(f"| ecr-push cold, 200 MB / 5 layers | {m(o):.2f} s ({200/m(o):.0f} MB/s) | {len(o)} |")
print(f"| skopeo copy cold, same image | {m(t):.2f} s ({200/m(t):.0f} MB/s) | {len(t)} |")
print(f"| ecr-push re-push (unchanged) | {m(ore)*1000:.0f} ms | {len(ore)} |")
print(f"| skopeo copy re-push (unchanged) | {m(tre)*1000:.0f} ms | {len(tre)} |")
print(f"| ecr-push peak RSS, 1 GB / 5 layers | {rss/1024:.1f} MB | 1 |")
print(f"| ecr-push cold, 4 images of 50 MB in one run | {m(four):.2f} s | {len(four)} |")
print(f"| ecr-push cold, 1 image of 200 MB (same runs) | {m(one):.2f} s | {len(one)} |")
print(f"| ecr-push cold, 1 image of 200 MB in 20 layers (same runs) | {m(one20):.2f} s | {len(one20)} |")
print(f"| the registry's CPU, 4 images of 50 MB / 1 image of 200 MB | {m(fourc):.2f} s / {m(onec):.2f} s | {len(fourc)} |")
print()
print(f"cold: ecr-push is {m(t)/m(o):.2f}x skopeo's speed (target >= 1.0, aim 1.3); re-push {m(ore)*1000:.0f} ms (target <= 25 ms); RSS {rss/1024:.1f} MB (target < 64 MB); 4x50 MB is {m(four)/m(one):.2f}x 1x200 MB (target <= 1.1), {m(four)/m(one20):.2f}x 1x200 MB in as many layers")
import os
out = os.environ.get("BENCH_RESULTS")
if out:
    yes = lambda b: "yes" if b else "no"
    with open(out, "a") as f:
        f.write(f"ecr: cold push 200 MB vs skopeo\t{m(o):.2f}\t{m(t):.2f}\ts\tratio <= 1.0\t{yes(m(o) <= m(t))}\n")
        f.write(f"ecr: re-push unchanged vs skopeo\t{m(ore)*1000:.0f}\t{m(tre)*1000:.0f}\tms\t<= 25 ms\t{yes(m(ore) <= 0.025)}\n")
        f.write(f"ecr: 4 images of 50 MB vs 1 of 200 MB\t{m(four):.2f}\t{m(one):.2f}\ts\tratio <= 1.1\t{yes(m(four) <= 1.1 * m(one))}\n")
        f.write(f"ecr: the same vs 1 of 200 MB in as many layers (20)\t{m(four):.2f}\t{m(one20):.2f}\ts\tcontext: images only\t-\n")
        f.write(f"ecr: the registry's CPU, 4 x 50 MB vs 1 x 200 MB\t{m(fourc):.2f}\t{m(onec):.2f}\ts\tcontext: CPU-seconds\t-\n")
        f.write(f"ecr: peak RSS, 1 GB push\t{rss/1024:.1f}\t-\tMB\t< 64 MB\t{yes(rss/1024 < 64)}\n")
PY
