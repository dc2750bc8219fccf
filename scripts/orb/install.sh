#!/usr/bin/env bash
# Orb step: writes the helper bundled inside the orb to disk, from the first half the
# step before wrote and the second half here. Idempotent.
# Parameters arrive as environment variables: PARAM_INSTALL_DIR.
set -euo pipefail

install_dir="${PARAM_INSTALL_DIR:-/tmp/docker-build-remote-cache}"
helper="$install_dir/docker-build-remote-cache.mjs"
bundle_sha256='@@DRC_BUNDLE_SHA256@@'

if ! command -v node >/dev/null 2>&1; then
  echo "error: node is not installed in this executor." >&2
  echo "hint: use an image with Node.js 18.19 or newer and the docker CLI, e.g. cimg/node:lts (the orb's default executor)." >&2
  exit 1
fi
if ! node -e 'const [major, minor] = process.versions.node.split(".").map(Number); process.exit(major > 18 || (major === 18 && minor >= 19) ? 0 : 1)'; then
  echo "error: Node.js $(node --version) is too old; the helper needs 18.19 or newer." >&2
  echo "hint: use cimg/node:lts, or install a newer Node.js before this step." >&2
  exit 1
fi
if ! command -v docker >/dev/null 2>&1; then
  echo "error: the docker CLI is not installed in this executor." >&2
  echo "hint: use cimg/node or cimg/base (they have it), and add setup_remote_docker before building." >&2
  exit 1
fi
case "$bundle_sha256" in
  @@*) echo "error: this is the unpacked orb source; publish the packed orb (npm run build writes dist/orb.yml)." >&2; exit 1 ;;
esac

part1="$install_dir/.bundle-part-1.b64"
if [ -f "$helper" ] && [ "$(sha256sum "$helper" | cut -d ' ' -f 1)" = "$bundle_sha256" ]; then
  rm -f "$part1"
  echo "docker-build-remote-cache is already installed at $helper"
  exit 0
fi
if [ ! -f "$part1" ]; then
  echo "error: the first half of the helper ($part1) is missing: the step before this one writes it." >&2
  echo "hint: use the orb's install command, which runs both steps in order." >&2
  exit 1
fi
mkdir -p "$install_dir"
{ cat "$part1"; printf '%s' '@@DRC_BUNDLE_GZIP_BASE64_2@@'; } | base64 -d | gunzip > "$helper.tmp"
rm -f "$part1"
if [ "$(sha256sum "$helper.tmp" | cut -d ' ' -f 1)" != "$bundle_sha256" ]; then
  echo "error: the unpacked helper does not match its checksum; the orb may be damaged." >&2
  exit 1
fi
chmod +x "$helper.tmp"
mv "$helper.tmp" "$helper"
echo "installed docker-build-remote-cache $(node "$helper" --version) at $helper (node $(node --version), $(docker --version))"
