import type { UploadChoice } from '../strategies/classic-store/upload-choice.js';
import { isAbsolute, join } from 'node:path';
import { flagValues, type SplitArgs } from './cli-args.js';
import { usageError } from '../errors.js';
import { type ImageRef, parseImageRef, parseRepository } from '../plan/image-ref.js';
import type { RunContext } from '../context.js';
import type { StrategyChoice } from '../plan/strategy.js';
import type { CacheCompression } from '../plan/plan.js';
import { hasCredentials } from '../redact.js';

export type BuilderChoice = 'auto' | 'classic' | 'buildkit';

/** What the user asked for, validated and normalised. */
export interface Options {
  readonly image: ImageRef;
  readonly extraTags: readonly ImageRef[];
  readonly cacheRepo: Pick<ImageRef, 'domain' | 'path'>;
  readonly context: string;
  /** The Dockerfile path as docker resolves it (-f is relative to the working directory). */
  readonly dockerfile: string;
  readonly buildArgs: ReadonlyMap<string, string>;
  readonly passthrough: readonly string[];
  /** undefined: find it from CircleCI or git. */
  readonly branch: string | undefined;
  readonly defaultBranches: readonly string[];
  readonly target: string | undefined;
  readonly stages: readonly string[] | undefined;
  readonly push: boolean;
  readonly pushCache: boolean;
  readonly updateSharedCache: boolean | undefined;
  readonly builder: BuilderChoice;
  /** A buildx builder to build with: --builder NAME, else BUILDX_BUILDER; undefined: buildx's current one. */
  readonly buildxBuilder: string | undefined;
  readonly strategy: StrategyChoice;
  readonly cacheUpload: UploadChoice;
  readonly cacheCompression: CacheCompression;
  readonly docker: string;
  readonly login: { readonly username: string; readonly password: { readonly from: 'stdin' } | { readonly from: 'env'; readonly name: string } } | undefined;
  readonly retries: number;
  readonly timeoutSeconds: number;
  readonly dryRun: boolean;
  readonly verbose: boolean;
  readonly reportJson: string | undefined;
  readonly reportMd: string | undefined;
  /** Build arguments whose values --verbose prints. */
  readonly showBuildArgs: readonly string[];
}

/** The yargs result for the helper's own options. */
export interface ParsedHelperArgs {
  readonly _: readonly (string | number)[];
  readonly branch?: string | undefined;
  readonly 'default-branch'?: readonly string[] | undefined;
  readonly target?: string | undefined;
  readonly stages?: string | undefined;
  readonly 'cache-repo'?: string | undefined;
  readonly tag?: readonly string[] | undefined;
  readonly push: boolean;
  readonly 'push-cache': boolean;
  readonly 'update-shared-cache'?: boolean | undefined;
  readonly builder: string;
  readonly strategy?: string | undefined;
  readonly 'cache-upload'?: string | undefined;
  readonly 'cache-compression'?: string | undefined;
  readonly docker: string;
  readonly username?: string | undefined;
  readonly 'password-stdin': boolean;
  readonly 'password-env'?: string | undefined;
  readonly retries: number;
  readonly timeout: number;
  readonly 'dry-run': boolean;
  readonly verbose: boolean;
  readonly report?: string | undefined;
  readonly 'report-md'?: string | undefined;
  readonly 'show-build-arg'?: readonly string[] | undefined;
}

function commaList(values: readonly string[] | undefined): string[] | undefined {
  if (values === undefined) return undefined;
  const list = values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
  return list.length > 0 ? list : undefined;
}

function extraTag(value: string, image: ImageRef): ImageRef {
  // A bare tag ("v1.2") belongs to IMAGE's repository; anything with / or : is a full reference.
  if (!value.includes('/') && !value.includes(':')) return parseImageRef(`${image.domain === undefined ? '' : `${image.domain}/`}${image.path}:${value}`, '--tag');
  return parseImageRef(value, '--tag');
}

function wholeNumber(value: number, name: string, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw usageError(`--${name} must be a whole number from ${min} to ${max}, not "${value}"`);
  }
  return value;
}

/** A single-valued option given twice arrives as an array from yargs: the last one wins. */
function single<T>(value: T | readonly T[] | undefined): T | undefined {
  return Array.isArray(value) ? (value[value.length - 1] as T | undefined) : (value as T | undefined);
}

function singles(args: ParsedHelperArgs): ParsedHelperArgs {
  const out: Record<string, unknown> = { ...args };
  for (const key of ['branch', 'target', 'stages', 'cache-repo', 'builder', 'strategy', 'cache-upload', 'cache-compression', 'docker', 'username', 'password-env', 'report', 'report-md', 'retries', 'timeout']) {
    const value = single(out[key] as unknown);
    out[key] = value === undefined || typeof value === 'number' ? value : String(value);
  }
  for (const key of ['default-branch', 'tag', 'show-build-arg']) {
    if (Array.isArray(out[key])) out[key] = (out[key] as unknown[]).map(String);
  }
  return out as unknown as ParsedHelperArgs;
}

