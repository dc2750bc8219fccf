import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import yargs from 'yargs/yargs';
import { ExitCode, inputError, UserError, usageError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseImageRef, parseRepository } from '../plan/image-ref.js';
import type { RegistryApi } from '../registry/registry.js';
import { readBranchList } from './classify.js';
import { DeleteRefused, prune, type PruneResult } from './prune.js';

const OPTIONS = {
  'cache-repo': { type: 'string', describe: 'Repository of the cache tags, when not IMAGE\'s (as the builds\' --cache-repo).' },
  'live-branches': { type: 'string', describe: 'File with the branches that still exist, one a line (`git ls-remote --heads origin` output works as it is); - for standard input.' },
  'older-than': { type: 'number', describe: 'Also prune the caches of live branches not written for this many days.' },
  'default-branch': { type: 'string', array: true, describe: 'Default branches (repeat or comma-separate); their caches are never pruned. Default: main,master.' },
  delete: { type: 'boolean', default: false, describe: 'Delete. Without it, a dry run: the table only.' },
  'allow-empty': { type: 'boolean', default: false, describe: 'Accept an empty --live-branches list (every non-default branch then counts as gone).' },
  report: { type: 'string', describe: 'Write the table as JSON to this file.' },
  timeout: { type: 'number', default: 60, describe: 'Seconds one registry request may take.' },
  concurrency: { type: 'number', default: 8, describe: 'Registry requests at once.' },
} as const;

export interface PruneDeps {
  readonly registry: (timeoutMs: number) => RegistryApi;
  readonly log: Logger;
  readonly readStdin: () => Promise<string>;
  readonly now: () => number;
}

function table(result: PruneResult): string {
  const rows = [['tag', 'scheme', 'scope', 'age', 'verdict', 'reason', ...(result.deleted ? ['result'] : [])]];
  for (const r of result.rows) {
    rows.push([r.tag, r.scheme, r.scope, r.ageDays === null ? '-' : `${r.ageDays.toFixed(1)}d`, r.action, r.reason, ...(result.deleted ? [r.result ?? (r.action === 'keep' ? 'kept' : '-')] : [])]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

/** `docker-build-remote-cache prune IMAGE --live-branches FILE|- [...]`: a dry run unless --delete. */
export async function runPrune(argv: readonly string[], deps: PruneDeps): Promise<number> {
  let help = '';
  let failure: Error | undefined;
  // yargs reads a lone "-" as a positional argument, not as the option's value.
  const given = argv.map((arg, i) => (arg === '-' && argv[i - 1] === '--live-branches' ? '\u0000stdin' : arg));
  const args = yargs([...given])
    .scriptName('docker-build-remote-cache prune')
    .usage('$0 IMAGE --live-branches FILE|- [--delete]\n\nLists every cache tag of IMAGE\'s cache repository with its branch scope, age and\nverdict; with --delete, removes the caches of branches that are gone. Deploy tags,\ndefault-branch and unprefixed caches are never touched.')
    .options(OPTIONS)
    .strictOptions()
    .help()
    .exitProcess(false)
    .fail((message, error) => {
      failure = error ?? usageError(message, 'see prune --help');
    })
    .parseSync([...given], {}, (_e, _a, text) => {
      help = text;
    }) as unknown as { _: (string | number)[]; 'cache-repo'?: string; 'live-branches'?: string; 'older-than'?: number; 'default-branch'?: string[]; delete: boolean; 'allow-empty': boolean; report?: string; timeout: number; concurrency: number };
  if (failure) throw failure instanceof UserError ? failure : usageError(failure.message, 'see prune --help');
  if (help !== '') {
    process.stdout.write(`${help}\n`);
    return ExitCode.ok;
  }
  const [imageText, extra] = args._.map(String);
  if (imageText === undefined) throw usageError('IMAGE is missing', 'usage: docker-build-remote-cache prune IMAGE --live-branches FILE|-');
  if (extra !== undefined) throw usageError(`unexpected argument "${extra}"`);
  if (args['live-branches'] === undefined) throw usageError('--live-branches is required', 'give a file of branch names (git ls-remote --heads origin > live.txt), or - for standard input');
  if (args['older-than'] !== undefined && !(args['older-than'] >= 0)) throw usageError(`--older-than must be a number of days, not "${args['older-than']}"`);
  const image = parseImageRef(imageText);
  const repo = args['cache-repo'] === undefined ? { domain: image.domain, path: image.path } : parseRepository(args['cache-repo']);
  let listText: string;
  try {
    listText = args['live-branches'] === '\u0000stdin' ? await deps.readStdin() : await readFile(args['live-branches'], 'utf8');
  } catch (error) {
    throw inputError(`cannot read --live-branches ${args['live-branches'].replace('\u0000stdin', '-')} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const liveBranches = readBranchList(listText);
  if (liveBranches.length === 0 && !args['allow-empty']) {
    throw inputError('the --live-branches list is empty: every branch\'s cache would count as gone', 'check the command that wrote it (git ls-remote --heads origin); pass --allow-empty if no branch but the default ones exists');
  }
  const defaultBranches = (args['default-branch'] ?? ['main,master']).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
  const registry = deps.registry(args.timeout * 1000);
  const options = { repo, policy: { liveBranches, defaultBranches, olderThanDays: args['older-than'] }, remove: args.delete, concurrency: Math.max(1, Math.floor(args.concurrency)), now: deps.now() };
  let result: PruneResult;
  try {
    result = await prune(registry, options);
  } catch (error) {
    if (!(error instanceof DeleteRefused)) throw error;
    process.stdout.write(`${table(error.result)}\n`);
    await writeReport(args.report, error.result);
    const done = error.result.rows.filter((r) => r.result === 'deleted' || r.result === 'untagged').length;
    throw new UserError('deleteRefused', `registry ${repo.domain ?? 'docker.io'} refused a delete (${error.message.split('\n')[0]}); ${done} tag(s) were removed before it, the rest were not touched`, {
      hint: 'enable deletes there (the distribution registry: storage.delete.enabled: true; a hosted registry: give this account delete rights), or run without --delete for the table only',
    });
  }
  process.stdout.write(`${table(result)}\n`);
  const pruned = result.rows.filter((r) => r.action === 'delete');
  deps.log.info(
    `${result.repository}: ${result.tagsListed} tags, ${result.rows.length} cache tags, ${pruned.length} ${result.deleted ? 'removed' : 'to remove (dry run: pass --delete)'}; the registry frees the blobs at its next garbage collection`,
  );
  await writeReport(args.report, result);
  return ExitCode.ok;
}

async function writeReport(file: string | undefined, result: PruneResult): Promise<void> {
  if (!file) return;
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
}
