#!/usr/bin/env bash
# Step 1 of action.yml: put the requested tool's binary in place and output its path as `bin`.
#
# The tools are one binary, deploy-action, that runs the tool it is started as; the five names
# are links to it. Where it comes from, in this order:
#   1. `bin-dir`: binaries already on the machine (self-hosted runners, tests): the deploy-action
#      there (through a link of the tool's name), else the tool by its name there.
#   2. `build-from-source: true`: cargo builds it from this action's own source, in an
#      environment holding no credentials, inside a log group that says so.
#   3. The release named by `version`, else by the VERSION file next to checksums.txt (never by
#      the ref the action is used at, so @v1, @v1.2.3 and @<sha> install the same archive):
#      taken from the runner's tool cache when a completed install is there, else downloaded over
#      https, refused unless its sha256 is the one checksums.txt lists, and extracted into the
#      tool cache the way actions/tool-cache lays it out (<cache>/deploy-action/<version>/<arch>
#      plus an <arch>.complete marker), atomically, with the five links beside the binary.
# An anonymous download refused with 401/403/404 (a private or internal action repository) is
# retried once through the REST API with the github-token input (INPUT_GITHUB_TOKEN); no other
# GitHub API call is made. On failure the step writes `outcome` and `exit-code` (2: bad input or
# unsupported runner; 3: download or verification failed) and runs nothing.
set -Eeuo pipefail

out() { printf '%s=%s\n' "$1" "$2" >>"${GITHUB_OUTPUT:-/dev/null}"; }

# fail CODE MESSAGE: an error annotation, the action's outcome outputs, and exit CODE.
fail() {
    local code=$1 msg=$2
    printf '::error title=deploy-action install::%s\n' "$msg"
    out outcome "$([[ $code == 2 ]] && echo 'usage error' || echo 'dependency error')"
    out exit-code "$code"
    exit "$code"
}
# Any other command that fails (a tool cache that is not a directory, a full disk) is a failed
# install too, with the same outputs: never a bare exit 1 with nothing written.
trap 'rc=$?; [[ $BASH_SUBSHELL != 0 ]] || fail 3 "install failed at line $LINENO (exit $rc): see the line above"' ERR

tool="${INPUT_TOOL:-}"
case "$tool" in
sync-check | ecr-push | health-check | smoke-test | rollback) ;;
*) fail 2 "input 'tool' must be one of sync-check, ecr-push, health-check, smoke-test, rollback (got '${tool}')" ;;
esac
TOOLS=(sync-check ecr-push health-check smoke-test rollback)

action_dir="${GITHUB_ACTION_PATH:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
temp_root="${RUNNER_TEMP:-${TMPDIR:-/tmp}}"

# emit BIN: check that it runs, then hand it to the run step.
emit() {
    local v
    v="$("$1" --version 2>&1)" || fail 3 "the installed $tool does not run: $1: $v"
    out bin "$1"
    printf 'deploy-action: %s (%s)\n' "$v" "$1" >&2
}

# link_tools DIR: the five tool names as links to DIR/deploy-action, the one binary that holds
# them all and runs the tool it is started as (the release archive holds only it).
link_tools() {
    local t
    for t in "${TOOLS[@]}"; do
        ln -sfn deploy-action "$1/$t" || fail 3 "couldn't link $t to $1/deploy-action"
    done
}

if [[ -n "${INPUT_BIN_DIR:-}" ]]; then
    bin_dir="${INPUT_BIN_DIR%/}"
    bin="$bin_dir/$tool"
    if [[ -x "$bin_dir/deploy-action" && "$(readlink "$bin" 2>/dev/null)" != deploy-action ]]; then
        # The multi-call binary is there, and the tool's name is not a link to it (missing, as
        # in an extracted release archive, or a binary of an older build cargo left behind): a
        # link named after the tool to deploy-action, in a directory of this job's own.
        links="$temp_root/deploy-action-bin-links"
        mkdir -p "$links" || fail 3 "couldn't create $links"
        ln -sfn "$(cd "$bin_dir" && pwd)/deploy-action" "$links/$tool" || fail 3 "couldn't link $tool in $links"
        bin="$links/$tool"
    fi
    [[ -x "$bin" ]] || fail 2 "input 'bin-dir': no executable $tool (nor deploy-action) in ${INPUT_BIN_DIR}"
    emit "$bin"
    exit 0
