import { createHash } from 'node:crypto';
import { inputError } from '../errors.js';

/** A parsed `[domain/]path[:tag]` reference, the way Docker's reference grammar reads it. */
export interface ImageRef {
  /** Registry host with optional port, or undefined for Docker Hub. */
  readonly domain: string | undefined;
  /** Repository path inside the registry (`team/app`). */
  readonly path: string;
  readonly tag: string;
}

const TAG = /^[\w][\w.-]{0,127}$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const MAX_NAME_LENGTH = 255;

export function repositoryOf(ref: Pick<ImageRef, 'domain' | 'path'>): string {
  return ref.domain === undefined ? ref.path : `${ref.domain}/${ref.path}`;
}

export function formatRef(ref: ImageRef): string {
  return `${repositoryOf(ref)}:${ref.tag}`;
}

export function withTag(ref: Pick<ImageRef, 'domain' | 'path'>, tag: string): ImageRef {
  return { domain: ref.domain, path: ref.path, tag };
}

function looksLikeDomain(first: string): boolean {
  return first.includes('.') || first.includes(':') || first === 'localhost';
}

function validateDomain(domain: string, input: string): void {
  const [host = '', port, ...rest] = domain.split(':');
  const hostOk = host.split('.').every((part) => DOMAIN_COMPONENT.test(part));
  const portOk = port === undefined || (/^\d{1,5}$/.test(port) && Number(port) > 0 && Number(port) < 65536);
  if (!hostOk || !portOk || rest.length > 0) {
    throw inputError(
      `invalid registry host "${domain}" in image "${input}"`,
      'write it as host[:port], the port a number from 1 to 65535 (e.g. localhost:5000/team/app)',
    );
  }
}

/**
 * Parses what the user typed as IMAGE[:TAG]. Without a tag it means `:latest`.
 * A digest is refused: the helper pushes, and a digest cannot be pushed to.
 */
export function parseImageRef(input: string, what = 'image'): ImageRef {
  const text = input.trim();
  if (text === '') throw inputError(`the ${what} name is empty`, 'give a repository such as myorg/app or localhost:5000/team/app:tag');
  if (text.includes('@')) {
    throw inputError(`the ${what} "${input}" has a digest`, 'give a tag instead (repository:tag); a digest names content and cannot be pushed to');
  }
  if (text.startsWith(':')) throw inputError(`the ${what} "${input}" has a tag but no repository`, 'write repository:tag, e.g. myorg/app:1.0');

  const slash = text.indexOf('/');
  let domain: string | undefined;
  let remainder = text;
  if (slash > 0 && looksLikeDomain(text.slice(0, slash))) {
    domain = text.slice(0, slash);
    remainder = text.slice(slash + 1);
    validateDomain(domain, input);
  }
  const colon = remainder.lastIndexOf(':');
  const path = colon >= 0 ? remainder.slice(0, colon) : remainder;
  const tag = colon >= 0 ? remainder.slice(colon + 1) : 'latest';

  if (path === '' || !path.split('/').every((c) => PATH_COMPONENT.test(c))) {
    const lower = path.toLowerCase();
    const hint =
      lower !== path && lower.split('/').every((c) => PATH_COMPONENT.test(c))
        ? `repository names must be lowercase: use "${lower}"`
        : 'use lowercase letters, digits and separators (. _ __ -) between slashes, e.g. myorg/my-app';
    throw inputError(`invalid repository "${path}" in ${what} "${input}"`, hint);
  }
  if (!TAG.test(tag)) {
    throw inputError(
      `invalid tag "${tag}" in ${what} "${input}"`,
      'a tag has 1 to 128 letters, digits, _ . or -, and does not start with . or -',
    );
  }
  const name = domain === undefined ? path : `${domain}/${path}`;
  if (name.length > MAX_NAME_LENGTH) {
    throw inputError(`the ${what} name is ${name.length} characters long`, `Docker allows ${MAX_NAME_LENGTH} at most: shorten the repository path`);
  }
  return { domain, path, tag };
}

