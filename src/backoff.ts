// Reconnect and retry delays: exponential growth capped at maxMs, with full jitter so many clients do not retry in step.

/**
 * Delay before retry number `attempt` (0-based): a uniform random value in [0, min(maxMs, baseMs·2^attempt)).
 * Full jitter per https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/.
 */
export function backoffDelay(attempt: number, options?: { baseMs?: number; maxMs?: number; random?: () => number }): number {
  const baseMs = options?.baseMs ?? 500;
  const maxMs = options?.maxMs ?? 30_000;
  const random = options?.random ?? Math.random;
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(attempt, 30)));
  return Math.floor(random() * ceiling);
}