fi

case "${INPUT_BUILD_FROM_SOURCE:-false}" in
true | false) ;;
*) fail 2 "input 'build-from-source' must be true or false (got '${INPUT_BUILD_FROM_SOURCE}')" ;;
esac

if [[ "${INPUT_BUILD_FROM_SOURCE:-false}" == true ]]; then
    command -v cargo >/dev/null ||
        fail 2 "build-from-source: true needs cargo on PATH (install a Rust toolchain first, e.g. with rustup)"
    target_dir="$temp_root/deploy-action-build"
    printf '::group::deploy-action: building %s from source (build-from-source: true)\n' "$tool"
    printf 'Building from %s with cargo build --release --locked, in an environment without credentials.\n' "$action_dir"
    # Only what cargo needs: no AWS credentials, no GitHub or other tokens reach the build
    # (build scripts of dependencies run with this environment).
    keep=(PATH HOME CARGO_HOME RUSTUP_HOME RUSTUP_TOOLCHAIN TMPDIR LANG
        http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY)
    clean=(CARGO_TARGET_DIR="$target_dir" CARGO_TERM_COLOR=never)
    for v in "${keep[@]}"; do
        if [[ -n "${!v:-}" ]]; then clean+=("$v=${!v}"); fi
    done
    if ! env -i "${clean[@]}" cargo build --release --locked \
        --manifest-path "$action_dir/Cargo.toml" -p deploy-action >&2; then
        printf '::endgroup::\n'
        fail 3 "building $tool from source failed (the log group above has cargo's output)"
    fi
    printf '::endgroup::\n'
    link_tools "$target_dir/release"
    emit "$target_dir/release/$tool"
    exit 0
fi

# ---- the release: version, target, checksum -------------------------------------------------
if [[ -n "${INPUT_VERSION:-}" ]]; then
    version="$INPUT_VERSION"
    from="input 'version'"
else
    [[ -f "$action_dir/VERSION" ]] || fail 2 "this action has no VERSION file ($action_dir/VERSION): this ref is not a release and names none (before the first release there is none); use the action at a release tag (@v1), pass version: of a release in its checksums.txt, or build-from-source: true"
    version="$(tr -d ' \t\r\n' <"$action_dir/VERSION")"
    from="the action's VERSION file"
fi
[[ "$version" =~ ^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] ||
    fail 2 "$from is not a release version like v1.2.3: '${version}'"
version="v${version#v}"

os="${RUNNER_OS:-$(uname -s)}"
arch="${RUNNER_ARCH:-$(uname -m)}"
case "$os/$arch" in
Linux/X64 | Linux/x86_64) target=x86_64-unknown-linux-musl cache_arch=x64 ;;
Linux/ARM64 | Linux/aarch64 | Linux/arm64) target=aarch64-unknown-linux-musl cache_arch=arm64 ;;
macOS/ARM64 | Darwin/arm64) target=aarch64-apple-darwin cache_arch=arm64 ;;
macOS/X64 | Darwin/x86_64) target=x86_64-apple-darwin cache_arch=x64 ;;
*) fail 2 "no release binary for this runner (RUNNER_OS=$os, RUNNER_ARCH=$arch): releases cover Linux X64/ARM64 and macOS X64/ARM64; use bin-dir or build-from-source: true" ;;
esac

asset="deploy-action-${version}-${target}.tar.gz"
sums="$action_dir/checksums.txt"
sum=""
if [[ -f "$sums" ]]; then
    sum="$(awk -v a="$asset" '$2 == a { print $1; exit }' "$sums")"
fi
if [[ ! "$sum" =~ ^[0-9a-f]{64}$ ]]; then
    # A version the user asked for that this ref does not list is their usage error (2); the
    # action's own VERSION without its checksum line is a packaging fault of the release (3).
    if [[ -n "${INPUT_VERSION:-}" ]]; then
        fail 2 "no checksum for $asset in this action's checksums.txt, so $version (from $from) cannot be installed verified; use a version listed there, or build-from-source: true"
    fi
    fail 3 "no checksum for $asset in this action's checksums.txt, though its VERSION names $version: the release at this ref is incomplete (a packaging fault, not your input); use build-from-source: true, or another release"
fi

