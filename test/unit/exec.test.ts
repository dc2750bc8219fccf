import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { execaStreamRunner } from '../../src/engine/exec.ts';

describe('execaStreamRunner', () => {
  it('keeps every byte for a reader that starts late (a docker save started before the caller decides to read it)', async () => {
    const size = 3_000_000;
    const process_ = execaStreamRunner(process.execPath, ['-e', `process.stdout.write(Buffer.alloc(${size}, 97))`], { timeoutMs: 30_000 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    let read = 0;
    let first: Buffer | undefined;
    for await (const chunk of process_.stdout) {
      first ??= chunk;
      read += chunk.length;
    }
    assert.equal(read, size);
    assert.equal(first?.[0], 97);
    assert.equal((await process_.done).exitCode, 0);
  });

  it('ends a process whose output is not wanted after all (kill)', async () => {
    const process_ = execaStreamRunner(process.execPath, ['-e', 'setInterval(() => process.stdout.write(Buffer.alloc(65536)), 1)'], { timeoutMs: 30_000 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    process_.kill();
    const result = await process_.done;
    assert.notEqual(result.exitCode, 0);
  });
});
