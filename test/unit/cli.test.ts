import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { BUNDLE, ROOT } from '../support/env.ts';

const FAKE = join(ROOT, 'test', 'support', 'fake-docker.mjs');

function project(dockerfile = 'FROM scratch AS one\nCOPY a /a\nFROM one AS two\nCOPY a /b\n'): string {
  const dir = mkdtempSync(join(tmpdir(), 'drc-cli-'));
  writeFileSync(join(dir, 'Dockerfile'), dockerfile);
  writeFileSync(join(dir, 'a'), 'a');
  return dir;
}

function cli(args: string[], cwd: string, env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, [BUNDLE, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, CIRCLE_BRANCH: '', CIRCLE_TAG: '', DOCKER_BUILDKIT: '', ...env },
    timeout: 60_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('the bundled CLI', () => {
  before(() => {
    spawnSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { stdio: 'ignore' });
  });

  it('--help explains each option with an example', () => {
    const { code, stdout } = cli(['--help'], ROOT);
    assert.equal(code, 0);
    for (const option of ['--branch', '--default-branch', '--target', '--stages', '--cache-repo', '--tag', '--dry-run', '--verbose', '--report']) {
      assert.ok(stdout.includes(option), `help mentions ${option}`);
    }
    assert.match(stdout, /Example: --branch feature\/login/);
  });

  it('--dry-run prints the exact docker commands, runs nothing, exits 0', () => {
    const dir = project();
    const log = join(dir, 'calls.jsonl');
    const { code, stdout } = cli(['localhost:5000/team/app:v1', '--branch', 'main', '--dry-run', '--docker', FAKE, '--build-arg', 'A=1'], dir, { FAKE_DOCKER_LOG: log });
    assert.equal(code, 0);
    assert.match(stdout, /DOCKER_BUILDKIT=0 .*fake-docker\.mjs build --target one --tag drc\.local\/team\/app:run-[0-9a-f]+__one --tag drc\.local\/team\/app:last__one --cache-from localhost:5000\/team\/app:main__one --build-arg 'A=\*\*\*' \/\S+$/m);
    assert.match(stdout, /push localhost:5000\/team\/app:v1$/m);
    const calls = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { args: string[] });
    assert.ok(calls.every((c) => ['version', 'buildx', 'info'].includes(c.args[0] ?? '')), `only probes ran: ${JSON.stringify(calls)}`);
  });

  it('builds an unnamed stage used by index (COPY --from=0) alone, from a temporary copy of the Dockerfile that names it', () => {
    const dir = project('FROM scratch\nCOPY a /a\nFROM scratch\nCOPY --from=0 /a /b\n');
    const { code, stdout, stderr } = cli(['localhost:5000/team/app:v1', '--branch', 'main', '--dry-run', '--docker', FAKE], dir, { DOCKER_BUILDKIT: '1' });
    assert.equal(code, 0, stderr);
    assert.match(stderr, /stage 0 has no name: the builds use a temporary copy of the Dockerfile that names it stage-0/);
    const build = /fake-docker\.mjs build --target stage-0 .* --file (\S+drc-dockerfile-[^/]+\/Dockerfile) \S+$/m.exec(stdout);
    assert.ok(build, stdout);
    assert.match(stdout, /manifest inspect localhost:5000\/team\/app:main__0$/m);
    assert.ok(!existsSync(build[1] ?? ''), 'the copy is removed when the run ends');
  });

  it('--stages naming unnamed stages: the middle one gets its name in the copy, the last one builds without --target', () => {
    const dir = project('FROM scratch\nCOPY a /a\nFROM scratch\nCOPY --from=0 /a /b\n');
    const { code, stdout, stderr } = cli(['localhost:5000/team/app:v1', '--branch', 'main', '--stages', '0,1', '--dry-run', '--docker', FAKE], dir, { DOCKER_BUILDKIT: '1' });
    assert.equal(code, 0, stderr);
    const builds = stdout.split('\n').filter((l) => /fake-docker\.mjs build /.test(l));
    assert.ok(builds.some((l) => /build --target stage-0 --tag \S+__0 /.test(l)), stdout);
    assert.ok(builds.some((l) => /build --tag \S+__1 /.test(l)), `the last stage has no --target:\n${stdout}`);
    assert.ok(builds.every((l) => / --file \S+drc-dockerfile-[^/]+\/Dockerfile /.test(l)), stdout);
  });

  it('passes the user\'s docker build options to every build, in order, with the context last', () => {
    const dir = project();
    mkdirSync(join(dir, 'ctx'));
    writeFileSync(join(dir, 'ctx', 'Dockerfile'), 'FROM scratch AS one\nFROM one AS two\n');
    const log = join(dir, 'calls.jsonl');
    const user = ['--build-arg', 'A=1', '--secret', 'id=npm,src=.npmrc', '--label', 'x=y z', '-f', 'ctx/Dockerfile'];
    const { code, stderr } = cli(['127.0.0.1:5998/team/app:v1', '--branch', 'main', '--no-push', '--docker', FAKE, ...user, 'ctx'], dir, { FAKE_DOCKER_LOG: log });
    assert.equal(code, 0, stderr);
    const builds = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { args: string[]; buildkit: string }).filter((c) => c.args[0] === 'build');
    assert.equal(builds.length, 2);
    for (const build of builds) {
      // The context goes as an absolute path (the docker CLI keys BuildKit's copy of it on the path as given).
      assert.deepEqual(build.args.slice(-user.length - 1), [...user, join(dir, 'ctx')]);
      assert.equal(build.buildkit, '0');
    }
    assert.deepEqual(builds.map((b) => b.args[2]), ['one', 'two']);
  });

  const errors: { name: string; args: string[]; code: number; message: RegExp; dockerfile?: string | null; env?: Record<string, string> }[] = [
    { name: 'a missing IMAGE', args: [], code: 2, message: /IMAGE is missing/ },
    { name: 'an unknown flag', args: ['app', '--frobnicate'], code: 2, message: /unknown option --frobnicate/ },
    { name: 'an invalid image reference', args: ['Bad/Name'], code: 3, message: /must be lowercase/ },
    { name: 'a missing Dockerfile', args: ['app', '--dry-run'], code: 3, message: /cannot read the Dockerfile/, dockerfile: null },
    { name: 'an unknown --target', args: ['app', '--target', 'nope', '--dry-run'], code: 3, message: /--target "nope" is not a stage.*\n.*use one of: one, two/ },
    { name: 'a stage cycle', args: ['app', '--dry-run'], code: 3, message: /cycle/, dockerfile: 'FROM a AS one\nCOPY --from=two / /\nFROM b AS two\nCOPY --from=one / /\n' },
    { name: 'a branch that sanitises to nothing', args: ['app', '--branch', '///', '--dry-run'], code: 3, message: /nothing that can go into a Docker tag/ },
    { name: 'a missing docker CLI', args: ['app', '--docker', '/nonexistent/docker'], code: 4, message: /docker CLI "\/nonexistent\/docker" was not found/ },
    { name: 'an unreachable engine', args: ['app', '--docker', 'docker'], code: 5, message: /engine does not answer/, env: { DOCKER_HOST: 'unix:///nonexistent.sock' } },
    { name: 'a bad --retries', args: ['app', '--retries', '0'], code: 2, message: /--retries must be a whole number/ },
  ];
  for (const e of errors) {
    it(`${e.name}: one clear message, exit ${e.code}, no stack trace`, () => {
      const dir = e.dockerfile === null ? mkdtempSync(join(tmpdir(), 'drc-cli-')) : project(e.dockerfile);
      const { code, stderr } = cli([...e.args, '--branch', e.args.includes('--branch') ? e.args[e.args.indexOf('--branch') + 1] ?? 'main' : 'main'], dir, e.env);
      assert.equal(code, e.code, stderr);
      assert.match(stderr, e.message);
      assert.match(stderr, /^error: /m);
      assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
    });
  }
});
