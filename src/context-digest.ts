import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { withoutDockerfile } from './dockerfile/copy.js';
import type { PartInputs } from './dockerfile/inputs.js';
import { redactBuildArgs } from './redact.js';

/**
 * Digests of what parts of a build read (dockerfile/inputs.ts): their Dockerfile lines,
 * the options they are built with, and the context files their COPY and ADD name
 * (content, mode, symlink targets; not times), .dockerignore applied. The helper
 * records them with the registry cache so that the next run can tell, before it
 * builds, whether a part can have changed. Bounded: a context bigger than the budget
 * gives no digest (the run then does what it does without one).
 */
export interface DigestBudget {
  readonly maxBytes: number;
  readonly maxFiles: number;
}

export const DEFAULT_DIGEST_BUDGET: DigestBudget = { maxBytes: 128 * 1024 * 1024, maxFiles: 50_000 };

/** The digests of a build's parts, with the .dockerignore BuildKit reads (the Dockerfile's own, else the context's). Never throws. */
export async function digestBuildInputs(build: { dockerfile: string; context: string; target: string | undefined; passthrough: readonly string[] }, parts: ReadonlyMap<string, PartInputs | undefined>): Promise<Map<string, string | undefined>> {
  if (parts.size === 0) return new Map();
  const own = `${build.dockerfile}.dockerignore`;
  const ignoreFile = (await stat(own).then(() => true, () => false)) ? own : join(build.context, '.dockerignore');
  // Build-argument values stay out: the digest is written into the registry. The Dockerfile's lines are in it; its path is not.
  const settings = [build.target ?? '', ...withoutDockerfile(redactBuildArgs(build.passthrough))];
  return digestParts(build.context, ignoreFile, parts, settings).catch(() => new Map());
}

/** A digest per part (undefined where its inputs are unknown or over the budget). */
export async function digestParts(
  context: string,
  ignoreFile: string | undefined,
  parts: ReadonlyMap<string, PartInputs | undefined>,
  /** What else the parts are built with (target, options without build-arg values). */
  options: readonly string[],
  budget: DigestBudget = DEFAULT_DIGEST_BUDGET,
): Promise<Map<string, string | undefined>> {
  const ignore = ignoreFile === undefined ? [] : await readIgnore(ignoreFile);
  const files = new FileDigests(context, ignore, budget);
  const out = new Map<string, string | undefined>();
  for (const [key, part] of parts) {
    if (part === undefined) {
      out.set(key, undefined);
      continue;
    }
    const records = await files.recordsOf(part.sources);
    out.set(key, records === undefined ? undefined : `sha256:${createHash('sha256').update(JSON.stringify({ v: 1, options, text: part.text, files: records })).digest('hex')}`);
  }
  return out;
}

interface IgnoreRule {
  readonly pattern: RegExp;
  readonly exception: boolean;
}

async function readIgnore(file: string): Promise<IgnoreRule[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const exception = l.startsWith('!');
      const cleaned = posix.normalize((exception ? l.slice(1) : l).trim()).replace(/^\/+/, '').replace(/\/+$/, '');
      return { pattern: globRegex(cleaned === '.' ? '' : cleaned, true), exception };
    });
}