export function normaliseOptions(rawArgs: ParsedHelperArgs, split: SplitArgs, ctx: RunContext): Options {
  const args = singles(rawArgs);
  const positional = args._.map(String);
  const imageText = positional[0];
  if (imageText === undefined) throw usageError('IMAGE is missing', 'usage: docker-build-remote-cache IMAGE[:TAG] [docker build options...]; see --help');
  if (positional.length > 1) throw usageError(`unexpected argument "${positional[1]}"`);
  for (const [what, value] of [['IMAGE', imageText], ['--cache-repo', args['cache-repo']], ...(args.tag ?? []).map((t) => ['--tag', t] as const)] as const) {
    if (value !== undefined && hasCredentials(value)) {
      throw usageError(`${what} carries registry credentials (user:password@...)`, 'remove them: log in with --username U --password-stdin (or docker login) instead; the reference is printed, tagged and reported');
    }
  }
  const image = parseImageRef(imageText);

  const fileArgs = flagValues(split.docker, ['-f', '--file']);
  if (fileArgs.length > 1) throw usageError('-f/--file is given more than once', 'give one Dockerfile');
  const context = split.context ?? '.';
  if (context === '-' || /^[a-z]+:\/\//i.test(context) || context.startsWith('git@')) {
    throw usageError(`the build context "${context}" is not a local folder`, 'run the helper in a checkout and give a folder as the context (default ".")');
  }
  const fileArg = fileArgs[0];
  if (args.timeout !== undefined && !(args.timeout > 0)) throw usageError(`--timeout must be a positive number of seconds, not "${args.timeout}"`);
  if (fileArg === '-') throw usageError('-f - (Dockerfile on stdin) is not supported', 'the helper reads the Dockerfile to find its stages: give a file');
  const dockerfile = fileArg === undefined ? join(context, 'Dockerfile') : fileArg;

  const buildArgs = new Map<string, string>();
  for (const value of flagValues(split.docker, ['--build-arg'])) {
    const eq = value.indexOf('=');
    if (eq > 0) buildArgs.set(value.slice(0, eq), value.slice(eq + 1));
    else {
      const fromEnv = ctx.readVariable(value);
      if (fromEnv !== undefined) buildArgs.set(value, fromEnv);
    }
  }

  // --builder keeps its own three words; any other value names a buildx builder, as for docker buildx build.
  const builderWord = ['auto', 'classic', 'buildkit'].includes(args.builder ?? 'auto') ? ((args.builder ?? 'auto') as BuilderChoice) : undefined;
  const builder: BuilderChoice = builderWord ?? 'auto';
  const buildxBuilder = builderWord === undefined ? args.builder : ctx.buildxBuilder;
  if (buildxBuilder !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(buildxBuilder)) {
    throw usageError(`--builder "${buildxBuilder}" is not auto, classic, buildkit or a buildx builder name`);
  }
  if (args['password-stdin'] && args['password-env'] !== undefined) {
    throw usageError('--password-stdin and --password-env both given', 'choose one source for the password');
  }
  if ((args['password-stdin'] || args['password-env'] !== undefined) && args.username === undefined) {
    throw usageError('a password source is given without --username', 'add --username USER');
  }
  let login: Options['login'];
  if (args.username !== undefined) {
    if (args['password-env'] !== undefined) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(args['password-env'])) throw usageError(`--password-env "${args['password-env']}" is not a variable name`);
      login = { username: args.username, password: { from: 'env', name: args['password-env'] } };
    } else if (args['password-stdin']) {
      login = { username: args.username, password: { from: 'stdin' } };
    } else {
      throw usageError('--username is given without a password source', 'add --password-stdin or --password-env NAME');
    }
  }
  if (args.stages !== undefined && commaList([args.stages]) === undefined) throw usageError('--stages is empty', 'give stage names, comma-separated');

  return {
    image,
    extraTags: (args.tag ?? []).map((t) => extraTag(t, image)),
    cacheRepo: args['cache-repo'] === undefined ? { domain: image.domain, path: image.path } : parseRepository(args['cache-repo']),
    context,
    dockerfile: isAbsolute(dockerfile) ? dockerfile : dockerfile,
    buildArgs,
    passthrough: split.docker,
    branch: args.branch === undefined || args.branch === '' ? undefined : args.branch,
    defaultBranches: commaList(args['default-branch']) ?? ['main', 'master'],
    target: args.target,
    stages: args.stages === undefined ? undefined : commaList([args.stages]),
    push: args.push,
    pushCache: args['push-cache'],
    updateSharedCache: args['update-shared-cache'],
    builder,
    buildxBuilder,
    strategy: (args.strategy ?? 'auto') as StrategyChoice,
    cacheUpload: (args['cache-upload'] ?? 'auto') as UploadChoice,
    cacheCompression: (args['cache-compression'] ?? 'zstd') as CacheCompression,
    docker: args.docker,
    login,
    retries: wholeNumber(args.retries, 'retries', 1, 10),
    timeoutSeconds: wholeNumber(args.timeout, 'timeout', 1, 86_400),
    dryRun: args['dry-run'],
    verbose: args.verbose,
    reportJson: args.report,
    reportMd: args['report-md'],
    showBuildArgs: commaList(args['show-build-arg']) ?? [],
  };
}
