// The worker's domain vocabulary: intervals, candles, tickers, traders and signals, free of any wire format.

/** Binance's fixed-length kline intervals. `1M` is left out: a month has no fixed length to align ticks on. */
export const INTERVALS = [
  '1m',
  '3m',
  '5m',
  '15m',
  '30m',
  '1h',
  '2h',
  '4h',
  '6h',
  '8h',
  '12h',
  '1d',
  '3d',
  '1w',
] as const;

export type Interval = (typeof INTERVALS)[number];

const MINUTE = 60_000;
const INTERVAL_MS: Record<Interval, number> = {
  '1m': MINUTE,
  '3m': 3 * MINUTE,
  '5m': 5 * MINUTE,
  '15m': 15 * MINUTE,
  '30m': 30 * MINUTE,
  '1h': 60 * MINUTE,
  '2h': 120 * MINUTE,
  '4h': 240 * MINUTE,
  '6h': 360 * MINUTE,
  '8h': 480 * MINUTE,
  '12h': 720 * MINUTE,
  '1d': 1440 * MINUTE,
  '3d': 3 * 1440 * MINUTE,
  '1w': 7 * 1440 * MINUTE,
};

export function isInterval(value: unknown): value is Interval {
  return typeof value === 'string' && (INTERVALS as readonly string[]).includes(value);
}

export function intervalMs(interval: Interval): number {
  return INTERVAL_MS[interval];
}

/**
 * Open time of the candle that contains `time`. Binance aligns every interval to the Unix epoch,
 * except `1w`, whose candles open on Mondays (the epoch was a Thursday, so shift by 4 days).
 */
export function candleOpenTimeAt(interval: Interval, time: number): number {
  const length = INTERVAL_MS[interval];
  const offset = interval === '1w' ? 4 * 1440 * MINUTE : 0;
  return Math.floor((time - offset) / length) * length + offset;
}

/** Binance sets a kline's close time to the last millisecond inside it. */
export function candleCloseTime(interval: Interval, openTime: number): number {
  return openTime + INTERVAL_MS[interval] - 1;
}

/** One kline with numeric values. Field order matches Binance's 12-field layout (minus `ignore`). */
export interface Candle {
  openTime: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  closeTime: number;
  quoteVolume: number;
  trades: number;
  takerBuyBaseVolume: number;
  takerBuyQuoteVolume: number;
}

/**
 * A candle as one row of float64s, in Candle's field order: the layout MarketStore keeps and hands, unchanged, to the
 * screening threads (which read it with the same offsets inside the isolates).
 */
export const CANDLE_ROW_FIELDS = 11;

/** Room for `rows` candle rows in shared memory, so worker threads and isolates read them without a copy. */
export function sharedCandleRows(rows: number): Float64Array {
  return new Float64Array(new SharedArrayBuffer(rows * CANDLE_ROW_FIELDS * Float64Array.BYTES_PER_ELEMENT));
}

export function writeCandleRow(rows: Float64Array, row: number, c: Candle): void {
  const o = row * CANDLE_ROW_FIELDS;
  rows[o] = c.openTime;
  rows[o + 1] = c.open;
  rows[o + 2] = c.high;
  rows[o + 3] = c.low;
  rows[o + 4] = c.close;
  rows[o + 5] = c.volume;
  rows[o + 6] = c.closeTime;
  rows[o + 7] = c.quoteVolume;
  rows[o + 8] = c.trades;
  rows[o + 9] = c.takerBuyBaseVolume;
  rows[o + 10] = c.takerBuyQuoteVolume;
}

/** The candle in row `row` (writeCandleRow's inverse). */
export function readCandleRow(rows: Float64Array, row: number): Candle {
  const o = row * CANDLE_ROW_FIELDS;
  return {
    openTime: rows[o]!,
    open: rows[o + 1]!,
    high: rows[o + 2]!,
    low: rows[o + 3]!,
    close: rows[o + 4]!,
    volume: rows[o + 5]!,
    closeTime: rows[o + 6]!,
    quoteVolume: rows[o + 7]!,
    trades: rows[o + 8]!,
    takerBuyBaseVolume: rows[o + 9]!,
    takerBuyQuoteVolume: rows[o + 10]!,
  };
}

/** Where a candle's data came from; recorded in signal provenance. */
export type CandleOrigin = 'stream' | 'backfill' | 'gapfill';

/** The latest 24 h rolling ticker of one symbol. */
export interface Ticker {
  symbol: string;
  eventTime: number;
  lastPrice: number;
  priceChange: number;
  priceChangePercent: number;
  weightedAvgPrice: number;
  openPrice: number;
  highPrice: number;
  lowPrice: number;
  volume: number;
  quoteVolume: number;
  tradeCount: number;
}

/**
 * Which helper library a trader's filter runs against (`filter.helpers`): 'webapp', the default,
 * answers as the web app's browser screener does; 'textbook' is the opt-in for the standard
 * definitions. docs/helpers.md describes both.
 */
export type HelpersVersion = 'webapp' | 'textbook';