/** A COPY or .dockerignore pattern as a regular expression over slash-separated relative paths. */
function globRegex(pattern: string, doubleStar: boolean): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] ?? '';
    if (c === '*' && doubleStar && pattern[i + 1] === '*') {
      // `**/` matches no directory too.
      if (pattern[i + 2] === '/') {
        out += '(?:.*/)?';
        i += 2;
      } else {
        out += '.*';
        i += 1;
      }
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) out += '\\[';
      else {
        out += `[${pattern.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else out += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

class FileDigests {
  private bytes = 0;
  private files = 0;
  private overBudget = false;
  private readonly cache = new Map<string, Promise<string[] | undefined>>();

  constructor(
    private readonly context: string,
    private readonly ignore: readonly IgnoreRule[],
    private readonly budget: DigestBudget,
  ) {}

  /** One record per file under the sources, sorted; undefined when a source is missing or the budget ran out. */
  async recordsOf(sources: readonly string[]): Promise<string[] | undefined> {
    const all: string[] = [];
    for (const source of sources) {
      let pending = this.cache.get(source);
      if (!pending) {
        pending = this.expand(source);
        this.cache.set(source, pending);
      }
      const records = await pending;
      if (records === undefined || this.overBudget) return undefined;
      all.push(...records);
    }
    return [...new Set(all)].sort();
  }

  private ignored(rel: string): boolean {
    let ignored = false;
    const parts = rel.split('/');
    for (const rule of this.ignore) {
      // A rule matches the path or any folder above it.
      for (let n = parts.length; n > 0; n--) {
        if (rule.pattern.test(parts.slice(0, n).join('/'))) {
          ignored = !rule.exception;
          break;
        }
      }
    }
    return ignored;
  }

  private async expand(source: string): Promise<string[] | undefined> {
    const rel = posix.normalize(source).replace(/^(\.\/)+/, '').replace(/^\/+/, '').replace(/\/+$/, '');
    if (rel.startsWith('..')) return undefined;
    const clean = rel === '.' ? '' : rel;
    if (!/[*?[]/.test(clean)) return this.walk(clean, true);
    // A pattern: walk from the folder above its first wildcard, keep what matches (folders whole).
    const segments = clean.split('/');
    const fixed = segments.slice(0, segments.findIndex((s) => /[*?[]/.test(s))).join('/');
    const matcher = globRegex(clean, false);
    const out: string[] = [];
    const candidates = await this.list(fixed);
    if (candidates === undefined) return undefined;
    for (const candidate of candidates) {
      if (!matcher.test(candidate)) continue;
      const records = await this.walk(candidate, true);
      if (records === undefined) return undefined;
      out.push(...records);
    }
    return out.length > 0 ? out : undefined;
  }

  /** Every path under `rel` (files and folders), not ignored. */
  private async list(rel: string): Promise<string[] | undefined> {
    const out: string[] = [];
    const visit = async (dir: string): Promise<boolean> => {
      let entries;
      try {
        entries = await readdir(join(this.context, dir), { withFileTypes: true });
      } catch {
        return false;
      }
      for (const entry of entries) {
        const path = dir === '' ? entry.name : `${dir}/${entry.name}`;
        if (this.ignored(path)) continue;
        out.push(path);
        if (out.length > this.budget.maxFiles) return false;
        if (entry.isDirectory() && !(await visit(path))) return false;
      }
      return true;
    };
    return (await visit(rel)) ? out : undefined;
  }

  /** Records of `rel` and everything under it: path, kind, mode, and content digest or link target. */
  private async walk(rel: string, top: boolean): Promise<string[] | undefined> {
    if (this.overBudget) return undefined;
    if (rel !== '' && this.ignored(rel)) return top ? undefined : [];
    const full = join(this.context, rel);
    let stat;
    try {
      stat = await lstat(full);
    } catch {
      return undefined;
    }
    const mode = (stat.mode & 0o7777).toString(8);
    if (stat.isSymbolicLink()) return [`${rel}\0link\0${await readlink(full)}`];
    if (stat.isDirectory()) {
      const out = [`${rel}\0dir\0${mode}`];
      const entries = await readdir(full);
      for (const name of entries.sort()) {
        const records = await this.walk(rel === '' ? name : `${rel}/${name}`, false);
        if (records === undefined) return undefined;
        out.push(...records);
      }
      return out;
    }
    this.files += 1;
    this.bytes += stat.size;
    if (this.files > this.budget.maxFiles || this.bytes > this.budget.maxBytes) {
      this.overBudget = true;
      return undefined;
    }
    const content = createHash('sha256').update(await readFile(full)).digest('hex');
    return [`${rel}\0file\0${mode}\0${content}`];
  }
}
