#!/usr/bin/env bash
# The main job on the built-in example: two runs of the helper on fresh engines
# against the loopback registry. The second one is served from the registry cache.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x node_modules/.bin/esbuild ] || npm ci --no-audit --no-fund
# The engine CircleCI gives by default: Docker 26+ with buildx and the containerd image store
# (DRC_TEST_ENGINE=modern-classic or legacy for the others).
ENGINE="${DRC_TEST_ENGINE:-modern}"
bash scripts/test-env.sh up "$ENGINE" >/dev/null
npm run --silent build
set -a
eval "$(bash scripts/test-env.sh env "$ENGINE")"
set +a
DOCKER_CLI="$DRC_TEST_DOCKER_CLI"
# The 20.10 client has BuildKit built in and no buildx: it is asked for BuildKit.
BUILDKIT=""
[ "$ENGINE" = legacy ] && BUILDKIT=1
REPO="127.0.0.1:5000/demo/app-$(date +%s)"
APP="$(mktemp -d)"
cp -r examples/app/. "$APP/"
HELPER="$PWD/dist/docker-build-remote-cache.mjs"
wipe() {
  # A fresh engine, as setup_remote_docker gives; on an engine this project did not start
  # (a laptop's), only the demo's own images are removed.
  if ! DRC_TEST_ENGINE="$ENGINE" bash scripts/wipe-engine.sh 2>/dev/null; then
    "$DOCKER_CLI" images --format '{{.Repository}}:{{.Tag}}' | grep -E "^(${REPO}|drc.local/)" | xargs -r "$DOCKER_CLI" rmi -f >/dev/null || true
    echo "note: engine not started by scripts/test-env.sh: removed the demo's images only (its build cache stays)"
  fi
}

run() {
  local label="$1" tag="$2"
  shift 2
  echo
  echo "################ $label"
  wipe
  local start end
  start=$(date +%s.%N)
  (cd "$APP" && DOCKER_BUILDKIT=$BUILDKIT node "$HELPER" "$REPO:$tag" --docker "$DOCKER_CLI" --branch main "$@" 2>"$APP/$tag.log")
  end=$(date +%s.%N)
  printf 'wall time: %.1fs (build log: %s)\n' "$(echo "$end - $start" | bc)" "$APP/$tag.log"
}

run "run 1: cold, fresh engine, empty registry" cold
run "run 2: fresh engine again, cache from the registry" cached --report-md "$APP/report.md"
echo
echo "################ tags in the registry"
curl -fsS "http://127.0.0.1:5000/v2/${REPO#127.0.0.1:5000/}/tags/list"
echo
