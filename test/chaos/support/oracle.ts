// The independent oracle: which signals must exist, computed from the simulator's own candles with plain JavaScript.
//
// Nothing of the worker's screening path is used here (no Screener, TickRunner, RisingEdges, MarketStore,
// helpers): each filter body is compiled with `new Function` in this process and shown, for each closed
// candle T of its refresh interval, the last KLINE_HISTORY closed candles of every timeframe it reads as
// they stood when T closed. DESIGN.md's rule then gives the signals: one at T exactly when the filter
// matches at T and did not match at T-1.
import type { Candle, Interval } from '../../../src/domain.ts';
import { intervalMs } from '../../../src/domain.ts';

export interface CandleSource {
  /** Closed candles with open times in [from, to], oldest first. */
  candles(symbol: string, interval: Interval, fromOpenTime: number, toOpenTime: number): Candle[];
}

export interface OracleTraderInput {
  id: string;
  name: string;
  code: string;
  refreshInterval: Interval;
  timeframes: Interval[];
}

/** A span of clock time in which candles closing are not required to be screened, and why. */
export interface Exclusion {
  from: number;
  to: number;
  reason: string;
  /** Only this symbol (universe changes); every symbol when absent. */
  symbol?: string;
  /** Only this refresh interval; every interval when absent. */
  interval?: Interval;
  /** Only this trader (one whose row changed while no worker ran); every trader when absent. */
  traderId?: string;
}

export interface OracleInput {
  source: CandleSource;
  history: number;
  traders: OracleTraderInput[];
  /** Symbols of the universe over the whole run. */
  symbols: string[];
  /** Extra symbols and the clock span in which they belong to the universe at all (outside it, any signal is extra). */
  membership: Map<string, { from: number; to: number }>;
  /** Candles closing in [from, to] are in scope (and the one that closed last before `from`): expected signals there must exist unless excluded. */
  from: number;
  to: number;
  exclusions: Exclusion[];
  /**
   * Spans whose signals are required like any other but worth counting apart (a restart's downtime, a frozen process):
   * proof that the run exercised them. Their `reason` is the label; an exclusion still wins over them.
   */
  watched?: Exclusion[];
}

export interface SignalRow {
  trader_id: string;
  symbol: string;
  interval: string;
  candle_open_time: Date;
  price: string | number;
  provenance?: unknown;
}

export interface OracleVerdict {
  evaluations: number;
  expected: number;
  required: number;
  excluded: number;
  excludedByReason: Record<string, number>;
  /** Excluded (not required) signals the worker wrote anyway, correctly. */
  excludedFound: number;
  found: number;
  missing: string[];
  extra: string[];
  duplicated: string[];
  /** Signals at the right candle whose price is not the candle's close. */
  mismatched: string[];
  /** Per watched span's label, the required signals that closed in it and how many of them were found. */
  watched: Record<string, { required: number; found: number }>;
}

type Filter = (ticker: unknown, timeframes: unknown, helpers: unknown, hvnNodes: unknown) => unknown;

const keyOf = (traderId: string, symbol: string, interval: string, openTime: number) => `${traderId}|${symbol}|${interval}|${openTime}`;

function toKline(candle: Candle): number[] {
  return [
    candle.openTime,
    candle.open,
    candle.high,
    candle.low,
    candle.close,
    candle.volume,
    candle.closeTime,
    candle.quoteVolume,
    candle.trades,
    candle.takerBuyBaseVolume,
    candle.takerBuyQuoteVolume,
    0,
  ];
}

/** The contract's reading of a result: true, or an object whose `match` is true. */
function matched(result: unknown): boolean {
  if (result === true) return true;
  return typeof result === 'object' && result !== null && (result as { match?: unknown }).match === true;
}

/** Index of the last candle that closed at or before `boundary` (closeTime < boundary), or -1. */
function lastClosedBefore(candles: Candle[], boundary: number, hint: number): number {
  let index = Math.min(hint, candles.length - 1);
  while (index + 1 < candles.length && candles[index + 1]!.closeTime < boundary) index += 1;
  while (index >= 0 && candles[index]!.closeTime >= boundary) index -= 1;
  return index;
}

