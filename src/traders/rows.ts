// Pure mapping between domain records and the rows of signals, worker_status and trader_status.
import type { Signal, TraderState, TraderStatus, WorkerStatus } from '../domain.ts';

/** The conflict target of every signal insert: the table's unique key. */
export const SIGNAL_CONFLICT_KEY = 'trader_id,symbol,interval,candle_open_time';

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
}

export interface WorkerStatusRow {
  user_id: string;
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
}

/** worker_status.last_error and trader_status.last_error hold at most this many characters (supabase/migrations/0002_bounds.sql). */
export const MAX_STATUS_TEXT = 2000;

/**
 * Error text fit for a status row. The errors come from anywhere (a filter's own message, the database, a thread crash):
 * PostgreSQL refuses a NUL, a lone surrogate breaks the JSON body, and the row refuses more than MAX_STATUS_TEXT
 * characters; a status that cannot be written would hide the very error it reports.
 */
export function statusText(text: string | null): string | null {
  if (text === null) return null;
  const clean = text.replaceAll('\u0000', '').toWellFormed();
  // A cut between the halves of a pair leaves a lone surrogate: toWellFormed makes it U+FFFD, one unit, so the length holds.
  return clean.length <= MAX_STATUS_TEXT ? clean : `${clean.slice(0, MAX_STATUS_TEXT - 1).toWellFormed()}…`;
}

function iso(time: number): string {
  return new Date(time).toISOString();
}

/** `handedAt` is the worker-clock time the row goes to the database: close-to-commit latency is measured up to it. */
export function signalRow(signal: Signal, handedAt: number): SignalRow {
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
  };
}

export function workerStatusRow(status: WorkerStatus): WorkerStatusRow {
  return {
    user_id: status.userId,
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
