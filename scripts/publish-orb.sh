#!/usr/bin/env bash
# For maintainers: validates and publishes the packed orb (dist/orb.yml).
#   scripts/publish-orb.sh NAMESPACE/NAME          publishes @<package.json version>
#   scripts/publish-orb.sh NAMESPACE/NAME dev:x    publishes a dev version
# Needs the circleci CLI with a token (circleci setup); it calls CircleCI's API,
# so it cannot run offline.
set -euo pipefail
cd "$(dirname "$0")/.."
orb="${1:?usage: $0 NAMESPACE/NAME [dev:LABEL]}"
version="${2:-$(node -p 'require("./package.json").version')}"
node scripts/build.mjs
node dist/validate-orb.mjs orb.yml
node dist/validate-orb.mjs dist/orb.yml
if ! command -v circleci >/dev/null 2>&1; then
  echo "error: the circleci CLI is not installed (https://circleci.com/docs/local-cli/)" >&2
  exit 1
fi
circleci orb validate dist/orb.yml
circleci orb publish dist/orb.yml "$orb@$version"
