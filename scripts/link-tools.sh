#!/usr/bin/env bash
# link-tools.sh DIR: the five tool names in DIR as links to DIR/deploy-action, the one binary
# that holds them all (it runs the tool it is started as). Cargo builds only deploy-action;
# the demo, the benchmarks and the tests run the tools by name through these links. A file of
# a tool's name that is not such a link (a binary from before the multi-call build) is replaced.
set -Eeuo pipefail
dir="${1:?usage: link-tools.sh DIR (the directory holding deploy-action)}"
[[ -x "$dir/deploy-action" ]] || {
    printf 'link-tools.sh: no deploy-action binary in %s (build it: cargo build -p deploy-action)\n' "$dir" >&2
    exit 2
}
for t in sync-check ecr-push health-check smoke-test rollback; do
    if [[ "$(readlink "$dir/$t" 2>/dev/null)" != deploy-action ]]; then
        ln -sfn deploy-action "$dir/$t"
    fi
done
