// Runs one screening tick: screener over the complete symbols, rising edges, signals with provenance, trader totals.
import type { Clock } from '../clock.ts';
import { type Interval, type Signal, type SignalProvenance, type Trader, intervalMs } from '../domain.ts';
import type { Logger } from '../logger.ts';
import { helpersLibraryVersion } from '../screening/helpers.ts';
import type { MarketView, SignalSink } from '../ports.ts';
import type { ScreenerPort, TraderTickOutcome } from './ports.ts';
import type { RisingEdges } from './RisingEdges.ts';
import type { TickRequest } from './TickScheduler.ts';
import type { TraderHealth } from './TraderHealth.ts';
import { TruncatedMarketView } from './TruncatedMarketView.ts';

/** What one tick did, for logs, metrics and the service level. */
export interface TickSummary {
  kind: TickRequest['kind'];
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
}

export interface TickRunnerOptions {
  userId: string;
  machineId: string;
  workerVersion: string;
  helpersVersion: string;
  clock: Clock;
  logger: Logger;
  screener: ScreenerPort;
  store: MarketView;
  isComplete: (symbol: string, interval: Interval, closedOpenTime: number) => boolean;
  signals: SignalSink;
  edges: RisingEdges;
  health: TraderHealth;
}

export class TickRunner {
  private readonly options: TickRunnerOptions;

  constructor(options: TickRunnerOptions) {
    this.options = options;
  }

  async run(request: TickRequest, traders: readonly Trader[]): Promise<TickSummary> {
    const { clock, screener, store } = this.options;
    const startedAt = clock.now();
    // Never screen a stale or incomplete series. A symbol already past this candle (the request waited)
    // is screened as it stood at the close (below); one behind it or with a gap is handed back to be filled.
    const symbols: string[] = [];
    const incomplete: string[] = [];
    // A symbol not screenable now (its series behind, or a gap being filled) goes back to be filled and followed up.
    for (const symbol of request.symbols) {
      if (this.hasCandle(symbol, request.interval, request.openTime)) symbols.push(symbol);
      else incomplete.push(symbol);
    }
    // Filters see the market as it stood when this candle closed, even if the tick waited and newer
    // candles have arrived since: the signal belongs to this candle, its price and provenance too.
    const market = new TruncatedMarketView(store, request.openTime + intervalMs(request.interval));
    const summary: TickSummary = {
      kind: request.kind,
      interval: request.interval,
      openTime: request.openTime,
      traders: traders.length,
      expected: request.expected,
      symbols: symbols.length,
      evaluations: 0,
      errors: 0,
      matches: 0,
      signals: 0,
      signalsBuffered: 0,
      durationMs: 0,
      screenMs: 0,
      edgesMs: 0,
      writeMs: 0,
      queuedMs: Math.max(0, startedAt - request.queuedAt),
      arrivalLagsMs: request.arrivalLagsMs,
      closeToCommitMs: [],
      outcomes: [],
      incomplete,
    };
    if (traders.length === 0 || symbols.length === 0) {
      summary.durationMs = clock.now() - startedAt;
      return summary;
    }
    const result = await screener.run({
      interval: request.interval,
      candleOpenTime: request.openTime,
      traderIds: traders.map((trader) => trader.id),
      symbols,
      market,
    });
    const screenedAt = clock.now();
    summary.screenMs = screenedAt - startedAt;
    const byId = new Map(traders.map((trader) => [trader.id, trader]));
    const outcomes = result.traders.filter((outcome) => byId.has(outcome.traderId));
    const matchedBefore = await this.evaluatePrevious(request, this.unknownMatches(request, outcomes));
    const batch: Signal[] = [];
    for (const outcome of outcomes) {
      const trader = byId.get(outcome.traderId)!;
      summary.outcomes.push(outcome);
      summary.evaluations += outcome.evaluatedSymbols.length;
      summary.errors += outcome.errors.length;
      summary.matches += outcome.matches.length;
      const edges = this.risingEdges(trader, request, symbols, outcome, matchedBefore.get(trader.id));
      for (const match of edges) batch.push(this.signal(trader, request, market, match.symbol, match.price, match.conditions));
    }
    const edgedAt = clock.now();
    summary.edgesMs = edgedAt - screenedAt;
    if (batch.length > 0) await this.write(batch, summary);
    summary.writeMs = clock.now() - edgedAt;
    // Only now, with this tick's signals committed or buffered ahead of any status write, may trader_status say the
    // candle was evaluated: a restart resumes after it, so saying it earlier could lose a signal to a crash.
    const candleCloseTime = request.openTime + intervalMs(request.interval);
    for (const outcome of outcomes) this.options.health.recordOutcome(outcome, candleCloseTime);
    summary.durationMs = clock.now() - startedAt;
    return summary;
  }

  /** Per trader, the symbols it matches now without a verdict for the previous candle. */
  private unknownMatches(request: TickRequest, outcomes: readonly TraderTickOutcome[]): Map<string, string[]> {
    const unknown = new Map<string, string[]>();
    for (const outcome of outcomes) {
      const symbols = outcome.matches
        .map((match) => match.symbol)
        .filter((symbol) => this.options.edges.verdict(outcome.traderId, symbol, request.interval, request.openTime) === 'unknown');
      if (symbols.length > 0) unknown.set(outcome.traderId, symbols);
    }
    return unknown;
  }

