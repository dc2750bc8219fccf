/** Whether a registry failure may go away by itself. */
export type FailureKind = 'transient' | 'permanent' | 'unreachable';

const PERMANENT = [
  /unauthorized/i, /authentication required/i, /denied/i, /forbidden/i, /\b40[134]\b/,
  /manifest unknown/i, /not found/i, /no such/i, /invalid reference/i, /does not exist/i,
  /repository name must/i, /invalid tag/i, /manifest invalid/i, /name unknown/i,
];
const UNREACHABLE = [/connection refused/i, /no such host/i, /dial tcp/i, /network is unreachable/i, /ECONNREFUSED/, /ENOTFOUND/, /EAI_AGAIN/];

/** Reads a docker CLI error (or an HTTP status line) and says whether retrying can help. */
export function classifyFailure(message: string): FailureKind {
  // A 5xx or 429 is transient even when the text also says "not found" somewhere.
  if (/\b(50[0-9]|429)\b|too ?many ?requests|toomanyrequests|service unavailable|bad gateway|gateway time-?out|internal server error/i.test(message)) {
    return 'transient';
  }
  if (/connection reset|broken pipe|EOF|ECONNRESET|EPIPE|i\/o timeout|timeout|timed out|TLS handshake|ETIMEDOUT|socket hang up/i.test(message)) {
    return 'transient';
  }
  if (UNREACHABLE.some((re) => re.test(message))) return 'unreachable';
  if (PERMANENT.some((re) => re.test(message))) return 'permanent';
  return 'transient';
}

export interface RetryPolicy {
  /** Total attempts, the first included. */
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

/** Delay before attempt n+1 (n counted from 1): exponential with a little jitter. */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const exponential = policy.baseDelayMs * 2 ** (attempt - 1);
  return Math.min(policy.maxDelayMs, exponential) * (0.8 + 0.4 * random());
}

export interface Attempted<T> {
  readonly value: T;
  /** How many attempts were retries (0 when the first one settled it). */
  readonly retries: number;
}

/**
 * Runs `attempt` until it succeeds, fails permanently, or runs out of attempts.
 * `attempt` returns either { ok: true, value } or { ok: false, value, message }.
 */
export async function withRetry<T>(
  policy: RetryPolicy,
  attempt: () => Promise<{ ok: boolean; value: T; message?: string }>,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  onRetry?: (attemptNo: number, message: string, delayMs: number) => void,
  /** Failures the caller does not want retried although they may pass (a best-effort push that timed out). */
  giveUp?: (message: string) => boolean,
): Promise<Attempted<T>> {
  let retries = 0;
  for (let n = 1; ; n++) {
    const result = await attempt();
    if (result.ok) return { value: result.value, retries };
    const kind = classifyFailure(result.message ?? '');
    if (kind === 'permanent' || n >= policy.attempts || giveUp?.(result.message ?? '')) return { value: result.value, retries };
    const delay = backoffDelay(policy, n);
    onRetry?.(n, result.message ?? '', delay);
    await sleep(delay);
    retries++;
  }
}
