// The ports the core (Orchestrator, MarketStore, Screener) owns; adapters in src/market and src/traders implement them.
import type {
  Candle,
  CandleOrigin,
  Interval,
  PreviousRun,
  ProbationMark,
  RejectedTrader,
  Signal,
  Ticker,
  Trader,
  TraderStatus,
  WorkerStatus,
} from './domain.ts';

/** The lifecycle every long-lived part shares. */
export type LifecycleState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

export interface Lifecycle {
  readonly state: LifecycleState;
  start(): Promise<void>;
  stop(): Promise<void>;
}

// ---- Traders and signals (implemented by src/traders/StateSynchronizer over supabase-js) ----

export interface TraderLoad {
  traders: Trader[];
  rejected: RejectedTrader[];
}

/** What changed since the previous poll, as seen by the repository. */
export interface TraderChanges {
  /** New traders and traders whose row changed (updated_at moved). */
  upserted: Trader[];
  /** Ids no longer runnable here: deleted, disabled, or switched to execution_mode 'browser'. */
  removed: string[];
  /** Rows that changed into something invalid; their previous version is removed too. */
  rejected: RejectedTrader[];
}

export interface TraderRepository {
  /** The user's enabled traders with execution_mode cloud or both, newest first. */
  loadTraders(): Promise<TraderLoad>;
  /** Diff against the previous load/poll. */
  changesSince(): Promise<TraderChanges>;
}

export interface SignalSink {
  /**
   * Queue signals for an idempotent insert (conflicts on the unique key are ignored).
   * Resolves once the batch is committed or, during an outage, safely buffered.
   */
  writeSignals(batch: Signal[]): Promise<SignalWriteResult>;
  /** Flush everything buffered, up to the deadline. */
  flush(deadlineMs: number): Promise<void>;
}

export interface SignalWriteResult {
  committed: number;
  buffered: number;
  /** Worker-clock time the batch was committed, when it was. */
  committedAt: number | null;
}

export interface StatusSink {
  writeWorkerStatus(status: WorkerStatus): Promise<void>;
  writeTraderStatus(statuses: TraderStatus[]): Promise<void>;
  /** The trader_status rows of this user, so a restart keeps a disabled trader disabled. */
  readTraderStatuses(): Promise<TraderStatus[]>;
  /** The previous run's worker_status (state and probation mark), or null on a first boot. */
  readPreviousRun(): Promise<PreviousRun | null>;
  /** Record the probation mark (null clears it); resolves once committed, since a crash may follow at once. */
  writeProbation(mark: ProbationMark | null): Promise<void>;
}

// ---- Market data (implemented by src/market over Binance) ----

/** The closed candles of one (symbol, interval), oldest first, as a read-only view. */
export interface CandleSeriesView {
  readonly symbol: string;
  readonly interval: Interval;
  /** Number of closed candles held (≤ KLINE_HISTORY). */
  readonly length: number;
  /** Bumped on every change to the closed candles; lets consumers sync incrementally. */
  readonly version: number;
  /** i = 0 is the oldest closed candle. */
  get(i: number): Candle;
  /** Closed candles with openTime > `openTime`, oldest first. */
  since(openTime: number): Candle[];
  lastClosed(): Candle | undefined;
  /** Origin of the closed candle with this open time. */
  originOf(openTime: number): CandleOrigin | undefined;
  /**
   * The closed candles where they are stored, when that is shared memory: `length` rows of 11
   * numbers (Candle's fields in declaration order) from row `start`. Readers (screening threads)
   * read them in place while the owner keeps writing: the owner only ever writes rows past the
   * ones it has handed out, and moves to a new buffer for anything else. Absent: read via get().
   */
  sharedRows?(): SharedCandleRows | undefined;
}

export interface SharedCandleRows {
  buffer: SharedArrayBuffer;
  start: number;
  length: number;
}

export interface MarketView {
  symbols(): string[];
  series(symbol: string, interval: Interval): CandleSeriesView | undefined;
  ticker(symbol: string): Ticker | undefined;
}

export interface CandleClosedEvent {
  symbol: string;
  interval: Interval;
  candle: Candle;
  origin: CandleOrigin;
  /** Worker-clock time the closing kline was received (or the fill completed). */
  receivedAt: number;
}

export interface GapFilledEvent {
  symbol: string;
  interval: Interval;
  candles: number;
  fromOpenTime: number;
  toOpenTime: number;
}

export type ConnectionStateEvent = {
  connectionId: string;
  state: 'connecting' | 'open' | 'closed' | 'reconnecting';
  streams: number;
  reason?: string;
};
