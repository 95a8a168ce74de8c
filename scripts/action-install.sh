#!/usr/bin/env bash
# Step 1 of action.yml: put the requested tool's binary in place and output its path as `bin`.
# Order: a given bin-dir; else a published release whose checksum is in this repository's
# checksums.txt (downloaded over https and verified); else a build from this action's source.
set -Eeuo pipefail

fail() {
    printf '::error title=deploy-action::%s\n' "$1"
    exit 2
}

tool="${INPUT_TOOL:-}"
case "$tool" in
sync-check | ecr-push | health-check | smoke-test | rollback) ;;
*) fail "input 'tool' must be one of sync-check, ecr-push, health-check, smoke-test, rollback (got '${tool}')" ;;
esac

action_dir="${GITHUB_ACTION_PATH:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

emit() {
    "$1" --version >/dev/null || fail "installed $tool does not run: $1"
    printf 'bin=%s\n' "$1" >>"${GITHUB_OUTPUT:-/dev/null}"
    printf 'deploy-action: using %s\n' "$1" >&2
}

if [[ -n "${INPUT_BIN_DIR:-}" ]]; then
    bin="${INPUT_BIN_DIR%/}/$tool"
    [[ -x "$bin" ]] || fail "input 'bin-dir': no executable $tool in ${INPUT_BIN_DIR}"
    emit "$bin"
    exit 0
fi

version="${INPUT_VERSION:-${ACTION_REF:-}}"
if [[ -n "$version" && ! "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$ && ! "$version" =~ ^[0-9A-Za-z._/-]+$ ]]; then
    fail "input 'version' is not a version or ref: '${version}'"
fi

case "$(uname -s)-$(uname -m)" in
Linux-x86_64) target=x86_64-unknown-linux-gnu ;;
Linux-aarch64 | Linux-arm64) target=aarch64-unknown-linux-gnu ;;
*) target="" ;;
esac

asset="deploy-action-${version}-${target}.tar.gz"
sum=""
if [[ -n "$target" && "$version" =~ ^v[0-9] && -f "$action_dir/checksums.txt" ]]; then
    sum="$(awk -v a="$asset" '$2 == a { print $1 }' "$action_dir/checksums.txt")"
fi

cache="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/deploy-action"
if [[ -n "$sum" ]]; then
    dir="$cache/$version/$target"
    if [[ ! -x "$dir/$tool" ]]; then
        tmp="$(mktemp -d)"
        curl --proto '=https' --tlsv1.2 -fsSL --retry 3 --retry-delay 2 \
            -o "$tmp/$asset" "https://github.com/afu9/deploy-action/releases/download/${version}/${asset}" ||
            fail "couldn't download $asset"
        echo "$sum  $tmp/$asset" | sha256sum --check --strict --quiet ||
            fail "checksum mismatch for $asset: refusing to run it"
        mkdir -p "$dir"
        tar -xzf "$tmp/$asset" -C "$dir"
        rm -rf "$tmp"
    fi
    emit "$dir/$tool"
    exit 0
fi

# No checksummed release for this ref: build from the action's own source.
command -v cargo >/dev/null || fail "no release with a known checksum for '${version:-this ref}' and no cargo to build from source; pin a released version"
printf 'deploy-action: no checksummed release for %s; building %s from source\n' "${version:-this ref}" "$tool" >&2
export CARGO_TARGET_DIR="$cache/target"
cargo build --release --locked --quiet --manifest-path "$action_dir/Cargo.toml" -p "$tool" ||
    fail "building $tool from source failed"
emit "$CARGO_TARGET_DIR/release/$tool"
