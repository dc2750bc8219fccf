import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { INLINE_CACHE_KEY, repairInlineCache, type ImageConfig } from '../../src/inline-cache.ts';

const encode = (records: unknown[]): string => Buffer.from(JSON.stringify(records)).toString('base64');
const decode = (config: ImageConfig): { digest: string; layers?: { layer: number }[] }[] => JSON.parse(Buffer.from(String(config[INLINE_CACHE_KEY]), 'base64').toString('utf8'));

describe('repairInlineCache', () => {
  // The cold image: every step linked to its layer.
  const source: ImageConfig = {
    rootfs: { diff_ids: ['base', 'workdir', 'deps', 'src-v1'] },
    [INLINE_CACHE_KEY]: encode([
      { digest: 'k-workdir', layers: [{ layer: 1 }] },
      { digest: 'k-deps', layers: [{ layer: 2 }], inputs: [[{ link: 0 }]] },
      { digest: 'k-src-v1', layers: [{ layer: 3 }], inputs: [[{ link: 1 }]] },
    ]),
  };
  // Rebuilt after a source change: the cached steps lost their links.
  const rebuilt: ImageConfig = {
    architecture: 'amd64',
    rootfs: { diff_ids: ['base', 'workdir', 'deps', 'src-v2'] },
    [INLINE_CACHE_KEY]: encode([
      { digest: 'k-workdir' },
      { digest: 'k-deps', inputs: [[{ link: 0 }]] },
      { digest: 'k-src-v2', layers: [{ layer: 3 }], inputs: [[{ link: 1 }]] },
    ]),
  };

  it('links the cached steps back to the layers they share with the source image', () => {
    const result = repairInlineCache(rebuilt, [source]);
    assert.equal(result?.repaired, 2);
    const records = decode(result?.config ?? {});
    assert.deepEqual(records.map((r) => [r.digest, r.layers?.[0]?.layer]), [['k-workdir', 1], ['k-deps', 2], ['k-src-v2', 3]]);
    assert.equal(result?.config.architecture, 'amd64', 'the rest of the config is kept');
  });

  it('does not link a record when the layers below it differ', () => {
    const other: ImageConfig = { ...source, rootfs: { diff_ids: ['base', 'workdir', 'deps-OTHER', 'src-v1'] } };
    const result = repairInlineCache(rebuilt, [other]);
    assert.equal(result?.repaired, 1, 'only the workdir record, whose layers 0..1 match');
  });

  it('returns nothing when no record needs or gets repair', () => {
    assert.equal(repairInlineCache(source, [source]), undefined);
    assert.equal(repairInlineCache({ rootfs: { diff_ids: [] } }, [source]), undefined);
  });
});
