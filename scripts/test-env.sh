#!/usr/bin/env bash
# Brings up what the integration tests, the demo and the benchmark need:
# a Docker engine, a registry on 127.0.0.1, and a busybox base image in it.
# Idempotent: reuses an engine or registry that already answers, and records
# only what it started so that `test-env.sh stop` stops only that.
#
#   scripts/test-env.sh [up] [ENGINE]   bring everything up (default)
#   scripts/test-env.sh stop            stop what this script started
#   scripts/test-env.sh env [ENGINE]    print the variables tests read (eval-able)
#   scripts/test-env.sh fresh ENGINE    a modern engine restarted empty (containerd content too)
#
# ENGINE (default $DRC_TEST_ENGINE, else legacy):
#   modern           Docker 26 + buildx 0.13 + containerd 1.7, containerd image store (Docker 29's default)
#   modern-classic   the same binaries with the overlay2 image store (Docker 27-28 hosts)
#   legacy           Debian 12's docker.io 20.10 on /var/run/docker.sock
# The modern engines come from Debian 13's packages, unpacked into a private prefix
# (scripts/modern-engine.sh); each has its own containerd, socket and bridge, so all
# three can run side by side.
set -euo pipefail

STATE_DIR="${DRC_TEST_STATE:-/tmp/drc-test-env}"
REGISTRY_ADDR="${DRC_TEST_REGISTRY:-127.0.0.1:5000}"
BASE_IMAGE="${REGISTRY_ADDR}/drc-test/busybox:2"
ENGINE="${2:-${DRC_TEST_ENGINE:-legacy}}"
case "$ENGINE" in legacy | modern | modern-classic) ;; *) echo "test-env: unknown engine $ENGINE (legacy, modern, modern-classic)" >&2; exit 2 ;; esac
mkdir -p "$STATE_DIR"
MODERN_PREFIX="$STATE_DIR/modern-prefix"
ENGINE_DIR="$STATE_DIR/engines/$ENGINE"
if [ "$ENGINE" = legacy ]; then
  ENGINE_HOST="unix:///var/run/docker.sock"
  ENGINE_CLI=/usr/bin/docker
else
  ENGINE_HOST="unix://$ENGINE_DIR/docker.sock"
  ENGINE_CLI="$MODERN_PREFIX/usr/bin/docker"
fi
# The client config: buildx for the modern engines; none for the legacy one (its 20.10 client has BuildKit built in).
ENGINE_CONFIG="$ENGINE_DIR/docker-config"

log() { printf 'test-env: %s\n' "$*" >&2; }

engine_answers() { DOCKER_HOST="$ENGINE_HOST" DOCKER_CONFIG="$ENGINE_CONFIG" timeout 10 "$ENGINE_CLI" info >/dev/null 2>&1; }
registry_answers() { curl -fsS -m 3 "http://${REGISTRY_ADDR}/v2/" >/dev/null 2>&1; }

