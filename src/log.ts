/** Output grouped by phase: a header when a phase starts, its duration when it ends. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  /** Full command lines and other detail, shown with --verbose. */
  debug(message: string): void;
  /** Raw output of a child process (build logs), passed through as it comes. */
  raw(chunk: string): void;
  phase<T>(title: string, body: () => Promise<T>): Promise<T>;
  readonly warnings: readonly string[];
}

export function consoleLogger(opts: { verbose: boolean; write?: (text: string) => void; now?: () => number; secrets?: () => readonly string[] }): Logger {
  const write = opts.write ?? ((text: string) => process.stderr.write(text));
  const now = opts.now ?? Date.now;
  const warnings: string[] = [];
  // Belt and braces: a secret never reaches the output, even inside a child's message.
  const redact = (text: string): string => {
    let out = text;
    for (const secret of opts.secrets?.() ?? []) if (secret.length >= 3) out = out.split(secret).join('***');
    return out;
  };
  return {
    info: (message) => write(redact(`${message}\n`)),
    warn: (message) => {
      warnings.push(redact(message));
      write(redact(`WARNING: ${message}\n`));
    },
    debug: (message) => {
      if (opts.verbose) write(redact(`  $ ${message}\n`));
    },
    raw: (chunk) => write(redact(chunk)),
    async phase(title, body) {
      const started = now();
      write(`\n==> ${title}\n`);
      try {
        return await body();
      } finally {
        write(`<== ${title} (${((now() - started) / 1000).toFixed(1)}s)\n`);
      }
    },
    warnings,
  };
}
