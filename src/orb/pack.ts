import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { resolveIncludes } from './include.js';

/**
 * Packs the readable orb source with the bundled helper inside it. The bundle is
 * gzip + base64 (base64 has no `<`, so nothing needs escaping) and the result is
 * byte for byte the same for the same inputs (gzip without a timestamp). The text is
 * split in two, one half per install step: the whole (about 150 KiB) in one step is
 * over the 128 KiB Linux allows for one argument, which a runner or wrapper that
 * hands the step to `bash -c` needs (tried: "Argument list too long").
 */
export function packOrb(source: string, baseDir: string, bundle: Buffer): string {
  const gzipped = gzipSync(bundle, { level: 9 });
  // Byte 4-7 of a gzip header is the mtime; zlib writes 0, which keeps the output stable.
  const base64 = gzipped.toString('base64');
  const half = Math.ceil(base64.length / 2);
  const sha256 = createHash('sha256').update(bundle).digest('hex');
  const packed = resolveIncludes(source, baseDir, {
    substitute: (text) =>
      text
        .replace(/@@DRC_BUNDLE_GZIP_BASE64_1@@/g, base64.slice(0, half))
        .replace(/@@DRC_BUNDLE_GZIP_BASE64_2@@/g, base64.slice(half))
        .replace(/@@DRC_BUNDLE_SHA256@@/g, sha256),
  });
  return `# Packed from orb.yml by scripts/build.mjs: do not edit; edit orb.yml and scripts/orb/.\n${packed}`;
}
