#!/usr/bin/env bash
# Step 2 of action.yml: run the tool with the inputs. Inputs arrive as INPUT_* environment
# variables (never expanded into this script); extra arguments one per line, so nothing is
# shell-parsed. Each input reaches the tool only in a form that tool takes:
#   config, environment, base-url -> DEPLOY_CONFIG, DEPLOY_ENVIRONMENT, DEPLOY_BASE_URL, set only
#                                     when the input is non-empty (a job-level value survives)
#   dry-run: true                  -> --dry-run, for the tools that have it (else: usage error)
#   confirm                        -> --confirm ENV, for the tools that have it (else: usage error)
#   github-token                   -> GITHUB_TOKEN, only when the tool publishes to GitHub (its
#                                     --publish is not never) or records a --github-deployment
set -Eeuo pipefail

# The flags each tool takes (tests/tests/e2e/contract.rs checks these lists against every tool's --help).
DRY_RUN_TOOLS=" sync-check ecr-push rollback "
CONFIRM_TOOLS=" ecr-push rollback "
PUBLISHING_TOOLS=" sync-check ecr-push health-check smoke-test rollback "

out() { printf '%s=%s\n' "$1" "$2" >>"${GITHUB_OUTPUT:-/dev/null}"; }
# A workflow command's message, escaped as the runner's escapeData does (% CR LF), so an input's
# value cannot end the line and start a command of its own.
escape_data() {
    local s="${1//%/%25}"
    s="${s//$'\r'/%0D}"
    printf '%s' "${s//$'\n'/%0A}"
}
usage() {
    printf '::error title=deploy-action::%s\n' "$(escape_data "$1")"
    out outcome 'usage error'
    out exit-code 2
    exit 2
}
# An input the tool cannot take: said here, and the flag that carries it still goes to the tool,
# which refuses it (exit 2, its outputs) and, when the run would publish, answers its check run:
# a required check never waits at "Expected" for a mistyped input.
refused=""
refuse() {
    [[ -n "$refused" ]] || refused="$1"
    args+=("${@:2}")
}

bin="${DEPLOY_TOOL_BIN:-}"
[[ -n "$bin" ]] || usage "the install step gave no binary"
tool="${INPUT_TOOL:-}"

if [[ -n "${INPUT_CONFIG:-}" ]]; then export DEPLOY_CONFIG="$INPUT_CONFIG"; fi
if [[ -n "${INPUT_ENVIRONMENT:-}" ]]; then export DEPLOY_ENVIRONMENT="$INPUT_ENVIRONMENT"; fi
if [[ -n "${INPUT_BASE_URL:-}" ]]; then export DEPLOY_BASE_URL="$INPUT_BASE_URL"; fi

args=()
case "${INPUT_DRY_RUN:-false}" in
true)
    if [[ "$DRY_RUN_TOOLS" == *" $tool "* ]]; then
        args+=(--dry-run)
    else
        refuse "input 'dry-run' applies to sync-check (with --update), ecr-push and rollback, not to $tool" --dry-run
    fi
    ;;
false | "") ;;
*) refuse "input 'dry-run' must be true or false (got '${INPUT_DRY_RUN}')" "--dry-run=${INPUT_DRY_RUN}" ;;
esac
if [[ -n "${INPUT_CONFIRM:-}" ]]; then
    if [[ "$CONFIRM_TOOLS" == *" $tool "* ]]; then
        args+=(--confirm "$INPUT_CONFIRM")
    else
        refuse "input 'confirm' applies to ecr-push and rollback, not to $tool" --confirm "$INPUT_CONFIRM"
    fi
fi
if [[ -n "${INPUT_ARGS:-}" ]]; then
    while IFS= read -r line; do
        line="${line%$'\r'}"
        if [[ -n "$line" ]]; then args+=("$line"); fi
    done <<<"$INPUT_ARGS"
fi

# The token goes only to a run that talks to GitHub: a publishing tool whose --publish (the last
# one given; sync-check defaults to auto, the others to never) is not never, rollback with
# --github-deployment, and sync-check unless it neither fetches (--no-fetch) nor pushes (--push):
# its git fetch and push carry the token, so that `persist-credentials: false` works for private
# repositories whatever --publish says. Otherwise neither the input's nor a job-level GITHUB_TOKEN
# reaches the tool.
publish=never
if [[ "$tool" == sync-check ]]; then publish=auto; fi
wants_github=false
git_network=true
next_is_publish=false
for a in ${args[@]+"${args[@]}"}; do
    if [[ "$next_is_publish" == true ]]; then
        publish="$a"
        next_is_publish=false
        continue
    fi
    case "$a" in
    --publish=*) publish="${a#--publish=}" ;;
    --publish) next_is_publish=true ;;
    --github-deployment) [[ "$tool" != rollback ]] || wants_github=true ;;
    --no-fetch) git_network=false ;;
    esac
done
for a in ${args[@]+"${args[@]}"}; do
    if [[ "$a" == --push ]]; then git_network=true; fi
done
if [[ "$PUBLISHING_TOOLS" == *" $tool "* && "$publish" != never ]]; then wants_github=true; fi
if [[ "$tool" == sync-check && "$git_network" == true ]]; then wants_github=true; fi
if [[ "$wants_github" == true ]]; then
    if [[ -n "${INPUT_GITHUB_TOKEN:-}" ]]; then export GITHUB_TOKEN="$INPUT_GITHUB_TOKEN"; fi
else
    unset GITHUB_TOKEN
fi
unset INPUT_GITHUB_TOKEN

if [[ -n "$refused" ]]; then
    printf '::error title=deploy-action::%s\n' "$(escape_data "$refused")"
fi
# (The +-form keeps an empty list safe under set -u in the bash 3.2 of macOS.)
exec "$bin" ${args[@]+"${args[@]}"}
