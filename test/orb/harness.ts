import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { compileJob, isMapping, type Orb, type Value } from '../../src/orb/compile.ts';
import { wipeEngine } from '../support/env.ts';

export interface StepResult {
  readonly name: string;
  readonly kind: string;
  readonly exitCode: number;
  readonly output: string;
}

export interface JobResult {
  readonly ok: boolean;
  readonly steps: StepResult[];
  /** Everything the job printed, as CircleCI's log would show it. */
  readonly output: string;
  readonly artifacts: string;
  readonly workdir: string;
}

export interface JobRun {
  readonly orbText: string;
  readonly job: string;
  readonly params: Record<string, Value>;
  /** What `checkout` copies into the working directory. */
  readonly checkout: string;
  /** Variables CircleCI (or the project's contexts) would set. */
  readonly env: Record<string, string>;
  /** A docker CLI that can drive BuildKit, put first on PATH (the executor's client). */
  readonly dockerCli?: string;
  readonly stepTimeoutMs?: number;
}

/**
 * Runs an orb job the way CircleCI would on a Docker executor: compile the job
 * (defaults, substitution, \<< unescaping, when/unless), then each step in order:
 * `run` with bash -eo pipefail and the step's environment, BASH_ENV sourced;
 * `checkout` copies the app; `setup_remote_docker` is the local engine, wiped;
 * `store_artifacts` copies into a folder. Bounded in time per step.
 */
export function runOrbJob(run: JobRun): JobResult {
  const orb = yaml.load(run.orbText) as Orb;
  const compiled = compileJob(orb, run.job, run.params);
  const root = mkdtempSync(join(tmpdir(), 'drc-orb-job-'));
  const workdir = join(root, 'project');
  const artifacts = join(root, 'artifacts');
  const bin = join(root, 'bin');
  mkdirSync(workdir);
  mkdirSync(artifacts);
  mkdirSync(bin);
  if (run.dockerCli && existsSync(run.dockerCli)) symlinkSync(run.dockerCli, join(bin, 'docker'));
  // CircleCI's images carry buildx as a CLI plugin; the test engine's plugin goes into the job's own config.
  const plugins = process.env.DOCKER_CONFIG ? join(process.env.DOCKER_CONFIG, 'cli-plugins') : undefined;
  if (plugins && existsSync(plugins)) {
    mkdirSync(join(root, 'docker-config'), { recursive: true });
    symlinkSync(plugins, join(root, 'docker-config', 'cli-plugins'));
  }
  const bashEnv = join(root, 'bash_env');
  writeFileSync(bashEnv, '');
  const env: Record<string, string> = {
    PATH: `${bin}:${process.env.PATH ?? ''}`,
    HOME: process.env.HOME ?? '/root',
    CI: 'true',
    CIRCLECI: 'true',
    BASH_ENV: bashEnv,
    DOCKER_CONFIG: join(root, 'docker-config'),
    // setup_remote_docker points DOCKER_HOST at the job's engine: here, the engine under test.
    ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
    CIRCLE_WORKING_DIRECTORY: workdir,
    ...run.env,
  };
  const steps: StepResult[] = [];
  let failed = false;
  let output = '';
  for (const step of compiled.steps) {
    const shouldRun = step.when === 'always' || (step.when === 'on_fail' ? failed : !failed);
    if (!shouldRun) continue;
    if (step.kind === 'run') {
      const script = join(root, `step-${steps.length}.sh`);
      writeFileSync(script, step.command);
      const result = spawnSync('bash', ['-eo', 'pipefail', script], {
        cwd: workdir,
        env: { ...env, ...step.environment },
        encoding: 'utf8',
        timeout: run.stepTimeoutMs ?? 300_000,
        maxBuffer: 64 * 1024 * 1024,
      });
      const text = `${result.stdout ?? ''}${result.stderr ?? ''}`;
      const exitCode = result.status ?? 124;
      output += `\n#### ${step.name}\n${text}`;
      steps.push({ name: step.name, kind: 'run', exitCode, output: text });
      if (exitCode !== 0) failed = true;
      continue;
    }
    const config = isMapping(step.config) ? step.config : {};
    if (step.name === 'checkout') {
      cpSync(run.checkout, workdir, { recursive: true });
    } else if (step.name === 'setup_remote_docker') {
      wipeEngine();
    } else if (step.name === 'store_artifacts') {
      const path = String(config.path ?? '');
      const destination = join(artifacts, String(config.destination ?? ''));
      if (existsSync(path)) cpSync(path, destination, { recursive: true });
    }
    output += `\n#### ${step.name}\n`;
    steps.push({ name: step.name, kind: 'builtin', exitCode: 0, output: '' });
  }
  return { ok: !failed, steps, output, artifacts, workdir };
}