install_packages() {
  local missing=()
  command -v docker >/dev/null 2>&1 || missing+=(docker.io)
  # The engine may be remote (DOCKER_HOST) on a laptop; only a local setup needs dockerd.
  if [ -z "${DOCKER_HOST:-}" ] && ! command -v dockerd >/dev/null 2>&1; then missing+=(docker.io); fi
  command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
  [ -x /bin/busybox ] || command -v busybox >/dev/null 2>&1 || missing+=(busybox-static)
  command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v bc >/dev/null 2>&1 || missing+=(bc)
  if [ "${#missing[@]}" -eq 0 ]; then return 0; fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "missing: ${missing[*]}; install them (Debian: apt-get install ${missing[*]}) and run again"
    exit 1
  fi
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# wait_until NAME SECONDS CHECK...: polls CHECK every 0.25 s; on timeout names the log and exits.
wait_until() {
  local name="$1" seconds="$2"
  shift 2
  for _ in $(seq 1 $((seconds * 4))); do
    if "$@"; then log "$name: up"; return 0; fi
    sleep 0.25
  done
  log "$name: did not answer in $seconds s; see $STATE_DIR/$name.log"
  tail -20 "$STATE_DIR/$name.log" >&2 || true
  exit 1
}

legacy_alive() { [ -f /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; }

start_engine() {
  mkdir -p "$ENGINE_CONFIG"
  if [ "$ENGINE" != legacy ]; then
    DRC_TEST_STATE="$STATE_DIR" bash "$(dirname "$0")/modern-engine.sh" up "$ENGINE" "$ENGINE_DIR" "$MODERN_PREFIX"
    return
  fi
  if engine_answers; then log "engine: reusing the one that answers"; return 0; fi
  # A dockerd that is alive but busy (or restarting its containerd) gets time; a second one would refuse to start.
  # One that crashed (20.10 can die on a Go fatal error while dumping its goroutines) is replaced.
  # Found by its pid file: the modern engines' dockerd processes have the same name.
  if legacy_alive; then
    log "engine: dockerd is running but not answering; waiting up to 60 s for it"
    local deadline=$(( $(date +%s) + 60 ))
    while [ "$(date +%s)" -lt "$deadline" ] && legacy_alive; do
      if engine_answers; then log "dockerd: up"; return 0; fi
      sleep 0.5
    done
    if legacy_alive; then
      log "engine: dockerd still does not answer; stopping it to start a new one"
      local pid
      pid="$(cat /var/run/docker.pid)"
      kill "$pid" || true
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null || true
    else
      log "engine: dockerd exited (see $STATE_DIR/dockerd.log); starting a new one"
    fi
  fi
  rm -f /var/run/docker.pid
  log "engine: starting dockerd"
  nohup dockerd --host unix:///var/run/docker.sock >>"$STATE_DIR/dockerd.log" 2>&1 &
  echo $! >"$STATE_DIR/dockerd.pid"
  wait_until dockerd 30 engine_answers
}

start_registry() {
  if registry_answers; then log "registry: reusing the one on $REGISTRY_ADDR"; return 0; fi
  log "registry: starting on $REGISTRY_ADDR"
  mkdir -p "$STATE_DIR/registry-data"
  cat >"$STATE_DIR/registry.yml" <<EOF
version: 0.1
log:
  level: info
  formatter: json
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $STATE_DIR/registry-data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
  nohup docker-registry serve "$STATE_DIR/registry.yml" >"$STATE_DIR/registry.log" 2>&1 &
  echo $! >"$STATE_DIR/registry.pid"
  wait_until registry 10 registry_answers
}

push_base_image() {
  if curl -fsS -m 3 -o /dev/null \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://${REGISTRY_ADDR}/v2/drc-test/busybox/manifests/2" 2>/dev/null; then
    log "base image: $BASE_IMAGE already in the registry"
    return 0
  fi
  log "base image: building $BASE_IMAGE from busybox-static"
  local dir busybox
  dir="$(mktemp -d)"
  busybox="$(command -v busybox || echo /bin/busybox)"
  mkdir -p "$dir/bin"
  cp "$busybox" "$dir/bin/busybox"
  for applet in sh ash mkdir cat sleep dd echo ls cp mv rm touch sha256sum find wc \
    head tail sed grep tr sort date true false test env printf gzip tar seq awk xargs; do
    ln -sf busybox "$dir/bin/$applet"
  done
  mkdir -p "$dir/tmp" && touch "$dir/tmp/.keep"
  printf 'FROM scratch\nCOPY bin /bin\nCOPY tmp /tmp\nCMD ["/bin/sh"]\n' >"$dir/Dockerfile"
  DOCKER_HOST="$ENGINE_HOST" DOCKER_CONFIG="$ENGINE_CONFIG" "$ENGINE_CLI" build -q -t "$BASE_IMAGE" "$dir" >/dev/null
  DOCKER_HOST="$ENGINE_HOST" DOCKER_CONFIG="$ENGINE_CONFIG" "$ENGINE_CLI" push "$BASE_IMAGE" >/dev/null
  rm -rf "$dir"
  log "base image: pushed"
}

stop_started() {
  for engine in modern modern-classic; do
    [ -d "$STATE_DIR/engines/$engine" ] && bash "$(dirname "$0")/modern-engine.sh" stop "$engine" "$STATE_DIR/engines/$engine" "$MODERN_PREFIX"
  done
  for name in registry dockerd; do
    if [ -f "$STATE_DIR/$name.pid" ]; then
      local pid
      pid="$(cat "$STATE_DIR/$name.pid")"
      if kill "$pid" 2>/dev/null; then log "stopped $name ($pid)"; fi
      rm -f "$STATE_DIR/$name.pid"
    fi
  done
}

print_env() {
  echo "DRC_TEST_ENGINE=$ENGINE"
  echo "DOCKER_HOST=$ENGINE_HOST"
  echo "DOCKER_CONFIG=$ENGINE_CONFIG"
  echo "DRC_TEST_DOCKER_CLI=$ENGINE_CLI"
  echo "DRC_TEST_REGISTRY=$REGISTRY_ADDR"
  echo "DRC_TEST_BASE_IMAGE=$BASE_IMAGE"
  echo "DRC_TEST_REGISTRY_LOG=$STATE_DIR/registry.log"
}

case "${1:-up}" in
  up)
    install_packages
    start_engine
    start_registry
    push_base_image
    print_env
    ;;
  stop) stop_started ;;
  fresh)
    [ "$ENGINE" != legacy ] || { log "fresh: only for the modern engines (wipe-engine.sh empties the legacy one)"; exit 2; }
    DRC_TEST_STATE="$STATE_DIR" bash "$(dirname "$0")/modern-engine.sh" fresh "$ENGINE" "$ENGINE_DIR" "$MODERN_PREFIX"
    ;;
  env) print_env ;;
  *) log "usage: $0 [up|stop|env]"; exit 2 ;;
esac
