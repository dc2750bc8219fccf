import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StageWatcher } from '../../src/engine/stage-watch.ts';

describe('StageWatcher', () => {
  it('reports each followed stage when its last step is done, with its cached count, across chunk boundaries', () => {
    const events: string[] = [];
    const watcher = new StageWatcher(new Set(['deps', 'builder']), (stage, count) => events.push(`${stage} ${count.cached}/${count.total}`));
    const output = [
      '#5 [deps 1/3] FROM 127.0.0.1:5000/base', '#5 DONE 0.0s',
      '#6 [deps 2/3] COPY deps.txt ./', '#6 CACHED',
      '#7 [deps 3/3] RUN sleep 5', '#7 DONE 5.1s',
      '#8 [builder 1/2] COPY src/ ./', '#8 DONE 0.1s',
      '#9 [builder 2/2] RUN make', '#9 ERROR: exit code 1',
      '#10 [final 1/1] COPY --from=builder /o /o', '#10 DONE 0.0s',
      '',
    ].join('\n');
    for (let i = 0; i < output.length; i += 7) watcher.feed(output.slice(i, i + 7));
    watcher.close();
    assert.deepEqual(events, ['deps 1/2']);
    assert.equal(watcher.hasFinished('builder'), false, 'a stage whose last step failed has not finished');
    assert.deepEqual(watcher.count('builder'), { cached: 0, total: 2 });
  });

  it('calls a stage whose steps were all cached finished with every step cached', () => {
    const events: string[] = [];
    const watcher = new StageWatcher(new Set(['deps']), (stage, count) => events.push(`${stage} ${count.cached}/${count.total}`));
    watcher.feed('#6 [deps 1/2] WORKDIR /x\n#6 CACHED\n#7 [deps 2/2] RUN y\n#7 CACHED\n');
    watcher.close();
    assert.deepEqual(events, ['deps 2/2']);
  });

  it('says a step is executing when no CACHED follows its header in time, and not for hits', async () => {
    const executing: string[] = [];
    const watcher = new StageWatcher(new Set(['deps', 'builder']), () => undefined, (stage) => executing.push(stage), 50);
    watcher.feed('#6 [deps 1/2] WORKDIR /x\n');
    await new Promise((r) => setTimeout(r, 10));
    watcher.feed('#6 CACHED\n#7 [builder 1/1] RUN sleep 8\n');
    await new Promise((r) => setTimeout(r, 120));
    watcher.close();
    assert.deepEqual(executing, ['builder']);
  });
});
