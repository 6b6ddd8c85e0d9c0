// The simulator's market: deterministic candles for every (symbol, interval, openTime), forming candles, 24 h tickers.
import { candleCloseTime, candleOpenTimeAt, intervalMs, INTERVALS, type Candle, type Interval } from '../../src/domain.ts';
import type { SymbolSpec } from './catalog.ts';
import { normal, uniform } from './random.ts';

/**
 * How prices are made. Weekly candles come from a mean-reverting fractal walk addressed by week index
 * (O(1) for any week). Every other candle of the chain 1w → 1d → 8h → 4h → 2h → 1h → 30m → 15m → 5m → 1m
 * is cut out of its parent by a seeded Brownian bridge that keeps the parent's open, high, low, close,
 * volume and trade count exactly: the children's first open and last close are the parent's, their
 * extremes reach the parent's high and low, and their volumes and trades sum to the parent's. So every
 * interval is an exact aggregate of its 1m candles without ever generating all of them. 3m, 6h, 12h and
 * 3d are aggregated from 1m, 2h, 4h and 1d. A 1m candle is cut once more into 30 slices of 2 s, which
 * is what the forming candle shows as time passes; its final state is the closed candle itself.
 *
 * Quote volume and taker volumes are derived per candle (volume × typical price, seeded taker share),
 * so they are not additive across intervals. Everything is memoised in bounded caches.
 */
export interface Bar {
  open: number;
  high: number;
  low: number;
  close: number;
  /** Volume in whole multiples of the symbol's step size, so splits are exact. */
  lots: number;
  trades: number;
}

export type ScriptedValues = Partial<Pick<Candle, 'open' | 'high' | 'low' | 'close' | 'volume'>>;

export interface TickerStats {
  symbol: string;
  eventTime: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  quoteVolume: number;
  trades: number;
  openTime: number;
  closeTime: number;
  firstId: number;
  lastId: number;
  tickSize: number;
  stepSize: number;
}

interface Script {
  interval: Interval;
  openTime: number;
  closeTime: number;
  values: ScriptedValues;
}

interface SymbolState {
  spec: SymbolSpec;
  children: Map<number, Bar[]>;
  prefixes: Map<number, { count: number; bar: Bar | null }>;
  scripts: Script[];
  window: { hourOpen: number; stats: Omit<TickerStats, 'eventTime' | 'close' | 'closeTime'> } | null;
}

const MINUTE = 60_000;
const WEEK_MS = 7 * 1440 * MINUTE;
const WEEK_OFFSET = 4 * 1440 * MINUTE;
const SLICE_MS = 2_000;
const SLICES_PER_MINUTE = MINUTE / SLICE_MS;
const SLICE_CODE = 15;
const CODE = Object.fromEntries(INTERVALS.map((interval, index) => [interval, index])) as Record<Interval, number>;

/** The interval each candle is cut into (chain) or aggregated from (off-chain). */
const CHILD: Record<Interval, Interval | null> = {
  '1w': '1d',
  '1d': '8h',
  '8h': '4h',
  '4h': '2h',
  '2h': '1h',
  '1h': '30m',
  '30m': '15m',
  '15m': '5m',
  '5m': '1m',
  '1m': null,
  '3m': '1m',
  '6h': '2h',
  '12h': '4h',
  '3d': '1d',
};
const PARENT: Partial<Record<Interval, Interval>> = {
  '1d': '1w',
  '8h': '1d',
  '4h': '8h',
  '2h': '4h',
  '1h': '2h',
  '30m': '1h',
  '15m': '30m',
  '5m': '15m',
  '1m': '5m',
};
const ON_CHAIN = new Set<Interval>(['1w', ...(Object.keys(PARENT) as Interval[])]);

function nodeKey(code: number, openTime: number): number {
  return (openTime / 1000) * 16 + code;
}

/** Every value goes through this, so `Number(value.toFixed(8))` is the value and the wire string round-trips. */
export function canon(value: number): number {
  return Number(value.toFixed(8));
}

function combine(first: Bar | null, next: Bar): Bar {
  if (!first) return { ...next };
  return {
    open: first.open,
    high: Math.max(first.high, next.high),
    low: Math.min(first.low, next.low),
    close: next.close,
    lots: first.lots + next.lots,
    trades: first.trades + next.trades,
  };
}

export class MarketModel {
  private readonly states = new Map<string, SymbolState>();
  private readonly maxCachedSplits: number;
  private cachedSplits = 0;

