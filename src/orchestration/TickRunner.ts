// The tick pipeline the scheduler calls: picks the due traders, screens the (trader, symbol) pairs whose every timeframe is
// complete, finds rising edges, writes signals with provenance, folds outcomes into trader health and the service level,
// and logs the tick.
import type { Clock } from '../clock.ts';
import { type Interval, type Signal, type SignalProvenance, type Trader, intervalMs } from '../domain.ts';
import type { Logger } from '../logger.ts';
import { tickerFields } from '../screening/contract.ts';
import { helpersLibraryVersion } from '../screening/helpers.ts';
import type { MarketDataSource, MarketView, ScreenerPort, SignalSink, SkippedEvaluation, TickServiceLevel, TickSummary, TraderTickOutcome } from '../ports.ts';
import type { EdgeVerdict, RisingEdges } from './RisingEdges.ts';
import { type ServiceLevel, maxOrNull } from './ServiceLevel.ts';
import { type TickRequest, type TickFollowUps, completeAtBoundary } from './TickScheduler.ts';
import type { TraderHealth } from './TraderHealth.ts';
import { TruncatedMarketView } from './TruncatedMarketView.ts';

/** The log event of each kind of tick. */
const TICK_EVENT = { tick: 'tick', followup: 'tick_followup', catchup: 'tick_catchup' } as const satisfies Record<TickRequest['kind'], string>;

/** A trader's matches of one screening judged against the edge state of the version that screened (RisingEdges.version). */
interface JudgedMatches {
  traderId: string;
  version: number;
  verdicts: Map<string, EdgeVerdict>;
}

export interface TickRunnerOptions {
  userId: string;
  machineId: string;
  workerVersion: string;
  clock: Clock;
  logger: Logger;
  screener: ScreenerPort;
  /** The market's one judge of completeness (isComplete) and the store it fills (candles). */
  market: Pick<MarketDataSource, 'isComplete' | 'candles'>;
  signals: SignalSink;
  edges: RisingEdges;
  health: TraderHealth;
  serviceLevel: ServiceLevel;
  /** The traders running now; a run screens those due on its interval that are not disabled. */
  traders: () => Iterable<Trader>;
  /** After every run, with the service level it reported (null for a catch-up, which no readiness judges). */
  onRun?: (summary: TickSummary, level: TickServiceLevel | null) => void;
}

export class TickRunner {
  private readonly options: TickRunnerOptions;
  private closed = false;

  constructor(options: TickRunnerOptions) {
    this.options = options;
  }

  /** A shutdown began: runs still arriving (one already handed over, the boot's catch-up) screen nothing. */
  close(): void {
    this.closed = true;
  }

  /**
   * Run one request for the traders due on its interval (only those in `only`, or named by the request, when given).
   * Returns what the scheduler must follow up: symbols found incomplete after all, pairs skipped for another timeframe.
   */
  async run(request: TickRequest, only?: ReadonlySet<string>): Promise<TickFollowUps> {
    if (this.closed) return { incomplete: [], skipped: [] };
    const traders = [...this.options.traders()].filter(
      (trader) =>
        trader.filter.refreshInterval === request.interval &&
        !this.options.health.isDisabled(trader.id) &&
        (only === undefined || only.has(trader.id)) &&
        (request.traderIds === undefined || request.traderIds.includes(trader.id)),
    );
    const summary = await this.screen(request, traders);
    const level = this.options.serviceLevel.recordRun(request, summary);
    this.logRun(request, summary, level);
    this.options.onRun?.(summary, level);
    return { incomplete: summary.incomplete, skipped: summary.skipped };
  }

