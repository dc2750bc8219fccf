/**
 * A small model of CircleCI's config compiler for one orb: parameter defaults and
 * types, `<< parameters.x >>` substitution, `\<<` unescaping, `when`/`unless`,
 * `steps` parameters and the orb's own commands. The validator uses it to check
 * what a run step becomes; the end-to-end test uses it to run the job.
 */

export type Value = string | number | boolean | null | Value[] | { [key: string]: Value };
export type Mapping = { [key: string]: Value };

export interface ParamDef {
  readonly type?: string;
  readonly default?: Value;
  readonly description?: string;
  readonly enum?: Value[];
}

export interface Orb {
  readonly commands?: Record<string, Mapping>;
  readonly jobs?: Record<string, Mapping>;
  readonly executors?: Record<string, Mapping>;
  readonly [key: string]: Value | undefined;
}

export class OrbCompileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OrbCompileError';
  }
}

export const BUILTIN_STEPS = new Set([
  'run', 'checkout', 'setup_remote_docker', 'save_cache', 'restore_cache', 'store_artifacts', 'store_test_results',
  'persist_to_workspace', 'attach_workspace', 'add_ssh_keys', 'when', 'unless',
]);

/** A reference to a parameter that is not escaped. */
export const PARAM_REF = /(?<!\\)<<\s*parameters\.([A-Za-z0-9_-]+)\s*>>/g;
const ENV_VAR_NAME = /^[A-Za-z][A-Za-z0-9_]+$/;

export function isMapping(value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function render(value: Value): string {
  if (value === null) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** Replaces parameter references. A string that is exactly one reference keeps the value's type. */
export function substitute(value: Value, params: Readonly<Record<string, Value>>, where: string): Value {
  if (typeof value === 'string') {
    const whole = /^\s*<<\s*parameters\.([A-Za-z0-9_-]+)\s*>>\s*$/.exec(value);
    if (whole && (value.match(PARAM_REF)?.length ?? 0) === 1) {
      const name = whole[1] ?? '';
      if (!(name in params)) throw new OrbCompileError(`${where}: parameter "${name}" is not declared`);
      return params[name] ?? null;
    }
    return value.replace(PARAM_REF, (_all, name: string) => {
      if (!(name in params)) throw new OrbCompileError(`${where}: parameter "${name}" is not declared`);
      return render(params[name] ?? null);
    });
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, params, where));
  if (isMapping(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, params, where)]));
  return value;
}

export function unescapeTemplate(text: string): string {
  return text.replace(/\\<</g, '<<');
}

/** Checks a value against a parameter's type; returns a reason when it does not fit. */
export function typeMismatch(def: ParamDef, value: Value): string | undefined {
  switch (def.type) {
    case 'string':
      return typeof value === 'string' || typeof value === 'number' ? undefined : 'a string';
    case 'boolean':
      return typeof value === 'boolean' ? undefined : 'a boolean';
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value) ? undefined : 'an integer';
    case 'enum':
      return (def.enum ?? []).map(String).includes(String(value)) ? undefined : `one of ${(def.enum ?? []).join(', ')}`;
    case 'env_var_name':
      return typeof value === 'string' && ENV_VAR_NAME.test(value) ? undefined : 'an environment variable name';
    case 'steps':
      return Array.isArray(value) ? undefined : 'a list of steps';
    case 'executor':
      return typeof value === 'string' || isMapping(value) ? undefined : 'an executor name or map';
    default:
      return `a value of a known type (not "${def.type}")`;
  }
}

export function resolveParams(defs: Readonly<Record<string, ParamDef>>, given: Readonly<Record<string, Value>>, where: string, ignore: ReadonlySet<string> = new Set()): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const name of Object.keys(given)) {
    if (!(name in defs) && !ignore.has(name)) throw new OrbCompileError(`${where}: unknown parameter "${name}"`);
  }
  for (const [name, def] of Object.entries(defs)) {
    if (name in given) {
      const value = given[name] ?? null;
      const mismatch = typeMismatch(def, value);
      if (mismatch) throw new OrbCompileError(`${where}: parameter "${name}" must be ${mismatch}, not ${JSON.stringify(value)}`);
      out[name] = value;
    } else if ('default' in def) {
      out[name] = def.default ?? null;
    } else {
      throw new OrbCompileError(`${where}: required parameter "${name}" is missing`);
    }
  }
  return out;
}

export interface CompiledRun {
  readonly kind: 'run';
  readonly name: string;
  readonly command: string;
  readonly environment: Readonly<Record<string, string>>;
  readonly when: string;
  /** Where the step came from, for messages (command or job name). */
  readonly origin: string;
}

export interface CompiledBuiltin {
  readonly kind: 'builtin';
  readonly name: string;
  readonly config: Value;
  readonly when: string;
  readonly origin: string;
}

