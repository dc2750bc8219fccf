import type { Lookup } from '../registry/cache-ops.js';

/** deployed: the tag is also a deploy tag, written by the deploy push (deploy-handoff.ts). */
export type PushAction = 'pushed' | 'copied' | 'unchanged' | 'deployed' | 'failed' | 'skipped';

export interface StageReport {
  readonly stage: string;
  readonly isTarget: boolean;
  /** The cache the stage was built from, or null when none was found. */
  cacheUsed: { readonly scope: 'branch' | 'default' | 'unprefixed'; readonly branch: string | null; readonly ref: string } | null;
  lookups: { readonly ref: string; readonly result: Lookup }[];
  /** cached: every step was a cache hit, so the stage was not exported (its cache is current). */
  status: 'built' | 'cached' | 'failed' | 'not-built';
  steps: { readonly cached: number; readonly total: number } | null;
  /** Wall time of the stage's docker build. */
  buildSeconds: number | null;
  /** Sum of the durations the builder reported for steps that ran (BuildKit only). */
  uncachedStepSeconds: number | null;
  cachePush: { readonly ref: string; readonly action: PushAction; readonly message?: string }[];
  /** The instructions that were cache hits (for the time-saved estimate). */
  cachedInstructions: string[];
  /** What the hits saved: their durations when the cache image was built (from its history). */
  savedSeconds: number | null;
  /** Compressed size of the layers this run uploaded for the stage's cache (not already in the registry). */
  mbPushed: number | null;
}

export interface RunReport {
  readonly version: 1;
  readonly image: string;
  readonly branch: string | null;
  builder: string;
  /** The engine strategy that ran: registry-cache, inline or classic (plan/strategy.ts). */
  strategy: string | null;
  engine: string | null;
  readonly stages: StageReport[];
  deploy: { readonly ref: string; readonly action: 'pushed' | 'tagged' | 'failed' | 'not-run'; readonly message?: string }[];
  /** mbPulled / mbPushed: what the phase moved from / to registries (null: not measured). */
  phases: { readonly name: string; readonly seconds: number; mbPulled: number | null; mbPushed: number | null }[];
  retries: number;
  warnings: string[];
  notes: string[];
  outcome: 'success' | 'build-failed' | 'deploy-failed' | 'interrupted' | 'error';
  exitCode: number;
  totalSeconds: number;
}

function scopeLabel(stage: StageReport): string {
  const used = stage.cacheUsed;
  if (!used) return 'none';
  if (used.scope === 'unprefixed') return 'unprefixed';
  return `${used.scope === 'branch' ? 'branch' : 'default'} ${used.branch}`;
}

function pushLabel(stage: StageReport): string {
  if (stage.cachePush.length === 0) return '-';
  const counts = new Map<string, number>();
  for (const p of stage.cachePush) counts.set(p.action, (counts.get(p.action) ?? 0) + 1);
  return [...counts].map(([action, n]) => (n > 1 ? `${n} ${action}` : action)).join(', ');
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

function stageRows(report: RunReport): string[][] {
  return report.stages.map((s) => [
    s.stage + (s.isTarget ? ' (target)' : ''),
    scopeLabel(s),
    s.steps ? `${s.steps.cached}/${s.steps.total}` : '-',
    s.buildSeconds === null ? '-' : `${s.buildSeconds.toFixed(1)}s`,
    s.savedSeconds === null ? '-' : `~${s.savedSeconds.toFixed(1)}s`,
    s.mbPushed === null ? '-' : s.mbPushed.toFixed(1),
    s.status,
    pushLabel(s),
  ]);
}

const HEADERS = ['stage', 'cache used', 'steps cached', 'build time', 'time saved', 'MB pushed', 'status', 'cache push'];

/** Megabytes for a phase: "<0.1" for a few kilobytes, so that a small push does not read as none. */
function mb(value: number): string {
  return value > 0 && value < 0.05 ? '<0.1' : value.toFixed(1);
}

/** "build x 4.9s (104.9 MB pulled)": each phase with what it moved, where it moved something. */
function phaseList(report: RunReport): string {
  return report.phases
    .map((p) => {
      const moved = [p.mbPulled ? `${mb(p.mbPulled)} MB pulled` : '', p.mbPushed ? `${mb(p.mbPushed)} MB pushed` : ''].filter(Boolean);
      return `${p.name} ${p.seconds.toFixed(1)}s${moved.length > 0 ? ` (${moved.join(', ')})` : ''}`;
    })
    .join(', ');
}

function totalMb(report: RunReport, key: 'mbPulled' | 'mbPushed'): number {
  return report.phases.reduce((sum, p) => sum + (p[key] ?? 0), 0);
}

export function formatSummary(report: RunReport): string {
  const lines = [
    `Summary: ${report.image} on ${report.branch ?? '(no branch)'}, ${report.builder} builder${report.engine ? ` (engine ${report.engine})` : ''}`,
    table([HEADERS, ...stageRows(report)]),
  ];
  for (const d of report.deploy) lines.push(`deploy ${d.ref}: ${d.action}${d.message ? ` (${d.message})` : ''}`);
  lines.push(`phases: ${phaseList(report)}`);
  const saved = report.stages.reduce((sum, s) => sum + (s.savedSeconds ?? 0), 0);
  const pushed = report.stages.reduce((sum, s) => sum + (s.mbPushed ?? 0), 0);
  lines.push(`cache: ~${saved.toFixed(1)}s of build steps saved, ${pushed.toFixed(1)} MB of cache layers uploaded; strategy ${report.strategy ?? '-'}`);
  lines.push(`registry traffic: ${totalMb(report, 'mbPulled').toFixed(1)} MB pulled, ${totalMb(report, 'mbPushed').toFixed(1)} MB pushed`);
  lines.push(`total ${report.totalSeconds.toFixed(1)}s, ${report.retries} registry retries, ${report.warnings.length} warnings, outcome: ${report.outcome}`);
  return lines.join('\n');
}

export function formatMarkdown(report: RunReport): string {
  const row = (cells: string[]): string => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  const lines = [
    `### Docker build cache: \`${report.image}\` on \`${report.branch ?? '(no branch)'}\``,
    '',
    row(HEADERS),
    row(HEADERS.map(() => '---')),
    ...stageRows(report).map(row),
    '',
    `Builder: ${report.builder} (${report.strategy ?? '-'}). Total ${report.totalSeconds.toFixed(1)}s. Outcome: **${report.outcome}**. Time saved by cache hits: ~${report.stages.reduce((sum, s) => sum + (s.savedSeconds ?? 0), 0).toFixed(1)}s.`,
  ];
  lines.push('', `Phases: ${phaseList(report)}. Registry traffic: ${totalMb(report, 'mbPulled').toFixed(1)} MB pulled, ${totalMb(report, 'mbPushed').toFixed(1)} MB pushed.`, '');
  for (const d of report.deploy) lines.push(`- deploy \`${d.ref}\`: ${d.action}`);
  for (const w of report.warnings) lines.push(`- warning: ${w}`);
  return `${lines.join('\n')}\n`;
}
