// Every port the core owns, in one place: what the Orchestrator and its tick pipeline need from the traders' database,
// market data and the screener (implemented by src/traders, src/market and src/screening), and what it reports to src/ops.
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

// ---- Traders and signals (implemented by src/database/StateSynchronizer over supabase-js) ----

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

/** The part of a change the screener acts on: traders to compile (new or changed) and ids to drop. */
export type TraderUpdate = Pick<TraderChanges, 'upserted' | 'removed'>;

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
  /**
   * A batch is likely soon (a candle is about to close): make the connection the insert will use ready now, so the
   * insert does not pay a new connection's handshakes on the path from the close to the commit. A hint: never throws.
   */
  warm?(): void;
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

/** The database side's lifecycle and health, as the state synchronizer reports it. */
export interface DatabaseHealth {
  start(): Promise<void>;
  stop(): Promise<void>;
  stats(): { dbUp: boolean; lastError: string | null };
}

/** Everything the core needs from the database; one adapter (src/database/StateSynchronizer) implements all of it. */
export type WorkerDatabase = TraderRepository & SignalSink & StatusSink & DatabaseHealth;

// ---- Market data (implemented by src/market over Binance) ----
// Three faces: MarketDataSource (the facade, MarketData: universe, backfill, streams, the judge of completeness),
// CandleStore (the store it fills, MarketStore: candles and tickers, announcing each close) and MarketView (what a
// screener run reads: the store, or a TruncatedMarketView of it as of a past close). TickMarket is the facade's part the
// tick scheduler asks.

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

/** What the market-data facade reports for readiness and the stats line. */
export interface MarketDataStatus {
  symbols: number;
  intervals: number;
  streams: number;
  connectionsOpen: number;
  connectionsExpected: number;
  backfilled: boolean;
  pendingGaps: number;
}

/** The market-data facade: universe, backfill and streams behind one lifecycle, and the store they fill. */
export interface MarketDataSource {
  readonly state: LifecycleState;
  /** The store this facade fills: the series filters read, announcing each closed candle after storing it. */
  readonly candles: CandleStore;
  /** Universe → backfill → streams; resolves when every series is backfilled and every stream is open. */
  start(intervals: Interval[]): Promise<void>;
  stop(): Promise<void>;
  /** Subscribe (and backfill) new intervals, unsubscribe dropped ones. */
  setIntervals(intervals: Interval[]): Promise<void>;
  /**
   * The one judge of completeness: true when the series holds the closed candle `closedOpenTime` and no gap is
   * pending on it, so nothing up to its newest candle is missing (it may be past the candle: a tick that waited).
   */
  isComplete(symbol: string, interval: Interval, closedOpenTime: number): boolean;
  /** Bring the series up to date by REST; the store announces what it closes. */
  fillSeries(symbol: string, interval: Interval): Promise<void>;
  symbols(): string[];
  intervals(): Interval[];
  status(): MarketDataStatus;
  on(event: 'gapFilled', listener: (event: GapFilledEvent) => void): unknown;
  on(event: 'connection', listener: (event: ConnectionStateEvent) => void): unknown;
}

/** What the tick scheduler needs from market data: the universe, the one judge of completeness, a late series' fill. */
export type TickMarket = Pick<MarketDataSource, 'symbols' | 'isComplete' | 'fillSeries'>;

/** Tickers as they stood at recent candle closes. */
export interface TickerHistory {
  /** The ticker held when the close at `boundary` (a candle's close time + 1) arrived by stream; undefined when none proves it. */
  tickerAt(symbol: string, boundary: number): Ticker | undefined;
}

/** The store: a MarketView that announces every closed candle after storing it, and keeps tickers as of recent closes. */
export interface CandleStore extends MarketView, TickerHistory {
  on(event: 'candleClosed', listener: (event: CandleClosedEvent) => void): unknown;
  off(event: 'candleClosed', listener: (event: CandleClosedEvent) => void): unknown;
}

// ---- Screening (implemented by src/screening/Screener) ----

export interface ScreenerMatch {
  symbol: string;
  conditions: string[];
  price: number;
  /** The filter's explain values (`{ match, conditions, values }`), bounded by the sandbox; absent when it returned none. */
  values?: Record<string, number>;
}