  constructor(specs: SymbolSpec[], options: { maxCachedSplits?: number } = {}) {
    this.maxCachedSplits = options.maxCachedSplits ?? 200_000;
    for (const spec of specs) this.add(spec);
  }

  add(spec: SymbolSpec): void {
    if (this.states.has(spec.symbol)) return;
    this.states.set(spec.symbol, { spec, children: new Map(), prefixes: new Map(), scripts: [], window: null });
  }

  has(symbol: string): boolean {
    return this.states.has(symbol);
  }

  spec(symbol: string): SymbolSpec | undefined {
    return this.states.get(symbol)?.spec;
  }

  specs(): SymbolSpec[] {
    return [...this.states.values()].map((state) => state.spec);
  }

  setStatus(symbol: string, status: string): void {
    this.state(symbol).spec.status = status;
  }

  /** Final values of one candle: the truth that REST and the closing kline both report. */
  candle(symbol: string, interval: Interval, openTime: number): Candle {
    const state = this.state(symbol);
    const aligned = this.aligned(interval, openTime);
    return this.toCandle(state.spec, interval, aligned, this.reported(state, interval, aligned));
  }

  /** The candle that opened at `openTime` as it stands at `now` (final values once closed). */
  forming(symbol: string, interval: Interval, openTime: number, now: number): Candle {
    const state = this.state(symbol);
    const aligned = this.aligned(interval, openTime);
    return this.toCandle(state.spec, interval, aligned, this.formingBar(state, interval, aligned, now));
  }

  /**
   * Override a candle's final values. Its slices and (for chain intervals) its descendants follow it;
   * its chain ancestors take its high, low, volume and, when it is their first or last child, its open or
   * close. Off-chain intervals (3m, 6h, 12h, 3d) change only themselves. The next candle still opens
   * where the walk says, as a real gap would.
   */
  script(symbol: string, interval: Interval, openTime: number, values: ScriptedValues): void {
    const state = this.state(symbol);
    const aligned = this.aligned(interval, openTime);
    state.scripts = state.scripts.filter((script) => !(script.interval === interval && script.openTime === aligned));
    state.scripts.push({ interval, openTime: aligned, closeTime: candleCloseTime(interval, aligned), values: { ...values } });
    // Larger first, so a smaller scripted candle inside a larger one has the last word.
    state.scripts.sort((a, b) => intervalMs(b.interval) - intervalMs(a.interval));
    this.cachedSplits -= state.children.size;
    state.children.clear();
    state.prefixes.clear();
    state.window = null;
  }

  /** Rolling 24 h statistics: the 24 closed hours before the current one plus the forming hour. */
  ticker(symbol: string, now: number): TickerStats {
    const state = this.state(symbol);
    const hourOpen = candleOpenTimeAt('1h', now);
    if (!state.window || state.window.hourOpen !== hourOpen) {
      let stats: Omit<TickerStats, 'eventTime' | 'close' | 'closeTime'> | null = null;
      for (let hour = hourOpen - 24 * 60 * MINUTE; hour < hourOpen; hour += 60 * MINUTE) {
        const candle = this.candle(symbol, '1h', hour);
        stats = this.accumulate(stats, state.spec, candle);
      }
      state.window = { hourOpen, stats: stats! };
    }
    const forming = this.forming(symbol, '1h', hourOpen, now);
    const stats = this.accumulate({ ...state.window.stats }, state.spec, forming);
    return { ...stats, eventTime: now, close: forming.close, openTime: now - 1440 * MINUTE, closeTime: now, lastId: stats.firstId + stats.trades - 1 };
  }

  private accumulate(
    stats: Omit<TickerStats, 'eventTime' | 'close' | 'closeTime'> | null,
    spec: SymbolSpec,
    candle: Candle,
  ): Omit<TickerStats, 'eventTime' | 'close' | 'closeTime'> {
    if (!stats) {
      return {
        symbol: spec.symbol,
        open: candle.open,
        high: candle.high,
        low: candle.low,
        volume: candle.volume,
        quoteVolume: candle.quoteVolume,
        trades: candle.trades,
        openTime: candle.openTime,
        firstId: candle.openTime,
        lastId: candle.openTime + candle.trades - 1,
        tickSize: spec.tickSize,
        stepSize: spec.stepSize,
      };
    }
    return {
      ...stats,
      high: Math.max(stats.high, candle.high),
      low: Math.min(stats.low, candle.low),
      volume: canon(stats.volume + candle.volume),
      quoteVolume: canon(stats.quoteVolume + candle.quoteVolume),
      trades: stats.trades + candle.trades,
    };
  }

