import { dockerFlagKind, OWNED_BY_HELPER } from './docker-build-flags.js';
import { usageError } from '../errors.js';

/** The helper's own options. Everything else goes to `docker build` untouched. */
export const HELPER_OPTIONS = {
  branch: { type: 'string', describe: 'Branch whose cache to read and write. Default: $CIRCLE_BRANCH, else the git branch. Example: --branch feature/login' },
  'default-branch': { type: 'string', array: true, describe: 'Branches whose caches every branch may fall back to, in order (repeat or comma-separate). Default: main,master. Example: --default-branch develop' },
  target: { type: 'string', describe: 'Stage to build and deploy. Default: the last stage. Example: --target runtime' },
  stages: { type: 'string', describe: 'Stages to cache, in build order, instead of those found in the Dockerfile. Example: --stages deps,builder' },
  'cache-repo': { type: 'string', describe: 'Repository for cache tags, instead of IMAGE\'s. Example: --cache-repo registry.example.com/team/app-cache' },
  tag: { type: 'string', array: true, alias: 't', describe: 'Extra deploy tag: a bare tag for IMAGE\'s repository, or a full reference. Repeatable. Example: --tag v1.2.0' },
  push: { type: 'boolean', default: true, describe: 'Push the deploy image. --no-push builds (and still pushes caches) only.' },
  'push-cache': { type: 'boolean', default: true, describe: 'Push cache tags. --no-push-cache only reads caches (forks, read-only runs).' },
  'update-shared-cache': { type: 'boolean', describe: 'Write the default-branch and unprefixed cache tags. Default: only when building a default branch.' },
  'cache-upload': { type: 'string', choices: ['auto', 'direct', 'engine'], default: 'auto', describe: 'How cache images reach the registry. engine: docker push. direct: docker save + the helper\'s own upload (stores incompressible layers instead of gzipping them at ~26 MB/s). auto: direct when the new layers are a large part of the image.' },
  'cache-compression': { type: 'string', choices: ['zstd', 'gzip', 'uncompressed'], default: 'zstd', describe: 'How the registry-cache strategy compresses the cache layers it writes (BuildKit\'s cache exporter; read by BuildKit 0.10+, Docker 23+). zstd: several times faster than gzip at a like ratio. Layers already in the registry keep theirs; the deploy image stays gzip.' },
  builder: { type: 'string', default: 'auto', describe: 'Which builder to drive. auto: DOCKER_BUILDKIT if set, else BuildKit when the client has buildx, else classic. Any other value names a buildx builder (as docker buildx build --builder; default $BUILDX_BUILDER, else the current one).' },
  strategy: { type: 'string', choices: ['auto', 'registry-cache', 'inline', 'classic'], default: 'auto', describe: 'How to cache. registry-cache: BuildKit\'s registry cache (buildx docker driver on the containerd store, docker-container/remote/kubernetes drivers). inline: inline cache, one image per stage (docker driver on the classic store, 20.10). classic: the classic builder. auto: the best the engine allows.' },
  docker: { type: 'string', default: 'docker', describe: 'The docker CLI to run. Example: --docker /usr/bin/docker' },
  username: { type: 'string', describe: 'Log in to the registry as this user first (the password comes from --password-stdin or --password-env).' },
  'password-stdin': { type: 'boolean', default: false, describe: 'Read the registry password from standard input.' },
  'password-env': { type: 'string', describe: 'Name of the environment variable that holds the registry password. Example: --password-env DOCKER_PASSWORD' },
  retries: { type: 'number', default: 3, describe: 'Attempts for a registry operation that fails for a transient reason (5xx, 429, reset). A cache push is not repeated when docker push already retried its layers or it timed out.' },
  timeout: { type: 'number', default: 300, describe: 'Seconds one registry operation (pull, push, lookup) may take before it is abandoned.' },
  'dry-run': { type: 'boolean', default: false, describe: 'Print the docker commands the run would make, assuming the most specific cache of each stage exists; run nothing.' },
  verbose: { type: 'boolean', default: false, describe: 'Show full command lines, and stack traces on errors.' },
  report: { type: 'string', describe: 'Write the run summary as JSON to this file. Example: --report build-report.json' },
  'report-md': { type: 'string', describe: 'Write the run summary as a markdown table to this file.' },
  'show-build-arg': { type: 'string', array: true, describe: 'With --verbose, print this build argument\'s value in command lines (every other value prints as NAME=***). Repeatable. Example: --show-build-arg NODE_VERSION' },
} as const;