export interface ScreenerError {
  /** null when the whole trader failed (compile error, crashed thread). */
  symbol: string | null;
  code: string;
  message: string;
}

export interface TraderTickOutcome {
  traderId: string;
  /** Symbols evaluated without error. */
  evaluatedSymbols: string[];
  matches: ScreenerMatch[];
  errors: ScreenerError[];
  /** Off-contract results read by their truthiness, as the browser does: recorded, never a failure. */
  warnings: Array<{ symbol: string; message: string }>;
  evaluationMs: number;
  disabled: { reason: string } | null;
}

export interface ScreenerRun {
  interval: Interval;
  candleOpenTime: number;
  traderIds: string[];
  symbols: string[];
  market: MarketView;
}

/** The sandboxed screener: compiles traders, evaluates them over symbols. */
export interface ScreenerPort {
  readonly state: LifecycleState;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Compile new and changed traders, drop removed ones (the repository's diff, passed through); a changed row lifts a disable. */
  updateTraders(changes: TraderUpdate): void;
  /** Restore a disable recorded before a restart; it holds until the trader's row changes. */
  disable(traderId: string, reason: string, traderUpdatedAt: string): void;
  run(request: ScreenerRun): Promise<{ traders: TraderTickOutcome[] }>;
}

// ---- What the core reports of each tick (read by src/ops: metrics, the stats line) ----

/** tick: the candle just closed; followup: late symbols of it; catchup: the latest closed candle, screened on demand. */
export type TickKind = 'tick' | 'followup' | 'catchup';

/** Which tick: enough to name it in a metric or a log line. */
export interface TickRef {
  kind: TickKind;
  interval: Interval;
  openTime: number;
}

/** A trader not evaluated on a symbol at this candle: these timeframes were incomplete (a gap fill pending or failing). */
export interface SkippedEvaluation {
  traderId: string;
  symbol: string;
  timeframes: Interval[];
}

/** What one tick did, for logs, metrics and the service level. */
export interface TickSummary {
  kind: TickKind;
  interval: Interval;
  openTime: number;
  traders: number;
  expected: number;
  /** Symbols screened in this run (follow-ups screen only the late ones). */
  symbols: number;
  evaluations: number;
  errors: number;
  matches: number;
  signals: number;
  signalsBuffered: number;
  durationMs: number;
  /** Where durationMs went: the screener, the rising-edge bookkeeping (with any priming), the signal insert. */
  screenMs: number;
  edgesMs: number;
  writeMs: number;
  /** Time the request waited behind a running tick of the same interval. */
  queuedMs: number;
  arrivalLagsMs: number[];
  closeToCommitMs: number[];
  outcomes: TraderTickOutcome[];
  /** Symbols left out because their series was not complete after all (behind, or a gap being filled). */
  incomplete: string[];
  /** (trader, symbol) pairs left out because another timeframe the trader requires was incomplete for the symbol. */
  skipped: SkippedEvaluation[];
  /** Screened symbols on which every due trader was evaluated (none skipped). */
  symbolsEvaluated: string[];
}

/** A tick's service level: coverage, arrival lag and close-to-commit latency (ServiceLevel judges readiness on them). */
export interface TickServiceLevel {
  interval: Interval;
  openTime: number;
  expected: number;
  /** Symbols on which every due trader was evaluated. */
  evaluated: number;
  /** evaluated ÷ expected, 1 when nothing was expected. */
  coverage: number;
  /**
   * Per timeframe, the symbols still waiting for it: some trader there was skipped because that series (another
   * timeframe it requires, e.g. 1h for a 1m trader) was incomplete. Empty when nothing waits.
   */
  waitingFor: Partial<Record<Interval, number>>;
  /** 95th percentile of closing-kline arrival lag, clock ms; null when no stream close arrived. */
  arrivalLagP95Ms: number | null;
  arrivalLagMaxMs: number | null;
  /** Largest close-to-commit latency of the tick's signals, clock ms; null without signals. */
  closeToCommitMaxMs: number | null;
}
