#!/usr/bin/env bash
# The release, called by .github/workflows/release.yml (and by tests/tests/e2e/release_flow.rs
# against a bare origin and a local release API):
#
#   scripts/release.sh vX.Y.Z DIST_DIR
#
# run in a full checkout of the commit to release (RELEASE_REF, default HEAD), with
#   GITHUB_REPOSITORY  owner/name
#   GH_TOKEN           token for the REST API and the pushes (never printed, never in argv)
#   GITHUB_API_URL     default https://api.github.com
#   RELEASE_REMOTE     default origin
# DIST_DIR holds the archives deploy-action-vX.Y.Z-<target>.tar.gz (EXPECT_ARCHIVES, if set, is
# their required count).
#
# In order, each step failing cleanly:
#   a. validate: vX.Y.Z; Cargo.toml's version is X.Y.Z; the tag vX.Y.Z does not exist on origin.
#   b. commit VERSION and checksums.txt (earlier releases' lines kept, this release's added) on
#      top of the chosen commit, with plumbing: the work tree and index are not touched.
#   c. push that commit as the tag vX.Y.Z. Never forced: an existing tag is refused by git.
#   d. create a DRAFT release and upload the archives and sha256sums.txt to it.
#   e. publish it (draft=false).
#   f. move the major tag vN (the only tag ever force-moved) when this is the newest vN.*.* release.
# A failure after (c) and before (e) completed deletes the draft and then the pushed tag, so no
# failure leaves a published release or a moved tag. Deleting vX.Y.Z there is the one exception
# to "a pushed version tag never moves": no published release refers to it (the draft is deleted
# first and only collaborators with write access can see drafts), and it was pushed seconds ago by
# this same run, so nobody can have relied on it; leaving it would make the version unreleasable
# (step a refuses an existing tag). After (e) nothing is undone: a published release (immutable,
# when the repository enables immutable releases) keeps its tag, and a failure in (f) leaves vN
# where it was; re-run the "major tag" part by hand (see README.md, "Releasing").
set -Eeuo pipefail

die() {
    printf '::error title=release::%s\n' "$*" >&2
    exit 1
}

