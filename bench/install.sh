#!/usr/bin/env bash
# Benchmark of the release archive and its install (issue: one multi-call binary), in one run:
# today's layout (one deploy-action binary, the five tools as links the install makes) against
# the layout before it (five binaries, built from BASELINE_REF, default df2c56d, the last commit
# that shipped five). Both archives are packed as the release workflow packs them (tar -czf of
# the release builds and the licences) and served by a local HTTPS server; each is installed by
# its own commit's scripts/action-install.sh into an empty tool cache (download, sha256 check
# against checksums.txt, extract, the tool's --version), timed with hyperfine.
# Targets: archive <= 12 MB, install <= 1 s. Needs hyperfine, openssl, python3, curl (Debian).
# Both layouts are built for this machine's target (the release's static musl targets need a
# toolchain this machine may not have), so the ratio compares like with like.
# The baseline's five binaries are built once (a worktree under .rig/, in its own target
# directory, target/bench-baseline: cargo names a path package's artifacts and fingerprints by its
# path relative to the workspace root, so a second checkout sharing target/ would overwrite this
# one's and be taken as fresh) and kept in .rig/bench-install/baseline-<ref>/.
# BENCH_RESULTS=FILE also appends the rows for scripts/bench.sh.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
export PATH="${HOME:-/root}/.cargo/bin:$PATH"
need=()
for c in hyperfine openssl; do command -v "$c" >/dev/null || need+=("$c"); done
if ((${#need[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

ref="${BASELINE_REF:-df2c56d}"
RUNS="${RUNS:-10}"
work="$root/.rig/bench-install"
tools=(sync-check ecr-push health-check smoke-test rollback)
base_bin="$work/baseline-$ref"
mkdir -p "$work"

# ---- the baseline: five binaries at BASELINE_REF ---------------------------------------------
if [[ ! -x "$base_bin/rollback" ]]; then
    src="$work/baseline-src"
    rm -rf "$src"
    git worktree prune
    git worktree add --detach "$src" "$ref" >&2
    if ! (cd "$src" && CARGO_TARGET_DIR="$root/target/bench-baseline" cargo build --release --locked --quiet \
        -p sync-check -p ecr-push -p health-check -p smoke-test -p rollback); then
        git worktree remove --force "$src"
        printf 'bench/install.sh: building the baseline %s failed\n' "$ref" >&2
        exit 1
    fi
    mkdir -p "$base_bin.tmp"
    for t in "${tools[@]}"; do cp "$root/target/bench-baseline/release/$t" "$base_bin.tmp/$t"; done
    cp "$src/scripts/action-install.sh" "$base_bin.tmp/action-install.sh"
    mv "$base_bin.tmp" "$base_bin"
    git worktree remove --force "$src"
fi

# ---- ours: the multi-call binary and its links -------------------------------------------------
cargo build --release --locked --quiet -p deploy-action
bash scripts/link-tools.sh target/release

version=v1.0.0
asset="deploy-action-$version-x86_64-unknown-linux-musl.tar.gz"
[[ "$(uname -m)" == aarch64 ]] && asset="deploy-action-$version-aarch64-unknown-linux-musl.tar.gz"
srv="$work/srv"
rm -rf "$srv" && mkdir -p "$srv/today/$version" "$srv/before/$version" "$work/stage-today" "$work/stage-before"
cp target/release/deploy-action LICENSE-MIT LICENSE-APACHE "$work/stage-today/"
tar -czf "$srv/today/$version/$asset" -C "$work/stage-today" deploy-action LICENSE-MIT LICENSE-APACHE
cp "${tools[@]/#/$base_bin/}" LICENSE-MIT LICENSE-APACHE "$work/stage-before/"
tar -czf "$srv/before/$version/$asset" -C "$work/stage-before" "${tools[@]}" LICENSE-MIT LICENSE-APACHE

# An action checkout per layout: its own install script, VERSION and checksums.txt.
for layout in today before; do
    a="$work/action-$layout"
    rm -rf "$a" && mkdir -p "$a/scripts"
    if [[ $layout == today ]]; then
        cp scripts/action-install.sh "$a/scripts/"
    else
        cp "$base_bin/action-install.sh" "$a/scripts/"
    fi
    echo "$version" >"$a/VERSION"
    (cd "$srv/$layout/$version" && sha256sum "$asset") >"$a/checksums.txt"
done

# ---- a local HTTPS server with a throwaway CA-less self-signed certificate -------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
port_file="$work/port"
rm -f "$port_file"
python3 - "$srv" "$work/cert.pem" "$work/key.pem" "$port_file" <<'PY' &
import functools, http.server, ssl, sys
root, cert, key, port_file = sys.argv[1:5]
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass
httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=root))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
open(port_file, "w").write(str(httpd.server_address[1]))
httpd.serve_forever()
PY
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do [[ -s "$port_file" ]] && break; sleep 0.05; done
[[ -s "$port_file" ]] || { printf 'bench/install.sh: the local HTTPS server did not start\n' >&2; exit 1; }
port="$(cat "$port_file")"

install_cmd() {
    local layout=$1
    printf 'env CURL_CA_BUNDLE=%q RUNNER_OS=Linux RUNNER_ARCH=%s RUNNER_TEMP=%q RUNNER_TOOL_CACHE=%q GITHUB_ACTION_PATH=%q INPUT_TOOL=health-check DEPLOY_ACTION_RELEASE_URL=https://127.0.0.1:%s/%s bash %q' \
        "$work/cert.pem" "$([[ "$(uname -m)" == aarch64 ]] && echo ARM64 || echo X64)" "$work/tmp-$layout" \
        "$work/cache-$layout" "$work/action-$layout" "$port" "$layout" "$work/action-$layout/scripts/action-install.sh"
}
# Each run starts from an empty tool cache: the full download, verify and extract.
for layout in today before; do
    mkdir -p "$work/tmp-$layout"
    bash -c "$(install_cmd "$layout")" 2>"$work/install-$layout.log" ||
        { cat "$work/install-$layout.log" >&2; exit 1; }
done
hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$work/install.json" \
    --prepare "rm -rf $(printf '%q %q' "$work/cache-today" "$work/cache-before")" \
    -n "install today (one binary)" "$(install_cmd today)" \
    -n "install before (five binaries, $ref)" "$(install_cmd before)" >&2

size_today=$(stat -c %s "$srv/today/$version/$asset")
size_before=$(stat -c %s "$srv/before/$version/$asset")
python3 - "$work/install.json" "$size_today" "$size_before" "$ref" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))["results"]
today, before = r[0]["mean"], r[1]["mean"]
st, sb = int(sys.argv[2]) / 1e6, int(sys.argv[3]) / 1e6
ref = sys.argv[4]
print("| case | today | before | ratio | target |")
print("|---|---|---|---|---|")
print(f"| release archive | {st:.1f} MB | {sb:.1f} MB | {st/sb:.2f} | <= 12 MB |")
print(f"| install: download + verify + extract + --version (mean of {len(r[0]['times'])}) | {today*1000:.0f} ms ± {r[0]['stddev']*1000:.0f} | {before*1000:.0f} ms ± {r[1]['stddev']*1000:.0f} | {today/before:.2f} | <= 1 s |")
out = os.environ.get("BENCH_RESULTS")
if out:
    with open(out, "a") as f:
        f.write(f"install: release archive, one binary vs five ({ref})\t{st:.2f}\t{sb:.2f}\tMB\t<= 12 MB\t{'yes' if st <= 12 else 'no'}\n")
        f.write(f"install: download + verify + extract, one binary vs five ({ref})\t{today*1000:.0f}\t{before*1000:.0f}\tms\t<= 1000 ms\t{'yes' if today <= 1.0 else 'no'}\n")
PY
