import { inputError } from '../errors.js';

/** One `FROM` section of a Dockerfile. */
export interface Stage {
  readonly index: number;
  /** The `AS` name, lowercased as Docker does; undefined for unnamed stages. */
  readonly name: string | undefined;
  /** How the helper names the stage: its name, or its index for unnamed stages. */
  readonly key: string;
  /** The FROM operand after global ARG substitution. */
  readonly base: string;
  /** Index of the stage used as base, when the base is a stage. */
  readonly baseStage: number | undefined;
  readonly platform: string | undefined;
  /** Indexes of the stages this one needs: its base, COPY --from, RUN --mount from. */
  readonly deps: readonly number[];
  /** 1-based line of the FROM instruction. */
  readonly line: number;
}

export interface Dockerfile {
  readonly stages: readonly Stage[];
  readonly escape: string;
}

interface LogicalLine {
  readonly text: string;
  readonly line: number;
  /** 1-based physical line where the instruction ends (after its continuation lines). */
  readonly end: number;
}

interface RawStage {
  index: number;
  name: string | undefined;
  base: string;
  platform: string | undefined;
  line: number;
  refs: { value: string; line: number; kind: 'copy' | 'mount' }[];
}

const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;
const DIRECTIVE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*$/;
const HEREDOC = /<<(-?)(["']?)([A-Za-z_][A-Za-z0-9_]*)\2/g;

export function readEscape(lines: readonly string[]): string {
  for (const raw of lines) {
    const match = DIRECTIVE.exec(raw.trim());
    if (!match) break;
    if (match[1]?.toLowerCase() === 'escape') {
      const value = match[2] ?? '';
      if (value !== '\\' && value !== '`') throw inputError(`invalid escape directive "${value}"`, 'use # escape=\\ or # escape=`');
      return value;
    }
  }
  return '\\';
}

/** Joins continuation lines, drops comments, and skips heredoc bodies. */
export function logicalLines(text: string, escape: string): LogicalLine[] {
  const physical = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
  const result: LogicalLine[] = [];
  let buffer = '';
  let start = 0;
  let pendingHeredocs: { word: string; strip: boolean }[] = [];
  for (let i = 0; i < physical.length; i++) {
    const raw = physical[i] ?? '';
    if (pendingHeredocs.length > 0) {
      const head = pendingHeredocs[0];
      const candidate = head?.strip ? raw.replace(/^\t+/, '') : raw;
      if (head && candidate === head.word) pendingHeredocs = pendingHeredocs.slice(1);
      continue;
    }
    const trimmed = raw.trim();
    if (buffer === '' && (trimmed === '' || trimmed.startsWith('#'))) continue;
    if (buffer !== '' && trimmed.startsWith('#')) continue; // comments inside a continuation
    if (buffer === '') start = i + 1;
    const continues = new RegExp(`${escape === '\\' ? '\\\\' : '`'}\\s*$`).test(raw);
    if (continues) {
      buffer += raw.replace(new RegExp(`${escape === '\\' ? '\\\\' : '`'}\\s*$`), '') + ' ';
      continue;
    }
    buffer += raw;
    const logical = buffer.trim();
    buffer = '';
    result.push({ text: logical, line: start, end: i + 1 });
    if (/^(run|copy|add)\b/i.test(logical)) {
      for (const match of logical.matchAll(HEREDOC)) {
        pendingHeredocs.push({ word: match[3] ?? '', strip: match[1] === '-' });
      }
    }
  }
  if (buffer.trim() !== '') result.push({ text: buffer.trim(), line: start, end: physical.length });
  return result;
}

/** Splits on whitespace, keeping quoted parts together (quotes removed). */
export function words(text: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  for (const m of text.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3] ?? '');
  return out;
}

/** Expands $VAR, ${VAR}, ${VAR:-default} and ${VAR:+alt} the way FROM lines do. */
export function expandArgs(text: string, args: ReadonlyMap<string, string | undefined>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_all, braced, op, word, bare) => {
    const name = (braced ?? bare) as string;
    const value = args.get(name);
    if (op === '-') return value === undefined || value === '' ? (word as string) : value;
    if (op === '+') return value === undefined || value === '' ? '' : (word as string);
    return value ?? '';
  });
}

function parseArgInstruction(rest: string, args: Map<string, string | undefined>, buildArgs: ReadonlyMap<string, string>): void {
  for (const word of words(rest)) {
    const eq = word.indexOf('=');
    const name = eq >= 0 ? word.slice(0, eq) : word;
    const fallback = eq >= 0 ? expandArgs(word.slice(eq + 1), args) : undefined;
    args.set(name, buildArgs.get(name) ?? fallback);
  }
}

function parseFrom(rest: string, index: number, line: number, args: ReadonlyMap<string, string | undefined>): RawStage {
  const parts = words(rest);
  let platform: string | undefined;
  while (parts[0]?.startsWith('--')) {
    const flag = parts.shift() ?? '';
    if (flag.toLowerCase().startsWith('--platform=')) platform = flag.slice('--platform='.length);
  }
  const image = parts[0];
  if (image === undefined) throw inputError(`line ${line}: FROM has no image`, 'write FROM image [AS name]');
  let name: string | undefined;
  if (parts.length >= 3 && parts[1]?.toLowerCase() === 'as') {
    name = (parts[2] ?? '').toLowerCase();
    if (!STAGE_NAME.test(name)) {
      throw inputError(`line ${line}: invalid stage name "${parts[2]}"`, 'a stage name starts with a letter and has only letters, digits, -, _ and .');
    }
  } else if (parts.length !== 1) {
    throw inputError(`line ${line}: cannot read "FROM ${rest}"`, 'write FROM [--platform=...] image [AS name]');
  }
  return { index, name, base: expandArgs(image, args), platform, line, refs: [] };
}

function collectRefs(instruction: string, rest: string, stage: RawStage, line: number): void {
  for (const word of words(rest)) {
    if (!word.startsWith('--')) break;
    const lower = word.toLowerCase();
    if ((instruction === 'copy' || instruction === 'add') && lower.startsWith('--from=')) {
      stage.refs.push({ value: word.slice('--from='.length), line, kind: 'copy' });
    }
    if (instruction === 'run' && lower.startsWith('--mount=')) {
      for (const option of word.slice('--mount='.length).split(',')) {
        const [key, value] = option.split('=', 2);
        if (key?.trim().toLowerCase() === 'from' && value) stage.refs.push({ value: value.trim(), line, kind: 'mount' });
      }
    }
  }
}

/**
 * Parses a Dockerfile into stages and the graph between them. `buildArgs` are the
 * user's --build-arg values, which override global ARG defaults in FROM lines.
 */
export function parseDockerfile(text: string, buildArgs: ReadonlyMap<string, string> = new Map(), file = 'Dockerfile'): Dockerfile {
  const escape = readEscape(text.split(/\r\n|\n|\r/));
  const lines = logicalLines(text, escape);
  if (lines.length === 0) throw inputError(`${file} is empty`, 'a Dockerfile needs at least one FROM instruction');

  const globalArgs = new Map<string, string | undefined>();
  const raw: RawStage[] = [];
  for (const { text: logical, line } of lines) {
    const match = /^(\S+)\s*(.*)$/s.exec(logical);
    const instruction = (match?.[1] ?? '').toLowerCase();
    const rest = match?.[2] ?? '';
    const current = raw[raw.length - 1];
    if (instruction === 'from') {
      raw.push(parseFrom(rest, raw.length, line, globalArgs));
    } else if (current === undefined) {
      if (instruction !== 'arg') {
        throw inputError(`${file} line ${line}: "${instruction.toUpperCase()}" comes before the first FROM`, 'only ARG may come before FROM');
      }
      parseArgInstruction(rest, globalArgs, buildArgs);
    } else {
      collectRefs(instruction, rest, current, line);
    }
  }
  if (raw.length === 0) throw inputError(`${file} has no FROM instruction`, 'a Dockerfile needs at least one FROM instruction');

  const byName = new Map<string, number>();
  for (const stage of raw) {
    if (stage.name === undefined) continue;
    const earlier = byName.get(stage.name);
    if (earlier !== undefined) {
      throw inputError(
        `${file} line ${stage.line}: stage name "${stage.name}" is already used by the stage on line ${raw[earlier]?.line}`,
        'give each stage its own name',
      );
    }
    byName.set(stage.name, stage.index);
  }

  const stages: Stage[] = raw.map((stage) => {
    // FROM can only name a stage defined above it; otherwise it is an image.
    const baseIndex = byName.get(stage.base.toLowerCase());
    const baseStage = baseIndex !== undefined && baseIndex < stage.index ? baseIndex : undefined;
    const deps = new Set<number>();
    if (baseStage !== undefined) deps.add(baseStage);
    for (const ref of stage.refs) {
      const target = resolveStageRef(ref.value, byName, raw.length, file, ref.line);
      if (target === stage.index) {
        throw inputError(`${file} line ${ref.line}: stage "${stage.name ?? stage.index}" copies from itself`, 'copy from another stage');
      }
      if (target !== undefined) deps.add(target);
    }
    return {
      index: stage.index,
      name: stage.name,
      key: stage.name ?? String(stage.index),
      base: stage.base,
      baseStage,
      platform: stage.platform,
      deps: [...deps].sort((a, b) => a - b),
      line: stage.line,
    };
  });
  return { stages, escape };
}

function resolveStageRef(value: string, byName: ReadonlyMap<string, number>, count: number, file: string, line: number): number | undefined {
  if (/^\d+$/.test(value)) {
    const index = Number(value);
    if (index >= count) throw inputError(`${file} line ${line}: --from=${value} names stage ${index}, but there are only ${count}`, 'stage indexes count from 0');
    return index;
  }
  const stage = byName.get(value.toLowerCase());
  if (stage !== undefined) return stage;
  // A bare word that names no stage is most likely a typo of one; an image needs a tag or path.
  if (/^[a-z0-9_-]+$/i.test(value)) {
    const known = [...byName.keys()].join(', ') || '(no named stages)';
    throw inputError(
      `${file} line ${line}: --from=${value} names no stage (stages: ${known})`,
      `fix the stage name; to copy from the image "${value}", write --from=${value}:latest`,
    );
  }
  return undefined; // an image reference
}

/**
 * The Dockerfile text with `AS NAME` added to the FROM of the given stages (by
 * index), everything else kept as written. docker builds only named stages alone
 * (--target); the name changes no step, so the steps' cache keys stay the same.
 */
export function withStageNames(text: string, names: ReadonlyMap<number, string>): string {
  const escape = readEscape(text.split(/\r\n|\n|\r/));
  const physical = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
  let stage = -1;
  for (const { text: logical, end } of logicalLines(text, escape)) {
    if ((/^(\S+)/.exec(logical)?.[1] ?? '').toLowerCase() !== 'from') continue;
    stage++;
    const name = names.get(stage);
    if (name === undefined) continue;
    // The last physical line of the instruction: a FROM split over lines ends there.
    physical[end - 1] = `${(physical[end - 1] ?? '').replace(/\s+$/, '')} AS ${name}`;
  }
  return physical.join('\n');
}

/** Finds a stage by name or index, as `--target` names it. */
export function findStage(dockerfile: Dockerfile, target: string, file = 'Dockerfile'): Stage {
  const key = target.toLowerCase();
  const stage = dockerfile.stages.find((s) => s.key === key || s.name === key);
  if (stage) return stage;
  const known = dockerfile.stages.map((s) => s.key).join(', ');
  throw inputError(`--target "${target}" is not a stage of ${file}`, `use one of: ${known}`);
}

/**
 * The stages needed to build `target`, dependencies first (then file order).
 * Throws when the stages form a cycle.
 */
export function stagesFor(dockerfile: Dockerfile, target: Stage): Stage[] {
  const state = new Map<number, 'visiting' | 'done'>();
  const order: Stage[] = [];
  const visit = (stage: Stage, path: readonly string[]): void => {
    const seen = state.get(stage.index);
    if (seen === 'done') return;
    if (seen === 'visiting') {
      const cycle = [...path.slice(path.indexOf(stage.key)), stage.key].join(' -> ');
      throw inputError(`the stages form a cycle: ${cycle}`, 'break the cycle: a stage cannot depend on itself through other stages');
    }
    state.set(stage.index, 'visiting');
    for (const dep of stage.deps) {
      const depStage = dockerfile.stages[dep];
      if (depStage) visit(depStage, [...path, stage.key]);
    }
    state.set(stage.index, 'done');
    order.push(stage);
  };
  visit(target, []);
  return order;
}

/**
 * Where a stage's dependency part ends: the stage cut just before its last COPY or
 * ADD from the build context, when a RUN comes before that cut (installing
 * dependencies) and another after it (building the sources). The cut stage's
 * layers are the full stage's first layers, so they can be uploaded while the
 * source steps still run.
 */
export interface StageCheckpoint {
  /** The Dockerfile text with the stage's lines from the cut to the next FROM removed. */
  readonly text: string;
  /** BuildKit's step number (`[stage N/M]`) of the last step before the cut, and M. */
  readonly step: number;
  readonly totalSteps: number;
  /** 1-based physical line of the COPY or ADD the stage is cut before. */
  readonly cutLine: number;
}

const VERTEX_INSTRUCTIONS = new Set(['run', 'copy', 'add', 'workdir']);

/**
 * How many steps BuildKit shows for a stage (`[stage N/M]`): FROM when the base is
 * an image (not scratch, not another stage), then each RUN, COPY, ADD, WORKDIR;
 * undefined with ONBUILD.
 */
export function stageStepCount(text: string, stageIndex: number, fromIsStep: boolean): number | undefined {
  const own = countStageInstructions(text, stageIndex, VERTEX_INSTRUCTIONS);
  return own === undefined ? undefined : own + (fromIsStep ? 1 : 0);
}

/** Instructions that leave an entry in the image's history with either builder (ARG only with the classic one). */
const HISTORY_INSTRUCTIONS = new Set(['run', 'copy', 'add', 'workdir', 'env', 'label', 'cmd', 'entrypoint', 'expose', 'user', 'volume', 'stopsignal', 'healthcheck', 'shell', 'maintainer']);

/**
 * How many history entries a stage's own instructions leave at least (undefined with
 * ONBUILD, whose triggers add unknown ones). Too few is safe: a step's time is then
 * not estimated; too many would measure a step against its base image's age.
 */
export function stageHistoryEntries(text: string, stageIndex: number): number | undefined {
  return countStageInstructions(text, stageIndex, HISTORY_INSTRUCTIONS);
}

/** How many of a stage's instructions are in `counted`; undefined with ONBUILD or when the stage does not exist. */
function countStageInstructions(text: string, stageIndex: number, counted: ReadonlySet<string>): number | undefined {
  const escape = readEscape(text.split(/\r\n|\n|\r/));
  let stage = -1;
  let count = 0;
  for (const { text: logical } of logicalLines(text, escape)) {
    const instruction = (/^(\S+)/.exec(logical)?.[1] ?? '').toLowerCase();
    if (instruction === 'from') {
      stage++;
      if (stage > stageIndex) break;
      continue;
    }
    if (stage !== stageIndex) continue;
    if (instruction === 'onbuild') return undefined;
    if (counted.has(instruction)) count++;
  }
  return stage >= stageIndex ? count : undefined;
}

export function stageCheckpoint(text: string, stageIndex: number, fromIsStep: boolean): StageCheckpoint | undefined {
  const escape = readEscape(text.split(/\r\n|\n|\r/));
  const lines = logicalLines(text, escape);
  let stage = -1;
  const own: { instruction: string; line: number; fromContext: boolean }[] = [];
  let nextStageLine: number | undefined;
  for (const { text: logical, line } of lines) {
    const instruction = (/^(\S+)/.exec(logical)?.[1] ?? '').toLowerCase();
    if (instruction === 'from') {
      stage++;
      if (stage === stageIndex + 1) {
        nextStageLine = line;
        break;
      }
      continue;
    }
    if (stage !== stageIndex) continue;
    if (instruction === 'onbuild') return undefined;
    const flags = words(logical.slice(instruction.length)).filter((w) => w.startsWith('--'));
    own.push({ instruction, line, fromContext: (instruction === 'copy' || instruction === 'add') && !flags.some((f) => f.toLowerCase().startsWith('--from=')) });
  }
  if (stage < stageIndex) return undefined;
  const cut = own.map((o) => o.fromContext).lastIndexOf(true);
  if (cut <= 0) return undefined;
  const before = own.slice(0, cut);
  const after = own.slice(cut + 1);
  if (!before.some((o) => o.instruction === 'run') || !after.some((o) => o.instruction === 'run')) return undefined;
  const cutLine = own[cut]?.line ?? 0;
  const physical = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
  const kept = [...physical.slice(0, cutLine - 1), ...(nextStageLine === undefined ? [] : physical.slice(nextStageLine - 1))];
  return {
    text: `${kept.join('\n')}\n`,
    step: (fromIsStep ? 1 : 0) + before.filter((o) => VERTEX_INSTRUCTIONS.has(o.instruction)).length,
    totalSteps: (fromIsStep ? 1 : 0) + own.filter((o) => VERTEX_INSTRUCTIONS.has(o.instruction)).length,
    cutLine,
  };
}
