import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import yargs from 'yargs/yargs';
import { HELPER_OPTIONS, splitArgs } from './cli-args.js';
import { readContext } from '../context.js';
import { Docker, displayArg } from '../engine/docker.js';
import { ExitCode, UserError, usageError } from '../errors.js';
import { execaRunner } from '../engine/exec.js';
import { looksSecret, redactBuildArgs } from '../redact.js';
import { consoleLogger } from '../log.js';
import { normaliseOptions, type Options, type ParsedHelperArgs } from './options.js';
import { dockerCredentials, httpRegistry } from '../registry/registry.js';
import { formatMarkdown, formatSummary, type RunReport } from '../report/report.js';
import { execute } from '../run.js';
import { argsFromOrbParams, pruneArgsFromOrbParams } from './orb-params.js';
import { orbLogin } from './orb-login.js';
import { runPrune } from '../prune/cli.js';
import type { RunContext } from '../context.js';

function orbEnvironment(ctx: RunContext) {
  return { params: ctx.orbParams, commit: ctx.commit, readOnly: ctx.orbReadOnly };
}

declare const __VERSION__: string;
const VERSION = typeof __VERSION__ === 'string' ? __VERSION__ : '0.0.0-dev';

const EPILOG = `Examples:
  docker-build-remote-cache registry.example.com/team/app:$CIRCLE_SHA1
  docker-build-remote-cache localhost:5000/app:dev --build-arg VERSION=1 -f docker/Dockerfile .
  docker-build-remote-cache myorg/app --branch feature/x --no-push --report report.json

Every option that is not the helper's goes to each docker build untouched.
  docker-build-remote-cache prune myorg/app --live-branches live.txt [--delete]   (see prune --help)

Exit codes: 0 ok, 2 usage, 3 bad input, 4 no docker CLI, 5 engine unreachable,
6 build failed, 7 deploy push failed, 8 prune: the registry refused a delete,
130 SIGINT, 143 SIGTERM, 1 internal error.`;

