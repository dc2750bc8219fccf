/** Exit codes are part of the interface: README "Failure behaviour" documents them. */
export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  badInput: 3,
  dockerMissing: 4,
  engineUnreachable: 5,
  buildFailed: 6,
  deployFailed: 7,
  /** prune: the registry refused a delete (not enabled, or no rights). */
  deleteRefused: 8,
  interrupted: 130,
  terminated: 143,
} as const;

export type ExitCodeName = keyof typeof ExitCode;

/**
 * An error the user can act on: `message` names what was wrong, `hint` what to do.
 * The top-level catch prints these as one or two lines, without a stack trace.
 */
export class UserError extends Error {
  readonly exitCode: number;
  readonly hint: string | undefined;
  /** Command output worth showing (the tail of a failing command's stderr). */
  readonly detail: string | undefined;

  constructor(kind: ExitCodeName, message: string, opts: { hint?: string; detail?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'UserError';
    this.exitCode = ExitCode[kind];
    this.hint = opts.hint;
    this.detail = opts.detail;
  }
}

export function usageError(message: string, hint?: string): UserError {
  return new UserError('usage', message, hint === undefined ? {} : { hint });
}

export function inputError(message: string, hint?: string): UserError {
  return new UserError('badInput', message, hint === undefined ? {} : { hint });
}

/** The last lines of a command's output: enough to see the error, short enough to read. */
export function tail(text: string, lines = 15): string {
  const all = text.replace(/\s+$/, '').split(/\r?\n/);
  return all.slice(-lines).join('\n');
}

/** The line of a command's error output that says what went wrong (short enough for one log line). */
export function firstLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  // docker prints a registry's error list under a bare "errors:" line.
  const first = lines[0] === 'errors:' && lines[1] ? `errors: ${lines[1]}` : (lines[0] ?? text.trim());
  return first.slice(0, 200);
}
