import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import {
  BUILTIN_STEPS, compileJob, compileSteps, isMapping, type Mapping, type Orb, OrbCompileError, PARAM_REF, type ParamDef, resolveParams,
  typeMismatch, type Value, WORKFLOW_JOB_KEYS,
} from './compile.js';
import { resolveIncludes } from './include.js';

/** The largest run command the validator accepts: under the 128 KiB of one Linux argument, with room to spare. */
const MAX_COMMAND_BYTES = 100 * 1024;

export interface Finding {
  /** Set when the finding is in an included script rather than the orb file. */
  readonly file?: string;
  readonly line: number;
  readonly rule: string;
  readonly message: string;
  readonly fix: string;
  /** A rule the orb skips on purpose (a `# validate-orb: allow RULE: reason` comment above the key): reported, not a failure. */
  readonly skipped?: true;
}

export interface ValidateOptions {
  /** Folder that `<<include(...)>>` paths are relative to (source orbs). */
  readonly baseDir: string;
  /** The orb's current major version, for RC011. */
  readonly major: number | undefined;
  /** Run shellcheck on every run command (needs the shellcheck binary). */
  readonly shellcheck: boolean;
}

const TOP_KEYS = new Set(['version', 'description', 'display', 'orbs', 'commands', 'jobs', 'executors', 'examples']);
const COMMAND_KEYS = new Set(['description', 'parameters', 'steps']);
const JOB_KEYS = new Set(['description', 'parameters', 'steps', 'executor', 'docker', 'machine', 'macos', 'environment', 'working_directory', 'resource_class', 'shell', 'parallelism', 'circleci_ip_ranges']);
const EXECUTOR_KEYS = new Set(['description', 'parameters', 'docker', 'machine', 'macos', 'resource_class', 'environment', 'working_directory', 'shell']);
const EXAMPLE_KEYS = new Set(['description', 'usage', 'result']);
const PARAM_KEYS = new Set(['type', 'default', 'description', 'enum']);
const PARAM_TYPES = new Set(['string', 'boolean', 'integer', 'enum', 'executor', 'steps', 'env_var_name']);
const RESERVED_JOB_PARAMS = new Set(['name', 'requires', 'context', 'type', 'filters', 'matrix']);
const COMPONENT_NAME = /^[a-z][a-z0-9_-]*$/;
const ENV_VAR_NAME = /^[A-Za-z][A-Za-z0-9_]+$/;
const HELPER = 'docker-build-remote-cache.mjs';
const LONG_COMMAND_LINES = 5;

/** Remembers the line where each mapping or list of the YAML document starts. */
function loadWithLines(text: string): { doc: unknown; lineOf: (node: unknown) => number } {
  const stack: number[] = [];
  const lines = new WeakMap<object, number>();
  const doc = yaml.load(text, {
    listener(event, state) {
      if (event === 'open') stack.push(state.line);
      else {
        const line = stack.pop() ?? 0;
        const result = state.result as unknown;
        if (result !== null && typeof result === 'object' && !lines.has(result)) lines.set(result, line + 1);
      }
    },
  });
  return { doc, lineOf: (node) => (node !== null && typeof node === 'object' ? (lines.get(node) ?? 1) : 1) };
}

/** Every string in a value, with the nearest mapping or list that holds it. */
function strings(value: unknown, holder: unknown, out: { text: string; holder: unknown }[] = []): { text: string; holder: unknown }[] {
  if (typeof value === 'string') out.push({ text: value, holder });
  else if (Array.isArray(value)) for (const v of value) strings(v, value, out);
  else if (isMapping(value)) for (const v of Object.values(value)) strings(v, value, out);
  return out;
}

