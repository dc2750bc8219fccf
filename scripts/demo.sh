#!/usr/bin/env bash
# The main job on the built-in example: two runs of the helper on fresh engines
# against the loopback registry. The second one is served from the registry cache.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x node_modules/.bin/esbuild ] || npm ci --no-audit --no-fund
bash scripts/test-env.sh up >/dev/null
npm run --silent build

# Debian's 20.10 client drives BuildKit without buildx; otherwise use the default client.
DOCKER_CLI=docker
BUILDKIT=0
if [ -x /usr/bin/docker ] && DOCKER_BUILDKIT=1 /usr/bin/docker build --help >/dev/null 2>&1; then
  DOCKER_CLI=/usr/bin/docker
  BUILDKIT=1
fi
REPO="127.0.0.1:5000/demo/app-$(date +%s)"
APP="$(mktemp -d)"
cp -r examples/app/. "$APP/"
HELPER="$PWD/dist/docker-build-remote-cache.mjs"
wipe() {
  # A fresh engine, as setup_remote_docker gives; on an engine this project did not start
  # (a laptop's), only the demo's own images are removed.
  if ! bash scripts/wipe-engine.sh 2>/dev/null; then
    docker images --format '{{.Repository}}:{{.Tag}}' | grep -E "^(${REPO}|drc.local/)" | xargs -r docker rmi -f >/dev/null || true
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