# ---- the tool cache -------------------------------------------------------------------------
cache_root="${RUNNER_TOOL_CACHE:-$temp_root/deploy-action-tool-cache}"
version_dir="$cache_root/deploy-action/${version#v}"
dest="$version_dir/$cache_arch"
marker="$dest.complete"
# The marker holds the archive's sha256: an install from another archive is not reused.
if [[ -f "$marker" && "$(cat "$marker")" == "$sum" && -x "$dest/$tool" ]]; then
    printf 'deploy-action: %s %s from the tool cache\n' "$tool" "$version" >&2
    emit "$dest/$tool"
    exit 0
fi

base_url="${DEPLOY_ACTION_RELEASE_URL:-https://github.com/afu9/deploy-action/releases/download}"
[[ "$base_url" == https://* ]] || fail 2 "DEPLOY_ACTION_RELEASE_URL must be an https:// URL (got '${base_url}')"
url="${base_url%/}/${version}/${asset}"

tmp="" staging=""
cleanup() { rm -rf ${tmp:+"$tmp"} ${staging:+"$staging"}; }
trap cleanup EXIT
mkdir -p "$temp_root" "$version_dir"
tmp="$(mktemp -d "$temp_root/deploy-action-download.XXXXXX")"
staging="$(mktemp -d "$version_dir/.${cache_arch}.partial.XXXXXX")"

curl_opts=(--proto '=https' --tlsv1.2 --retry 3 --retry-delay 2 --connect-timeout 10 --max-time 300)
printf 'deploy-action: downloading %s\n' "$url" >&2
code="$(curl "${curl_opts[@]}" -fsSL -o "$tmp/$asset" -w '%{http_code}' "$url")" || {
    # A private or internal action repository refuses anonymous downloads of its releases
    # (GitHub answers 404 rather than 401 so as not to reveal the repository). Its browser
    # download URL does not take a token either, so, once, the github-token input goes to the
    # REST API instead: "Get a release by tag name" lists the assets, and "Get a release asset"
    # with `Accept: application/octet-stream` answers with the asset or a redirect to it,
    # https://docs.github.com/en/rest/releases/assets#get-a-release-asset
    # The token reaches curl as a header file (-H @file, mode 600 in $tmp, removed on exit):
    # never in argv, never printed. The authorised requests follow no redirect themselves (no
    # -L): a redirect's target (a signed object-storage URL on another host) is fetched
    # anonymously, so the token goes to the API's origin only, whatever curl's redirect rules
    # for custom headers are.
    case "${code:-000}" in
    401 | 403 | 404) ;;
    *) fail 3 "couldn't download $url (HTTP ${code:-000})" ;;
    esac
    [[ -n "${INPUT_GITHUB_TOKEN:-}" ]] ||
        fail 3 "couldn't download $url (HTTP $code), and there is no github-token input to retry with"
    # The token goes only to the GitHub the workflow runs on, never for another mirror.
    server="${GITHUB_SERVER_URL:-https://github.com}"
    server="${server%/}"
    [[ "$url" == "$server/"* ]] ||
        fail 3 "couldn't download $url (HTTP $code); not retrying with the github-token input: the URL is not on $server"
    api="${GITHUB_API_URL:-https://api.github.com}"
    api="${api%/}"
    [[ "$api" == https://* ]] || fail 3 "GITHUB_API_URL must be an https:// URL to send the github-token input to (got '${api}')"
    # <server>/<owner>/<repo>/releases/download/<tag>/<asset>: the action's repository.
    rest="${url#"$server/"}"
    repo="${rest%%/releases/download/*}"
    [[ "$repo" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] ||
        fail 3 "couldn't tell the action's repository from $url"
    printf 'deploy-action: the anonymous download was refused (HTTP %s); retrying with the github-token input\n' "$code" >&2
    (
        umask 077
        printf 'Authorization: Bearer %s\n' "$INPUT_GITHUB_TOKEN" >"$tmp/auth-header"
    )
    got_code="$(curl "${curl_opts[@]}" -sS -H "@$tmp/auth-header" -H 'Accept: application/vnd.github+json' \
        -o "$tmp/release.json" -w '%{http_code}' "$api/repos/$repo/releases/tags/$version")" ||
        fail 3 "couldn't read release $version of $repo with the github-token input"
    [[ "$got_code" == 200 ]] ||
        fail 3 "release $version of $repo: the API answered HTTP $got_code to the github-token input (can the token read $repo?)"
    # The asset's id: one JSON object per asset; jq where the runner has it, else python3.
    if command -v jq >/dev/null; then
        asset_id="$(jq -r --arg a "$asset" '[.assets[]? | select(.name == $a) | .id][0] // empty' "$tmp/release.json" 2>/dev/null)" || asset_id=""
    else
        asset_id="$(python3 -c 'import json,sys
r=json.load(open(sys.argv[1]))
print(next((str(a["id"]) for a in r.get("assets",[]) if a.get("name")==sys.argv[2]),""))' "$tmp/release.json" "$asset" 2>/dev/null)" || asset_id=""
    fi
    [[ "$asset_id" =~ ^[0-9]+$ ]] || fail 3 "release $version of $repo has no asset $asset"
    got_code="$(curl "${curl_opts[@]}" -sS -H "@$tmp/auth-header" -H 'Accept: application/octet-stream' \
        -o "$tmp/$asset" -w '%{http_code} %{redirect_url}' "$api/repos/$repo/releases/assets/$asset_id")" ||
        fail 3 "couldn't download $asset with the github-token input"
    rm -f "$tmp/auth-header"
    redirect="${got_code#* }"
    got_code="${got_code%% *}"
    case "$got_code" in
    2??) ;;
    3??)
        [[ "$redirect" == https://* ]] ||
            fail 3 "downloading $asset with the github-token input redirected to a non-https URL"
        curl "${curl_opts[@]}" -fsSL -o "$tmp/$asset" "$redirect" ||
            fail 3 "couldn't download $asset: the redirect after the github-token request failed"
        ;;
    *) fail 3 "couldn't download $asset, also not with the github-token input (HTTP $got_code)" ;;
    esac
}

if command -v sha256sum >/dev/null; then
    got="$(sha256sum "$tmp/$asset" | cut -d' ' -f1)"
else
    got="$(shasum -a 256 "$tmp/$asset" | cut -d' ' -f1)"
fi
[[ "$got" == "$sum" ]] ||
    fail 3 "checksum mismatch for $asset: checksums.txt says $sum, the download is $got; refusing to install or run it"

# Only the multi-call binary and the licence files, at the top level: nothing else is extracted.
listing="$(tar -tzf "$tmp/$asset")" || fail 3 "$asset is not a readable tar.gz"
while IFS= read -r entry; do
    case "${entry#./}" in
    "" | deploy-action | LICENSE-MIT | LICENSE-APACHE) ;;
    *) fail 3 "$asset holds an unexpected entry '${entry}'; refusing it" ;;
    esac