export function runOracle(input: OracleInput, rows: SignalRow[]): OracleVerdict {
  const expected = new Map<string, { price: number; reason: string | null; watched: string | null }>();
  let evaluations = 0;
  const allSymbols = [...new Set([...input.symbols, ...input.membership.keys()])];
  // Each series is fetched and turned into klines once; an evaluation gets a slice of references to them.
  const series = new Map<string, { candles: Candle[]; klines: number[][] }>();
  const candlesOf = (symbol: string, interval: Interval, firstBoundary: number) => {
    const key = `${symbol}|${interval}`;
    let entry = series.get(key);
    if (!entry) {
      const length = intervalMs(interval);
      const from = Math.floor(firstBoundary / length) * length - (input.history + 2) * length;
      const candles = input.source.candles(symbol, interval, from, input.to);
      entry = { candles, klines: candles.map(toKline) };
      series.set(key, entry);
    }
    return entry;
  };

  for (const trader of input.traders) {
    const filter = new Function('ticker', 'timeframes', 'helpers', 'hvnNodes', trader.code) as Filter;
    const length = intervalMs(trader.refreshInterval);
    // Closes from the last boundary at or before `from` (a boot's catch-up candle) to `to`; the one
    // before the first is evaluated for its verdict only.
    const firstBoundary = Math.floor(input.from / length) * length;
    for (const symbol of allSymbols) {
      const member = input.membership.get(symbol);
      const timeframeCandles = trader.timeframes.map((interval) => ({ interval, ...candlesOf(symbol, interval, firstBoundary - length), hint: 0 }));
      let previous: boolean | null = null;
      for (let boundary = firstBoundary - length; boundary <= input.to; boundary += length) {
        const timeframes: Record<string, number[][]> = {};
        let complete = true;
        for (const entry of timeframeCandles) {
          const last = lastClosedBefore(entry.candles, boundary, entry.hint);
          entry.hint = Math.max(0, last);
          if (last < 0) {
            complete = false;
            break;
          }
          timeframes[entry.interval] = entry.klines.slice(Math.max(0, last - input.history + 1), last + 1);
        }
        if (!complete) {
          previous = null;
          continue;
        }
        let now: boolean;
        try {
          now = matched(filter(undefined, timeframes, undefined, undefined));
        } catch {
          // A throw is an error, not a match, in the worker's contract too.
          now = false;
        }
        evaluations += 1;
        const openTime = boundary - length;
        const inScope = boundary >= firstBoundary && (member === undefined || (boundary >= member.from && boundary <= member.to));
        if (inScope && now && previous === false) {
          const refresh = timeframes[trader.refreshInterval]!;
          const reason = exclusionOf(input.exclusions, trader.id, symbol, trader.refreshInterval, boundary);
          const watched = exclusionOf(input.watched ?? [], trader.id, symbol, trader.refreshInterval, boundary);
          expected.set(keyOf(trader.id, symbol, trader.refreshInterval, openTime), { price: refresh[refresh.length - 1]![4]!, reason, watched });
        }
        previous = now;
      }
    }
  }

  const traderIds = new Set(input.traders.map((trader) => trader.id));
  const names = new Map(input.traders.map((trader) => [trader.id, trader.name]));
  const seen = new Map<string, number>();
  const verdict: OracleVerdict = {
    evaluations,
    expected: expected.size,
    required: 0,
    excluded: 0,
    excludedByReason: {},
    excludedFound: 0,
    found: 0,
    missing: [],
    extra: [],
    duplicated: [],
    mismatched: [],
    watched: {},
  };
  const describe = (key: string) => {
    const [id, ...rest] = key.split('|');
    const openTime = Number(rest[2]);
    return `${names.get(id!) ?? id} ${rest[0]} ${rest[1]} ${new Date(openTime).toISOString()}`;
  };
  for (const row of rows) {
    if (!traderIds.has(row.trader_id)) continue;
    const key = keyOf(row.trader_id, row.symbol, row.interval, row.candle_open_time.getTime());
    seen.set(key, (seen.get(key) ?? 0) + 1);
    const want = expected.get(key);
    if (want === undefined) {
      verdict.extra.push(describe(key));
      continue;
    }
    if (Number(row.price) !== want.price) verdict.mismatched.push(`${describe(key)}: price ${row.price}, candle close ${want.price}; provenance ${JSON.stringify(row.provenance)}`);
  }
  for (const [key, count] of seen) if (count > 1) verdict.duplicated.push(`${describe(key)} ×${count}`);
  for (const [key, want] of expected) {
    const present = seen.has(key);
    if (present) verdict.found += 1;
    if (want.reason !== null) {
      verdict.excluded += 1;
      if (present) verdict.excludedFound += 1;
      verdict.excludedByReason[want.reason] = (verdict.excludedByReason[want.reason] ?? 0) + 1;
      continue;
    }
    verdict.required += 1;
    if (!present) verdict.missing.push(describe(key));
    if (want.watched !== null) {
      const span = (verdict.watched[want.watched] ??= { required: 0, found: 0 });
      span.required += 1;
      if (present) span.found += 1;
    }
  }
  return verdict;
}

function exclusionOf(exclusions: Exclusion[], traderId: string, symbol: string, interval: Interval, boundary: number): string | null {
  for (const exclusion of exclusions) {
    if (exclusion.traderId !== undefined && exclusion.traderId !== traderId) continue;
    if (exclusion.symbol !== undefined && exclusion.symbol !== symbol) continue;
    if (exclusion.interval !== undefined && exclusion.interval !== interval) continue;
    if (boundary >= exclusion.from && boundary <= exclusion.to) return exclusion.reason;
  }
  return null;
}
