#!/usr/bin/env bash
# Runs every test: unit, integration (real engine + registry), orb. Works on a
# fresh Debian machine: installs what is missing, starts what is not running.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x node_modules/.bin/tsx ] || npm ci --no-audit --no-fund
bash scripts/test-env.sh up >/dev/null
npm run --silent build
npx tsc --noEmit -p tsconfig.json
node dist/validate-orb.mjs orb.yml
node dist/validate-orb.mjs dist/orb.yml
node scripts/run-tests.mjs test