[[ $# == 2 ]] || die "usage: scripts/release.sh vX.Y.Z DIST_DIR"
tag=$1
dist=$2
repo="${GITHUB_REPOSITORY:-}"
api="${GITHUB_API_URL:-https://api.github.com}"
api="${api%/}"
remote="${RELEASE_REMOTE:-origin}"
ref="${RELEASE_REF:-HEAD}"
[[ "$repo" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] || die "GITHUB_REPOSITORY must be owner/name (got '$repo')"
[[ -n "${GH_TOKEN:-}" ]] || die "GH_TOKEN is not set"

# ---- a. validate ------------------------------------------------------------------------------
[[ "$tag" =~ ^v([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || die "version must look like v1.2.3 (got '$tag')"
major="v${BASH_REMATCH[1]}"
commit="$(git rev-parse --verify "$ref^{commit}")" || die "no commit $ref"
cargo_version="$(git show "$commit:Cargo.toml" | sed -n 's/^version = "\(.*\)"$/\1/p' | head -n 1)"
[[ "$cargo_version" == "${tag#v}" ]] ||
    die "$tag does not match the workspace version '$cargo_version' in Cargo.toml of $commit"

# Pushes authenticate with the token through git's environment configuration (GIT_CONFIG_*), so
# it appears in no argv (`ps`) and no remote URL. Only for an https remote.
remote_url="$(git remote get-url "$remote")"
if [[ "$remote_url" == https://* ]]; then
    origin_of_remote="$(printf '%s' "$remote_url" | sed -E 's#^(https://[^/]+)/.*#\1#')"
    basic="$(printf 'x-access-token:%s' "$GH_TOKEN" | base64 | tr -d '\n')"
    export GIT_CONFIG_COUNT=1
    export GIT_CONFIG_KEY_0="http.$origin_of_remote/.extraheader"
    export GIT_CONFIG_VALUE_0="AUTHORIZATION: basic $basic"
fi

if [[ -n "$(git ls-remote --tags "$remote" "refs/tags/$tag")" ]]; then
    die "the tag $tag already exists on $remote: a released version is never moved; release a new version"
fi

shopt -s nullglob
archives=("$dist"/deploy-action-"$tag"-*.tar.gz)
shopt -u nullglob
((${#archives[@]} > 0)) || die "no archives deploy-action-$tag-*.tar.gz in $dist"
if [[ -n "${EXPECT_ARCHIVES:-}" && "${#archives[@]}" != "$EXPECT_ARCHIVES" ]]; then
    die "expected $EXPECT_ARCHIVES archives in $dist, found ${#archives[@]}"
fi
(cd "$dist" && sha256sum deploy-action-"$tag"-*.tar.gz >sha256sums.txt)
printf 'release %s of %s from %s\n' "$tag" "$repo" "$commit"
cat "$dist/sha256sums.txt"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umask 077

# ---- b. the release commit ----------------------------------------------------------------------
{
    git show "$commit:checksums.txt" 2>/dev/null | grep -v -- "-$tag-" || true
    cat "$dist/sha256sums.txt"
} >"$work/checksums.txt"
printf '%s\n' "$tag" >"$work/VERSION"
export GIT_INDEX_FILE="$work/index"
git read-tree "$commit"
for f in VERSION checksums.txt; do
    blob="$(git hash-object -w "$work/$f")"
    git update-index --add --cacheinfo "100644,$blob,$f"
done
tree="$(git write-tree)"
unset GIT_INDEX_FILE
: "${GIT_AUTHOR_NAME:=github-actions[bot]}" "${GIT_AUTHOR_EMAIL:=41898282+github-actions[bot]@users.noreply.github.com}"
: "${GIT_COMMITTER_NAME:=$GIT_AUTHOR_NAME}" "${GIT_COMMITTER_EMAIL:=$GIT_AUTHOR_EMAIL}"
export GIT_AUTHOR_NAME GIT_AUTHOR_EMAIL GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL
release_commit="$(git commit-tree "$tree" -p "$commit" -m "release $tag: VERSION and checksums")"
printf 'release commit %s\n' "$release_commit"

# ---- the GitHub REST API ------------------------------------------------------------------------
# The token goes to curl in a config file (mode 600, removed on exit), never on the command line.
printf 'header = "Authorization: Bearer %s"\nheader = "Accept: application/vnd.github+json"\nheader = "X-GitHub-Api-Version: 2022-11-28"\n' \
    "$GH_TOKEN" >"$work/curl-auth"

# api_call METHOD URL [curl args...]: the response body in $work/body; fails unless the status is 2xx.
api_call() {
    local method=$1 url=$2 code
    shift 2
    # Bounded: a stalled request fails (and the undo runs) within the job's time. Run in the
    # background and waited for, so that a signal (a cancelled run) runs the undo at once: bash
    # runs a trap only when a foreground command ends, but `wait` returns when a signal comes.
    curl --proto '=https' --tlsv1.2 -sS --connect-timeout 30 --max-time 600 -K "$work/curl-auth" -X "$method" \
        -o "$work/body" -w '%{http_code}' "$@" "$url" >"$work/code" &
    curl_pid=$!
    if ! wait "$curl_pid"; then
        curl_pid=""
        printf 'release: %s %s: curl failed\n' "$method" "$url" >&2
        return 1
    fi
    curl_pid=""
    code="$(cat "$work/code")"
    if [[ "$code" != 2?? ]]; then
        printf 'release: %s %s: HTTP %s: %s\n' "$method" "$url" "$code" "$(head -c 2000 "$work/body")" >&2
        return 1
    fi
}
curl_pid=""

release_id=""
tag_pushed=false
published=false
undo() {
    local rc=$?
    trap - ERR INT TERM
    # A signal (a cancelled run, or its timeout) undoes the same: it exits 130/143.
    [[ "$rc" != 0 ]] || rc=1
    if [[ -n "$curl_pid" ]]; then
        kill "$curl_pid" 2>/dev/null || true
        curl_pid=""
    fi
    if [[ "$published" == false ]]; then
        if [[ -n "$release_id" ]]; then
            printf 'release: failed before publishing; deleting the draft release %s\n' "$release_id" >&2
            api_call DELETE "$api/repos/$repo/releases/$release_id" ||
                printf '::error title=release::could not delete the draft release %s: delete it by hand\n' "$release_id" >&2
        fi
        if [[ "$tag_pushed" == true ]]; then
            # See the header: the only deletion of a version tag, allowed because nothing published
            # refers to it and this run pushed it seconds ago.
            printf 'release: deleting the tag %s this run pushed\n' "$tag" >&2
            git push "$remote" ":refs/tags/$tag" ||
                printf '::error title=release::could not delete the tag %s on %s: delete it by hand\n' "$tag" "$remote" >&2
        fi
        git tag -d "$tag" >/dev/null 2>&1 || true
    fi
    printf '::error title=release::%s failed (exit %s); no release was published\n' "$tag" "$rc" >&2
    exit "$rc"
}
trap undo ERR
trap '(exit 130); undo' INT
trap '(exit 143); undo' TERM

# ---- c. the tag -------------------------------------------------------------------------------
# An annotated tag on the release commit; pushed without --force, so a tag that appeared on the
# remote meanwhile is refused ("already exists") instead of replaced. Pushes made with the
# workflow's GITHUB_TOKEN trigger no workflow run, so this push starts no other workflow:
# https://docs.github.com/en/actions/security-for-github-actions/security-guides/automatic-token-authentication#using-the-github_token-in-a-workflow
git tag -a "$tag" -m "deploy-action $tag" "$release_commit"
git push "$remote" "refs/tags/$tag:refs/tags/$tag"
tag_pushed=true

# ---- d. the draft release and its assets ----------------------------------------------------------
# "Create a release": POST /repos/{owner}/{repo}/releases with draft: true; the tag exists, so the
# release points at it and target_commitish is not used.
# https://docs.github.com/en/rest/releases/releases#create-a-release
# A draft is visible only to users with push access and can be deleted; with immutable releases
# enabled, assets and tag lock only at publication, so they are all attached before (e).
# https://docs.github.com/en/code-security/concepts/supply-chain-security/immutable-releases
# ("Git tags cannot be moved or deleted: once an immutable release is published, its associated
# Git tag is locked"; before publication the draft and its tag can still go).
jq -n --arg tag "$tag" --arg repo "$repo" \
    '{tag_name: $tag, name: $tag, draft: true,
      body: ("Verify an archive: gh attestation verify <archive> --repo " + $repo)}' >"$work/create.json"
api_call POST "$api/repos/$repo/releases" -H 'Content-Type: application/json' --data-binary "@$work/create.json"
release_id="$(jq -er '.id' "$work/body")"
upload_url="$(jq -er '.upload_url' "$work/body")"
printf 'draft release %s\n' "$release_id"

# "Upload a release asset": POST to the release's upload_url (a URI template on
# uploads.github.com, "{?name,label}" stripped) with ?name= and the raw bytes.
# https://docs.github.com/en/rest/releases/assets#upload-a-release-asset
upload_url="${upload_url%%\{*}"
[[ "$upload_url" == https://* ]] || { printf 'release: upload_url is not https: %s\n' "$upload_url" >&2; false; }
for f in "${archives[@]}" "$dist/sha256sums.txt"; do
    name="$(basename "$f")"
    case "$name" in *.tar.gz) type=application/gzip ;; *) type=text/plain ;; esac
    api_call POST "$upload_url?name=$name" -H "Content-Type: $type" --data-binary "@$f"
    printf 'uploaded %s\n' "$name"
done

# ---- e. publish -------------------------------------------------------------------------------
# "Update a release": PATCH /repos/{owner}/{repo}/releases/{release_id} with draft: false.
# https://docs.github.com/en/rest/releases/releases#update-a-release
api_call PATCH "$api/repos/$repo/releases/$release_id" -H 'Content-Type: application/json' \
    --data-binary '{"draft":false}'
published=true
trap - ERR INT TERM
printf 'published %s\n' "$tag"

# ---- f. the major tag -----------------------------------------------------------------------------
# vN follows the newest vN.*.* on the remote (this one included); an older patch release leaves it.
tags="$(git ls-remote --tags "$remote" "refs/tags/$major.*")" ||
    die "$tag is published, but reading the tags of $remote to move $major failed: move it by hand (README.md, Releasing)"
newest="$(printf '%s\n' "$tags" | sed -n 's#.*refs/tags/\(v[0-9]*\.[0-9]*\.[0-9]*\)$#\1#p' |
    sort -V | tail -n 1)"
if [[ "$newest" != "$tag" ]]; then
    printf '%s stays where it is: %s is newer than %s\n' "$major" "$newest" "$tag"
    exit 0
fi
# The one tag that moves. GitHub's guidance for an action's releases: the release-specific tag
# (v1.0.0) belongs to an immutable release; the major tag (v1) is tied to no release and is
# force-pushed to the newest release it covers.
# https://docs.github.com/en/actions/how-tos/create-and-publish-actions/using-immutable-releases-and-tags-to-manage-your-actions-releases
git tag -f -a "$major" -m "deploy-action $tag" "$release_commit" >/dev/null ||
    die "$tag is published, but tagging $major locally failed: move it by hand (README.md, Releasing)"
git push --force "$remote" "refs/tags/$major:refs/tags/$major" ||
    die "$tag is published, but moving $major failed: move it by hand (README.md, Releasing)"
printf '%s now points at %s (%s)\n' "$major" "$tag" "$release_commit"
