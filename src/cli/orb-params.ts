import { usageError } from '../errors.js';

/**
 * The orb passes its parameters as PARAM_* environment variables (never pasted
 * into shell text). This turns them into the helper's own command line.
 */

/** Splits extra docker build arguments like a shell would split words, without expanding anything. */
export function splitWords(text: string): string[] {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] ?? '';
    if (quote) {
      if (ch === quote) quote = undefined;
      else if (ch === '\\' && quote === '"' && (text[i + 1] === '"' || text[i + 1] === '\\')) current += text[++i] ?? '';
      else current += ch;
      continue;
    }
    if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
    } else if (ch === '\\' && i + 1 < text.length) {
      current += text[++i] ?? '';
      inWord = true;
    } else {
      current += ch;
      inWord = true;
    }
  }
  if (quote) throw usageError(`unclosed ${quote} in extra_build_args`, 'close the quote, or remove it');
  if (inWord) words.push(current);
  return words;
}

/** CircleCI may render a boolean pasted into text as true/false or 1/0. */
export function orbBoolean(value: string | undefined, fallback: boolean): boolean {
  const v = value?.trim().toLowerCase();
  if (v === undefined || v === '' || v === '<nil>') return fallback;
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  throw usageError(`"${value}" is not a boolean`, 'use true or false');
}

function present(value: string | undefined): string | undefined {
  const v = value?.trim();
  return v === undefined || v === '' || v === '<nil>' ? undefined : v;
}

export interface OrbEnvironment {
  readonly params: Readonly<Record<string, string | undefined>>;
  readonly commit: string | undefined;
  /** Set by the orb's login step when a forked PR has no credentials. */
  readonly readOnly: boolean;
}

export function argsFromOrbParams(env: OrbEnvironment): string[] {
  const p = env.params;
  const image = present(p.PARAM_IMAGE);
  if (image === undefined) throw usageError('the orb parameter "image" is empty', 'set image: to the repository to build, e.g. myorg/app');
  if (image.slice(image.lastIndexOf('/') + 1).includes(':')) {
    throw usageError(`the orb parameter "image" (${image}) has a tag`, 'give the tag with the "tag" parameter');
  }
  const tag = present(p.PARAM_TAG) ?? env.commit ?? 'latest';
  const args = [`${image}:${tag}`];
  const add = (flag: string, value: string | undefined): void => {
    const v = present(value);
    if (v !== undefined) args.push(flag, v);
  };
  for (const extra of (present(p.PARAM_EXTRA_TAGS) ?? '').split(/[\s,]+/).filter(Boolean)) args.push('--tag', extra);
  add('--branch', p.PARAM_BRANCH);
  add('--default-branch', p.PARAM_DEFAULT_BRANCHES);
  add('--target', p.PARAM_TARGET);
  add('--stages', p.PARAM_STAGES);
  add('--cache-repo', p.PARAM_CACHE_REPO);
  const buildkit = present(p.PARAM_BUILDKIT)?.toLowerCase();
  if (buildkit !== undefined && buildkit !== 'auto') args.push('--builder', orbBoolean(buildkit, false) ? 'buildkit' : 'classic');
  const upload = present(p.PARAM_CACHE_UPLOAD)?.toLowerCase();
  if (upload !== undefined && upload !== 'auto') args.push('--cache-upload', upload);
  const compression = present(p.PARAM_CACHE_COMPRESSION)?.toLowerCase();
  if (compression !== undefined && compression !== 'zstd') args.push('--cache-compression', compression);
  const reportDir = present(p.PARAM_REPORT_DIR);
  if (reportDir !== undefined) args.push('--report', `${reportDir}/docker-build-report.json`, '--report-md', `${reportDir}/docker-build-report.md`);
  if (!orbBoolean(p.PARAM_DEPLOY, true) || env.readOnly) args.push('--no-push');
  if (env.readOnly) args.push('--no-push-cache');
  if (orbBoolean(p.PARAM_VERBOSE, false)) args.push('--verbose');
  add('-f', p.PARAM_DOCKERFILE);
  // Extra arguments go through the same checks as a command line: unknown flags are refused.
  args.push(...splitWords(p.PARAM_EXTRA_BUILD_ARGS ?? ''));
  args.push(present(p.PARAM_CONTEXT) ?? '.');
  return args;
}

/** The prune command's PARAM_* variables as `prune`'s command line. */
export function pruneArgsFromOrbParams(params: Readonly<Record<string, string | undefined>>): string[] {
  const value = (name: string): string | undefined => {
    const v = params[name]?.trim();
    return v === undefined || v === '' || v === '<nil>' ? undefined : v;
  };
  const image = value('PARAM_IMAGE');
  if (image === undefined) throw usageError('the prune command needs its image parameter');
  const args = [image, '--live-branches', value('PARAM_LIVE_BRANCHES_FILE') ?? '/tmp/docker-build-remote-cache-live-branches.txt'];
  const cacheRepo = value('PARAM_CACHE_REPO');
  if (cacheRepo !== undefined) args.push('--cache-repo', cacheRepo);
  const defaults = value('PARAM_DEFAULT_BRANCHES');
  if (defaults !== undefined) args.push('--default-branch', defaults);
  const days = value('PARAM_OLDER_THAN_DAYS');
  if (days !== undefined && days !== '0') args.push('--older-than', days);
  if (value('PARAM_DELETE') === 'true' || value('PARAM_DELETE') === '1') args.push('--delete');
  const report = value('PARAM_REPORT');
  if (report !== undefined) args.push('--report', report);
  return args;
}
