import { PassThrough } from 'node:stream';
import { execa } from 'execa';

/** What a finished process left behind. A non-zero exit is data, not an exception. */
export interface RunResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout and stderr interleaved as they came. */
  readonly all: string;
  readonly timedOut: boolean;
  /** The executable could not be started (not installed, not executable). */
  readonly notFound: boolean;
  readonly canceled: boolean;
  readonly durationMs: number;
}

export interface RunOptions {
  readonly input?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  readonly cwd?: string;
  /** Called with each chunk of output as it arrives (for live build logs). */
  readonly onOutput?: (chunk: string) => void;
  readonly cancelSignal?: AbortSignal;
}

/** The one door to other processes. Tests replace it with a recording fake. */
export type Runner = (file: string, args: readonly string[], options?: RunOptions) => Promise<RunResult>;

export const execaRunner: Runner = async (file, args, options = {}) => {
  const started = Date.now();
  const child = execa(file, [...args], {
    reject: false,
    all: true,
    stripFinalNewline: false,
    extendEnv: true,
    env: options.env ?? {},
    ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
    ...(options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs }),
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.cancelSignal === undefined ? {} : { cancelSignal: options.cancelSignal }),
    forceKillAfterDelay: 5000,
  });
  if (options.onOutput) {
    const forward = options.onOutput;
    child.all?.on('data', (chunk: Buffer | string) => forward(chunk.toString()));
  }
  const result = await child;
  const code = (result as { code?: string }).code;
  return {
    exitCode: result.exitCode ?? (result.timedOut ? 124 : 1),
    stdout: String(result.stdout ?? ''),
    stderr: String(result.stderr ?? ''),
    all: String(result.all ?? ''),
    timedOut: Boolean(result.timedOut),
    notFound: code === 'ENOENT' || code === 'EACCES',
    canceled: Boolean(result.isCanceled),
    durationMs: Date.now() - started,
  };
};

/** A process whose stdout is read as a stream (docker save), not collected. */
export interface StreamingProcess {
  readonly stdout: AsyncIterable<Buffer>;
  /** Settles when the process ends; stdout is empty in the result. */
  readonly done: Promise<RunResult>;
  kill(): void;
}

export type StreamRunner = (file: string, args: readonly string[], options?: { readonly timeoutMs?: number }) => StreamingProcess;

export const execaStreamRunner: StreamRunner = (file, args, options = {}) => {
  const started = Date.now();
  const child = execa(file, [...args], {
    reject: false,
    buffer: { stdout: false, stderr: true },
    stdin: 'ignore',
    encoding: 'buffer',
    ...(options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs }),
    forceKillAfterDelay: 5000,
  });
  const done = child.then((result): RunResult => {
    const code = (result as { code?: string }).code;
    const stderr = Buffer.from(result.stderr ?? new Uint8Array()).toString('utf8');
    return {
      exitCode: result.exitCode ?? (result.timedOut ? 124 : 1),
      stdout: '',
      stderr,
      all: stderr,
      timedOut: Boolean(result.timedOut),
      notFound: code === 'ENOENT' || code === 'EACCES',
      canceled: Boolean(result.isCanceled),
      durationMs: Date.now() - started,
    };
  });
  if (!child.stdout) throw new Error(`${file} started without a stdout pipe`);
  const source = child.stdout;
  // execa lets an unbuffered stdout flow (so an unread one cannot block the process):
  // bytes nobody reads at once are gone. Piped from the start, they wait here for a
  // reader that comes later (a save started while the caller is still deciding), and
  // the pipe's backpressure holds the process back meanwhile.
  const stdout = source.pipe(new PassThrough({ highWaterMark: 1 << 20 }));
  return { stdout, done, kill: () => {
    source.unpipe(stdout);
    stdout.destroy();
    source.destroy();
    child.kill();
  } };
};
