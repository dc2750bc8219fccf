/**
 * Build-argument values never reach the log: CircleCI masks only its own project and
 * context variables (4 characters or longer), so a token read from a file, generated,
 * or short goes out as it is. Every command line the helper prints shows `NAME=***`;
 * `--show-build-arg NAME` lets --verbose show that one value.
 */

const HIDDEN = '***';

/** The arguments with each --build-arg value replaced (NAME=VALUE -> NAME=***), except the names in `reveal`. */
export function redactBuildArgs(args: readonly string[], reveal: ReadonlySet<string> = new Set()): string[] {
  const hide = (pair: string): string => {
    const eq = pair.indexOf('=');
    if (eq < 0 || reveal.has(pair.slice(0, eq))) return pair;
    return `${pair.slice(0, eq)}=${HIDDEN}`;
  };
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '--build-arg' && i + 1 < args.length) {
      out.push(arg, hide(args[i + 1] ?? ''));
      i++;
    } else if (arg.startsWith('--build-arg=')) {
      out.push(`--build-arg=${hide(arg.slice('--build-arg='.length))}`);
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** Words that make a name look like a secret, as BuildKit's SecretsUsedInArgOrEnv check reads names. */
const SECRET_WORDS = new Set(['token', 'tokens', 'password', 'passwords', 'passwd', 'secret', 'secrets', 'key', 'keys', 'apikey', 'credential', 'credentials', 'auth']);

/** Whether a variable name looks like it holds a secret: one of its words (split at _ - . and camelCase) is TOKEN, PASSWORD, KEY... */
export function looksSecret(name: string): boolean {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .split(/[_.-]+/);
  return words.some((word) => SECRET_WORDS.has(word));
}

/** The warning for build arguments whose names look like secrets (undefined when none does). */
export function secretArgWarning(names: readonly string[]): string | undefined {
  const suspects = [...new Set(names.filter(looksSecret))];
  if (suspects.length === 0) return undefined;
  const example = suspects[0] ?? 'NAME';
  return (
    `build argument${suspects.length > 1 ? 's' : ''} ${suspects.join(', ')} look${suspects.length > 1 ? '' : 's'} like a secret: ` +
    `ARG values are recorded in the image's build history and can be read from the pushed image. ` +
    `Pass it with --secret id=${example},env=${example} and read it in a RUN --mount=type=secret,id=${example} step instead`
  );
}

/**
 * Credentials written into an image reference (`user:pass@registry/app`,
 * `https://user:pass@...`): refused, since the reference is printed, tagged and reported.
 */
export function hasCredentials(reference: string): boolean {
  return /^(?:[a-z][a-z0-9+.-]*:\/\/)?[^/@\s]+:[^/@\s]*@[^/]+\//i.test(reference) || /^[a-z][a-z0-9+.-]*:\/\/[^/@\s]+@/i.test(reference);
}
