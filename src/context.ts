import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Runner } from './engine/exec.js';

/** What the environment says about this run. The only reader of process.env. */
export interface RunContext {
  /** Branch from CircleCI, or undefined when CircleCI does not say. */
  readonly ciBranch: string | undefined;
  readonly ciTag: string | undefined;
  readonly commit: string | undefined;
  readonly buildUrl: string | undefined;
  readonly isCi: boolean;
  /** DOCKER_BUILDKIT as the user set it: true, false, or undefined when unset. */
  readonly dockerBuildkit: boolean | undefined;
  /** BUILDX_BUILDER: the buildx builder to use when --builder names none. */
  readonly buildxBuilder: string | undefined;
  /** Where the docker CLI keeps config.json (logins, credential helpers). */
  readonly dockerConfigDir: string;
  /** The orb's PARAM_* variables. */
  readonly orbParams: Readonly<Record<string, string | undefined>>;
  /** Set by the orb's login step when a forked PR has no registry credentials. */
  readonly orbReadOnly: boolean;
  /** CIRCLE_PR_NUMBER: set on forked pull requests, which get no secrets. */
  readonly prNumber: string | undefined;
  /** CircleCI's BASH_ENV file, sourced before each step. */
  readonly bashEnv: string | undefined;
  /** Reads another variable by name (for --password-env). */
  readonly readVariable: (name: string) => string | undefined;
}

/** CircleCI passes empty values through `environment:` as "<nil>" sometimes. */
function clean(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === '' || trimmed === '<nil>' ? undefined : trimmed;
}

function parseFlag(value: string | undefined): boolean | undefined {
  const v = clean(value)?.toLowerCase();
  if (v === undefined) return undefined;
  return !['0', 'false', 'no', 'off'].includes(v);
}

export function readContext(env: NodeJS.ProcessEnv = process.env): RunContext {
  return {
    ciBranch: clean(env.CIRCLE_BRANCH),
    ciTag: clean(env.CIRCLE_TAG),
    commit: clean(env.CIRCLE_SHA1),
    buildUrl: clean(env.CIRCLE_BUILD_URL),
    isCi: clean(env.CI) !== undefined || clean(env.CIRCLECI) !== undefined,
    dockerBuildkit: parseFlag(env.DOCKER_BUILDKIT),
    buildxBuilder: clean(env.BUILDX_BUILDER),
    dockerConfigDir: clean(env.DOCKER_CONFIG) ?? join(homedir(), '.docker'),
    orbParams: Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('PARAM_'))),
    orbReadOnly: parseFlag(env.DRC_READ_ONLY) === true,
    prNumber: clean(env.CIRCLE_PR_NUMBER),
    bashEnv: clean(env.BASH_ENV),
    readVariable: (name) => env[name],
  };
}

/** The checked-out git branch, or undefined (detached HEAD, not a repository, no git). */
export async function gitBranch(run: Runner, cwd: string): Promise<string | undefined> {
  const result = await run('git', ['rev-parse', '--abbrev-ref', 'HEAD'], { cwd, timeoutMs: 10_000 });
  const name = result.stdout.trim();
  if (result.exitCode !== 0 || name === '' || name === 'HEAD') return undefined;
  return name;
}
