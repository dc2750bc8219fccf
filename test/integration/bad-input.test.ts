import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { BUILDKIT_CLI, BUNDLE, REGISTRY, ensureTestEnv, registryTags } from '../support/env.ts';

const GOOD = `ARG BASE_IMAGE=${REGISTRY}/drc-test/busybox:2\nFROM \${BASE_IMAGE} AS deps\nRUN echo d > /d\nFROM deps AS builder\nRUN echo b > /b\nFROM \${BASE_IMAGE} AS final\nCOPY --from=builder /b /b\n`;
const REPO = `${REGISTRY}/badinput-${Math.random().toString(16).slice(2, 8)}/app`;

interface Case {
  readonly name: string;
  readonly args: readonly string[];
  /** Dockerfile text; null: no Dockerfile at all. */
  readonly dockerfile?: string | null;
  readonly env?: Record<string, string>;
  readonly input?: string;
  readonly code: number;
  /** What stderr (or stdout, for successes) must say: the input and what to do. */
  readonly says: RegExp;
}

const CASES: Case[] = [
  // image references
  { name: 'an uppercase repository', args: ['MyOrg/App:1'], code: 3, says: /invalid repository "MyOrg\/App".*\n.*lowercase: use "myorg\/app"/ },
  { name: 'an empty image', args: [''], code: 3, says: /the image name is empty/ },
  { name: 'a tag with no repository', args: [':v1'], code: 3, says: /":v1" has a tag but no repository/ },
  { name: 'a registry port out of range', args: ['localhost:99999/app'], code: 3, says: /invalid registry host "localhost:99999"/ },
  { name: 'a digest instead of a tag', args: [`app@sha256:${'a'.repeat(64)}`], code: 3, says: /has a digest\n.*give a tag instead/ },
  { name: 'a 300-character name', args: [`${REGISTRY}/${'a'.repeat(300)}`], code: 3, says: /characters long\n.*255 at most/ },
  { name: 'an empty tag', args: ['app:'], code: 3, says: /invalid tag ""/ },
  { name: 'a tag with a bad character', args: ['app:v1!'], code: 3, says: /invalid tag "v1!"/ },
  { name: 'a --cache-repo with a tag', args: ['app', '--cache-repo', `${REGISTRY}/cache:x`], code: 3, says: /cache repository ".*cache:x" has a tag/ },
  { name: 'an extra --tag that is invalid', args: ['app', '--tag', 'Bad/Name:x'], code: 3, says: /invalid repository "Bad\/Name" in --tag/ },
  // branch names
  { name: 'a branch of punctuation only', args: ['app', '--branch', '/-/.', '--dry-run'], code: 3, says: /branch name "\/-\/\." has nothing that can go into a Docker tag\n.*--branch NAME/ },
  { name: 'a unicode branch (hashed, not refused)', args: ['app', '--branch', 'функция/ветка', '--dry-run'], code: 0, says: /:_?branch_[0-9a-f]{12}__deps/ },
  { name: 'a chain of slashes', args: ['app', '--branch', 'a//b///c', '--dry-run'], code: 0, says: /:_?a\.b\.c_[0-9a-f]{12}__deps/ },
  { name: 'a leading dash', args: ['app', '--branch=-x', '--dry-run'], code: 0, says: /:_?x_[0-9a-f]{12}__deps/ },
  { name: 'a leading dot', args: ['app', '--branch', '.hidden', '--dry-run'], code: 0, says: /:_?hidden_[0-9a-f]{12}__deps/ },
  { name: 'a 300-character branch', args: ['app', '--branch', `f/${'x'.repeat(298)}`, '--dry-run'], code: 0, says: /:_?f\.x{49}_[0-9a-f]{12}__deps/ },
  { name: 'pull/123', args: ['app', '--branch', 'pull/123', '--dry-run'], code: 0, says: /:_?pull\.123__deps/ },
  { name: 'no branch on a tag build', args: ['app', '--dry-run'], env: { CIRCLE_TAG: 'v1.0.0', CIRCLE_BRANCH: '' }, code: 0, says: /branch \(none\)/ },
  // Dockerfiles
  { name: 'a missing Dockerfile', args: ['app'], dockerfile: null, code: 3, says: /cannot read the Dockerfile Dockerfile \(ENOENT\)\n.*-f PATH/ },
  { name: 'a Dockerfile that is a folder', args: ['app', '-f', 'sub'], code: 3, says: /the Dockerfile sub is a folder/ },
  { name: 'an empty Dockerfile', args: ['app'], dockerfile: '', code: 3, says: /Dockerfile is empty/ },
  { name: 'a Dockerfile without FROM', args: ['app'], dockerfile: 'ARG X=1\n', code: 3, says: /has no FROM instruction/ },
  { name: 'an unknown --target', args: ['app', '--target', 'nope'], code: 3, says: /--target "nope" is not a stage of Dockerfile\n.*use one of: deps, builder, final/ },
  { name: 'a stage cycle', args: ['app'], dockerfile: 'FROM a AS one\nCOPY --from=two / /\nFROM b AS two\nCOPY --from=one / /\n', code: 3, says: /the stages form a cycle: (one -> two -> one|two -> one -> two)/ },
  { name: 'duplicate stage names', args: ['app'], dockerfile: 'FROM a AS x\nFROM b AS x\n', code: 3, says: /stage name "x" is already used/ },
  { name: 'COPY --from an undefined stage', args: ['app'], dockerfile: 'FROM a AS builder\nFROM b\nCOPY --from=biulder / /\n', code: 3, says: /--from=biulder names no stage \(stages: builder\)/ },
  { name: 'CRLF line endings (read, not refused)', args: ['app', '--dry-run'], dockerfile: GOOD.replace(/\n/g, '\r\n'), code: 0, says: /--target (builder|final)/ },
  { name: 'an unknown --stages entry', args: ['app', '--stages', 'deps,nope'], code: 3, says: /--target "nope" is not a stage|"nope" is not a stage/ },
  { name: 'an unnamed target that is not the last stage', args: ['app', '--target', '0'], dockerfile: 'FROM a\nFROM b AS named\n', code: 3, says: /the target stage 0 has no name/ },
  // options
  { name: 'an unknown flag', args: ['app', '--frobnicate'], code: 2, says: /unknown option --frobnicate\n.*neither an option of this helper/ },
  { name: 'two password sources', args: ['app', '--username', 'u', '--password-stdin', '--password-env', 'X'], code: 2, says: /--password-stdin and --password-env both given/ },
  { name: 'a username without a password source', args: ['app', '--username', 'u'], code: 2, says: /--username is given without a password source/ },
  { name: 'a password source without a username', args: ['app', '--password-env', 'PW'], code: 2, says: /without --username/ },
  { name: 'zero retries', args: ['app', '--retries', '0'], code: 2, says: /--retries must be a whole number from 1 to 10, not "0"/ },
  { name: 'retries that are not a number', args: ['app', '--retries', 'many'], code: 2, says: /--retries must be a whole number/ },
  { name: 'a negative timeout', args: ['app', '--timeout', '-5'], code: 2, says: /--timeout must be/ },
  { name: 'an unknown buildx builder', args: ['app', '--builder', 'magic'], code: 2, says: /buildx builder "magic"/ },
  { name: 'an empty --stages', args: ['app', '--stages', ','], code: 2, says: /--stages is empty/ },
  { name: 'two build contexts', args: ['app', 'a', 'b'], code: 2, says: /unexpected argument "b"/ },
  { name: 'a docker flag the helper owns', args: ['app', '--output', 'type=tar,dest=x'], code: 2, says: /--output cannot be passed/ },
  { name: 'a remote build context', args: ['app', 'https://github.com/x/y.git'], code: 2, says: /build context "https:\/\/github\.com\/x\/y\.git" is not a local folder/ },
  { name: 'a Dockerfile on stdin', args: ['app', '-f', '-'], code: 2, says: /-f - \(Dockerfile on stdin\) is not supported/ },
  { name: 'a missing IMAGE', args: ['--branch', 'main'], code: 2, says: /IMAGE is missing/ },
  { name: 'an empty password on stdin', args: ['app', '--username', 'u', '--password-stdin'], input: '', code: 2, says: /no registry password in standard input/ },
];