  private state(symbol: string): SymbolState {
    const state = this.states.get(symbol);
    if (!state) throw new RangeError(`unknown symbol ${symbol}`);
    return state;
  }

  private aligned(interval: Interval, openTime: number): number {
    const aligned = candleOpenTimeAt(interval, openTime);
    if (aligned !== openTime) throw new RangeError(`${openTime} is not a ${interval} open time (nearest ${aligned})`);
    return aligned;
  }

  private toCandle(spec: SymbolSpec, interval: Interval, openTime: number, bar: Bar): Candle {
    const volume = canon(bar.lots * spec.stepSize);
    const typical = (bar.open + bar.high + bar.low + bar.close) / 4;
    const takerShare = 0.35 + 0.3 * uniform(spec.key, 9, nodeKey(CODE[interval], openTime));
    const takerBuyBaseVolume = canon(Math.round(bar.lots * takerShare) * spec.stepSize);
    return {
      openTime,
      open: bar.open,
      high: bar.high,
      low: bar.low,
      close: bar.close,
      volume,
      closeTime: candleCloseTime(interval, openTime),
      quoteVolume: canon(volume * typical),
      trades: bar.trades,
      takerBuyBaseVolume,
      takerBuyQuoteVolume: canon(takerBuyBaseVolume * typical),
    };
  }

  private scriptOf(state: SymbolState, interval: Interval, openTime: number): Script | undefined {
    if (state.scripts.length === 0) return undefined;
    return state.scripts.find((script) => script.interval === interval && script.openTime === openTime);
  }

  /** Chain candles only: what the walk made, before any script. */
  private generated(state: SymbolState, interval: Interval, openTime: number): Bar {
    if (interval === '1w') return this.weekBar(state.spec, openTime);
    const parent = PARENT[interval]!;
    const parentOpen = candleOpenTimeAt(parent, openTime);
    return this.childrenOf(state, parent, parentOpen)[(openTime - parentOpen) / intervalMs(interval)]!;
  }

  /** Chain candles only: generated, then its own script. This is what its children are cut from. */
  private effective(state: SymbolState, interval: Interval, openTime: number): Bar {
    const bar = this.generated(state, interval, openTime);
    const script = this.scriptOf(state, interval, openTime);
    return script ? this.applyScript(state.spec, bar, script.values) : bar;
  }

  private reported(state: SymbolState, interval: Interval, openTime: number): Bar {
    if (!ON_CHAIN.has(interval)) {
      const child = CHILD[interval]!;
      const childMs = intervalMs(child);
      let bar: Bar | null = null;
      for (let t = openTime; t < openTime + intervalMs(interval); t += childMs) bar = combine(bar, this.reported(state, child, t));
      const script = this.scriptOf(state, interval, openTime);
      return script ? this.applyScript(state.spec, bar!, script.values) : bar!;
    }
    let bar = this.effective(state, interval, openTime);
    if (state.scripts.length === 0) return bar;
    const closeTime = candleCloseTime(interval, openTime);
    const length = intervalMs(interval);
    for (const script of state.scripts) {
      const inside = ON_CHAIN.has(script.interval) && intervalMs(script.interval) < length;
      if (!inside || script.openTime < openTime || script.closeTime > closeTime) continue;
      const scripted = this.effective(state, script.interval, script.openTime);
      const original = this.generated(state, script.interval, script.openTime);
      bar = {
        open: script.openTime === openTime ? scripted.open : bar.open,
        high: Math.max(bar.high, scripted.high),
        low: Math.min(bar.low, scripted.low),
        close: script.closeTime === closeTime ? scripted.close : bar.close,
        lots: bar.lots + scripted.lots - original.lots,
        trades: bar.trades + scripted.trades - original.trades,
      };
    }
    return bar;
  }

  private applyScript(spec: SymbolSpec, bar: Bar, values: ScriptedValues): Bar {
    const open = values.open !== undefined ? this.roundTick(spec, values.open) : bar.open;
    const close = values.close !== undefined ? this.roundTick(spec, values.close) : bar.close;
    const high = values.high !== undefined ? this.roundTick(spec, values.high) : bar.high;
    const low = values.low !== undefined ? this.roundTick(spec, values.low) : bar.low;
    const lots = values.volume !== undefined ? Math.max(0, Math.round(values.volume / spec.stepSize)) : bar.lots;
    const trades = values.volume !== undefined && bar.lots > 0 ? Math.round((bar.trades * lots) / bar.lots) : bar.trades;
    return { open, close, high: Math.max(high, open, close), low: Math.min(low, open, close), lots, trades };
  }

