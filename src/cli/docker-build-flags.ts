/**
 * `docker build` / `docker buildx build` flags, so that pass-through arguments can
 * be split from the build context and checked before anything runs.
 */
const VALUE_FLAGS = [
  '--add-host', '--allow', '--annotation', '--attest', '--build-arg', '--build-context', '--builder',
  '--cache-from', '--cache-to', '--call', '--cgroup-parent', '--cpu-period', '--cpu-quota', '--cpu-shares',
  '--cpuset-cpus', '--cpuset-mems', '--file', '--iidfile', '--isolation', '--label', '--memory',
  '--memory-swap', '--metadata-file', '--network', '--no-cache-filter', '--output', '--platform',
  '--progress', '--provenance', '--sbom', '--secret', '--security-opt', '--shm-size', '--ssh', '--ulimit',
  '-c', '-f', '-m', '-o',
];
const BOOLEAN_FLAGS = [
  '--check', '--compress', '--debug', '--disable-content-trust', '--force-rm', '--load', '--no-cache',
  '--pull', '--push', '--quiet', '--rm', '--squash', '--stream', '-q',
];

/** Flags the helper sets itself on every build: the user's would conflict. */
export const OWNED_BY_HELPER: Readonly<Record<string, string>> = {
  '--password': 'a password on the command line ends up in logs: use --username U with --password-stdin, or --password-env VAR',
  '-p': 'a password on the command line ends up in logs: use --username U with --password-stdin, or --password-env VAR',
  '--target': 'use the helper\'s --target (it builds each stage with its own --target)',
  '-t': 'use the helper\'s --tag for extra deploy tags',
  '--push': 'the helper pushes the deploy image itself; use --no-push to build only',
  '--output': 'the helper needs the images in the engine to push them; remove --output',
  '-o': 'the helper needs the images in the engine to push them; remove -o',
  '--iidfile': 'the helper runs several builds; read image IDs from --report instead',
};

export type FlagKind = 'value' | 'boolean' | 'unknown';

export function dockerFlagKind(flag: string): FlagKind {
  const name = flag.includes('=') ? flag.slice(0, flag.indexOf('=')) : flag;
  if (VALUE_FLAGS.includes(name)) return 'value';
  if (BOOLEAN_FLAGS.includes(name)) return 'boolean';
  return 'unknown';
}
