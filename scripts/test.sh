#!/usr/bin/env bash
# Runs every test: unit and orb tests once, the engine suites (test/integration and the
# orb job) on each engine kind: modern (containerd store), modern-classic (overlay2
# store), legacy (20.10). Works on a fresh Debian machine: installs what is missing,
# starts what is not running. DRC_TEST_ENGINES="modern legacy" runs a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x node_modules/.bin/tsx ] || npm ci --no-audit --no-fund
engines=(${DRC_TEST_ENGINES:-modern modern-classic legacy})
for engine in "${engines[@]}"; do bash scripts/test-env.sh up "$engine" >/dev/null; done
npm run --silent build
npx tsc --noEmit -p tsconfig.json
node dist/validate-orb.mjs orb.yml
node dist/validate-orb.mjs dist/orb.yml
# One node --test run per engine; each prints its own totals, and the last lines sum them up.
status=0
summary=()
node scripts/run-tests.mjs test/unit test/orb/validate.test.ts test/orb/pack.test.ts | tee /tmp/drc-test-unit.log || status=1
summary+=("unit+orb: $(grep -E '^ℹ (pass|fail) ' /tmp/drc-test-unit.log | tr '\n' ' ')")
for engine in "${engines[@]}"; do
  echo "=== engine suites on $engine ==="
  start=$(date +%s)
  log="/tmp/drc-test-$engine.log"
  ( set -a; eval "$(bash scripts/test-env.sh env "$engine")"; set +a
    node scripts/run-tests.mjs test/integration test/orb/job.test.ts ) | tee "$log" || status=1
  summary+=("$engine: $(grep -E '^ℹ (pass|fail) ' "$log" | tr '\n' ' ')in $(( $(date +%s) - start )) s")
done
printf '%s\n' "${summary[@]}"
pass=0 fail=0
for line in "${summary[@]}"; do
  p=$(sed -nE 's/.*ℹ pass ([0-9]+).*/\1/p' <<<"$line"); f=$(sed -nE 's/.*ℹ fail ([0-9]+).*/\1/p' <<<"$line")
  pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0}))
done
echo "total: $pass passed, $fail failed"
exit $status