  private formingBar(state: SymbolState, interval: Interval, openTime: number, now: number): Bar {
    if (now > candleCloseTime(interval, openTime)) return this.reported(state, interval, openTime);
    if (interval === '1m') {
      const slices = this.childrenOf(state, '1m', openTime);
      const done = Math.max(0, Math.min(SLICES_PER_MINUTE, Math.floor((now - openTime) / SLICE_MS)));
      if (done === 0) {
        const open = slices[0]!.open;
        return { open, high: open, low: open, close: open, lots: 0, trades: 0 };
      }
      let bar: Bar | null = null;
      for (let i = 0; i < done; i++) bar = combine(bar, slices[i]!);
      return bar!;
    }
    const child = CHILD[interval]!;
    const childMs = intervalMs(child);
    const done = Math.max(0, Math.floor((now - openTime) / childMs));
    const prefix = this.prefix(state, interval, openTime, child, done);
    return combine(prefix, this.formingBar(state, child, openTime + done * childMs, now));
  }

  /** Aggregate of the first `count` closed children, extended incrementally as a candle forms. */
  private prefix(state: SymbolState, interval: Interval, openTime: number, child: Interval, count: number): Bar | null {
    const key = nodeKey(CODE[interval], openTime);
    let cached = state.prefixes.get(key);
    if (!cached || cached.count > count) cached = { count: 0, bar: null };
    const childMs = intervalMs(child);
    let bar = cached.bar;
    for (let i = cached.count; i < count; i++) bar = combine(bar, this.reported(state, child, openTime + i * childMs));
    if (state.prefixes.size > 10_000) state.prefixes.clear();
    state.prefixes.set(key, { count, bar });
    return bar;
  }

  /** The children a chain candle is cut into (or the 2 s slices of a 1m candle), memoised. */
  private childrenOf(state: SymbolState, interval: Interval, openTime: number): Bar[] {
    const key = nodeKey(CODE[interval], openTime);
    const cached = state.children.get(key);
    if (cached) return cached;
    const parent = this.effective(state, interval, openTime);
    const childMs = interval === '1m' ? SLICE_MS : intervalMs(CHILD[interval]!);
    const salt = (nodeKey(interval === '1m' ? SLICE_CODE : CODE[interval], openTime) % 4294967296) >>> 0;
    const bars = this.split(state.spec, parent, intervalMs(interval) / childMs, childMs, salt);
    if (this.cachedSplits >= this.maxCachedSplits) this.evict();
    state.children.set(key, bars);
    this.cachedSplits++;
    return bars;
  }

  private evict(): void {
    for (const state of this.states.values()) {
      state.children.clear();
      state.prefixes.clear();
    }
    this.cachedSplits = 0;
  }

  private split(spec: SymbolSpec, parent: Bar, count: number, childMs: number, salt: number): Bar[] {
    const key = spec.key;
    const sigma = spec.sigma1m * Math.sqrt(childMs / MINUTE);
    const logOpen = Math.log(parent.open);
    const logClose = Math.log(parent.close);
    const logHigh = Math.log(parent.high);
    const logLow = Math.log(parent.low);
    const walk = [0];
    for (let i = 1; i <= count; i++) walk.push(walk[i - 1]! + normal(key, salt, i, 1) * sigma);
    // A Brownian bridge from open to close, shrunk just enough to stay inside the parent's range.
    let shrink = 1;
    const deviation: number[] = [0];
    for (let i = 1; i < count; i++) {
      const line = logOpen + (i / count) * (logClose - logOpen);
      const dev = walk[i]! - (i / count) * walk[count]!;
      deviation.push(dev);
      if (dev > 0) shrink = Math.min(shrink, Math.max(0, (logHigh - line) / dev));
      else if (dev < 0) shrink = Math.min(shrink, Math.max(0, (logLow - line) / dev));
    }
    const points = [parent.open];
    for (let i = 1; i < count; i++) {
      const line = logOpen + (i / count) * (logClose - logOpen);
      const price = this.roundTick(spec, Math.exp(line + shrink * deviation[i]!));
      points.push(Math.min(parent.high, Math.max(parent.low, price)));
    }
    points.push(parent.close);
    let highest = 0;
    let lowest = 0;
    for (let i = 0; i < count; i++) {
      if (Math.max(points[i]!, points[i + 1]!) > Math.max(points[highest]!, points[highest + 1]!)) highest = i;
      if (Math.min(points[i]!, points[i + 1]!) < Math.min(points[lowest]!, points[lowest + 1]!)) lowest = i;
    }
    const volumeNoise = childMs >= 4 * 60 * MINUTE ? 0.05 : 0.35;
    const weights: number[] = [];
    for (let i = 0; i < count; i++) weights.push(Math.exp(normal(key, salt, i, 4) * volumeNoise));
    const lots = this.allocate(parent.lots, weights);
    const trades = this.allocate(parent.trades, parent.lots > 0 ? lots : weights);
    const bars: Bar[] = [];
    for (let i = 0; i < count; i++) {
      const open = points[i]!;
      const close = points[i + 1]!;
      const top = Math.max(open, close);
      const bottom = Math.min(open, close);
      const high =
        i === highest ? parent.high : Math.min(parent.high, this.ceilTick(spec, top * Math.exp(Math.abs(normal(key, salt, i, 2)) * sigma * 0.5)));
      const low =
        i === lowest ? parent.low : Math.max(parent.low, this.floorTick(spec, bottom * Math.exp(-Math.abs(normal(key, salt, i, 3)) * sigma * 0.5)));
      bars.push({ open, high: Math.max(high, top), low: Math.min(low, bottom), close, lots: lots[i]!, trades: trades[i]! });
    }
    return bars;
  }

