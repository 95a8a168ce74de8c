#!/usr/bin/env bash
# Step 2 of action.yml: run the tool with the inputs. Inputs arrive as environment variables
# (never expanded into this script), extra arguments one per line, so nothing is shell-parsed.
set -Eeuo pipefail

bin="${DEPLOY_TOOL_BIN:?install step gave no binary}"

# An empty input means "not given": drop it so the tool's own default applies.
for v in DEPLOY_CONFIG DEPLOY_ENVIRONMENT DEPLOY_BASE_URL GITHUB_TOKEN; do
    if [[ -z "${!v:-}" ]]; then unset "$v"; fi
done

args=()
case "${INPUT_DRY_RUN:-false}" in
true) args+=(--dry-run) ;;
false | "") ;;
*) printf "::error title=deploy-action::input 'dry-run' must be true or false\n"; exit 2 ;;
esac
if [[ -n "${INPUT_CONFIRM:-}" ]]; then args+=(--confirm "$INPUT_CONFIRM"); fi
if [[ -n "${INPUT_ARGS:-}" ]]; then
    while IFS= read -r line; do
        [[ -n "$line" ]] && args+=("$line")
    done <<<"$INPUT_ARGS"
fi

exec "$bin" "${args[@]}"