export type HelperOptionName = keyof typeof HELPER_OPTIONS;

export interface SplitArgs {
  /** Arguments for yargs: the helper's own options and IMAGE. */
  readonly helper: string[];
  /** Arguments for every `docker build`, the build context excluded. */
  readonly docker: string[];
  /** The build context, if the user gave one. */
  readonly context: string | undefined;
}

const HELPER_ALIASES: Readonly<Record<string, HelperOptionName>> = { t: 'tag' };

function helperOptionOf(token: string): { name: HelperOptionName; takesValue: boolean; inline: boolean } | undefined {
  const isLong = token.startsWith('--');
  const body = token.slice(isLong ? 2 : 1);
  const eq = body.indexOf('=');
  let name = eq >= 0 ? body.slice(0, eq) : body;
  if (!isLong) {
    const alias = HELPER_ALIASES[name];
    if (!alias) return undefined;
    name = alias;
  }
  if (name.startsWith('no-') && name.slice(3) in HELPER_OPTIONS) name = name.slice(3);
  if (!(name in HELPER_OPTIONS)) return undefined;
  const spec = HELPER_OPTIONS[name as HelperOptionName];
  const takesValue = spec.type !== 'boolean' && eq < 0 && !body.startsWith('no-');
  return { name: name as HelperOptionName, takesValue, inline: eq >= 0 };
}

/**
 * Splits the command line: the helper's options and IMAGE go to yargs; docker
 * build options and their values are passed through; one positional after
 * IMAGE is the build context. Unknown flags are refused here, before anything
 * runs, rather than by the third docker build.
 */
export function splitArgs(argv: readonly string[]): SplitArgs {
  const helper: string[] = [];
  const docker: string[] = [];
  let context: string | undefined;
  let imageSeen = false;
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] ?? '';
    if (token === '--') {
      docker.push(...argv.slice(i + 1));
      break;
    }
    if (token.startsWith('-') && token !== '-') {
      const own = helperOptionOf(token);
      if (own) {
        helper.push(token);
        if (own.takesValue) {
          const value = argv[i + 1];
          if (value === undefined) throw usageError(`${token} needs a value`, `see --help for ${token}`);
          helper.push(value);
          i++;
        }
        continue;
      }
      if (token === '-h' || token === '--help' || token === '--version') {
        helper.push(token);
        continue;
      }
      const name = token.includes('=') ? token.slice(0, token.indexOf('=')) : token;
      const owned = OWNED_BY_HELPER[name];
      if (owned) throw usageError(`${name} cannot be passed to docker build through this helper`, owned);
      const kind = dockerFlagKind(token);
      if (kind === 'unknown') {
        throw usageError(`unknown option ${name}`, 'it is neither an option of this helper (see --help) nor a docker build option');
      }
      docker.push(token);
      if (kind === 'value' && !token.includes('=')) {
        const value = argv[i + 1];
        if (value === undefined) throw usageError(`${token} needs a value`, `give it as ${token} VALUE`);
        docker.push(value);
        i++;
      }
      continue;
    }
    if (!imageSeen) {
      helper.push(token);
      imageSeen = true;
    } else if (context === undefined) {
      context = token;
    } else {
      throw usageError(`unexpected argument "${token}"`, `the build context is already "${context}"; give one context at most`);
    }
  }
  return { helper, docker, context };
}

/** Values of a docker flag in pass-through arguments (`--build-arg A=1`, `--build-arg=A=1`). */
export function flagValues(docker: readonly string[], names: readonly string[]): string[] {
  const values: string[] = [];
  for (let i = 0; i < docker.length; i++) {
    const token = docker[i] ?? '';
    for (const name of names) {
      if (token === name && i + 1 < docker.length) values.push(docker[i + 1] ?? '');
      else if (token.startsWith(`${name}=`)) values.push(token.slice(name.length + 1));
    }
  }
  return values;
}
