import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** RUN text that writes N MiB of incompressible, deterministic bytes (a 256 KiB block repeated). */
/**
 * A heavy file that no compressor can shrink, as the archives and binaries of a real
 * dependency layer mostly are: a 1 MiB random block (seeded, so every build writes the
 * same bytes), then `mib` copies of it, each with its byte values rotated by a
 * different amount (tr), so no byte string repeats at any distance (a repeated block
 * would let zstd's long window, unlike gzip's 32 KiB one, compress it away).
 */
function heavy(file: string, mib: number, seed: number): string {
  const block = `awk 'BEGIN { srand(${seed}); for (i = 0; i < 1048576; i++) printf "%c", 1 + int(rand() * 255) }' > /tmp/block`;
  const copies = `for k in $(seq 1 ${mib}); do tr '\\001-\\377' "$(printf '\\\\%03o-\\\\377\\\\001-\\\\%03o' $((k + 1)) $k)" < /tmp/block; done > ${file}`;
  return `${block} && ${copies} && rm /tmp/block`;
}

export interface BenchApp {
  readonly name: string;
  readonly dir: string;
}

/**
 * two-stage: the seed's model: a builder stage with a slow (8 s), heavy (100 MB)
 * dependency step and a 2 s source step, and a slim final stage.
 * five-stage: two parallel dependency chains (code and assets) joined in the final stage.
 */
export function makeApp(kind: 'two-stage' | 'five-stage', base: string): BenchApp {
  const dir = mkdtempSync(join(tmpdir(), `drc-bench-${kind}-`));
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'deps.txt'), 'framework 1.0\n');
  writeFileSync(join(dir, 'src', 'main.txt'), 'source v0\n');
  // The same dependency and source steps in both apps; only the stage layout differs.
  const dependencySteps = ['WORKDIR /build', 'COPY deps.txt ./', `RUN sleep 8 & ${heavy('/build/vendor.bin', 100, 1)} && cat deps.txt > installed.txt && wait`];
  const sourceSteps = ['COPY src/ ./src/', 'RUN sleep 2 && mkdir -p /out && cat installed.txt src/*.txt > /out/app.txt && sha256sum vendor.bin > /out/vendor.sum'];
  const lines =
    kind === 'two-stage'
      ? [`ARG BASE_IMAGE=${base}`, 'FROM ${BASE_IMAGE} AS builder', ...dependencySteps, ...sourceSteps, 'FROM ${BASE_IMAGE} AS final', 'COPY --from=builder /out /app']
      : [
          `ARG BASE_IMAGE=${base}`,
          'FROM ${BASE_IMAGE} AS deps',
          ...dependencySteps,
          'FROM ${BASE_IMAGE} AS asset-deps',
          `RUN sleep 3 & mkdir -p /assets && ${heavy('/assets/fonts.bin', 20, 2)} && wait`,
          'FROM deps AS builder',
          ...sourceSteps,
          'FROM asset-deps AS assets',
          'RUN sleep 1 && sha256sum /assets/fonts.bin > /assets/fonts.sum',
          'FROM ${BASE_IMAGE} AS final',
          'COPY --from=builder /out /app',
          'COPY --from=assets /assets/fonts.sum /app/',
        ];
  lines.push('CMD ["cat", "/app/app.txt"]');
  writeFileSync(join(dir, 'Dockerfile'), `${lines.join('\n')}\n`);
  return { name: kind, dir };
}