/** Parses a repository without a tag (for --cache-repo). */
export function parseRepository(input: string, what = 'cache repository'): Pick<ImageRef, 'domain' | 'path'> {
  const lastComponent = input.slice(input.lastIndexOf('/') + 1);
  if (lastComponent.includes(':') || input.includes('@')) {
    throw inputError(`the ${what} "${input}" has a tag or digest`, 'give the repository only; the helper names the cache tags itself');
  }
  const ref = parseImageRef(input, what);
  return { domain: ref.domain, path: ref.path };
}

// ---- cache tag naming -------------------------------------------------------
//
// Cache tags must be injective: no two different (branch, stage) pairs may map
// to the same tag. The construction:
//   branch token  E(b): b itself with "/" written as "." when b is "plain"
//                 (letters, digits, "-", "/" only; no "."; at most 64 chars; not
//                 "latest"); otherwise a readable slug without "_" plus "_" and
//                 a 12-hex hash of b. So E(b) never contains "__" and a plain
//                 token never contains "_".
//   stage part    the stage name (or index) when at most 60 chars, else the
//                 first 48 chars + "_" + 12-hex hash (exactly 61 chars).
//   tags          target stage: E(b) (or "latest" unprefixed, the seed's names);
//                 other stages: E(b) + "__" + stage part (or "__" + stage part
//                 unprefixed). Split at the first "__" to decode.

const PLAIN_BRANCH = /^[A-Za-z0-9][A-Za-z0-9/-]*$/;
const MAX_PLAIN = 64;
const MAX_READABLE = 51;
const MAX_STAGE_PLAIN = 60;

function hash12(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 12);
}

/** The branch's part of a cache tag. Throws when nothing readable is left of it. */
export function branchToken(branch: string): string {
  const dotted = branch.replace(/\//g, '.');
  if (PLAIN_BRANCH.test(branch) && !branch.includes('//') && dotted.length <= MAX_PLAIN && dotted !== 'latest') {
    return dotted;
  }
  const readable = branch
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/\//g, '.')
    .replace(/[^A-Za-z0-9.-]+/g, '-')
    .replace(/([.-])[.-]+/g, '$1')
    .replace(/^[.-]+/, '')
    .slice(0, MAX_READABLE)
    .replace(/[.-]+$/, '');
  if (readable === '' && /[\p{L}\p{N}]/u.test(branch)) {
    // Letters Docker tags cannot hold (e.g. "ブランチ"): the hash alone tells it apart.
    return `branch_${hash12(branch)}`;
  }
  if (readable === '') {
    throw inputError(
      `the branch name "${branch}" has nothing that can go into a Docker tag`,
      'pass --branch NAME with at least one letter or digit',
    );
  }
  return `${readable}_${hash12(branch)}`;
}

function stagePart(stageKey: string): string {
  if (stageKey.length <= MAX_STAGE_PLAIN) return stageKey;
  return `${stageKey.slice(0, 48)}_${hash12(stageKey)}`;
}

/**
 * The cache tag of one stage in one scope. `token` is a branchToken() or null
 * for the unprefixed scope; `isTarget` marks the stage the build produces.
 */
export function cacheTag(token: string | null, stageKey: string, isTarget: boolean): string {
  if (isTarget) return token ?? 'latest';
  return `${token ?? ''}__${stagePart(stageKey)}`;
}

/**
 * The tag of a BuildKit registry cache (--cache-to type=registry) of one stage in one
 * scope: the stage's cache tag with a leading "_", which no cache tag of the inline
 * scheme and no branch token starts with (a registry cache is not a runnable image, so
 * the two kinds must never share a tag). At most 127 characters.
 */
export function registryCacheTag(token: string | null, stageKey: string, isTarget: boolean): string {
  return `_${cacheTag(token, stageKey, isTarget)}`;
}
