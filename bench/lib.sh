# What every bench script starts with, sourced (`source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"`):
# the project root as the working directory and $root, cargo on PATH, $RUNS (the script's default
# unless set), and the helpers below. Not run on its own.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
export PATH="${HOME:-/root}/.cargo/bin:$PATH"

# bench_runs DEFAULT : $RUNS, else DEFAULT.
bench_runs() { RUNS="${RUNS:-$1}"; }

# need_gnu_time : /usr/bin/time (peak RSS with -f %M), installed from Debian if missing.
need_gnu_time() {
    [[ -x /usr/bin/time ]] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time; }
}

# rig_up : the stand-ins installed and started, their URLs in the environment (DEPLOY_TEST_*), and
# stopped again when the script exits (with `on_exit` for the script's own clean-up).
rig_up() {
    bash scripts/rig.sh install >/dev/null
    bash scripts/rig.sh up >/dev/null
    eval "$(bash scripts/rig.sh env)"
    BENCH_RIG_UP=1
}

# on_exit CMD : run CMD (a string, as for trap) when the script exits, before the rig is stopped.
BENCH_ON_EXIT=":"
on_exit() { BENCH_ON_EXIT="$1"; }
bench_exit() {
    eval "$BENCH_ON_EXIT" || true
    if [[ "${BENCH_RIG_UP:-0}" == 1 ]]; then bash "$root/scripts/rig.sh" down >/dev/null 2>&1 || true; fi
}
trap bench_exit EXIT

# build_release [CARGO ARGS...] : the release build of deploy-action (and what else is named), the
# tools linked under target/release; $bin is that directory.
build_release() {
    cargo build --release --quiet -p deploy-action "$@"
    bash scripts/link-tools.sh "$root/target/release"
    bin="$root/target/release"
}

# aws_env URL : the AWS SDK pointed at URL with the bench's fixed credentials and region.
aws_env() {
    export AWS_ENDPOINT_URL="$1" AWS_REGION=eu-central-1 AWS_DEFAULT_REGION=eu-central-1 \
        AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true
}

# median N... : the median of the numbers given.
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
