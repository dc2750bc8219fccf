// Bundles src/ into one file that runs on Node >= 18.19 with no node_modules beside it.
import { build } from 'esbuild';
import { readFile, chmod } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';

const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
// DRC_BUNDLE_OUT: the helper's bundle only, elsewhere (beside a test run that reads dist/).
const only = process.env.DRC_BUNDLE_OUT;
const outfile = only ?? new URL('../dist/docker-build-remote-cache.mjs', import.meta.url).pathname;

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node18.19',
  minify: true,
  legalComments: 'none',
  charset: 'utf8',
  banner: {
    // Some bundled CommonJS (yargs' helpers) calls require(); give ESM one.
    js: [
      '#!/usr/bin/env node',
      "import { createRequire as __drcRequire } from 'node:module';",
      "import { fileURLToPath as __drcPath } from 'node:url';",
      "import { dirname as __drcDir } from 'node:path';",
      'const require = __drcRequire(import.meta.url);',
      'const __filename = __drcPath(import.meta.url);',
      'const __dirname = __drcDir(__filename);',
    ].join('\n'),
  },
  define: { __VERSION__: JSON.stringify(pkg.version) },
  logLevel: 'warning',
};
const src = (path) => new URL(`../src/${path}`, import.meta.url).pathname;
const dist = (path) => new URL(`../dist/${path}`, import.meta.url).pathname;

await build({ ...common, entryPoints: [src('main.ts')], outfile });
if (only) {
  console.log(`built ${outfile}`);
  process.exit(0);
}
await build({ ...common, entryPoints: [src('orb/validate-main.ts')], outfile: dist('validate-orb.mjs') });
await build({ ...common, entryPoints: [src('orb/pack-main.ts')], outfile: dist('pack-orb.mjs') });
await chmod(outfile, 0o755);
await chmod(dist('validate-orb.mjs'), 0o755);
console.log(`built ${outfile}`);

// The orb carries the bundle: pack orb.yml with it into dist/orb.yml.
const root = new URL('..', import.meta.url).pathname;
execFileSync(process.execPath, [dist('pack-orb.mjs'), `${root}orb.yml`, outfile, dist('orb.yml')], { stdio: 'inherit' });
