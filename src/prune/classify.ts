import { branchToken } from '../plan/image-ref.js';

/**
 * Which tags of a repository are this tool's cache tags, and of which scope. Pure.
 *
 * The tag functions (plan/image-ref.ts) write, for a branch token T (never containing
 * "__") and a stage S:
 *   inline scheme:         T (target), T__S;     unprefixed: latest, __S
 *   registry-cache scheme: _T (target), _T__S;   unprefixed: _latest, ___S
 * A bare T is also what a deploy tag looks like, so it counts as a cache tag only
 * when the same token has a stage tag (T__S) beside it: a deploy tag is never a
 * candidate.
 */
export interface CacheTag {
  readonly tag: string;
  readonly scheme: 'inline' | 'registry-cache';
  /** The branch token, or null for the unprefixed scope. */
  readonly token: string | null;
  /** The stage, or null for the target's tag. */
  readonly stage: string | null;
}

export function parseCacheTags(tags: readonly string[]): CacheTag[] {
  const parsed: CacheTag[] = [];
  const stageTokens = new Set<string>();
  for (const tag of tags) {
    const registry = tag.startsWith('___') || (tag.startsWith('_') && !tag.startsWith('__'));
    const body = registry ? tag.slice(1) : tag;
    const split = body.indexOf('__');
    if (split >= 0) {
      const token = body.slice(0, split);
      parsed.push({ tag, scheme: registry ? 'registry-cache' : 'inline', token: token === '' ? null : token, stage: body.slice(split + 2) });
      if (!registry && token !== '') stageTokens.add(token);
    } else if (registry) {
      parsed.push({ tag, scheme: 'registry-cache', token: body === 'latest' ? null : body, stage: null });
    }
  }
  for (const tag of tags) {
    if (tag === 'latest') parsed.push({ tag, scheme: 'inline', token: null, stage: null });
    else if (!tag.startsWith('_') && !tag.includes('__') && stageTokens.has(tag)) parsed.push({ tag, scheme: 'inline', token: tag, stage: null });
  }
  return parsed;
}

export type Reason = 'live branch' | 'default branch' | 'unprefixed' | 'gone' | `older than ${number} days` | 'shares its manifest with a kept tag';

export interface Verdict {
  readonly tag: CacheTag;
  readonly action: 'keep' | 'delete';
  readonly reason: Reason;
}

export interface Policy {
  readonly liveBranches: readonly string[];
  readonly defaultBranches: readonly string[];
  readonly olderThanDays: number | undefined;
}

/** A tag's verdict from its scope and age (days, undefined when unknown). Digest sharing is decided later, on the registry. */
export function judge(tag: CacheTag, ageDays: number | undefined, policy: Policy): Verdict {
  if (tag.token === null) return { tag, action: 'keep', reason: 'unprefixed' };
  const defaults = new Set(policy.defaultBranches.map(safeToken));
  if (defaults.has(tag.token)) return { tag, action: 'keep', reason: 'default branch' };
  const live = new Set(policy.liveBranches.map(safeToken));
  if (!live.has(tag.token)) return { tag, action: 'delete', reason: 'gone' };
  if (policy.olderThanDays !== undefined && ageDays !== undefined && ageDays > policy.olderThanDays) return { tag, action: 'delete', reason: `older than ${policy.olderThanDays} days` };
  return { tag, action: 'keep', reason: 'live branch' };
}

/** A branch's token as the builds write it; a name with nothing taggable has none (it matches no tag). */
function safeToken(branch: string): string {
  try {
    return branchToken(branch);
  } catch {
    return '\u0000';
  }
}

/** Branch names from `git ls-remote --heads origin` output, or one name a line. */
export function readBranchList(text: string): string[] {
  const names = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const ref = line.split(/\s+/).pop() ?? line;
      return ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : ref;
    });
  return [...new Set(names)];
}