function parseHelperArgs(helperArgv: string[]): ParsedHelperArgs | 'exit' {
  let output = '';
  let failure: Error | undefined;
  const parser = yargs(helperArgv)
    .scriptName('docker-build-remote-cache')
    .usage('$0 IMAGE[:TAG] [docker build options...] [CONTEXT]\n\nBuilds a multi-stage Dockerfile stage by stage, reusing layer caches kept in the registry\n(this branch, then the default branches, then unprefixed), pushes the caches back, and\npushes IMAGE:TAG.')
    .options(HELPER_OPTIONS)
    .strictOptions()
    .version(VERSION)
    .help()
    .alias('h', 'help')
    .epilog(EPILOG)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .exitProcess(false)
    .fail((message, error) => {
      failure = error ?? usageError(message);
    });
  const parsed = parser.parseSync(helperArgv, {}, (_err, _argv, text) => {
    output = text;
  }) as unknown as ParsedHelperArgs & { help?: boolean; version?: boolean };
  if (failure) throw failure instanceof UserError ? failure : usageError(failure.message, 'see --help');
  if (output !== '') {
    process.stdout.write(`${output}\n`);
    return 'exit';
  }
  return parsed;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function writeReports(options: Options, report: RunReport): Promise<void> {
  for (const file of [options.reportJson, options.reportMd]) if (file) await mkdir(dirname(file), { recursive: true });
  if (options.reportJson) await writeFile(options.reportJson, `${JSON.stringify(report, null, 2)}\n`);
  if (options.reportMd) await writeFile(options.reportMd, formatMarkdown(report));
}

export async function main(argv: readonly string[]): Promise<number> {
  let verbose = argv.includes('--verbose');
  const secrets: string[] = [];
  const log = consoleLogger({ verbose, secrets: () => secrets });
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) return;
    log.warn(`${signal} received: stopping the build, then pushing the caches of finished stages`);
    controller.abort(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let options: Options | undefined;
  try {
    if (argv[0] === 'prune') {
      const ctx = readContext();
      const configDir = ctx.dockerConfigDir;
      // The orb's prune command passes its parameters as PARAM_* variables.
      const pruneArgv = argv[1] === '--params-from-env' ? pruneArgsFromOrbParams(ctx.orbParams) : argv.slice(1);
      if (argv[1] === '--params-from-env') log.info(`options from the orb's parameters: prune ${pruneArgv.map(displayArg).join(' ')}`);
      return await runPrune(pruneArgv, {
        registry: (timeoutMs) => httpRegistry({ timeoutMs, credentials: (domain) => dockerCredentials(configDir, domain, execaRunner) }),
        log,
        readStdin,
        now: Date.now,
      });
    }
    if (argv[0] === '--login-from-env') {
      const ctx = readContext();
      await orbLogin(ctx, new Docker(argv.includes('--docker') ? (argv[argv.indexOf('--docker') + 1] ?? 'docker') : 'docker', execaRunner), log, (s) => secrets.push(s));
      return ExitCode.ok;
    }
    // The orb calls `docker-build-remote-cache --params-from-env`: options come from PARAM_* variables.
    const effectiveArgv = argv[0] === '--params-from-env' ? argsFromOrbParams(orbEnvironment(readContext())) : argv;
    verbose = verbose || effectiveArgv.includes('--verbose');
    if (argv[0] === '--params-from-env') log.info(`options from the orb's parameters: ${redactBuildArgs(effectiveArgv).map(displayArg).join(' ')}`);
    const split = splitArgs(effectiveArgv);
    const parsed = parseHelperArgs(split.helper);
    if (parsed === 'exit') return ExitCode.ok;
    const ctx = readContext();
    options = normaliseOptions(parsed, split, ctx);
    verbose = options.verbose;
    // Belt and braces: the values of secret-looking build arguments are masked in any output, the build's own included.
    for (const [name, value] of options.buildArgs) if (looksSecret(name) && !(verbose && options.showBuildArgs.includes(name))) secrets.push(value);
    const stdinPassword = options.login?.password.from === 'stdin' ? await readStdin() : undefined;
    if (stdinPassword) secrets.push(stdinPassword);
    if (options.login?.password.from === 'env') {
      const fromEnv = ctx.readVariable(options.login.password.name);
      if (fromEnv) secrets.push(fromEnv);
    }
    const runner = execaRunner;
    const docker = new Docker(options.docker, runner);
    const configDir = ctx.dockerConfigDir;
    const registry = httpRegistry({
      timeoutMs: Math.min(options.timeoutSeconds * 1000, 60_000),
      credentials: (domain) => dockerCredentials(configDir, domain, runner),
    });
    const report = await execute(options, {
      docker,
      registry,
      runner,
      log,
      ctx,
      cancel: controller.signal,
      runId: randomBytes(4).toString('hex'),
      stdinPassword,
    });
    if (!options.dryRun) process.stdout.write(`\n${formatSummary(report)}\n`);
    await writeReports(options, report);
    return ExitCode.ok;
  } catch (error) {
    const report = (error as { report?: RunReport }).report;
    if (report && options) {
      process.stdout.write(`\n${formatSummary(report)}\n`);
      await writeReports(options, report).catch(() => undefined);
    }
    if (error instanceof UserError) {
      if (error.detail) log.raw(`${error.detail}\n`);
      log.raw(`error: ${error.message}\n`);
      if (error.hint) log.raw(`hint: ${error.hint}\n`);
      if (verbose && error.stack) log.raw(`${error.stack}\n`);
      return error.exitCode;
    }
    log.raw(`internal error: ${(error as Error)?.message ?? String(error)}\n`);
    if (verbose) log.raw(`${(error as Error)?.stack ?? ''}\n`);
    else log.raw('hint: run again with --verbose for the stack trace, and report it\n');
    return ExitCode.internal;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
