// The fault schedule: scheduled faults of every kind plus random ones, all drawn from one seed, in simulated time.
import { Rng } from './rng.ts';

export type FaultKind =
  | 'ws_drop'
  | 'ws_drop_across_close'
  | 'ws_stall'
  | 'ws_malformed'
  | 'ws_unknown_events'
  | 'ws_server_shutdown'
  | 'rest_5xx'
  | 'rest_hang'
  | 'rest_429'
  | 'rest_418'
  | 'rest_slow_gap_fill'
  | 'rest_htf_gap_fill_fails'
  | 'symbol_suspended'
  | 'symbol_delisted'
  | 'symbol_listed'
  | 'postgrest_down_1m'
  | 'postgrest_down_5m'
  | 'postgrest_down_15m'
  | 'postgres_restart'
  | 'db_slow'
  | 'db_half_batch'
  | 'sigterm_during_flush'
  | 'sigkill_restart'
  | 'clock_jump';

export interface ScheduledFault {
  /** Simulated ms after the run's start. */
  at: number;
  kind: FaultKind;
  random: boolean;
}

const MINUTE = 60_000;

/** Faults that leave the Binance connections alone: safe while a connection must live to its 24 h rotation. */
export const CONNECTION_SAFE: readonly FaultKind[] = [
  'ws_malformed',
  'ws_unknown_events',
  'postgrest_down_1m',
  'postgrest_down_5m',
  'postgrest_down_15m',
  'postgres_restart',
  'db_slow',
  'db_half_batch',
  'symbol_suspended',
  'symbol_delisted',
  'symbol_listed',
];

const RANDOM_KINDS: readonly FaultKind[] = ['ws_drop', 'ws_stall', 'ws_malformed', 'ws_unknown_events', 'rest_5xx', 'rest_429', 'db_slow', 'db_half_batch', 'postgrest_down_1m'];

export interface ScheduleOptions {
  seed: number;
  /** Simulated span for faults that touch connections and processes. */
  churnMs: number;
  /** A later span, up to `totalMs`, with only connection-safe faults, so a connection lives to its rotation. */
  totalMs: number;
  /** Which scheduled kinds to include (all by default). */
  kinds?: readonly FaultKind[];
  randomFaults: number;
  /** Least simulated time between two faults. */
  spacingMs: number;
}

/**
 * Every chosen kind once, in a seeded order: connection and process faults within the churn span, the
 * connection-safe ones spread over the calm span, then random extra faults in the churn span.
 */
export function buildSchedule(options: ScheduleOptions): ScheduledFault[] {
  const rng = new Rng(options.seed);
  const kinds = [...(options.kinds ?? ALL_KINDS)];
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  const churn = kinds.filter((kind) => !CONNECTION_SAFE.includes(kind) || options.totalMs <= options.churnMs);
  const calm = kinds.filter((kind) => !churn.includes(kind));
  for (let i = 0; i < options.randomFaults; i++) churn.push(rng.pick(RANDOM_KINDS));
  const schedule: ScheduledFault[] = [];
  const place = (list: FaultKind[], from: number, to: number, random: (index: number) => boolean) => {
    const step = Math.max(options.spacingMs, (to - from) / Math.max(1, list.length));
    list.forEach((kind, index) => {
      const jitter = rng.int(0, Math.floor(step / 4));
      schedule.push({ at: Math.round(from + index * step + jitter), kind, random: random(index) });
    });
  };
  const scheduledInChurn = churn.length - options.randomFaults;
  place(churn, 10 * MINUTE, options.churnMs, (index) => index >= scheduledInChurn);
  // Calm faults early enough that an hourly universe refresh and the outages' recovery fit before the end.
  if (calm.length > 0) place(calm, options.churnMs + 10 * MINUTE, options.totalMs - 90 * MINUTE, () => false);
  return schedule.sort((a, b) => a.at - b.at);
}

export const ALL_KINDS: readonly FaultKind[] = [
  'ws_drop',
  'ws_drop_across_close',
  'ws_stall',
  'ws_malformed',
  'ws_unknown_events',
  'ws_server_shutdown',
  'rest_5xx',
  'rest_hang',
  'rest_429',
  'rest_418',
  'rest_slow_gap_fill',
  'rest_htf_gap_fill_fails',
  'symbol_suspended',
  'symbol_delisted',
  'symbol_listed',
  'postgrest_down_1m',
  'postgrest_down_5m',
  'postgrest_down_15m',
  'postgres_restart',
  'db_slow',
  'db_half_batch',
  'sigterm_during_flush',
  'sigkill_restart',
  'clock_jump',
];