  /** Split a whole number in proportion to weights, exactly. */
  private allocate(total: number, weights: number[]): number[] {
    const sum = weights.reduce((a, b) => a + b, 0);
    const parts = weights.map((weight) => (sum > 0 ? Math.floor((total * weight) / sum) : 0));
    let remainder = total - parts.reduce((a, b) => a + b, 0);
    for (let i = 0; remainder > 0; i = (i + 1) % parts.length, remainder--) parts[i]! += 1;
    return parts;
  }

  private weekBar(spec: SymbolSpec, openTime: number): Bar {
    const week = Math.round((openTime - WEEK_OFFSET) / WEEK_MS);
    const sigmaWeek = spec.sigma1m * Math.sqrt(7 * 1440);
    const open = this.priceAtWeek(spec, week, sigmaWeek);
    const close = this.priceAtWeek(spec, week + 1, sigmaWeek);
    const high = this.ceilTick(spec, Math.max(open, close) * Math.exp(Math.abs(normal(spec.key, 40, week)) * sigmaWeek * 0.4));
    const low = this.floorTick(spec, Math.min(open, close) * Math.exp(-Math.abs(normal(spec.key, 41, week)) * sigmaWeek * 0.4));
    const jitter = 1 + 0.04 * (uniform(spec.key, 42, week) - 0.5);
    const lots = Math.round(((spec.dailyQuoteVolume * 7) / ((open + close) / 2) / spec.stepSize) * jitter);
    const trades = Math.round(((spec.dailyQuoteVolume * 7) / spec.averageTradeQuote) * jitter);
    return { open, high: Math.max(high, open, close), low: Math.min(low, open, close), close, lots, trades };
  }

  /** Octaves of smoothed noise over the week index: a walk that wanders but keeps returning to basePrice. */
  private priceAtWeek(spec: SymbolSpec, week: number, sigmaWeek: number): number {
    let logPrice = Math.log(spec.basePrice);
    for (let octave = 0; octave < 7; octave++) {
      const span = 2 ** octave;
      const x = week / span;
      const i = Math.floor(x);
      const f = x - i;
      const smooth = f * f * (3 - 2 * f);
      const a = normal(spec.key, 50 + octave, i);
      const b = normal(spec.key, 50 + octave, i + 1);
      logPrice += sigmaWeek * Math.sqrt(span) * 0.2 * (a + (b - a) * smooth);
    }
    return this.roundTick(spec, Math.exp(logPrice));
  }

  private roundTick(spec: SymbolSpec, price: number): number {
    return canon(Math.max(spec.tickSize, Math.round(price / spec.tickSize) * spec.tickSize));
  }

  private ceilTick(spec: SymbolSpec, price: number): number {
    return canon(Math.ceil(price / spec.tickSize - 1e-9) * spec.tickSize);
  }

  private floorTick(spec: SymbolSpec, price: number): number {
    return canon(Math.max(spec.tickSize, Math.floor(price / spec.tickSize + 1e-9) * spec.tickSize));
  }
}