/** The parsed, validated `filter` column of a trader. */
export interface TraderFilter {
  code: string;
  description: string[];
  refreshInterval: Interval;
  requiredTimeframes: Interval[];
  indicators: unknown[];
  /** The helper library version; 'webapp' when the row does not say. */
  helpers: HelpersVersion;
}

export type ExecutionMode = 'browser' | 'cloud' | 'both';

/** A trader the worker runs: a validated row of `traders`. */
export interface Trader {
  id: string;
  userId: string;
  name: string;
  enabled: boolean;
  executionMode: ExecutionMode;
  filter: TraderFilter;
  /** requiredTimeframes ∪ {refreshInterval}, deduplicated, in INTERVALS order. */
  timeframes: Interval[];
  /** sha256 of filter.code, hex; goes into provenance and tells a changed filter from an unchanged one. */
  codeHash: string;
  /** ISO timestamp of the row's last change; a change re-enables a trader disabled for errors. */
  updatedAt: string;
}

/** A trader row that could not be turned into a Trader. */
export interface RejectedTrader {
  id: string;
  name: string | null;
  updatedAt: string | null;
  reason: string;
}

/** Why a signal fired, and enough to replay it exactly. Stored as `signals.provenance`. */
export interface SignalProvenance {
  filterCodeHash: string;
  helpersVersion: string;
  /** Per timeframe the filter saw: its last closed candle and where that candle came from. */
  timeframes: Record<string, { lastOpenTime: number; lastCloseTime: number; origin: CandleOrigin; length: number }>;
  /**
   * The ticker the filter saw: the snapshot taken when this candle's closing kline arrived, by its event time. null:
   * no snapshot proved the ticker at that close (a close that came by REST, a catch-up after a restart), so the filter
   * saw only the contract's minimal ticker (`s`, and `c` = the candle's close).
   */
  ticker: { eventTime: number; lastPrice: number } | null;
  /** Closing kline received (worker clock) → row handed to the database, in ms; set when written. */
  closeToCommitMs?: number;
  workerVersion: string;
}

export interface Signal {
  userId: string;
  traderId: string;
  symbol: string;
  interval: Interval;
  candleOpenTime: number;
  price: number;
  matchedConditions: string[];
  machineId: string;
  provenance: SignalProvenance;
  /** Worker clock time the closing kline arrived; used to measure close-to-commit latency. */
  closeReceivedAt: number;
  /** The filter's explain values of this match (`{ match, conditions, values }`, bounded by the sandbox); absent: none. */
  values?: Record<string, number>;
  /** The 24 h ticker fields the filter was shown, as Binance strings (the minimal `{ e, s, c }` when no snapshot proved one). */
  ticker?: Record<string, string>;
  /**
   * The filter code that fired (its sha256 is provenance.filterCodeHash): written once to trader_versions before the
   * first signal citing it, so any signal can be replayed on its exact code. Absent: the row names no version.
   */
  filterCode?: string;
}

export type WorkerState = 'starting' | 'ready' | 'degraded' | 'stopping' | 'stopped';

export interface WorkerStatus {
  userId: string;
  machineId: string;
  version: string;
  state: WorkerState;
  startedAt: number;
  heartbeatAt: number;
  symbols: number;
  traders: number;
  streams: number;
  lastError: string | null;
}

/** What the previous process left in worker_status, read at boot before this run writes its own row. */
export interface PreviousRun {
  state: WorkerState;
  probation: ProbationMark | null;
}

/**
 * A boot after an abnormal exit screens each trader alone first, recording which one is running
 * (src/orchestration/Probation.ts); a process that dies leaves that trader named here.
 */
export interface ProbationMark {
  /** The trader screening alone right now, or null between traders. */
  traderId: string | null;
  /** Its code hash: an edited row is never charged for the code that ran before. */
  codeHash: string | null;
  /** Traders that already ran alone without taking the process down. */
  cleared: string[];
}

export type TraderState = 'running' | 'failing' | 'disabled';

export interface TraderStatus {
  traderId: string;
  userId: string;
  state: TraderState;
  lastError: string | null;
  lastEvaluatedAt: number | null;
  evaluations: number;
  matches: number;
  meanEvaluationMs: number;
  /** The latest off-contract result, read by its truthiness as the browser does (recorded, never a failure); absent: unchanged. */
  lastWarning?: string | null;
  /** updated_at of the trader row this status refers to: a later row change lifts a `disabled`. */
  traderUpdatedAt: string | null;
  /** The last screening run's counts (tick, follow-up or catch-up); absent until the trader ran. */
  lastTick?: LastTickCounts;
}

/** What one screening run did for one trader: symbols screened (with or without an error), matched, failed; the first errors. */
export interface LastTickCounts {
  evaluated: number;
  matched: number;
  failed: number;
  /** At most 5, in the screener's order; `symbol` null for an error of the whole trader (compile, timeout budget, crash). */
  errors: Array<{ symbol: string | null; code: string; message: string }>;
}
