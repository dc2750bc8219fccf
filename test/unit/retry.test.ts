import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelay, classifyFailure, withRetry } from '../../src/registry/retry.ts';

describe('classifyFailure', () => {
  const cases: [string, string][] = [
    ['received unexpected HTTP status: 503 Service Unavailable', 'transient'],
    ['toomanyrequests: You have reached your pull rate limit', 'transient'],
    ['write tcp 127.0.0.1:1->127.0.0.1:2: write: connection reset by peer', 'transient'],
    ['unauthorized: authentication required', 'permanent'],
    ['denied: requested access to the resource is denied', 'permanent'],
    ['manifest unknown: manifest unknown', 'permanent'],
    ['Error response from daemon: manifest for x:y not found', 'permanent'],
    ['Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused', 'unreachable'],
  ];
  for (const [message, kind] of cases) it(`calls "${message.slice(0, 50)}" ${kind}`, () => assert.equal(classifyFailure(message), kind));
});

describe('withRetry', () => {
  const policy = { attempts: 3, baseDelayMs: 100, maxDelayMs: 1000 };
  it('retries a transient failure with growing delays, then succeeds', async () => {
    const delays: number[] = [];
    let calls = 0;
    const result = await withRetry(policy, async () => (++calls < 3 ? { ok: false, value: calls, message: '503' } : { ok: true, value: calls }), async (ms) => {
      delays.push(ms);
    });
    assert.deepEqual(result, { value: 3, retries: 2 });
    assert.equal(delays.length, 2);
    assert.ok((delays[1] ?? 0) > (delays[0] ?? 0) * 1.1);
  });
  it('does not retry a permanent failure', async () => {
    let calls = 0;
    const result = await withRetry(policy, async () => ({ ok: false, value: ++calls, message: 'unauthorized: authentication required' }), async () => undefined);
    assert.deepEqual(result, { value: 1, retries: 0 });
  });
  it('stops at a failure the caller gives up on, although it may pass', async () => {
    let calls = 0;
    const result = await withRetry(policy, async () => ({ ok: false, value: ++calls, message: 'timed out after 15s' }), async () => undefined, undefined, (m) => m.startsWith('timed out'));
    assert.deepEqual(result, { value: 1, retries: 0 });
  });
  it('gives up after the last attempt', async () => {
    let calls = 0;
    const result = await withRetry(policy, async () => ({ ok: false, value: ++calls, message: '500' }), async () => undefined);
    assert.deepEqual(result, { value: 3, retries: 2 });
  });
  it('caps the delay', () => assert.ok(backoffDelay(policy, 10, () => 1) < 1201));
});
