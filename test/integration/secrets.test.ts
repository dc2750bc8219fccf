import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { before, describe, it } from 'node:test';
import yaml from 'js-yaml';
import { compileJob, type Orb } from '../../src/orb/compile.ts';
import { runOrbJob } from '../orb/harness.ts';
import { BUILDKIT_CLI, BUNDLE, REGISTRY, ROOT, cleanup, ensureTestEnv, registryTags, smallApp, wipeEngine } from '../support/env.ts';

const PASSWORD = `Sup3r-${Math.random().toString(36).slice(2)}-secret`;

/** Every process's command line, read over and over while `body` runs. */
async function watchCmdlines<T>(body: () => Promise<T>): Promise<{ result: T; cmdlines: Set<string> }> {
  const cmdlines = new Set<string>();
  let running = true;
  const poll = (async () => {
    while (running) {
      for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
        try {
          cmdlines.add(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '));
        } catch {
          // the process ended
        }
      }
      await new Promise((r) => setTimeout(r, 15));
    }
  })();
  try {
    const result = await body();
    return { result, cmdlines };
  } finally {
    running = false;
    await poll;
  }
}

function runBundle(args: string[], cwd: string, env: Record<string, string>, input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BUNDLE, ...args], { cwd, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.end(input);
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('secrets and injection', { timeout: 600_000 }, () => {
  before(() => ensureTestEnv());

  for (const source of ['--password-stdin', '--password-env'] as const) {
    it(`a password given with ${source} never reaches the output, the reports, or any command line`, async () => {
      const app = smallApp();
      const out = mkdtempSync(join(tmpdir(), 'drc-secret-'));
      const repo = `${REGISTRY}/secret-${Math.random().toString(16).slice(2, 8)}/app`;
      wipeEngine();
      const args = [`${repo}:v1`, '--docker', BUILDKIT_CLI, '--branch', 'main', '--username', 'robot', '--report', join(out, 'r.json'), '--report-md', join(out, 'r.md'), '--verbose'];
      if (source === '--password-stdin') args.push('--password-stdin');
      else args.push('--password-env', 'REGISTRY_PASSWORD');
      const env = { DOCKER_BUILDKIT: '1', DOCKER_CONFIG: join(out, 'docker'), REGISTRY_PASSWORD: source === '--password-env' ? PASSWORD : '' };
      // A config of its own for the login; the engine's buildx plugin goes with it.
      const plugins = process.env.DOCKER_CONFIG ? join(process.env.DOCKER_CONFIG, 'cli-plugins') : undefined;
      if (plugins && existsSync(plugins)) {
        mkdirSync(env.DOCKER_CONFIG, { recursive: true });
        symlinkSync(plugins, join(env.DOCKER_CONFIG, 'cli-plugins'));
      }
      const { result, cmdlines } = await watchCmdlines(() => runBundle(args, app, env, source === '--password-stdin' ? PASSWORD : ''));
      assert.equal(result.code, 0, result.stderr.slice(-2000));
      assert.match(result.stderr, /logged in to 127\.0\.0\.1:5000 as robot/);
      assert.ok(cmdlines.size > 20, `saw ${cmdlines.size} command lines`);
      assert.ok([...cmdlines].some((c) => c.includes('login') && c.includes('--password-stdin')), 'docker login ran while watched');
      for (const [what, text] of [['stdout', result.stdout], ['stderr', result.stderr], ['JSON report', readFileSync(join(out, 'r.json'), 'utf8')], ['markdown report', readFileSync(join(out, 'r.md'), 'utf8')]] as const) {
        assert.ok(!text.includes(PASSWORD), `the password is not in the ${what}`);
      }
      assert.ok(![...cmdlines].some((c) => c.includes(PASSWORD)), 'the password is on no command line');
      cleanup(app);
      rmSync(out, { recursive: true, force: true });
    });
  }

  it('a branch named like a shell injection runs nothing, through the CLI, and gets a sanitised tag', async () => {
    const marker = join(tmpdir(), `pwned-${Math.random().toString(16).slice(2)}`);
    const branch = `x$(touch ${marker})\`touch ${marker}-2\`;touch ${marker}-3`;
    const app = smallApp();
    const repo = `${REGISTRY}/inject-${Math.random().toString(16).slice(2, 8)}/app`;
    wipeEngine();
    const result = await runBundle([`${repo}:v1`, '--docker', BUILDKIT_CLI, '--branch', branch, '--label', `x=$(touch ${marker}-4)`], app, { DOCKER_BUILDKIT: '1' }, '');
    assert.equal(result.code, 0, result.stderr.slice(-2000));
    for (const suffix of ['', '-2', '-3', '-4']) assert.ok(!existsSync(marker + suffix), `${marker}${suffix} was not created`);
    const tags = await registryTags(repo);
    assert.ok(tags.length > 0 && tags.every((t) => /^[\w][\w.-]{0,127}$/.test(t)), tags.join(', '));
    // The inline scheme tags each stage (BRANCH__deps); the registry cache one cache of the target (_BRANCH).
    assert.ok(tags.some((t) => /^_?x-touch-tmp-pwned-[0-9a-f]+-touch-tmp-pwned-[0-9a-f]+-2-touch-tmp-pw.*_[0-9a-f]{12}(__deps)?$/.test(t) || /_[0-9a-f]{12}(__deps)?$/.test(t)), tags.join(', '));
    cleanup(app);
  });

  it('a branch and build arguments named like a shell injection run nothing through the orb job', () => {
    const marker = join(tmpdir(), `pwned-orb-${Math.random().toString(16).slice(2)}`);
    const app = smallApp();
    const repo = `${REGISTRY}/inject-orb-${Math.random().toString(16).slice(2, 8)}/app`;
    const job = (extraBuildArgs: string) =>
      runOrbJob({
        orbText: readFileSync(join(ROOT, 'dist', 'orb.yml'), 'utf8'),
        job: 'build-with-cache',
        params: { image: repo, login: false, buildkit: 'true', extra_build_args: extraBuildArgs },
        checkout: app,
        dockerCli: BUILDKIT_CLI,
        env: { CIRCLE_BRANCH: `y$(touch ${marker})\`touch ${marker}-4\`;touch ${marker}-5`, CIRCLE_SHA1: 'abc123' },
      });
    // Well-formed arguments whose values look like code: built, with the values as plain text.
    const quoted = job(`--label "a=$(touch ${marker}-1)" --label 'b=\`touch ${marker}-2\`;touch ${marker}-3'`);
    assert.ok(quoted.ok, quoted.output.slice(-3000));
    assert.match(quoted.output, /Summary: .* on y\$\(touch/);
    // Stray words after them: refused with a clear message, still nothing run.
    const stray = job(`--label b=\`touch ${marker}-6\`;touch ${marker}-7`);
    assert.ok(!stray.ok);
    assert.match(stray.output, /error: unexpected argument/);
    for (const suffix of ['', '-1', '-2', '-3', '-4', '-5', '-6', '-7']) assert.ok(!existsSync(marker + suffix), `${marker}${suffix} was not created`);
    cleanup(app);
  });

  it('no code path builds a shell command from strings: the source, the bundle and the packed orb', () => {
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        if (entry.isDirectory()) walk(join(dir, entry.name));
        else if (entry.name.endsWith('.ts')) files.push(join(dir, entry.name));
      }
    };
    walk(join(ROOT, 'src'));
    const forbidden = [/shell:\s*true/, /\bexecSync\(/, /\bexec\(\s*[`'"]/, /execaCommand/, /import\s*\{[^}]*\$[\s,}][^}]*\}\s*from\s*'execa'/, /import\s*\{[^}]*\bexec(Sync)?\b[^}]*\}\s*from\s*'node:child_process'/];
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      for (const pattern of forbidden) assert.doesNotMatch(text, pattern, `${file} has ${pattern}`);
    }
    const bundle = readFileSync(BUNDLE, 'utf8');
    assert.doesNotMatch(bundle, /shell:!0|shell:true|execaCommand\(/);

    const packed = readFileSync(join(ROOT, 'dist', 'orb.yml'), 'utf8');
    // Two halves, one per install step (each under 100 KiB).
    const first = /printf '%s' '([A-Za-z0-9+/=]+)' > /.exec(packed)?.[1] ?? '';
    const second = /printf '%s' '([A-Za-z0-9+/=]+)'; \} \| base64 -d \| gunzip/.exec(packed)?.[1] ?? '';
    assert.ok(first.length > 1000 && second.length > 1000, 'the packed orb carries the bundle');
    assert.equal(gunzipSync(Buffer.from(first + second, 'base64')).toString('utf8'), bundle, 'the carried bundle is the built one');
    const orb = yaml.load(packed) as Orb;
    for (const step of compileJob(orb, 'build-with-cache', { image: 'x/y' }).steps) {
      if (step.kind !== 'run') continue;
      const script = step.command.replace(first, '').replace(second, '');
      assert.doesNotMatch(script, /\beval\b|<< *parameters|\$\(\s*echo \$PARAM/, `${step.name} runs no user text as code`);
      for (const value of Object.values(step.environment)) assert.doesNotMatch(value, /<<|\$\(/);
    }
  });
});
