#!/usr/bin/env bash
# The project's test command: installs and starts the stand-ins (scripts/rig.sh),
# then runs fmt, clippy, the whole cargo test suite and the zizmor lint.
#
#   scripts/test.sh [ARGS...]    ARGS are passed to `cargo test --workspace`
#   SKIP_LINT=1 scripts/test.sh  skip `cargo fmt --check` and clippy's lints (quick local loop)
#
# Runnable from any directory. The rig is always stopped on exit.
set -Eeuo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${HOME:-/root}/.cargo/bin:$PATH"

RIG=scripts/rig.sh
PHASES=()
CURRENT_PHASE=""

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# phase NAME CMD... : run CMD as a named, timed phase.
phase() {
    local name=$1 start took
    shift
    CURRENT_PHASE=$name
    start="$(now)"
    printf '\n==> [%s] %s\n' "$name" "$*" >&2
    "$@"
    took="$(elapsed "$start")"
    PHASES+=("$(printf '%-12s %6ss' "$name" "$took")")
    printf '<== [%s] ok (%ss)\n' "$name" "$took" >&2
    CURRENT_PHASE=""
}

on_exit() {
    local rc=$?
    trap - EXIT
    bash "$RIG" down || true
    if ((${#PHASES[@]})); then
        printf '\ntest.sh timings:\n' >&2
        printf '  %s\n' "${PHASES[@]}" >&2
    fi
    # The suite's closing line ("cargo test: N passed, N failed") comes last.
    if [[ -s "${RESULT_FILE:-}" ]]; then cat "$RESULT_FILE"; fi
    rm -f "${RESULT_FILE:-}"
    if ((rc != 0)); then
        printf 'test.sh: FAILED%s (exit %d)\n' "${CURRENT_PHASE:+ in phase [$CURRENT_PHASE]}" "$rc" >&2
    fi
    exit "$rc"
}
trap on_exit EXIT
RESULT_FILE="$(mktemp)"

# A CI run starts from nothing: incremental compilation would only write caches no later run
# reads (a local run keeps them).
if [[ "${CI:-}" == true ]]; then export CARGO_INCREMENTAL=0; fi

phase install bash "$RIG" install
phase rig-up bash "$RIG" up

rig_env="$(bash "$RIG" env)"
eval "$rig_env"

run_tests() {
    cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$test_log"
}
# The end-to-end tests run the tools' binaries, which `cargo test` alone does not build.
# One binary holds the five tools; their names are links to it (scripts/link-tools.sh).
if [[ "${SKIP_LINT:-0}" != 1 ]]; then
    # A minimal rustup profile has neither rustfmt nor clippy: add them (the toolchain's own).
    if ! cargo fmt --version >/dev/null 2>&1 || [[ ! -x "$(rustc --print sysroot)/bin/clippy-driver" ]]; then
        command -v rustup >/dev/null || { echo "test.sh: rustfmt/clippy missing and no rustup to add them" >&2; exit 1; }
        rustup component add rustfmt clippy >&2
    fi
    phase fmt cargo fmt --all -- --check
    # Clippy lints while the build compiles, instead of in a `cargo clippy` pass of its own:
    # that pass checks every dependency (the AWS SDK) once more, only to throw the result away.
    # clippy-driver is rustc with clippy's lints, and cargo runs it for the workspace's own
    # crates only (RUSTC_WORKSPACE_WRAPPER, which is how `cargo clippy` runs it too); CLIPPY_ARGS
    # carries what `cargo clippy -- -D warnings` passes. The same lints, on the same targets as
    # `cargo clippy --workspace --all-targets -- -D warnings`: any warning fails this phase.
    # The variables stay set, so `cargo test` below finds these builds fresh.
    RUSTC_WORKSPACE_WRAPPER="$(rustc --print sysroot)/bin/clippy-driver"
    CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
    export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
    phase build+clippy cargo build --workspace --all-targets --locked
else
    printf 'test.sh: SKIP_LINT=1: skipping cargo fmt and clippy\n' >&2
    phase build cargo build --workspace --bins --locked
fi
bash scripts/link-tools.sh target/debug
test_log="$(mktemp)"
phase test run_tests "$@"
# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "cargo test: %d passed, %d failed\n", p, f }' "$test_log" >"$RESULT_FILE"
cat "$RESULT_FILE" >&2
rm -f "$test_log"

# Any zizmor finding exits non-zero (11-14 by severity): the run fails.
# zizmor treats a plain directory as a repository root and only looks under its
# .github/workflows, so a bare `workflows-examples` argument audits nothing:
# pass its YAML files one by one (zizmor then audits each as a workflow, or as
# an action when named action.yml).
mapfile -t examples < <(find workflows-examples -type f \( -name '*.yml' -o -name '*.yaml' \) | sort)
if ((${#examples[@]} == 0)); then
    printf 'test.sh: no workflow files under workflows-examples/ to lint\n' >&2
    exit 1
fi
phase zizmor "$DEPLOY_TEST_ZIZMOR" --offline --strict-collection --config zizmor.yml action.yml .github "${examples[@]}"
