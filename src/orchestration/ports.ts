// The small ports the Orchestrator needs from market data and the screener; src/market and src/screening satisfy them structurally.
import type { Interval, Ticker, Trader } from '../domain.ts';
import type { CandleClosedEvent, ConnectionStateEvent, GapFilledEvent, LifecycleState, MarketView } from '../ports.ts';

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

/** The market-data facade: universe, backfill and streams behind one lifecycle. */
export interface MarketDataSource {
  readonly state: LifecycleState;
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

/** Tickers as they stood at recent candle closes. */
export interface TickerHistory {
  /** The ticker held when the close at `boundary` (a candle's close time + 1) arrived by stream; undefined when none proves it. */
  tickerAt(symbol: string, boundary: number): Ticker | undefined;
}

/** The store: a MarketView that announces every closed candle after storing it, and keeps tickers as of recent closes. */
export interface CandleCloseSource extends MarketView, TickerHistory {
  on(event: 'candleClosed', listener: (event: CandleClosedEvent) => void): unknown;
  off(event: 'candleClosed', listener: (event: CandleClosedEvent) => void): unknown;
}

export interface ScreenerMatch {
  symbol: string;
  conditions: string[];
  price: number;
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
  /** Compile new and changed traders, drop removed ones; a changed row lifts a disable. */
  setTraders(traders: Trader[]): void;
  /** Restore a disable recorded before a restart; it holds until the trader's row changes. */
  disable(traderId: string, reason: string, traderUpdatedAt: string): void;
  run(request: ScreenerRun): Promise<{ traders: TraderTickOutcome[] }>;
}
