import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import yaml from 'js-yaml';
import { compileJob, type Orb } from '../../src/orb/compile.ts';
import { escapeTemplate } from '../../src/orb/include.ts';
import { packOrb } from '../../src/orb/pack.ts';
import { ROOT } from '../support/env.ts';

describe('packing the orb', () => {
  const source = readFileSync(join(ROOT, 'orb.yml'), 'utf8');
  const bundle = readFileSync(join(ROOT, 'dist', 'docker-build-remote-cache.mjs'));

  it('is deterministic byte for byte', () => {
    assert.equal(packOrb(source, ROOT, bundle), packOrb(source, ROOT, bundle));
    assert.equal(packOrb(source, ROOT, bundle), readFileSync(join(ROOT, 'dist', 'orb.yml'), 'utf8'));
  });

  it('carries the bundle, with no placeholder left', () => {
    const packed = packOrb(source, ROOT, bundle);
    assert.doesNotMatch(packed, /@@DRC_/);
    assert.ok(packed.length > bundle.length / 4, 'the bundle is inside');
  });

  it('escapes every << of an included file', () => {
    assert.equal(escapeTemplate('cat <<EOF\nx << y \\<< z'), 'cat \\<<EOF\nx \\<< y \\<< z');
  });

  it('keeps every environment string well under the 128 KiB Linux limit', () => {
    const orb = yaml.load(packOrb(source, ROOT, bundle)) as Orb;
    const job = compileJob(orb, 'build-with-cache', { image: 'myorg/app' });
    for (const step of job.steps) {
      if (step.kind !== 'run') continue;
      for (const [key, value] of Object.entries(step.environment)) assert.ok(Buffer.byteLength(`${key}=${value}`) < 4096, `${key} is small`);
    }
  });
});