done <<<"$listing"
tar --no-same-owner -xzf "$tmp/$asset" -C "$staging" || fail 3 "couldn't extract $asset"
[[ -f "$staging/deploy-action" && ! -L "$staging/deploy-action" && -x "$staging/deploy-action" ]] ||
    fail 3 "$asset lacks the deploy-action binary"
# The five tools are links to it, made in the staging directory, so they appear with it.
link_tools "$staging"

# Jobs on one runner share the tool cache: one installs at a time (a lock directory; mkdir is
# atomic), and an install that is there and complete is never removed, since another job may be
# about to run it. The complete directory appears under its final name in one rename, and the
# marker is written only after it.
installed() { [[ -f "$marker" && "$(cat "$marker")" == "$sum" && -x "$dest/$tool" ]]; }
if installed; then
    printf 'deploy-action: %s %s was installed meanwhile by another job\n' "$tool" "$version" >&2
    emit "$dest/$tool"
elif mkdir "$dest.lock" 2>/dev/null; then
    if installed; then
        rmdir "$dest.lock"
        emit "$dest/$tool"
    else
        rm -rf "$dest" "$marker"
        mv "$staging" "$dest"
        staging=""
        printf '%s' "$sum" >"$marker.tmp.$$"
        mv "$marker.tmp.$$" "$marker"
        rmdir "$dest.lock"
        printf 'deploy-action: installed %s into %s\n' "$asset" "$dest" >&2
        emit "$dest/$tool"
    fi
else
    # Another job is installing this version right now: run this job's own verified copy and
    # leave theirs alone (this copy stays in the tool cache's version directory, as .partial).
    printf 'deploy-action: another job is installing into %s; using this job'"'"'s own copy\n' "$dest" >&2
    kept="$staging"
    staging=""
    emit "$kept/$tool"
fi
