import { readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { packOrb } from './pack.js';

// Usage: node dist/pack-orb.mjs ORB_SOURCE BUNDLE OUT
const [source = 'orb.yml', bundle = 'dist/docker-build-remote-cache.mjs', out = 'dist/orb.yml'] = process.argv.slice(2);
const packed = packOrb(readFileSync(source, 'utf8'), dirname(source), readFileSync(bundle));
writeFileSync(out, packed);
process.stdout.write(`packed ${out} (${(Buffer.byteLength(packed) / 1024).toFixed(1)} KiB)\n`);