export function validateOrb(sourceText: string, options: ValidateOptions): Finding[] {
  const findings: Finding[] = [];
  const text = sourceText.includes('<<include(') ? resolveIncludes(sourceText, options.baseDir) : sourceText;
  // Line numbers refer to the file as given; a resolved include only shifts lines after it.
  const sourceLines = sourceText.split('\n');
  let loaded: ReturnType<typeof loadWithLines>;
  try {
    loaded = loadWithLines(text);
  } catch (error) {
    const mark = (error as { mark?: { line?: number } }).mark;
    return [{ line: (mark?.line ?? 0) + 1, rule: 'YAML', message: `not valid YAML: ${(error as Error).message.split('\n')[0]}`, fix: 'fix the YAML syntax' }];
  }
  const { doc, lineOf } = loaded;
  const keyLine = (holder: unknown, key: string): number => {
    const start = lineOf(holder);
    const lines = text.split('\n');
    for (let i = Math.max(0, start - 1); i < lines.length; i++) {
      if (new RegExp(`^\\s*-?\\s*["']?${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}["']?\\s*:`).test(lines[i] ?? '')) return mapLine(i + 1);
    }
    return mapLine(start);
  };
  // Map a line of the resolved text back to the source file.
  const mapLine = (resolvedLine: number): number => {
    if (text === sourceText) return resolvedLine;
    const target = text.split('\n')[resolvedLine - 1] ?? '';
    const index = sourceLines.indexOf(target);
    return index >= 0 ? index + 1 : resolvedLine;
  };
  const add = (line: number, rule: string, message: string, fix: string): void => {
    // A comment on the line above may skip a rule there, with its reason: the reason is printed, the run passes.
    const allowed = new RegExp(`^\\s*#\\s*validate-orb:\\s*allow\\s+${rule}:\\s*(.+)$`).exec(sourceLines[line - 2] ?? '');
    if (allowed) findings.push({ line, rule, message, fix: `skipped on purpose: ${allowed[1]?.trim()}`, skipped: true });
    else findings.push({ line, rule, message, fix });
  };

  if (!isMapping(doc)) {
    add(1, 'ORB001', 'the orb is not a YAML mapping', 'start from version: 2.1 and add commands, jobs or executors');
    return findings;
  }
  const orb = doc as unknown as Orb & Mapping;

  // ---- top level -------------------------------------------------------------
  for (const key of Object.keys(orb)) {
    if (!TOP_KEYS.has(key)) add(keyLine(orb, key), 'ORB001', `unknown top-level key "${key}"`, `use only ${[...TOP_KEYS].join(', ')}`);
  }
  if (String(orb.version) !== '2.1') add(keyLine(orb, 'version'), 'ORB001', `version is ${JSON.stringify(orb.version ?? null)}`, 'set version: 2.1');
  const display = isMapping(orb.display) ? orb.display : undefined;
  if (!display || typeof display.source_url !== 'string' || display.source_url === '') {
    add(display ? lineOf(display) : 1, 'RC001', 'display.source_url is missing', 'add display: { source_url: https://... } pointing at the orb\'s source');
  }
  const description = typeof orb.description === 'string' ? orb.description.trim() : '';
  if (description.length < 64) {
    add(orb.description === undefined ? 1 : keyLine(orb, 'description'), 'RC005', `the orb's description has ${description.length} characters`, 'describe the orb in at least 64 characters');
  }

  const sections: [string, Record<string, Mapping> | undefined, Set<string>][] = [
    ['commands', orb.commands as Record<string, Mapping> | undefined, COMMAND_KEYS],
    ['jobs', orb.jobs as Record<string, Mapping> | undefined, JOB_KEYS],
    ['executors', orb.executors as Record<string, Mapping> | undefined, EXECUTOR_KEYS],
    ['examples', orb.examples as Record<string, Mapping> | undefined, EXAMPLE_KEYS],
  ];

  // ---- components --------------------------------------------------------------
  for (const [section, components, allowed] of sections) {
    if (components === undefined) continue;
    if (!isMapping(components)) {
      add(keyLine(orb, section), 'ORB002', `${section} must be a mapping of names to components`, `write ${section}: { name: {...} }`);
      continue;
    }
    for (const [name, component] of Object.entries(components)) {
      const where = `${section.slice(0, -1)} "${name}"`;
      const line = keyLine(components, name);
      if (!COMPONENT_NAME.test(name)) add(line, 'ORB002', `${where}: invalid name`, 'start with a lowercase letter; use a-z, 0-9 and _');
      if (name.includes('-')) add(line, 'RC010', `${where}: "-" in a component name`, `rename it ${name.replace(/-/g, '_')} (snake_case)`);
      if (!isMapping(component)) {
        add(line, 'ORB002', `${where} is not a mapping`, 'give it keys such as description and steps');
        continue;
      }
      for (const key of Object.keys(component)) {
        if (!allowed.has(key)) add(keyLine(component, key), 'ORB002', `${where}: key "${key}" is not allowed`, `use only ${[...allowed].join(', ')}`);
      }
      if (typeof component.description !== 'string' || component.description.trim() === '') {
        add(line, 'RC002', `${where} has no description`, 'add a description: what it does and when to use it');
      }
      if (section === 'commands' && !Array.isArray(component.steps)) add(line, 'ORB002', `${where} has no steps`, 'add steps: [...]');
      if (section === 'jobs') {
        if (!Array.isArray(component.steps)) add(line, 'ORB002', `${where} has no steps`, 'add steps: [...]');
        const runners = ['executor', 'docker', 'machine', 'macos'].filter((k) => k in component);
        if (runners.length !== 1) add(line, 'ORB002', `${where} needs exactly one of executor, docker, machine, macos (has ${runners.length})`, 'give the job one executor');
      }
      if (section === 'examples') {
        if (!isMapping(component.usage)) add(line, 'ORB002', `${where} has no usage`, 'add usage: a complete config that imports the orb and uses it');
        continue;
      }
      checkParameters(component, where, section === 'jobs');
      checkReferences(component, where);
    }
  }

  function checkParameters(component: Mapping, where: string, isJob: boolean): void {
    const params = component.parameters;
    if (params === undefined) return;
    if (!isMapping(params)) {
      add(keyLine(component, 'parameters'), 'ORB003', `${where}: parameters must be a mapping`, 'write parameters: { name: { type: string } }');
      return;
    }
    for (const [name, def] of Object.entries(params)) {
      const line = keyLine(params, name);
      if (name.includes('-')) add(line, 'RC010', `${where}: "-" in parameter key "${name}"`, `rename it ${name.replace(/-/g, '_')}`);
      if (isJob && RESERVED_JOB_PARAMS.has(name)) add(line, 'ORB003', `${where}: "${name}" is a reserved job key and cannot be a parameter`, `rename it, e.g. ${name}_value`);
      if (!isMapping(def)) {
        add(line, 'ORB003', `${where}: parameter "${name}" is not a mapping`, 'give it a type (and a default unless required)');
        continue;
      }
      for (const key of Object.keys(def)) if (!PARAM_KEYS.has(key)) add(keyLine(def, key), 'ORB003', `${where}: parameter "${name}" has unknown key "${key}"`, 'use type, default, description, enum');
      const type = String(def.type ?? '');
      if (!PARAM_TYPES.has(type)) {
        add(line, 'ORB003', `${where}: parameter "${name}" has type "${type}"`, `use one of ${[...PARAM_TYPES].join(', ')}`);
        continue;
      }
      if (type === 'enum' && (!Array.isArray(def.enum) || def.enum.length === 0)) {
        add(line, 'ORB003', `${where}: enum parameter "${name}" has no enum list`, 'add enum: [a, b]');
        continue;
      }
      if ('default' in def) {
        const mismatch = typeMismatch(def as ParamDef, def.default ?? null);
        if (mismatch) add(line, 'ORB003', `${where}: the default of "${name}" is ${JSON.stringify(def.default)}, not ${mismatch}`, `give a default that is ${mismatch}`);
        if (type === 'executor' && typeof def.default === 'string' && !(def.default in (orb.executors ?? {}))) {
          add(line, 'ORB005', `${where}: the default executor "${def.default}" of "${name}" does not exist`, 'define it under executors');
        }
        if (type === 'env_var_name' && typeof def.default === 'string' && !ENV_VAR_NAME.test(def.default)) {
          // covered by typeMismatch; kept for clarity of the rule
        }
      }
    }
  }

  function paramsOf(component: Mapping): Record<string, Mapping> {
    return isMapping(component.parameters) ? (component.parameters as Record<string, Mapping>) : {};
  }

  function checkReferences(component: Mapping, where: string): void {
    const declared = paramsOf(component);
    for (const { text: s, holder } of strings(component, component)) {
      for (const match of s.matchAll(PARAM_REF)) {
        const name = match[1] ?? '';
        if (!(name in declared)) add(lineOf(holder), 'ORB004', `${where}: << parameters.${name} >> is not declared in this component`, `declare ${name} under ${where}'s parameters, or pass it in`);
      }
      const bare = s.replace(/\\<</g, '').replace(/<<\s*(parameters|pipeline)\.[A-Za-z0-9_.-]+\s*>>/g, '');
      if (bare.includes('<<')) add(lineOf(holder), 'ORB008', `${where}: a literal "<<" that is not a parameter reference`, 'write it as \\<< (CircleCI reads << as a template tag)');
    }
    const executor = component.executor;
    if (typeof executor === 'string' && !PARAM_REF.test(executor) && !(executor in (orb.executors ?? {}))) {
      add(keyLine(component, 'executor'), 'ORB005', `${where}: executor "${executor}" does not exist`, 'define it under executors');
    }
    PARAM_REF.lastIndex = 0;
    if (Array.isArray(component.steps)) checkSteps(component.steps, declared, where);
  }

  function checkSteps(steps: Value[], declared: Record<string, Mapping>, where: string): void {
    for (const step of steps) {
      const [name, config] = typeof step === 'string' ? [step, null] : isMapping(step) ? (Object.entries(step)[0] ?? ['', null]) : ['', null];
      const holder = isMapping(step) ? step : steps;
      if (name === 'run') {
        if (!isMapping(config) || typeof config.name !== 'string' || config.name.trim() === '') {
          add(lineOf(holder), 'RC008', `${where}: a run step without a name`, 'write run as a map with name: and command:');
        }
        const command = isMapping(config) ? String(config.command ?? '') : String(config ?? '');
        const bytes = Buffer.byteLength(command, 'utf8');
        if (bytes > MAX_COMMAND_BYTES) {
          add(lineOf(holder), 'ORB020', `${where}: a run step's command is ${(bytes / 1024).toFixed(1)} KiB, over ${MAX_COMMAND_BYTES / 1024} KiB (Linux allows 128 KiB for one argument; a runner or wrapper that hands the step to bash -c fails with "Argument list too long")`, 'split it over several steps, or make what it carries smaller');
        }
        if (command.split('\n').filter((l) => l.trim() !== '').length > LONG_COMMAND_LINES && !command.includes(HELPER)) {
          add(lineOf(holder), 'RC009', `${where}: a ${command.split('\n').length}-line run command with inline shell logic`, `move the logic into the helper (${HELPER}) and call it; keep run steps to one call`);
        }
        continue;
      }
      if (name === 'when' || name === 'unless') {
        if (isMapping(config) && Array.isArray(config.steps)) checkSteps(config.steps, declared, where);
        continue;
      }
      if (name === 'steps') continue;
      if (name === 'save_cache' || name === 'restore_cache') {
        const keys = isMapping(config) ? [config.key, ...(Array.isArray(config.keys) ? config.keys : [])] : [];
        for (const key of keys) {
          for (const match of String(key ?? '').matchAll(PARAM_REF)) {
            const def = declared[match[1] ?? ''];
            if (def && typeof def.default === 'string' && def.default.includes('$')) {
              add(lineOf(holder), 'RC012', `${where}: parameter "${match[1]}" has a default with "$" and flows into a cache key`, 'environment variables are not expanded in cache keys: use {{ .Environment.VAR }} or a default without $');
            }
          }
        }
        continue;
      }
      if (BUILTIN_STEPS.has(name)) continue;
      const command = orb.commands?.[name];
      if (!command) {
        add(lineOf(holder), 'ORB005', `${where}: step "${name}" is neither a built-in step nor a command of this orb`, 'define the command, or fix the name');
        continue;
      }
      checkInvocation(command, isMapping(config) ? config : {}, declared, `${where} -> command "${name}"`, lineOf(holder));
    }
  }

  function checkInvocation(target: Mapping, given: Mapping, callerParams: Record<string, Mapping>, where: string, line: number, ignore: ReadonlySet<string> = new Set()): void {
    const defs = paramsOf(target);
    for (const [name, value] of Object.entries(given)) {
      if (ignore.has(name)) continue;
      const def = defs[name];
      if (!def) {
        add(line, 'ORB006', `${where}: unknown parameter "${name}"`, `use one of: ${Object.keys(defs).join(', ') || '(none)'}`);
        continue;
      }
      const whole = typeof value === 'string' ? /^\s*<<\s*parameters\.([A-Za-z0-9_-]+)\s*>>\s*$/.exec(value) : null;
      if (whole) {
        const source = callerParams[whole[1] ?? ''];
        const from = String(source?.type ?? '');
        const to = String(def.type ?? '');
        const fits = from === to || to === 'string' || (from === 'enum' && to === 'string') || (from === 'string' && to === 'enum') || (from === 'env_var_name' && to === 'string');
        if (source && !fits) add(line, 'ORB006', `${where}: "${name}" is ${to} but receives ${from} parameter "${whole[1]}"`, 'pass a parameter of the same type');
        continue;
      }
      if (typeof value === 'string' && value.includes('<<')) continue; // text with references renders as a string
      const mismatch = typeMismatch(def as ParamDef, value);
      if (mismatch) add(line, 'ORB006', `${where}: "${name}" must be ${mismatch}, not ${JSON.stringify(value)}`, `pass ${mismatch}`);
    }
    for (const [name, def] of Object.entries(defs)) {
      if (isMapping(def) && !('default' in def) && !(name in given)) add(line, 'ORB006', `${where}: required parameter "${name}" is not passed`, `pass ${name}`);
    }
  }

  // ---- examples -------------------------------------------------------------------
  const examples = isMapping(orb.examples) ? orb.examples : {};
  if (Object.keys(examples).length === 0) add(1, 'RC003', 'the orb has no examples', 'add at least one example under examples: with a complete usage config');
  for (const [name, example] of Object.entries(examples)) {
    if (!isMapping(example) || !isMapping(example.usage)) continue;
    checkExample(name, example.usage);
  }

  function checkExample(exampleName: string, usage: Mapping): void {
    const where = `example "${exampleName}"`;
    const orbs = isMapping(usage.orbs) ? usage.orbs : {};
    const aliases = new Set<string>();
    for (const [alias, ref] of Object.entries(orbs)) {
      const version = /@(\d+)(?:\.\d+){0,2}$/.exec(String(ref));
      if (!version) continue;
      aliases.add(alias);
      if (options.major !== undefined && Number(version[1]) !== options.major) {
        add(keyLine(orbs, alias), 'RC011', `${where} imports ${String(ref)}, not the current major version ${options.major}`, `import it as ...@${options.major}`);
      }
    }
    if (aliases.size === 0) add(lineOf(usage), 'ORB007', `${where} does not import the orb`, 'add orbs: { alias: namespace/name@X.Y.Z }');
    const useOf = (ref: string): [string, string] | undefined => {
      const slash = ref.indexOf('/');
      return slash > 0 && aliases.has(ref.slice(0, slash)) ? [ref.slice(0, slash), ref.slice(slash + 1)] : undefined;
    };
    const checkUserSteps = (steps: unknown, line: number): void => {
      if (!Array.isArray(steps)) return;
      for (const step of steps) {
        const [name, config] = typeof step === 'string' ? [step, null] : isMapping(step) ? (Object.entries(step)[0] ?? ['', null]) : ['', null];
        const use = useOf(name);
        if (!use) continue;
        const command = orb.commands?.[use[1]];
        if (!command) add(lineOf(step) || line, 'ORB007', `${where} uses command ${name}, which the orb does not have`, `use one of: ${Object.keys(orb.commands ?? {}).join(', ')}`);
        else checkInvocation(command, isMapping(config) ? config : {}, {}, `${where} -> ${name}`, isMapping(step) ? lineOf(step) : line);
      }
    };
    for (const job of Object.values(isMapping(usage.jobs) ? usage.jobs : {})) {
      if (isMapping(job)) checkUserSteps(job.steps, lineOf(job));
    }
    for (const workflow of Object.values(isMapping(usage.workflows) ? usage.workflows : {})) {
      if (!isMapping(workflow) || !Array.isArray(workflow.jobs)) continue;
      for (const entry of workflow.jobs) {
        const [name, config] = typeof entry === 'string' ? [entry, null] : isMapping(entry) ? (Object.entries(entry)[0] ?? ['', null]) : ['', null];
        const use = useOf(name);
        if (!use) continue;
        const job = orb.jobs?.[use[1]];
        const line = isMapping(entry) ? lineOf(entry) : lineOf(workflow.jobs);
        if (!job) {
          add(line, 'ORB007', `${where} uses job ${name}, which the orb does not have`, `use one of: ${Object.keys(orb.jobs ?? {}).join(', ')}`);
          continue;
        }
        const given = isMapping(config) ? config : {};
        checkInvocation(job, given, {}, `${where} -> ${name}`, line, WORKFLOW_JOB_KEYS);
        checkUserSteps(given['pre-steps'], line);
        checkUserSteps(given['post-steps'], line);
      }
    }
  }

  /** Where a compiled command's first line stands: the orb file, or an included script. */
  function locateCommand(command: string): { file?: string; line: number } {
    const first = command.split('\n')[0] ?? '';
    for (const match of sourceText.matchAll(/<<include\(([^)]+)\)>>/g)) {
      const file = (match[1] ?? '').trim();
      try {
        const content = readFileSync(join(options.baseDir, file), 'utf8');
        if (content.split('\n')[0] === first) return { file, line: 1 };
      } catch {
        // an unreadable include was reported when it was resolved
      }
    }
    const lines = text.split('\n');
    const index = lines.findIndex((l) => first !== '' && l.trim() === first.trim());
    if (index >= 0) return { line: mapLine(index + 1) };
    const inline = lines.findIndex((l) => first !== '' && l.includes(first.trim()));
    return { line: inline >= 0 ? mapLine(inline + 1) : 1 };
  }

  // ---- what the steps become: shellcheck after interpolation ---------------------
  if (options.shellcheck && findings.every((f) => !['ORB004', 'ORB005', 'ORB006', 'YAML'].includes(f.rule))) {
    const checked = new Set<string>();
    for (const { origin, steps } of compiledComponents(orb, findings)) {
      for (const step of steps) {
        if (step.kind !== 'run' || checked.has(step.command)) continue;
        checked.add(step.command);
        const where = locateCommand(step.command);
        for (const problem of shellcheck(step.command)) {
          const finding = { line: where.line + problem.line - 1, rule: 'SC', message: `${origin}, step "${step.name}": SC${problem.code} ${problem.message}`, fix: `fix the script (https://www.shellcheck.net/wiki/SC${problem.code})` };
          findings.push(where.file === undefined ? finding : { ...finding, file: where.file });
        }
      }
    }
  }
  return findings.sort((a, b) => a.line - b.line || a.rule.localeCompare(b.rule));
}

