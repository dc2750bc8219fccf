import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BASE_IMAGE, BUILDKIT_CLI, cleanup, ensureTestEnv, explain, imageFiles, reportedStage, runHelper, uniqueRepo, wipeEngine } from '../support/env.ts';

/**
 * Dockerfile shapes users write, each run twice on fresh engines with BuildKit (cold
 * on main, then a source change on a branch): the run succeeds, the stage that holds
 * the dependency steps reuses them, and the deploy image has exactly the files of a
 * no-cache `docker build` with the same options.
 */
interface Shape {
  readonly name: string;
  readonly dockerfile: string;
  /** Options for the first and the second run (docker build options, passed through). */
  readonly args?: readonly [readonly string[], readonly string[]];
  /** The stage holding the dependency steps, and its steps cached / total after the source change. */
  readonly dependencyStage: string;
  readonly afterChange: { cached: number; total: number };
}

const B = BASE_IMAGE;
const DEPS = 'COPY deps.txt /d/\nRUN cat /d/deps.txt > /d/installed';
const SOURCES = 'COPY src/ /s/\nRUN cat /d/installed /s/*.txt > /out';

const shapes: Shape[] = [
  {
    name: 'upper-case and dotted stage names, a scratch final stage',
    dockerfile: `FROM ${B} AS Build.Stage_1\n${DEPS}\n${SOURCES}\nFROM scratch AS Slim_Final\nCOPY --from=build.stage_1 /out /app\nCMD ["none"]\n`,
    dependencyStage: 'build.stage_1',
    afterChange: { cached: 2, total: 4 },
  },
  {
    name: 'a diamond: two stages FROM one dependency stage, joined in the final one',
    dockerfile: `FROM ${B} AS deps\n${DEPS}\nFROM deps AS app\n${SOURCES}\nFROM deps AS docs\nRUN echo docs > /docs\nFROM ${B}\nCOPY --from=app /out /app\nCOPY --from=docs /docs /docs\n`,
    dependencyStage: 'deps',
    afterChange: { cached: 2, total: 2 },
  },
  {
    name: 'a build argument whose value changes between the runs re-runs the step that reads it',
    // A RUN after the ARG depends on its value (docker's rule), so the ARG comes after the dependency steps.
    dockerfile: `FROM ${B} AS builder\n${DEPS}\nARG FLAVOUR=plain\nRUN echo $FLAVOUR > /d/flavour\n${SOURCES}\nRUN cat /d/flavour >> /out\nFROM ${B}\nCOPY --from=builder /out /app\n`,
    args: [['--build-arg', 'FLAVOUR=x'], ['--build-arg', 'FLAVOUR=y']],
    dependencyStage: 'builder',
    afterChange: { cached: 2, total: 6 },
  },
  {
    name: 'a build secret and a cache mount (RUN --mount), lower-case instructions, continuation lines',
    dockerfile: `from ${B} as builder\ncopy deps.txt \\\n  /d/\nrun --mount=type=secret,id=token --mount=type=cache,target=/var/cache/x \\\n    test -s /run/secrets/token && cat /d/deps.txt > /d/installed\n${SOURCES}\nfrom ${B}\ncopy --from=builder /out /app\n`,
    args: [['--secret', 'id=token,src=deps.txt'], ['--secret', 'id=token,src=deps.txt']],
    dependencyStage: 'builder',
    afterChange: { cached: 2, total: 4 },
  },
];

function project(dockerfile: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'drc-shape-'));
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'deps.txt'), 'lib 1\n');
  writeFileSync(join(dir, 'src', 'main.txt'), 'v1\n');
  writeFileSync(join(dir, 'Dockerfile'), dockerfile);
  return dir;
}


function noCacheFiles(dir: string, args: readonly string[], tag: string): Map<string, string> {
  execFileSync(BUILDKIT_CLI, ['build', '--no-cache', '-q', ...args, '-t', tag, dir], { cwd: dir, env: { ...process.env, DOCKER_BUILDKIT: '1' }, stdio: 'ignore', timeout: 120_000 });
  return imageFiles(tag);
}

describe('Dockerfile shapes on the real engine: cold, then a source change on a branch', { timeout: 900_000 }, () => {
  const dirs: string[] = [];
  before(() => ensureTestEnv());
  after(() => dirs.forEach(cleanup));

  for (const shape of shapes) {
    it(shape.name, async () => {
      const dir = project(shape.dockerfile);
      dirs.push(dir);
      const repo = uniqueRepo('shape');
      const [first, second] = shape.args ?? [[], []];
      const env = { DOCKER_BUILDKIT: '1' };

      wipeEngine();
      const cold = await runHelper([`${repo}:v1`, '--docker', BUILDKIT_CLI, '--branch', 'main', ...first], { cwd: dir, env });
      assert.equal(cold.code, 0, explain(cold));

      writeFileSync(join(dir, 'src', 'main.txt'), 'v2\n');
      wipeEngine();
      const change = await runHelper([`${repo}:v2`, '--docker', BUILDKIT_CLI, '--branch', 'topic', '--default-branch', 'main', ...second], { cwd: dir, env });
      assert.equal(change.code, 0, explain(change));
      assert.deepEqual(reportedStage(change, shape.dependencyStage).steps, shape.afterChange, `${shape.dependencyStage} after the source change:\n${change.stderr.slice(-3000)}`);

      assert.deepEqual(imageFiles(`${repo}:v2`), noCacheFiles(dir, second, `${repo}:nocache`), 'the deploy image has the files of a no-cache build');
    });
  }
});
