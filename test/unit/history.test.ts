import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normaliseInstruction, savedSeconds, stepDurations } from '../../src/report/history.ts';

describe('time saved from an image history', () => {
  const history = [
    { created: '2020-01-01T00:00:00Z', created_by: '/bin/sh -c #(nop) COPY dir:abc in /bin' },
    { created: '2026-11-28T00:00:00Z', created_by: 'WORKDIR /build # buildkit' },
    { created: '2026-11-28T00:00:00.5Z', created_by: 'COPY deps.txt ./ # buildkit' },
    { created: '2026-11-28T00:00:09Z', created_by: 'RUN /bin/sh -c sleep 8 && make deps # buildkit' },
  ];
  it('reads each step\'s duration from consecutive created times, ignoring the base image\'s age', () => {
    const youngBase = [{ created: '2026-11-27T23:50:00Z', created_by: '/bin/sh -c #(nop) COPY dir:x in /bin' }, { created: '2026-11-28T00:00:00Z', created_by: 'WORKDIR /a # buildkit' }];
    assert.equal(stepDurations(youngBase).size, 0, 'not even a base built minutes before');
    const durations = stepDurations(history);
    assert.equal(durations.get('RUN sleep 8 && make deps'), 8.5);
    assert.equal(durations.get('COPY deps.txt ./'), 0.5);
    assert.equal(durations.has('WORKDIR /build'), false);
  });
  it('sums the durations of the cached steps it can match', () => {
    assert.equal(savedSeconds(['RUN sleep 8 && make deps', 'COPY deps.txt ./', 'RUN unknown'], stepDurations(history)), 9);
  });
  it('normalises the classic builder\'s history text', () => {
    assert.equal(normaliseInstruction('/bin/sh -c #(nop)  WORKDIR /x'), 'WORKDIR /x');
    assert.equal(normaliseInstruction('/bin/sh -c echo  hi'), 'RUN echo hi');
  });
});
