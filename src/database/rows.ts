// Pure mapping between domain records and the rows of signals, worker_status and trader_status.
import { type Shard, SINGLE_SHARD } from './shard.ts';
import type { PreviousRun, ProbationMark, Signal, TraderState, TraderStatus, WorkerState, WorkerStatus } from '../domain.ts';

/** The conflict target of every signal insert: the table's unique key. */
export const SIGNAL_CONFLICT_KEY = 'trader_id,symbol,interval,candle_open_time';

/** The conflict target of every worker_status upsert: the table's key, one row per shard of a user. */
export const WORKER_STATUS_CONFLICT_KEY = 'user_id,shard_index';

export interface SignalRow {
  user_id: string;
  trader_id: string;
  symbol: string;
  interval: string;
  candle_open_time: string;
  price: number;
  matched_conditions: string[];
  source: 'cloud';
  machine_id: string;
  provenance: Record<string, unknown>;
  /** The trader_versions row of the code that fired (supabase/migrations/0006_replay.sql); absent when none was written. */
  code_hash?: string;
  /** The filter's explain values, at most 20 finite numbers; null when it returned none. */
  filter_values: Record<string, number> | null;
  /** The 24 h ticker fields the filter was shown; null when not recorded. */
  ticker: Record<string, string> | null;
}

/** A trader_versions row: the exact code behind the signals that cite its hash. */
export interface TraderVersionRow {
  user_id: string;
  code_hash: string;
  trader_id: string;
  code: string;
}

/** The version a signal cites, when it carries its code. */
export function traderVersionRow(signal: Signal): TraderVersionRow | null {
  if (signal.filterCode === undefined) return null;
  return { user_id: signal.userId, code_hash: signal.provenance.filterCodeHash, trader_id: signal.traderId, code: signal.filterCode };
}

export interface WorkerStatusRow {
  user_id: string;
  /** With user_id, the row's key: one row per shard (supabase/migrations/0005_shards.sql); 0 for a single machine. */
  shard_index: number;
  shard_count: number;
  machine_id: string;
  version: string;
  state: string;
  started_at: string;
  heartbeat_at: string;
  symbols: number;
  traders: number;
  streams: number;
  last_error: string | null;
}

export interface TraderStatusRow {
  trader_id: string;
  user_id: string;
  state: string;
  last_error: string | null;
  last_evaluated_at: string | null;
  evaluations: number;
  matches: number;
  mean_evaluation_ms: number;
  trader_updated_at: string | null;
  /** Present only when the status carries one (supabase/migrations/0004_probation.sql). */
  last_warning?: string | null;
  /** The last screening run's counts and first errors (supabase/migrations/0006_replay.sql); present once the trader ran. */
  last_tick_evaluated?: number;
  last_tick_matched?: number;
  last_tick_failed?: number;
  last_tick_errors?: Array<{ symbol: string | null; code: string; message: string }>;
}

/** worker_status.last_error and trader_status.last_error hold at most this many characters (supabase/migrations/0002_bounds.sql). */
export const MAX_STATUS_TEXT = 2000;

/**
 * Error text fit for a status row. The errors come from anywhere (a filter's own message, the database, a thread crash):
 * PostgreSQL refuses a NUL, a lone surrogate breaks the JSON body, and the row refuses more than MAX_STATUS_TEXT
 * characters; a status that cannot be written would hide the very error it reports.
 */
function statusText(text: string | null): string | null {
  if (text === null) return null;
  const clean = text.replaceAll('\u0000', '').toWellFormed();
  // A cut between the halves of a pair leaves a lone surrogate: toWellFormed makes it U+FFFD, one unit, so the length holds.
  return clean.length <= MAX_STATUS_TEXT ? clean : `${clean.slice(0, MAX_STATUS_TEXT - 1).toWellFormed()}…`;
}

function iso(time: number): string {
  return new Date(time).toISOString();
}

/**
 * `handedAt` is the worker-clock time the row goes to the database: close-to-commit latency is measured up to it.
 * `withVersion`: its trader_versions row is committed, so the signal may cite it (the foreign key requires it).
 */
