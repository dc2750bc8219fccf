import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A changed copy of the user's Dockerfile, built in its place (`--file`): the
 * checkpoint cut (early-cache-export.ts, classic-store/checkpoint.ts) and the copy that names unnamed stages (run.ts).
 */
export interface DockerfileCopy {
  readonly path: string;
  remove(): Promise<void>;
}

/** The Dockerfile that docker build arguments name (-f/--file), else CONTEXT/Dockerfile. */
export function dockerfileOf(args: readonly string[], context: string): string {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if ((arg === '-f' || arg === '--file') && args[i + 1] !== undefined) return args[i + 1] ?? '';
    if (arg.startsWith('--file=')) return arg.slice('--file='.length);
  }
  return join(context, 'Dockerfile');
}

/** The arguments with every -f/--file replaced by `--file FILE` at the end. */
export function withDockerfile(args: readonly string[], file: string): string[] {
  return [...withoutDockerfile(args), '--file', file];
}

/** The arguments without -f/--file and its value. */
export function withoutDockerfile(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '-f' || arg === '--file') {
      i++;
      continue;
    }
    if (arg.startsWith('--file=')) continue;
    out.push(arg);
  }
  return out;
}

/**
 * Writes TEXT as a Dockerfile in a new temporary folder. The user's
 * NAME.dockerignore goes beside it: BuildKit reads that file, next to the
 * Dockerfile, before the context's .dockerignore.
 */
export async function writeDockerfileCopy(text: string, userDockerfile: string, prefix: string): Promise<DockerfileCopy> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const remove = (): Promise<void> => rm(dir, { recursive: true, force: true });
  try {
    const path = join(dir, 'Dockerfile');
    await writeFile(path, text);
    const ignore = `${userDockerfile}.dockerignore`;
    if (existsSync(ignore)) await copyFile(ignore, `${path}.dockerignore`);
    return { path, remove };
  } catch (error) {
    await remove();
    throw error;
  }
}
