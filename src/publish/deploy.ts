import type { CacheOps } from '../registry/cache-ops.js';
import type { DeployHandoff } from './deploy-handoff.js';
import type { PhaseTraffic } from '../report/phase-traffic.js';
import { pushedIds } from '../report/transfers.js';
import { firstLine, tail, UserError } from '../errors.js';
import { formatRef } from '../plan/image-ref.js';
import type { Options } from '../cli/options.js';
import type { Plan, PlannedStage } from '../plan/plan.js';
import type { RunReport } from '../report/report.js';
import type { RunDeps } from '../run.js';

/** Logs in with --username and the password from stdin or a variable (never the command line). */
export async function login(options: Options, deps: RunDeps, timeoutMs: number): Promise<void> {
  const spec = options.login;
  if (!spec) return;
  const password = spec.password.from === 'stdin' ? deps.stdinPassword : deps.ctx.readVariable(spec.password.name);
  if (password === undefined || password === '') {
    const source = spec.password.from === 'stdin' ? 'standard input' : `$${spec.password.name}`;
    throw new UserError('usage', `no registry password in ${source}`, { hint: 'provide the password, or drop --username to use the engine\'s existing login' });
  }
  const registries = new Set<string | undefined>([options.image.domain, options.cacheRepo.domain]);
  for (const registry of registries) {
    const result = await deps.docker.login(registry, spec.username, password, timeoutMs);
    if (result.exitCode !== 0) {
      throw new UserError('deployFailed', `docker login to ${registry ?? 'Docker Hub'} as ${spec.username} failed`, {
        hint: 'check the username and password (or token) and that the registry answers',
        detail: tail(result.stderr, 5),
      });
    }
    deps.log.info(`logged in to ${registry ?? 'Docker Hub'} as ${spec.username}`);
  }
}

/** Tags the target as IMAGE:TAG and the extra tags and pushes them: not best-effort. */
export async function deploy(plan: Plan, target: PlannedStage, options: Options, deps: RunDeps, ops: CacheOps, report: RunReport, hooks: { readonly handoff?: DeployHandoff; readonly traffic?: PhaseTraffic } = {}): Promise<UserError | undefined> {
  const local = formatRef(target.localRef);
  for (const [i, ref] of plan.deploy.entries()) {
    const name = formatRef(ref);
    const tagged = await deps.docker.tag(local, name);
    if (tagged.exitCode !== 0) {
      report.deploy[i] = { ref: name, action: 'failed', message: tail(tagged.stderr, 1) };
      return new UserError('deployFailed', `could not tag ${name}`, { detail: tail(tagged.stderr, 5) });
    }
    if (!plan.push) {
      report.deploy[i] = { ref: name, action: 'tagged' };
      deps.log.info(`tagged ${name} (not pushed: --no-push)`);
      continue;
    }
    // The deploy push is not best-effort: no circuit breaker, its own error.
    const result = await ops.push(ref, 'deploy');
    hooks.handoff?.settle(ref, result.ok);
    // docker push says which layers it sent ("Pushed", by diff_id); their sizes are in the pushed manifest.
    if (result.ok) hooks.traffic?.add('deploy', ops.layerBytesByDiffId(ref, pushedIds(result.output ?? '')).then((bytes) => ({ pushedBytes: bytes ?? 0 })));
    if (!result.ok) {
      report.deploy[i] = { ref: name, action: 'failed', message: firstLine(result.message) };
      return new UserError('deployFailed', `the deploy push of ${name} failed`, {
        hint: `check that the registry ${ref.domain ?? 'docker.io'} answers and that this job is logged in with push rights (docker login, or --username with --password-stdin)`,
        detail: `${options.docker} push ${name}\n${result.message}`,
      });
    }
    report.deploy[i] = { ref: name, action: 'pushed' };
    deps.log.info(`pushed ${name}`);
  }
  return undefined;
}
