import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { flagValues, splitArgs } from '../../src/cli/cli-args.ts';

describe('splitArgs', () => {
  const cases: { name: string; argv: string[]; helper: string[]; docker: string[]; context: string | undefined }[] = [
    {
      name: 'passes docker build options through untouched, in order',
      argv: ['app:1', '--build-arg', 'A=1', '--secret', 'id=npm,src=.npmrc', '--label', 'x=y', '--no-cache'],
      helper: ['app:1'],
      docker: ['--build-arg', 'A=1', '--secret', 'id=npm,src=.npmrc', '--label', 'x=y', '--no-cache'],
      context: undefined,
    },
    {
      name: 'takes the positional after IMAGE as the context, also after -f',
      argv: ['app', '-f', 'docker/Dockerfile', 'subdir'],
      helper: ['app'],
      docker: ['-f', 'docker/Dockerfile'],
      context: 'subdir',
    },
    {
      name: 'keeps the helper\'s own options, with values, for yargs',
      argv: ['--branch', 'feature/x', 'app', '--target', 'runtime', '-t', 'v1', '--no-push', '--cache-repo=reg/cache'],
      helper: ['--branch', 'feature/x', 'app', '--target', 'runtime', '-t', 'v1', '--no-push', '--cache-repo=reg/cache'],
      docker: [],
      context: undefined,
    },
    {
      name: 'sends everything after -- to docker',
      argv: ['app', '--', '--future-flag', 'x'],
      helper: ['app'],
      docker: ['--future-flag', 'x'],
      context: undefined,
    },
    {
      name: 'reads --flag=value forms of docker options',
      argv: ['app', '--build-arg=A=1', '--platform=linux/amd64', '.'],
      helper: ['app'],
      docker: ['--build-arg=A=1', '--platform=linux/amd64'],
      context: '.',
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(splitArgs(c.argv), { helper: c.helper, docker: c.docker, context: c.context }));
  }

  it('refuses an unknown flag before anything runs', () => {
    assert.throws(() => splitArgs(['app', '--frobnicate']), /unknown option --frobnicate/);
  });
  it('refuses docker flags the helper owns', () => {
    assert.throws(() => splitArgs(['app', '--iidfile', 'x']), /--iidfile cannot be passed/);
    assert.throws(() => splitArgs(['app', '--output', 'type=tar']), /--output cannot be passed/);
  });
  it('refuses a value flag at the end without its value', () => {
    assert.throws(() => splitArgs(['app', '--build-arg']), /needs a value/);
    assert.throws(() => splitArgs(['app', '--branch']), /needs a value/);
  });
  it('refuses a second context', () => {
    assert.throws(() => splitArgs(['app', 'a', 'b']), /unexpected argument "b"/);
  });
  it('finds flag values in both forms', () => {
    assert.deepEqual(flagValues(['--build-arg', 'A=1', '--build-arg=B=2', '-f', 'x'], ['--build-arg']), ['A=1', 'B=2']);
  });
});
