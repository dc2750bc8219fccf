import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const INCLUDE_LINE = /^(\s*)([\w-]+): <<include\(([^)]+)\)>>\s*$/;

export interface IncludeOptions {
  /** Replaces text in each included file (the bundle placeholders). */
  readonly substitute?: (text: string, file: string) => string;
}

/** Escapes a literal `<<` so CircleCI's compiler does not read it as a template tag. */
export function escapeTemplate(text: string): string {
  return text.replace(/(?<!\\)<</g, '\\<<');
}

/**
 * Resolves `key: <<include(path)>>` lines as `circleci orb pack` does: the file
 * becomes a literal block, with every `<<` escaped as `\<<`.
 */
export function resolveIncludes(source: string, baseDir: string, options: IncludeOptions = {}): string {
  return source
    .split('\n')
    .flatMap((line) => {
      const match = INCLUDE_LINE.exec(line);
      if (!match) return [line];
      const [, indent = '', key = '', path = ''] = match;
      let text = readFileSync(join(baseDir, path.trim()), 'utf8');
      if (options.substitute) text = options.substitute(text, path.trim());
      const body = escapeTemplate(text.replace(/\n$/, ''))
        .split('\n')
        .map((l) => (l === '' ? '' : `${indent}  ${l}`));
      return [`${indent}${key}: |`, ...body];
    })
    .join('\n');
}
