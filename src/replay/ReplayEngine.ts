// Replays one trader over a past window through the live parts: the sandboxed screener, closed-candle views, the rising-edge rule.
import type { Clock } from '../clock.ts';
import { type Candle, type Interval, type Trader, candleOpenTimeAt, intervalMs } from '../domain.ts';
import type { Logger } from '../logger.ts';
import { RisingEdges } from '../orchestration/RisingEdges.ts';
import { TruncatedMarketView } from '../orchestration/TruncatedMarketView.ts';
import type { MarketView, ScreenerMatch, ScreenerPort, SharedCandleRows, TraderTickOutcome } from '../ports.ts';
import type { Screener } from '../screening/Screener.ts';
import { packCandles, ReplayMarket } from './ReplayMarket.ts';

/** A would-be signal, in the shape of the `signals` row it would have been (the --json output). */
export interface ReplaySignal {
  trader_id: string;
  symbol: string;
  interval: Interval;
  /** ISO 8601, as PostgREST returns the column. */
  candle_open_time: string;
  price: number;
  conditions: string[];
  /** The filter's explain values of the match, when it returned any (as `signals.filter_values`). */
  values?: Record<string, number>;
}

/** What the filter said at one candle of the refresh interval. */
export interface CandleVerdicts {
  candle_open_time: string;
  /** Symbols with every timeframe the trader reads complete at this close; the others are `skipped`. */
  evaluated: number;
  matched: number;
  errors: number;
  skipped: number;
  /** Rising edges: matches where the previous closed candle did not match. */
  signals: number;
}

export interface ReplayError {
  candle_open_time: string;
  symbol: string | null;
  message: string;
}

export interface ReplayReport {
  signals: ReplaySignal[];
  candles: CandleVerdicts[];
  /** The first few evaluation errors, in candle order. */
  errors: ReplayError[];
  /** Set when the screener disabled the trader (failing ticks in a row), as the live worker would have: nothing after it ran. */
  disabled: { candle_open_time: string; reason: string } | null;
}

export interface ReplayRequest {
  trader: Trader;
  symbols: string[];
  /** The first candle replayed is the first of the refresh interval opening at or after `from`. */
  from: number;
  /** Candles opening at or after `to` are not replayed; nor is one that has not closed. */
  to: number;
}

/** Where replay reads closed candles (KlineCache for requests, StoreCandles for look-backs). */
export interface ClosedCandleSource {
  /** The closed candles with an open time in [startTime, endTime), oldest first. */
  closedCandles(symbol: string, interval: Interval, startTime: number, endTime: number): Promise<Candle[]>;
  /**
   * The same candles as rows in shared memory that nobody rewrites, where the source keeps them (the live store):
   * the replay then reads them in place. Undefined (or absent) when it has none; closedCandles serves then.
   */
  closedRows?(symbol: string, interval: Interval, startTime: number, endTime: number): Promise<SharedCandleRows | undefined>;
}

export interface ReplayEngineOptions {
  candles: ClosedCandleSource;
  /** Started by the caller; the engine hands it the one trader it replays (the whole list: no diff to pass). */
  screener: ScreenerPort & Pick<Screener, 'setTraders'>;
  /** KLINE_HISTORY: the series length the live worker keeps, so filters see as many candles as they did live. */
  history: number;
  clock: Clock;
  logger: Logger;
  /**
   * Runs each step (a candle, with its edge priming) when it may run: ReplayService passes LiveTickGate.slice, so a
   * replay served by a live worker yields to its ticks between candles. Default: at once.
   */
  slice?: <T>(work: () => Promise<T>) => Promise<T>;
  /** Every candle's verdicts (symbols evaluated without error, and the matches among them): a shadow compares two codes on them. */
  onVerdicts?: (candleOpenTime: number, evaluated: readonly string[], matches: readonly ScreenerMatch[]) => void;
}

const MAX_ERRORS = 10;

export class ReplayEngine {
  private readonly options: ReplayEngineOptions;

  constructor(options: ReplayEngineOptions) {
    this.options = options;
  }

  async replay(request: ReplayRequest): Promise<ReplayReport> {
    const { trader, symbols } = request;
    const interval = trader.filter.refreshInterval;
    const length = intervalMs(interval);
    const aligned = candleOpenTimeAt(interval, request.from);
    const first = aligned < request.from ? aligned + length : aligned;
    // Only closed candles: the one forming now has no verdict yet, live or replayed.
    const end = Math.min(request.to, candleOpenTimeAt(interval, this.options.clock.now()));
    const report: ReplayReport = { signals: [], candles: [], errors: [], disabled: null };
    if (first >= end) return report;
    const lastBoundary = candleOpenTimeAt(interval, end - 1) + length;

    // Every timeframe the trader reads, from `history` candles before the first replayed close (the live
    // worker's series length at that close, and the candle before it for the first edge) to the last close.
    // Each series is one window of rows, read in place at every close (the live store's own rows for a
    // look-back): per-candle objects of 200 symbols x 2 timeframes x 500 candles held ~60 MB of heap per trader.
    const market = new ReplayMarket(this.options.history);
    for (const symbol of symbols) {
      for (const timeframe of trader.timeframes) {
        const start = candleOpenTimeAt(timeframe, first + length) - (this.options.history + 1) * intervalMs(timeframe);
        const rows = await this.rowsOf(symbol, timeframe, start, lastBoundary);
        if (rows.length > 0) market.add(symbol, timeframe, rows);
      }
    }

    const edges = new RisingEdges();
    this.options.screener.setTraders([trader]);
    const slice = this.options.slice ?? ((work) => work());
    for (let openTime = first; openTime < end; openTime += length) {
      // The market as a live worker held it at this close: the series up to it, `history` long.
      const verdicts = await slice(() => this.candle(request, edges, market, openTime, report));
      report.candles.push(verdicts);
      if (report.disabled !== null) break;
    }
    return report;
  }

