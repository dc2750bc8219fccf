import { appendFile } from 'node:fs/promises';
import type { RunContext } from '../context.js';
import type { Docker } from '../engine/docker.js';
import { tail, UserError, usageError } from '../errors.js';
import type { Logger } from '../log.js';

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function present(value: string | undefined): string | undefined {
  const v = value?.trim();
  return v === undefined || v === '' || v === '<nil>' ? undefined : v;
}

/**
 * The orb's login step. The parameters give the NAMES of the variables that hold
 * the credentials; their values are read by indirection and the password goes to
 * `docker login --password-stdin` only. A forked pull request gets no secrets: it
 * is marked read-only (DRC_READ_ONLY in $BASH_ENV) instead of failing.
 */
export async function orbLogin(ctx: RunContext, docker: Docker, log: Logger, addSecret: (s: string) => void): Promise<void> {
  const userVar = present(ctx.orbParams.PARAM_USERNAME_VAR) ?? 'DOCKER_LOGIN';
  const passVar = present(ctx.orbParams.PARAM_PASSWORD_VAR) ?? 'DOCKER_PASSWORD';
  for (const name of [userVar, passVar]) {
    if (!VARIABLE_NAME.test(name)) throw usageError(`"${name}" is not an environment variable name`, 'give the NAME of the variable, e.g. DOCKER_PASSWORD');
  }
  const registry = present(ctx.orbParams.PARAM_REGISTRY);
  const username = present(ctx.readVariable(userVar));
  const password = ctx.readVariable(passVar);
  if (password) addSecret(password);
  if (username === undefined || password === undefined || password === '') {
    if (ctx.prNumber !== undefined) {
      log.info(`No registry credentials: this is a forked pull request (#${ctx.prNumber}), which gets no secrets.`);
      log.info('Building read-only: caches are read, nothing is pushed.');
      if (ctx.bashEnv) await appendFile(ctx.bashEnv, 'export DRC_READ_ONLY=1\n');
      return;
    }
    throw usageError(
      `$${userVar} or $${passVar} is empty`,
      'add them to the project\'s environment variables or to a context this job uses, or set login: false to use an existing login',
    );
  }
  const result = await docker.login(registry, username, password, 120_000);
  if (result.exitCode !== 0) {
    throw new UserError('deployFailed', `docker login to ${registry ?? 'Docker Hub'} as ${username} failed`, {
      hint: 'check the credentials and that the registry answers',
      detail: tail(result.stderr, 5),
    });
  }
  log.info(`logged in to ${registry ?? 'Docker Hub'} as ${username}`);
}