  /** The matches that start an episode; records every verdict at this candle. */
  private risingEdges(trader: Trader, request: TickRequest, symbols: string[], outcome: TraderTickOutcome, matchedBefore: ReadonlySet<string> = new Set()) {
    const { edges } = this.options;
    const evaluated = new Set(outcome.evaluatedSymbols);
    const matched = new Map(outcome.matches.map((match) => [match.symbol, match]));
    const rising = [...matched.values()].filter((match) => {
      const verdict = edges.verdict(trader.id, match.symbol, request.interval, request.openTime);
      if (verdict === 'unknown') return !matchedBefore.has(match.symbol);
      return verdict === 'rising';
    });
    // Only a symbol evaluated without error has a verdict; for the others (an error, a crashed thread) nothing is known.
    for (const symbol of symbols) {
      if (evaluated.has(symbol) || matched.has(symbol)) edges.record(trader.id, symbol, request.openTime, matched.has(symbol));
      else edges.forget(trader.id, symbol);
    }
    return rising;
  }

  /**
   * Prime the edge state: evaluate the traders on the series as they were at the previous candle.
   * Needed after a restart, a trader change, a gap or a skipped tick; only for symbols that match now.
   * One screener run for every trader that needs it, so the threads share the work: run trader by
   * trader, priming the 20 traders of a boot took 20 queued runs on one thread each (376 ms real of a
   * 1 s catch-up tick at 200 symbols). The run covers the union of their symbols; a verdict is kept
   * only where it was asked for, so the extra evaluations change nothing.
   */
  private async evaluatePrevious(request: TickRequest, unknown: ReadonlyMap<string, readonly string[]>): Promise<Map<string, Set<string>>> {
    const matchedBefore = new Map<string, Set<string>>();
    if (unknown.size === 0) return matchedBefore;
    const previousOpenTime = request.openTime - intervalMs(request.interval);
    try {
      const result = await this.options.screener.run({
        interval: request.interval,
        candleOpenTime: previousOpenTime,
        traderIds: [...unknown.keys()],
        symbols: [...new Set([...unknown.values()].flat())],
        market: new TruncatedMarketView(this.options.store, request.openTime),
      });
      for (const outcome of result.traders) {
        const asked = new Set(unknown.get(outcome.traderId));
        const matched = new Set(outcome.matches.map((match) => match.symbol).filter((symbol) => asked.has(symbol)));
        matchedBefore.set(outcome.traderId, matched);
        for (const symbol of outcome.evaluatedSymbols) {
          if (asked.has(symbol)) this.options.edges.record(outcome.traderId, symbol, previousOpenTime, matched.has(symbol));
        }
      }
    } catch (error) {
      // Without a verdict for the previous candle a match counts as new: a missed signal is worse than a repeat.
      this.options.logger.warn({ event: 'edge_prime_failed', traderIds: [...unknown.keys()], err: error }, 'previous candle evaluation failed');
    }
    return matchedBefore;
  }

  /**
   * Whether the series holds this candle with nothing missing up to its newest one: complete now, or
   * complete and already past it (the tick waited behind another), which the truncated view screens as it was.
   */
  private hasCandle(symbol: string, interval: Interval, openTime: number): boolean {
    const series = this.options.store.series(symbol, interval);
    const last = series?.lastClosed()?.openTime;
    if (series === undefined || last === undefined || last < openTime) return false;
    if (last > openTime && !series.since(openTime - intervalMs(interval)).some((candle) => candle.openTime === openTime)) return false;
    return this.options.isComplete(symbol, interval, last);
  }

  private signal(trader: Trader, request: TickRequest, market: MarketView, symbol: string, price: number, conditions: string[]): Signal {
    const timeframes: SignalProvenance['timeframes'] = {};
    for (const timeframe of trader.timeframes) {
      const series = market.series(symbol, timeframe);
      const last = series?.lastClosed();
      if (series === undefined || last === undefined) continue;
      timeframes[timeframe] = {
        lastOpenTime: last.openTime,
        lastCloseTime: last.closeTime,
        origin: series.originOf(last.openTime) ?? 'stream',
        length: series.length,
      };
    }
    return {
      userId: this.options.userId,
      traderId: trader.id,
      symbol,
      interval: request.interval,
      candleOpenTime: request.openTime,
      price,
      matchedConditions: conditions,
      machineId: this.options.machineId,
      provenance: {
        filterCodeHash: trader.codeHash,
        helpersVersion: helpersLibraryVersion(trader.filter.helpers),
        timeframes,
        workerVersion: this.options.workerVersion,
      },
      closeReceivedAt: request.closeReceivedAt.get(symbol) ?? this.options.clock.now(),
    };
  }

  private async write(batch: Signal[], summary: TickSummary): Promise<void> {
    const result = await this.options.signals.writeSignals(batch);
    summary.signals = batch.length;
    summary.signalsBuffered = result.buffered;
    for (const signal of batch) {
      const latency = result.committedAt === null ? null : result.committedAt - signal.closeReceivedAt;
      if (latency !== null) summary.closeToCommitMs.push(latency);
      this.options.logger.info(
        {
          event: 'signal',
          traderId: signal.traderId,
          symbol: signal.symbol,
          interval: signal.interval,
          candleOpenTime: new Date(signal.candleOpenTime).toISOString(),
          price: signal.price,
          conditions: signal.matchedConditions,
          closeToCommitMs: latency,
          buffered: result.committedAt === null,
        },
        'signal',
      );
    }
  }
}