export function signalRow(signal: Signal, handedAt: number, withVersion = false): SignalRow {
  return {
    user_id: signal.userId,
    trader_id: signal.traderId,
    symbol: signal.symbol,
    interval: signal.interval,
    candle_open_time: iso(signal.candleOpenTime),
    price: signal.price,
    matched_conditions: signal.matchedConditions,
    source: 'cloud',
    machine_id: signal.machineId,
    provenance: { ...signal.provenance, closeToCommitMs: Math.max(0, handedAt - signal.closeReceivedAt) },
    ...(withVersion && signal.filterCode !== undefined ? { code_hash: signal.provenance.filterCodeHash } : {}),
    filter_values: signal.values ?? null,
    ticker: signal.ticker ?? null,
  };
}

export function workerStatusRow(status: WorkerStatus, shard: Shard = SINGLE_SHARD): WorkerStatusRow {
  return {
    user_id: status.userId,
    shard_index: shard.index,
    shard_count: shard.count,
    machine_id: status.machineId,
    version: status.version,
    state: status.state,
    started_at: iso(status.startedAt),
    heartbeat_at: iso(status.heartbeatAt),
    symbols: status.symbols,
    traders: status.traders,
    streams: status.streams,
    last_error: statusText(status.lastError),
  };
}

export function traderStatusRow(status: TraderStatus): TraderStatusRow {
  return {
    trader_id: status.traderId,
    user_id: status.userId,
    state: status.state,
    last_error: statusText(status.lastError),
    last_evaluated_at: status.lastEvaluatedAt === null ? null : iso(status.lastEvaluatedAt),
    evaluations: status.evaluations,
    matches: status.matches,
    mean_evaluation_ms: Number.isFinite(status.meanEvaluationMs) ? status.meanEvaluationMs : 0,
    trader_updated_at: status.traderUpdatedAt,
    ...(status.lastWarning === undefined ? {} : { last_warning: statusText(status.lastWarning) }),
    ...(status.lastTick === undefined
      ? {}
      : {
          last_tick_evaluated: status.lastTick.evaluated,
          last_tick_matched: status.lastTick.matched,
          last_tick_failed: status.lastTick.failed,
          // Each message cut again: the column's bound (8 KB for 5) must hold whatever the screener reported.
          last_tick_errors: status.lastTick.errors.map((error) => ({ symbol: error.symbol, code: error.code, message: statusText(error.message)!.slice(0, 500).toWellFormed() })),
        }),
  };
}

export function traderStatusFromRow(row: TraderStatusRow): TraderStatus {
  return {
    traderId: row.trader_id,
    userId: row.user_id,
    state: row.state as TraderState,
    lastError: row.last_error,
    lastEvaluatedAt: row.last_evaluated_at === null ? null : Date.parse(row.last_evaluated_at),
    evaluations: Number(row.evaluations),
    matches: Number(row.matches),
    meanEvaluationMs: Number(row.mean_evaluation_ms),
    traderUpdatedAt: row.trader_updated_at,
  };
}

const WORKER_STATES: readonly WorkerState[] = ['starting', 'ready', 'degraded', 'stopping', 'stopped'];

/**
 * The previous run as its row left it. A mark that is not what this worker writes (edited by hand, an older shape)
 * counts as none, and an unknown state as an abnormal exit: either way the boot errs on the side of probation.
 */
export function previousRunFromRow(row: { state: string; probation: unknown }): PreviousRun {
  const state = (WORKER_STATES as readonly string[]).includes(row.state) ? (row.state as WorkerState) : 'starting';
  return { state, probation: probationFromJson(row.probation) };
}

function probationFromJson(value: unknown): ProbationMark | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const { traderId, codeHash, cleared } = value as { traderId?: unknown; codeHash?: unknown; cleared?: unknown };
  if ((traderId !== null && typeof traderId !== 'string') || !Array.isArray(cleared) || !cleared.every((id) => typeof id === 'string')) return null;
  return { traderId, codeHash: typeof codeHash === 'string' ? codeHash : null, cleared: cleared as string[] };
}