/** Compiles every command and job with its defaults (required strings get a sample value). */
function compiledComponents(orb: Orb, findings: Finding[]): { origin: string; steps: ReturnType<typeof compileSteps> }[] {
  const out: { origin: string; steps: ReturnType<typeof compileSteps> }[] = [];
  const sample = (component: Mapping): Record<string, Value> => {
    const given: Record<string, Value> = {};
    const params = isMapping(component.parameters) ? component.parameters : {};
    for (const [name, def] of Object.entries(params)) {
      if (isMapping(def) && !('default' in def)) given[name] = def.type === 'boolean' ? true : def.type === 'steps' ? [] : 'example';
    }
    return given;
  };
  for (const [name, command] of Object.entries(orb.commands ?? {})) {
    try {
      const params = resolveParams((command.parameters ?? {}) as Record<string, ParamDef>, sample(command), `command ${name}`);
      out.push({ origin: `command "${name}"`, steps: compileSteps(orb, command.steps ?? [], params, `command ${name}`) });
    } catch (error) {
      if (error instanceof OrbCompileError) findings.push({ line: 1, rule: 'ORB006', message: error.message, fix: 'fix the parameters' });
      else throw error;
    }
  }
  for (const [name, job] of Object.entries(orb.jobs ?? {})) {
    try {
      out.push({ origin: `job "${name}"`, steps: compileJob(orb, name, sample(job)).steps });
    } catch (error) {
      if (error instanceof OrbCompileError) findings.push({ line: 1, rule: 'ORB006', message: error.message, fix: 'fix the parameters' });
      else throw error;
    }
  }
  return out;
}

interface ShellProblem {
  readonly line: number;
  readonly code: number;
  readonly message: string;
}

function shellcheck(script: string): ShellProblem[] {
  const result = spawnSync('shellcheck', ['--shell=bash', '--format=json1', '--severity=warning', '-'], { input: script, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.error) return [{ line: 1, code: 0, message: `shellcheck could not run (${result.error.message}); install it (apt-get install shellcheck)` }];
  try {
    const parsed = JSON.parse(result.stdout) as { comments: { line: number; code: number; message: string }[] };
    return parsed.comments.map((c) => ({ line: c.line, code: c.code, message: c.message }));
  } catch {
    return [];
  }
}
