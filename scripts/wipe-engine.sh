#!/usr/bin/env bash
# Makes the engine look like a fresh setup_remote_docker: no containers, no
# images, no build cache. Refuses on an engine it did not start unless told.
set -euo pipefail
STATE_DIR="${DRC_TEST_STATE:-/tmp/drc-test-env}"
ENGINE="${DRC_TEST_ENGINE:-legacy}"
# The containerd store keeps blobs and snapshots no image uses: that engine is restarted empty.
if [ "$ENGINE" = modern ] && [ -f "$STATE_DIR/engines/modern/dockerd.pid" ]; then
  exec bash "$(dirname "$0")/test-env.sh" fresh modern >/dev/null
fi
started="$STATE_DIR/dockerd.pid"
[ "$ENGINE" = legacy ] || started="$STATE_DIR/engines/$ENGINE/dockerd.pid"
if [ ! -f "$started" ] && [ "${DRC_WIPE_ENGINE:-}" != 1 ]; then
  echo "wipe-engine: this engine was not started by scripts/test-env.sh; set DRC_WIPE_ENGINE=1 to wipe it anyway" >&2
  exit 1
fi
docker ps -aq | xargs -r docker rm -f >/dev/null
docker images -aq | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true
docker builder prune -af >/dev/null 2>&1
