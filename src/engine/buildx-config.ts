import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Whether buildx would use a builder the user created (`docker buildx use NAME`,
 * `create --use`), read from buildx's own `current` file instead of asking
 * `docker buildx inspect` (a plugin start: 0.1-0.25 s on every run, measured on a
 * 2-core machine beside the other probes). Without that file, or with an empty name
 * in it, buildx uses the current context's default builder, whose driver is always
 * `docker`. 'unknown' when the file cannot be read as buildx writes it: ask buildx.
 */
export async function currentBuildxBuilder(dockerConfigDir: string): Promise<'default' | 'named' | 'unknown'> {
  let text: string;
  try {
    text = await readFile(join(dockerConfigDir, 'buildx', 'current'), 'utf8');
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'default' : 'unknown';
  }
  try {
    const current = JSON.parse(text) as { Name?: unknown };
    if (current.Name === '' || current.Name === undefined) return 'default';
    return typeof current.Name === 'string' ? 'named' : 'unknown';
  } catch {
    return 'unknown';
  }
}