export type CompiledStep = CompiledRun | CompiledBuiltin;

function paramDefs(component: Mapping): Record<string, ParamDef> {
  const params = component.parameters;
  return isMapping(params) ? (params as unknown as Record<string, ParamDef>) : {};
}

function compileRun(config: Value, origin: string): CompiledRun {
  if (typeof config === 'string') return { kind: 'run', name: config.split('\n')[0] ?? '', command: unescapeTemplate(config), environment: {}, when: 'on_success', origin };
  if (!isMapping(config)) throw new OrbCompileError(`${origin}: run must be a string or a map`);
  const environment: Record<string, string> = {};
  if (isMapping(config.environment)) {
    for (const [k, v] of Object.entries(config.environment)) environment[k] = unescapeTemplate(render(v));
  }
  const command = unescapeTemplate(render(config.command ?? ''));
  return {
    kind: 'run',
    name: typeof config.name === 'string' ? unescapeTemplate(config.name) : (command.split('\n')[0] ?? ''),
    command,
    environment,
    when: typeof config.when === 'string' ? config.when : 'on_success',
    origin,
  };
}

function truthy(value: Value): boolean {
  if (typeof value === 'string') return !['', 'false', '0'].includes(value.trim().toLowerCase());
  if (Array.isArray(value)) return value.length > 0;
  return Boolean(value);
}

/**
 * Expands steps with the parameters of the component they are in. Steps handed
 * in through a `steps` parameter come from the caller and are expanded with the
 * caller's parameters (`outer`).
 */
export function compileSteps(orb: Orb, steps: Value, params: Readonly<Record<string, Value>>, origin: string, depth = 0): CompiledStep[] {
  if (depth > 20) throw new OrbCompileError(`${origin}: commands call each other too deeply (a cycle?)`);
  if (!Array.isArray(steps)) throw new OrbCompileError(`${origin}: steps must be a list`);
  const out: CompiledStep[] = [];
  for (const raw of steps) {
    const step = substitute(raw, params, origin);
    const [name, config] = typeof step === 'string' ? [step, null] : isMapping(step) ? (Object.entries(step)[0] ?? ['', null]) : ['', null];
    if (name === '') throw new OrbCompileError(`${origin}: a step is empty or not a map`);
    if (name === 'run') {
      out.push(compileRun(config, origin));
    } else if (name === 'when' || name === 'unless') {
      if (!isMapping(config)) throw new OrbCompileError(`${origin}: ${name} needs condition and steps`);
      const holds = truthy(config.condition ?? null);
      if (holds === (name === 'when')) out.push(...compileSteps(orb, config.steps ?? [], params, origin, depth + 1));
    } else if (name === 'steps') {
      // A `steps` parameter's value: the caller's steps, already substituted.
      out.push(...compileSteps(orb, config ?? [], {}, origin, depth + 1));
    } else if (orb.commands && name in orb.commands) {
      const command = orb.commands[name] ?? {};
      const given = isMapping(config) ? config : {};
      const resolved = resolveParams(paramDefs(command), given, `command ${name}`);
      out.push(...compileSteps(orb, command.steps ?? [], resolved, `command ${name}`, depth + 1));
    } else if (BUILTIN_STEPS.has(name)) {
      const when = isMapping(config) && typeof config.when === 'string' ? config.when : 'on_success';
      out.push({ kind: 'builtin', name, config: config ?? null, when, origin });
    } else {
      throw new OrbCompileError(`${origin}: unknown step or command "${name}"`);
    }
  }
  return out;
}

export interface CompiledJob {
  readonly executor: Value;
  readonly steps: CompiledStep[];
  readonly params: Record<string, Value>;
}

/** Job keys a workflow may set that are not parameters. */
export const WORKFLOW_JOB_KEYS = new Set(['name', 'requires', 'context', 'filters', 'matrix', 'type', 'pre-steps', 'post-steps', 'serial-group', 'override-with']);

export function compileJob(orb: Orb, jobName: string, given: Readonly<Record<string, Value>>): CompiledJob {
  const job = orb.jobs?.[jobName];
  if (!job) throw new OrbCompileError(`no job "${jobName}" in the orb`);
  const params = resolveParams(paramDefs(job), given, `job ${jobName}`, WORKFLOW_JOB_KEYS);
  const executor = substitute(job.executor ?? null, params, `job ${jobName}`);
  const pre = Array.isArray(given['pre-steps']) ? given['pre-steps'] : [];
  const post = Array.isArray(given['post-steps']) ? given['post-steps'] : [];
  const steps = [
    ...compileSteps(orb, pre, {}, `job ${jobName} pre-steps`),
    ...compileSteps(orb, job.steps ?? [], params, `job ${jobName}`),
    ...compileSteps(orb, post, {}, `job ${jobName} post-steps`),
  ];
  return { executor, steps, params };
}
