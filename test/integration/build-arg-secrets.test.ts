import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runOrbJob } from '../orb/harness.ts';
import { BUILDKIT_CLI, cleanup, ensureTestEnv, explain, type HelperRun, ROOT, runHelper, smallApp, uniqueRepo, wipeEngine } from '../support/env.ts';

const TOKEN = 'supersecret123';
const SHOWN = '20.11.1-shown';

/** The example's small app, with the builder stage reading a token build argument (as a user's npm install would). */
function appReadingToken(opts: { failFinal: boolean }): string {
  const dir = smallApp({ failFinal: opts.failFinal });
  const dockerfile = join(dir, 'Dockerfile');
  writeFileSync(dockerfile, readFileSync(dockerfile, 'utf8').replace('FROM deps AS builder\n', 'FROM deps AS builder\nARG NPM_TOKEN\nARG NODE_VERSION\nRUN test -n "$NPM_TOKEN" && echo "node $NODE_VERSION" > /node.txt\n'));
  return dir;
}

/** Every byte a run wrote where a user or CI would see it: stdout, stderr and both reports. */
function everything(run: HelperRun, reports: string): string {
  const md = join(reports, 'r.md');
  let text = `${run.stdout}\n${run.stderr}\n${JSON.stringify(run.report ?? {})}`;
  try {
    text += readFileSync(md, 'utf8');
  } catch {
    // No markdown report: nothing more to read.
  }
  return text;
}

const warnings = (text: string): number => (text.match(/build argument NPM_TOKEN looks like a secret/g) ?? []).length;

describe('build-argument values never reach the log', { timeout: 600_000 }, () => {
  const dirs: string[] = [];
  before(() => ensureTestEnv());
  after(() => {
    for (const dir of dirs) cleanup(dir);
  });
  const reportsDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'drc-argsecret-'));
    dirs.push(dir);
    return dir;
  };

  it('a build whose final stage fails, on the real engine: the failing command shows NPM_TOKEN=***, the warning comes once', async () => {
    const app = appReadingToken({ failFinal: true });
    dirs.push(app);
    const reports = reportsDir();
    wipeEngine();
    const run = await runHelper([`${uniqueRepo('argsecret')}:v1`, '--docker', BUILDKIT_CLI, '--branch', 'main', '--build-arg', `NPM_TOKEN=${TOKEN}`, '--report-md', join(reports, 'r.md')], { cwd: app });
    assert.equal(run.code, 6, explain(run));
    assert.match(run.stderr, /deliberate failure in the final stage/, 'the build ran (and the token step passed: its value reached the build)');
    assert.match(run.stderr, /--build-arg '?NPM_TOKEN=\*\*\*'?/, 'the failing command is shown, with the value hidden');
    const text = everything(run, reports);
    assert.ok(!text.includes(TOKEN), 'the value is in no byte of stdout, stderr or the reports');
    assert.equal(warnings(run.stderr), 1, 'one warning per run (the report lists it too)');
    assert.match(run.stderr, /--secret id=NPM_TOKEN,env=NPM_TOKEN/);
  });

  it('--dry-run prints every command with the value hidden, and warns once', async () => {
    const app = appReadingToken({ failFinal: false });
    dirs.push(app);
    const run = await runHelper([`${uniqueRepo('argsecret-dry')}:v1`, '--docker', BUILDKIT_CLI, '--branch', 'main', '--dry-run', '--build-arg', `NPM_TOKEN=${TOKEN}`, `--build-arg=NODE_VERSION=${SHOWN}`], { cwd: app });
    assert.equal(run.code, 0, explain(run));
    assert.match(run.stdout, /NPM_TOKEN=\*\*\*/);
    assert.match(run.stdout, /NODE_VERSION=\*\*\*/, 'every value is hidden, not only secret-looking ones');
    assert.ok(!everything(run, '/nonexistent').includes(TOKEN));
    assert.equal(warnings(run.stdout + run.stderr), 1);
  });

  it('--verbose with --show-build-arg shows exactly the one listed', async () => {
    const app = appReadingToken({ failFinal: false });
    dirs.push(app);
    wipeEngine();
    const run = await runHelper([`${uniqueRepo('argsecret-show')}:v1`, '--docker', BUILDKIT_CLI, '--branch', 'main', '--no-push', '--verbose', '--show-build-arg', 'NODE_VERSION', '--build-arg', `NPM_TOKEN=${TOKEN}`, '--build-arg', `NODE_VERSION=${SHOWN}`], { cwd: app });
    assert.equal(run.code, 0, explain(run));
    assert.match(run.stderr, new RegExp(`\\$ .*--build-arg '?NODE_VERSION=${SHOWN.replace(/\./g, '\\.')}'?`), 'the listed value is on the verbose command line');
    assert.match(run.stderr, /\$ .*--build-arg '?NPM_TOKEN=\*\*\*'?/);
    assert.ok(!everything(run, '/nonexistent').includes(TOKEN), 'the other one is not');
  });

  it('an image reference with user:password@ is refused with one clear line, before anything runs', async () => {
    const app = appReadingToken({ failFinal: false });
    dirs.push(app);
    const run = await runHelper([`robot:${TOKEN}@127.0.0.1:5000/creds/app:v1`, '--docker', BUILDKIT_CLI, '--branch', 'main'], { cwd: app });
    assert.equal(run.code, 2, explain(run));
    assert.match(run.stderr, /error: IMAGE carries registry credentials/);
    assert.ok(!run.stderr.includes(TOKEN) && !run.stdout.includes(TOKEN));
  });

  it('the orb job\'s extra_build_args go through the same redaction', () => {
    const app = appReadingToken({ failFinal: true });
    dirs.push(app);
    wipeEngine();
    const result = runOrbJob({
      orbText: readFileSync(join(ROOT, 'dist', 'orb.yml'), 'utf8'),
      job: 'build-with-cache',
      params: { image: uniqueRepo('argsecret-orb'), login: false, buildkit: 'true', extra_build_args: `--build-arg NPM_TOKEN=${TOKEN}` },
      checkout: app,
      dockerCli: BUILDKIT_CLI,
      env: { CIRCLE_BRANCH: 'main', CIRCLE_SHA1: 'abc123' },
    });
    assert.ok(!result.ok, 'the final stage fails');
    assert.match(result.output, /NPM_TOKEN=\*\*\*/);
    assert.ok(!result.output.includes(TOKEN), 'the value is in no byte of the job\'s output');
    assert.equal(warnings(result.output), 1);
    // A failed build stores no artifacts; the reports are where the job wrote them.
    for (const name of ['docker-build-report.json', 'docker-build-report.md']) {
      const text = readFileSync(join('/tmp/docker-build-remote-cache-report', name), 'utf8');
      assert.match(text, /build-failed/, `${name} is this run's`);
      assert.ok(!text.includes(TOKEN), `${name} holds no value`);
    }
    rmSync(result.artifacts, { recursive: true, force: true });
  });
});