  private logRun(request: TickRequest, summary: TickSummary, level: TickServiceLevel | null): void {
    this.options.logger.info(
      {
        event: TICK_EVENT[request.kind],
        interval: request.interval,
        candleOpenTime: new Date(request.openTime).toISOString(),
        traders: summary.traders,
        symbols: summary.symbols,
        expected: summary.expected,
        coverage: level?.coverage ?? null,
        waitingFor: level?.waitingFor ?? null,
        skipped: summary.skipped.length,
        evaluations: summary.evaluations,
        errors: summary.errors,
        matches: summary.matches,
        signals: summary.signals,
        durationMs: summary.durationMs,
        screenMs: summary.screenMs,
        edgesMs: summary.edgesMs,
        writeMs: summary.writeMs,
        queuedMs: summary.queuedMs,
        arrivalLagP95Ms: level?.arrivalLagP95Ms ?? null,
        arrivalLagMaxMs: level?.arrivalLagMaxMs ?? null,
        closeWaitMs: request.kind === 'tick' ? closeWaitMs(request) : null,
        closeToCommitMaxMs: maxOrNull(summary.closeToCommitMs),
      },
      'tick',
    );
  }

  private async screen(request: TickRequest, traders: readonly Trader[]): Promise<TickSummary> {
    const { clock, screener } = this.options;
    const store = this.options.market.candles;
    const startedAt = clock.now();
    // Never screen a stale or incomplete series. A symbol already past this candle (the request waited)
    // is screened as it stood at the close (below); one behind it or with a gap is handed back to be filled.
    const symbols: string[] = [];
    const incomplete: string[] = [];
    // A symbol not screenable now (its series behind, or a gap being filled) goes back to be filled and followed up.
    for (const symbol of request.symbols) {
      if (this.options.market.isComplete(symbol, request.interval, request.openTime)) symbols.push(symbol);
      else incomplete.push(symbol);
    }
    const boundary = request.openTime + intervalMs(request.interval);
    // Filters see the market as it stood when this candle closed, even if the tick waited and newer
    // candles have arrived since: the signal belongs to this candle, its price, ticker and provenance too.
    const market = new TruncatedMarketView(store, boundary);
    const { groups, skipped } = this.plan(request.interval, boundary, traders, symbols);
    const skippedSymbols = new Set(skipped.map((pair) => pair.symbol));
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
      skipped,
      symbolsEvaluated: symbols.filter((symbol) => !skippedSymbols.has(symbol)),
    };
    if (skipped.length > 0) this.logSkipped(request, skipped);
    if (groups.length === 0) {
      summary.durationMs = clock.now() - startedAt;
      return summary;
    }
    const byId = new Map(traders.map((trader) => [trader.id, trader]));
    const outcomes: Array<{ outcome: TraderTickOutcome; symbols: string[]; judged: JudgedMatches }> = [];
    const matchedBefore = new Map<string, Set<string>>();
    for (const group of groups) {
      const screenStarted = clock.now();
      const result = await screener.run({
        interval: request.interval,
        candleOpenTime: request.openTime,
        traderIds: group.traders.map((trader) => trader.id),
        symbols: group.symbols,
        market,
      });
      const screenedAt = clock.now();
      summary.screenMs += screenedAt - screenStarted;
      const groupOutcomes = result.traders.filter((outcome) => byId.has(outcome.traderId));
      // Judged now, before any await: the edge state they are judged against is that of the version that screened.
      const judged = groupOutcomes.map((outcome) => this.judge(request, outcome));
      groupOutcomes.forEach((outcome, i) => outcomes.push({ outcome, symbols: group.symbols, judged: judged[i]! }));
      for (const [traderId, matched] of await this.evaluatePrevious(request, this.unknownMatches(judged))) matchedBefore.set(traderId, matched);
      summary.edgesMs += clock.now() - screenedAt;
    }
    const edgesStarted = clock.now();
    const batch: Signal[] = [];
    for (const { outcome, symbols: screened, judged } of outcomes) {
      const trader = byId.get(outcome.traderId)!;
      summary.outcomes.push(outcome);
      summary.evaluations += outcome.evaluatedSymbols.length;
      summary.errors += outcome.errors.length;
      summary.matches += outcome.matches.length;
      const edges = this.risingEdges(request, screened, outcome, judged, matchedBefore.get(trader.id));
      for (const match of edges) batch.push(this.signal(trader, request, market, match.symbol, match.price, match.conditions, match.values));
    }
    const edgedAt = clock.now();
    summary.edgesMs += edgedAt - edgesStarted;
    if (batch.length > 0) await this.write(batch, summary);
    summary.writeMs = clock.now() - edgedAt;
    // Only now, with this tick's signals committed or buffered ahead of any status write, may trader_status say the
    // candle was evaluated: a restart resumes after it, so saying it earlier could lose a signal to a crash.
    const candleCloseTime = request.openTime + intervalMs(request.interval);
    for (const { outcome } of outcomes) this.options.health.recordOutcome(outcome, candleCloseTime);
    summary.durationMs = clock.now() - startedAt;
    return summary;
  }

  /**
   * Which trader runs on which symbol. A trader is evaluated on a symbol only when every timeframe it requires is
   * complete there as of this close (the refresh interval is already checked); a 1m trader that also reads 1h is
   * never screened on a 1h series whose gap fill is still pending or failing: that pair is skipped and handed back,
   * to be followed up once the fill lands. Traders skipped on the same symbols share one screener run; normally
   * there is one group, every trader over every symbol.
   */
  private plan(interval: Interval, boundary: number, traders: readonly Trader[], symbols: readonly string[]) {
    const complete = new Map<string, boolean>();
    const isComplete = (symbol: string, timeframe: Interval) => {
      const key = `${symbol}\u0000${timeframe}`;
      let known = complete.get(key);
      if (known === undefined) {
        known = completeAtBoundary(this.options.market, symbol, timeframe, boundary);
        complete.set(key, known);
      }
      return known;
    };
    const skipped: SkippedEvaluation[] = [];
    const groups = new Map<string, { traders: Trader[]; symbols: string[] }>();
    for (const trader of traders) {
      const screened: string[] = [];
      for (const symbol of symbols) {
        const missing = trader.timeframes.filter((timeframe) => timeframe !== interval && !isComplete(symbol, timeframe));
        if (missing.length === 0) screened.push(symbol);
        else skipped.push({ traderId: trader.id, symbol, timeframes: missing });
      }
      if (screened.length === 0) continue;
      const key = screened.length === symbols.length ? '' : screened.join(',');
      const group = groups.get(key) ?? { traders: [], symbols: screened };
      group.traders.push(trader);
      groups.set(key, group);
    }
    return { groups: [...groups.values()], skipped };
  }

  /** One line per tick that skipped pairs, counted by the timeframe that was incomplete. */
  private logSkipped(request: TickRequest, skipped: readonly SkippedEvaluation[]): void {
    const byTimeframe: Record<string, number> = {};
    for (const pair of skipped) for (const timeframe of pair.timeframes) byTimeframe[timeframe] = (byTimeframe[timeframe] ?? 0) + 1;
    this.options.logger.warn(
      {
        event: 'tick_incomplete_timeframe',
        interval: request.interval,
        candleOpenTime: new Date(request.openTime).toISOString(),
        kind: request.kind,
        skipped: skipped.length,
        byTimeframe,
        symbols: [...new Set(skipped.map((pair) => pair.symbol))].length,
      },
      'evaluations skipped: a required timeframe is incomplete',
    );
  }

  /** A trader's matches judged against the edge state as it is now, and the version of the trader that state is for. */
  private judge(request: TickRequest, outcome: TraderTickOutcome): JudgedMatches {
    const { edges } = this.options;
    const verdicts = new Map<string, EdgeVerdict>();
    for (const match of outcome.matches) verdicts.set(match.symbol, edges.verdict(outcome.traderId, match.symbol, request.interval, request.openTime));
    return { traderId: outcome.traderId, version: edges.version(outcome.traderId), verdicts };
  }

  /** Per trader, the symbols it matches now without a verdict for the previous candle. */
  private unknownMatches(judged: readonly JudgedMatches[]): Map<string, string[]> {
    const unknown = new Map<string, string[]>();
    for (const { traderId, verdicts } of judged) {
      const symbols = [...verdicts].filter(([, verdict]) => verdict === 'unknown').map(([symbol]) => symbol);
      if (symbols.length > 0) unknown.set(traderId, symbols);
    }
    return unknown;
  }

  /**
   * The matches that start an episode; records every verdict at this candle, unless the trader's row
   * changed while this tick ran: its edge state then belongs to the new version, which starts from
   * nothing (its next tick primes it), and this tick's verdicts, the earlier version's, stay out of it.
   */
  private risingEdges(request: TickRequest, symbols: string[], outcome: TraderTickOutcome, judged: JudgedMatches, matchedBefore: ReadonlySet<string> = new Set()) {
    const { edges } = this.options;
    const evaluated = new Set(outcome.evaluatedSymbols);
    const matched = new Map(outcome.matches.map((match) => [match.symbol, match]));
    const rising = [...matched.values()].filter((match) => {
      const verdict = judged.verdicts.get(match.symbol) ?? 'unknown';
      if (verdict === 'unknown') return !matchedBefore.has(match.symbol);
      return verdict === 'rising';
    });
    if (edges.version(outcome.traderId) !== judged.version) return rising;
    // Only a symbol evaluated without error has a verdict; for the others (an error, a crashed thread) nothing is known.
    for (const symbol of symbols) {
      if (evaluated.has(symbol) || matched.has(symbol)) edges.record(outcome.traderId, symbol, request.openTime, matched.has(symbol));
      else edges.forget(outcome.traderId, symbol);
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
    // A trader whose row changes while its previous candle is evaluated keeps none of these verdicts (RisingEdges.version).
    const versions = new Map([...unknown.keys()].map((traderId) => [traderId, this.options.edges.version(traderId)]));
    try {
      const result = await this.options.screener.run({
        interval: request.interval,
        candleOpenTime: previousOpenTime,
        traderIds: [...unknown.keys()],
        symbols: [...new Set([...unknown.values()].flat())],
        // The series and the ticker as of the previous close: the snapshot of that earlier close, not this one's.
        market: new TruncatedMarketView(this.options.market.candles, request.openTime),
      });
      for (const outcome of result.traders) {
        if (outcome.disabled !== null) this.options.health.noteDisabled(outcome.traderId, outcome.disabled.reason);
        const asked = new Set(unknown.get(outcome.traderId));
        const matched = new Set(outcome.matches.map((match) => match.symbol).filter((symbol) => asked.has(symbol)));
        matchedBefore.set(outcome.traderId, matched);
        if (this.options.edges.version(outcome.traderId) !== versions.get(outcome.traderId)) continue;
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

  private signal(trader: Trader, request: TickRequest, market: MarketView, symbol: string, price: number, conditions: string[], values: Record<string, number> | undefined): Signal {
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
        ticker: tickerProvenance(market, symbol),
      },
      closeReceivedAt: request.closeReceivedAt.get(symbol) ?? this.options.clock.now(),
      ...(values === undefined ? {} : { values }),
      // Exactly what the screener handed the filter (Screener.runNow), from the same view of the market at this close.
      ticker: tickerFields(symbol, market.ticker(symbol), market.series(symbol, request.interval)?.lastClosed()?.close),
      filterCode: trader.filter.code,
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

/**
 * How long the tick's first closing kline waited for the rest before the tick was queued: the scheduler waits for
 * every symbol's close (up to the grace period), and each symbol's close-to-commit latency counts from its own close,
 * so this is what the earliest symbols pay for the last one. Null when no close was seen (the watchdog fired it).
 */
export function closeWaitMs(request: Pick<TickRequest, 'closeReceivedAt' | 'queuedAt'>): number | null {
  let first = Infinity;
  for (const receivedAt of request.closeReceivedAt.values()) if (receivedAt < first) first = receivedAt;
  return Number.isFinite(first) ? Math.max(0, request.queuedAt - first) : null;
}

/** The ticker snapshot the filter was shown, by event time; null when it saw the minimal ticker (no snapshot proved one). */
function tickerProvenance(market: MarketView, symbol: string): SignalProvenance['ticker'] {
  const ticker = market.ticker(symbol);
  return ticker === undefined ? null : { eventTime: ticker.eventTime, lastPrice: ticker.lastPrice };
}