  /** A series' candles in [startTime, endTime) as rows: the source's own when it has them, else packed from its candles. */
  private async rowsOf(symbol: string, interval: Interval, startTime: number, endTime: number): Promise<SharedCandleRows> {
    const { candles } = this.options;
    return (await candles.closedRows?.(symbol, interval, startTime, endTime)) ?? packCandles(await candles.closedCandles(symbol, interval, startTime, endTime));
  }

  private async candle(request: ReplayRequest, edges: RisingEdges, history: ReplayMarket, openTime: number, report: ReplayReport): Promise<CandleVerdicts> {
    const { trader } = request;
    const interval = trader.filter.refreshInterval;
    const boundary = openTime + intervalMs(interval);
    const at = new Date(openTime).toISOString();
    const market = history.at(boundary);
    // As the live tick: a symbol is screened only when every timeframe the trader reads is complete at this close.
    const complete = request.symbols.filter((symbol) =>
      trader.timeframes.every((timeframe) => market.series(symbol, timeframe)?.lastClosed()?.openTime === candleOpenTimeAt(timeframe, boundary) - intervalMs(timeframe)),
    );
    const verdicts: CandleVerdicts = { candle_open_time: at, evaluated: 0, matched: 0, errors: 0, skipped: request.symbols.length - complete.length, signals: 0 };
    if (complete.length === 0) return verdicts;
    // No ticker history here: replayed closes are REST closes, and filters get the minimal ticker as the live worker gives them.
    const result = await this.options.screener.run({ interval, candleOpenTime: openTime, traderIds: [trader.id], symbols: complete, market });
    const outcome = result.traders.find((candidate) => candidate.traderId === trader.id);
    if (outcome === undefined) return verdicts;
    verdicts.evaluated = outcome.evaluatedSymbols.length;
    verdicts.matched = outcome.matches.length;
    this.options.onVerdicts?.(openTime, outcome.evaluatedSymbols, outcome.matches);
    verdicts.errors = outcome.errors.length;
    for (const error of outcome.errors) {
      if (report.errors.length < MAX_ERRORS) report.errors.push({ candle_open_time: at, symbol: error.symbol, message: error.message });
    }
    if (outcome.disabled !== null) report.disabled = { candle_open_time: at, reason: outcome.disabled.reason };

    const unknown = outcome.matches.map((match) => match.symbol).filter((symbol) => edges.verdict(trader.id, symbol, interval, openTime) === 'unknown');
    const matchedBefore = unknown.length > 0 ? await this.previous(trader, edges, market, openTime, unknown) : new Set<string>();
    const rising = outcome.matches.filter((match) => {
      const verdict = edges.verdict(trader.id, match.symbol, interval, openTime);
      return verdict === 'unknown' ? !matchedBefore.has(match.symbol) : verdict === 'rising';
    });
    recordVerdicts(edges, trader.id, openTime, complete, outcome);
    for (const match of rising) {
      report.signals.push({ trader_id: trader.id, symbol: match.symbol, interval, candle_open_time: at, price: match.price, conditions: match.conditions, ...(match.values === undefined ? {} : { values: match.values }) });
    }
    verdicts.signals = rising.length;
    return verdicts;
  }

  /**
   * The verdicts at the candle before, for symbols that match now without one: the first replayed candle, or after
   * an error. The live tick primes its edges the same way, on the series as they stood at that earlier close.
   */
  private async previous(trader: Trader, edges: RisingEdges, market: MarketView, openTime: number, symbols: string[]): Promise<Set<string>> {
    const interval = trader.filter.refreshInterval;
    const previousOpenTime = openTime - intervalMs(interval);
    try {
      const result = await this.options.screener.run({
        interval,
        candleOpenTime: previousOpenTime,
        traderIds: [trader.id],
        symbols,
        market: new TruncatedMarketView(market, openTime),
      });
      const outcome = result.traders.find((candidate) => candidate.traderId === trader.id);
      const matched = new Set((outcome?.matches ?? []).map((match) => match.symbol));
      for (const symbol of outcome?.evaluatedSymbols ?? []) edges.record(trader.id, symbol, previousOpenTime, matched.has(symbol));
      return matched;
    } catch (error) {
      // As live: without a verdict for the candle before, a match counts as new.
      this.options.logger.warn({ event: 'edge_prime_failed', replay: true, traderIds: [trader.id], err: error }, 'previous candle evaluation failed');
      return new Set();
    }
  }
}

/** Every verdict at this candle; a symbol that errored has none, so its next match is judged afresh. */
function recordVerdicts(edges: RisingEdges, traderId: string, openTime: number, symbols: readonly string[], outcome: TraderTickOutcome): void {
  const evaluated = new Set(outcome.evaluatedSymbols);
  const matched = new Set(outcome.matches.map((match) => match.symbol));
  for (const symbol of symbols) {
    if (evaluated.has(symbol) || matched.has(symbol)) edges.record(traderId, symbol, openTime, matched.has(symbol));
    else edges.forget(traderId, symbol);
  }
}
