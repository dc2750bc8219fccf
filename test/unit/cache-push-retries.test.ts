import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CacheOps } from '../../src/registry/cache-ops.ts';
import type { Docker } from '../../src/engine/docker.ts';
import type { RunResult } from '../../src/engine/exec.ts';
import { parseImageRef } from '../../src/plan/image-ref.ts';
import { consoleLogger } from '../../src/log.ts';
import type { RegistryApi } from '../../src/registry/registry.ts';

/** CacheOps with a docker stand-in whose every push fails as given; counts the pushes per tag. */
function opsFailingWith(failure: Partial<RunResult>): { ops: CacheOps; pushes: Map<string, number>; output: string[] } {
  const pushes = new Map<string, number>();
  const docker = {
    push: async (ref: string): Promise<RunResult> => {
      pushes.set(ref, (pushes.get(ref) ?? 0) + 1);
      return { exitCode: 1, stdout: '', stderr: '', all: '', timedOut: false, notFound: false, canceled: false, durationMs: 1, ...failure };
    },
  } as unknown as Docker;
  const output: string[] = [];
  const log = consoleLogger({ verbose: false, write: (text) => output.push(text) });
  const ops = new CacheOps(docker, {} as RegistryApi, log, { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 }, 15_000);
  return { ops, pushes, output };
}

const ref = (tag: string) => parseImageRef(`registry.test/team/app:${tag}`);

describe('cache pushes that keep failing', () => {
  it('a cache push that failed for a transient reason is retried, and so is the deploy push', async () => {
    const { ops, pushes } = opsFailingWith({ stderr: 'received unexpected HTTP status: 500 Internal Server Error' });
    assert.equal((await ops.push(ref('main__deps'))).ok, false);
    await ops.push(ref('v1'), 'deploy');
    assert.deepEqual(Object.fromEntries(pushes), { 'registry.test/team/app:main__deps': 3, 'registry.test/team/app:v1': 3 });
  });

  it('the retry line names the registry\'s error, not docker\'s bare "errors:" header', async () => {
    const { ops, output } = opsFailingWith({ stderr: 'errors:\nmanifest blob unknown: blob unknown to registry\n' });
    await ops.push(ref('main'));
    assert.match(output.join(''), /retry 1 of cache push of registry.test\/team\/app:main in [\d.]+s: errors: manifest blob unknown: blob unknown to registry/);
  });

  it('a cache push that used the whole --timeout is not started over; a deploy push that timed out is', async () => {
    const { ops, pushes } = opsFailingWith({ timedOut: true, exitCode: 124 });
    const cache = await ops.push(ref('main__deps'));
    assert.equal(cache.message, 'timed out after 15s');
    await ops.push(ref('v1'), 'deploy');
    assert.deepEqual(Object.fromEntries(pushes), { 'registry.test/team/app:main__deps': 1, 'registry.test/team/app:v1': 3 });
  });

  it('a cache push whose layer uploads the engine already retried is not started over', async () => {
    const { ops, pushes } = opsFailingWith({ stdout: 'abc: Retrying in 2 seconds\nabc: Retrying in 1 second\n', stderr: 'write tcp: connection reset by peer' });
    await ops.push(ref('main__deps'));
    assert.equal(pushes.get('registry.test/team/app:main__deps'), 1);
  });

  it('a push refused for lack of rights is not retried, and the later cache pushes are skipped', async () => {
    const { ops, pushes, output } = opsFailingWith({ stderr: 'denied: requested access to the resource is denied' });
    await ops.push(ref('main__deps'));
    assert.equal(pushes.get('registry.test/team/app:main__deps'), 1);
    assert.ok(ops.cannotPush(ref('main__builder')));
    assert.match(output.join(''), /no push rights/);
  });
});