describe('bad input: one clear line, a documented exit code, no stack trace, no push', { timeout: 300_000 }, () => {
  before(() => ensureTestEnv());

  it('has at least 30 cases', () => assert.ok(CASES.length >= 30, `${CASES.length} cases`));

  for (const [index, c] of CASES.entries()) {
    it(`${c.name} -> exit ${c.code}`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'drc-bad-'));
      mkdirSync(join(dir, 'sub'));
      if (c.dockerfile !== null) writeFileSync(join(dir, 'Dockerfile'), c.dockerfile ?? GOOD);
      // Image arguments that name a bare repository are put in this test's own registry repository.
      const args = c.args.map((a, i) => (i === 0 && a === 'app' ? `${REPO}-${index}:v1` : a));
      const result = spawnSync(process.execPath, [BUNDLE, ...args, '--docker', BUILDKIT_CLI], {
        cwd: dir,
        encoding: 'utf8',
        input: c.input ?? '',
        env: { ...process.env, CIRCLE_BRANCH: 'main', CIRCLE_TAG: '', DOCKER_BUILDKIT: '1', ...c.env },
        timeout: 120_000,
      });
      const text = c.code === 0 ? result.stdout : result.stderr;
      assert.equal(result.status, c.code, `stdout:\n${result.stdout.slice(-1500)}\nstderr:\n${result.stderr.slice(-1500)}`);
      assert.match(text, c.says);
      assert.doesNotMatch(result.stderr, /^\s+at .*\(.*:\d+:\d+\)$/m, 'no stack trace');
      if (c.code !== 0) {
        const errorLines = result.stderr.split('\n').filter((l) => l.startsWith('error: '));
        assert.equal(errorLines.length, 1, `exactly one error line: ${result.stderr}`);
      }
    });
  }

  it('left nothing in the registry', async () => {
    for (let i = 0; i < CASES.length; i++) assert.deepEqual(await registryTags(`${REPO}-${i}`), [], `case ${i}`);
  });
});
