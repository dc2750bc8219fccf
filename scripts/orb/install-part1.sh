#!/usr/bin/env bash
# Orb step: the first half of the helper bundled in the orb, for install.sh in the next step (one step with all of it would pass Linux's 128 KiB argument limit).
set -euo pipefail
mkdir -p "${PARAM_INSTALL_DIR:-/tmp/docker-build-remote-cache}"
printf '%s' '@@DRC_BUNDLE_GZIP_BASE64_1@@' > "${PARAM_INSTALL_DIR:-/tmp/docker-build-remote-cache}/.bundle-part-1.b64"
