// The opt-in 'textbook' library checked against an independent implementation (the technicalindicators package) or a textbook definition.
// (The default 'webapp' library is checked against the web app's stated behaviour in test/parity.*.test.ts.)
import { ADX, BollingerBands, EMA, Highest, Lowest, MACD, RSI, SMA, Stochastic, StochasticRSI, VWAP, bearishengulfingpattern, bullishengulfingpattern } from 'technicalindicators';
import { describe, expect, it } from 'vitest';
import { HELPERS_VERSIONS, helperFunctions, helpersLibraryVersion, helpersSource, TEXTBOOK_HELPERS as h, type TextbookHelpers } from '../src/screening/helpers.ts';
import { randomWalk, seededRandom, toKlines } from './screening.support.ts';

const candles = randomWalk({ seed: 42, count: 500, interval: '1h', lastOpenTime: Date.UTC(2026, 0, 10) });
const klines = toKlines(candles);
const closes = klines.map((k) => k[4]!);
const highs = klines.map((k) => k[2]!);
const lows = klines.map((k) => k[3]!);
const volumes = klines.map((k) => k[5]!);
/** The same candles as the browser receives them: strings. */
const stringKlines = klines.map((k) => k.map((v) => String(v)));

/** Compare the tail of a null-padded series with a reference that starts at the first defined value. */
function expectTail(series: Array<number | null>, reference: number[], tolerance: number): void {
  const tail = series.slice(series.length - reference.length);
  expect(tail.every((v) => v !== null && Number.isFinite(v))).toBe(true);
  let worst = 0;
  for (let i = 0; i < reference.length; i++) worst = Math.max(worst, Math.abs(tail[i]! - reference[i]!));
  expect(worst).toBeLessThanOrEqual(tolerance);
  expect(series.slice(0, series.length - reference.length).every((v) => v === null)).toBe(true);
}

describe('textbook helpers against independent references', () => {
  it('names each library version for provenance, distinctly', () => {
    const versions = HELPERS_VERSIONS.map(helpersLibraryVersion);
    expect(versions).toEqual([expect.stringMatching(/^webapp@\S+$/), expect.stringMatching(/^textbook@\S+$/)]);
    expect(() => helpersLibraryVersion('browser' as never)).toThrow(/unknown helpers version "browser"/);
  });

  it('moving averages match technicalindicators SMA to 1e-9', () => {
    const sma20 = SMA.calculate({ period: 20, values: closes });
    expectTail(h.calculateMASeries(klines, 20), sma20, 1e-9);
    expect(h.calculateMA(klines, 20)).toBeCloseTo(sma20.at(-1)!, 9);
    expect(h.calculateSMA(closes, 20)).toBeCloseTo(sma20.at(-1)!, 9);
    expect(h.calculateAvgVolume(klines, 30)).toBeCloseTo(SMA.calculate({ period: 30, values: volumes }).at(-1)!, 6);
  });

  it('RSI is Wilder RSI as technicalindicators computes it (which rounds to 2 decimals)', () => {
    const reference = RSI.calculate({ period: 14, values: closes });
    expectTail(h.calculateRSI(klines, 14)!, reference, 0.006);
    expect(h.getLatestRSI(klines, 14)).toBeCloseTo(reference.at(-1)!, 2);
  });

  it('EMA series is seeded with the SMA like technicalindicators EMA', () => {
    const reference = EMA.calculate({ period: 21, values: closes });
    expectTail(h.calculateEMASeries(klines, 21), reference, 1e-9);
    expect(h.getLatestEMA(klines, 21)).toBeCloseTo(reference.at(-1)!, 9);
  });

  it('calculateEMA of plain values is the first-value-seeded recurrence', () => {
    const k = 2 / 11;
    let ema = closes[0]!;
    for (let i = 1; i < closes.length; i++) ema = closes[i]! * k + ema * (1 - k);
    expect(h.calculateEMA(closes, 10)).toBeCloseTo(ema, 9);
  });

  it('MACD values match technicalindicators MACD with exponential averages', () => {
    const reference = MACD.calculate({ values: closes, fastPeriod: 12, slowPeriod: 26, signalPeriod: 9, SimpleMAOscillator: false, SimpleMASignal: false });
    const ours = h.calculateMACDValues(klines);
    expectTail(ours.macdLine, reference.map((r) => r.MACD!), 1e-9);
    const withSignal = reference.filter((r) => r.signal !== undefined);
    expectTail(ours.signalLine, withSignal.map((r) => r.signal!), 1e-9);
    expectTail(ours.histogram, withSignal.map((r) => r.histogram!), 1e-9);
    const latest = h.getLatestMACD(klines);
    expect(latest.macd).toBeCloseTo(reference.at(-1)!.MACD!, 9);
    expect(latest.signal).toBeCloseTo(reference.at(-1)!.signal!, 9);
    expect(latest.histogram).toBeCloseTo(reference.at(-1)!.histogram!, 9);
  });

  it('calculateMACD of closes keeps the web app first-value-seeded definition', () => {
    const ema = (values: number[], period: number) => {
      const k = 2 / (period + 1);
      let e = values[0]!;
      for (let i = 1; i < values.length; i++) e = values[i]! * k + e * (1 - k);
      return e;
    };
    const macdValues: number[] = [];
    for (let i = 25; i < 200; i++) macdValues.push(ema(closes.slice(0, i + 1), 12) - ema(closes.slice(0, i + 1), 26));
    const macd = ema(closes.slice(0, 200), 12) - ema(closes.slice(0, 200), 26);
    const result = h.calculateMACD(closes.slice(0, 200))!;
    expect(result.MACD).toBeCloseTo(macd, 9);
    expect(result.signal).toBeCloseTo(ema(macdValues, 9), 9);
    expect(result.histogram).toBeCloseTo(macd - ema(macdValues, 9), 9);
  });

  it('ADX matches technicalindicators ADX (rounded to 2 decimals there)', () => {
    const reference = ADX.calculate({ period: 14, high: highs, low: lows, close: closes });
    expect(h.calculateADX(klines, 14)).toBeCloseTo(reference.at(-1)!.adx, 1);
    expect(h.calculateADX(klines.slice(0, 100), 14)).toBeCloseTo(ADX.calculate({ period: 14, high: highs.slice(0, 100), low: lows.slice(0, 100), close: closes.slice(0, 100) }).at(-1)!.adx, 1);
  });

  it('Stochastic matches technicalindicators %K, and its smoothing is an SMA of it', () => {
    const reference = Stochastic.calculate({ period: 14, signalPeriod: 3, high: highs, low: lows, close: closes });
    const fast = h.calculateStochastic(klines, 14, 3, 1)!;
    expect(fast.k).toBeCloseTo(reference.at(-1)!.k, 6);
    expect(fast.d).toBeCloseTo(reference.at(-1)!.d!, 6);
    const rawK = reference.map((r) => r.k);
    const smoothK = SMA.calculate({ period: 3, values: rawK });
    const slow = h.calculateStochastic(klines, 14, 3, 3)!;
    expect(slow.k).toBeCloseTo(smoothK.at(-1)!, 6);
    expect(slow.d).toBeCloseTo(SMA.calculate({ period: 3, values: smoothK }).at(-1)!, 6);
  });

  it('StochRSI matches technicalindicators StochasticRSI within its RSI rounding', () => {
    const reference = StochasticRSI.calculate({ values: closes, rsiPeriod: 14, stochasticPeriod: 14, kPeriod: 3, dPeriod: 3 });
    const ours = h.calculateStochRSI(klines)!;
    const last = reference.at(-1)!;
    expect(ours.k.at(-1)!).toBeCloseTo(last.k, 0);
    expect(ours.d.at(-1)!).toBeCloseTo(last.d, 0);
    expect(h.getLatestStochRSI(klines)).toEqual({ k: ours.k.at(-1), d: ours.d.at(-1) });
  });

  it('highest high and lowest low match technicalindicators Highest/Lowest', () => {
    expect(h.getHighestHigh(klines, 50)).toBe(Highest.calculate({ period: 50, values: highs }).at(-1));
    expect(h.getLowestLow(klines, 50)).toBe(Lowest.calculate({ period: 50, values: lows }).at(-1));
  });

  it('engulfing patterns agree with technicalindicators on every window of a gapping series', () => {
    // Opens independent of the previous close, so bodies can engulf one another.
    const random = seededRandom(3);
    const gapping = Array.from({ length: 400 }, (_, i) => {
      const open = 100 + random() * 10;
      const close = 100 + random() * 10;
      return [i * 60_000, open, Math.max(open, close) + 1, Math.min(open, close) - 1, close, 10, i * 60_000 + 59_999, 1000, 5, 5, 500, 0];
    });
    let seen = 0;
    for (let end = 3; end <= gapping.length; end++) {
      const window = gapping.slice(end - 3, end);
      const pair = { open: [window[0]![1]!, window[1]![1]!], high: [window[0]![2]!, window[1]![2]!], low: [window[0]![3]!, window[1]![3]!], close: [window[0]![4]!, window[1]![4]!] };
      const expected = bullishengulfingpattern(pair) ? 'bullish' : bearishengulfingpattern(pair) ? 'bearish' : null;
      const actual = h.detectEngulfingPattern(window);
      expect(actual).toBe(expected);
      if (actual) seen++;
    }
    expect(seen).toBeGreaterThan(20);
  });

  it('Bollinger Bands match technicalindicators BollingerBands', () => {
    const reference = BollingerBands.calculate({ period: 20, stdDev: 2, values: closes });
    const ours = h.calculateBollingerBands(klines, 20, 2);
    expectTail(ours.upper, reference.map((r) => r.upper), 1e-8);
    expectTail(ours.middle, reference.map((r) => r.middle), 1e-8);
    expectTail(ours.lower, reference.map((r) => r.lower), 1e-8);
    expect(h.getLatestBollingerBands(klines).upper).toBeCloseTo(reference.at(-1)!.upper, 8);
  });

  it('VWAP matches technicalindicators VWAP, anchored and not', () => {
    const reference = VWAP.calculate({ high: highs, low: lows, close: closes, volume: volumes });
    expectTail(h.calculateVWAPSeries(klines), reference, 1e-8);
    expect(h.calculateVWAP(klines)).toBeCloseTo(reference.at(-1)!, 8);
    const anchored = VWAP.calculate({ high: highs.slice(-48), low: lows.slice(-48), close: closes.slice(-48), volume: volumes.slice(-48) });
    expect(h.getLatestVWAP(klines, 48)).toBeCloseTo(anchored.at(-1)!, 8);
  });

  it('VWAP bands follow the textbook definition (deviation of typical prices from the VWAP)', () => {
    const anchor = 100;
    const start = klines.length - anchor;
    const vwap = VWAP.calculate({ high: highs.slice(start), low: lows.slice(start), close: closes.slice(start), volume: volumes.slice(start) });
    const bands = h.calculateVWAPBands(klines, anchor, 2);
    for (const i of [start, start + 10, klines.length - 1]) {
      const typical = klines.slice(start, i + 1).map((k) => (k[2]! + k[3]! + k[4]!) / 3);
      const center = vwap[i - start]!;
      const deviation = Math.sqrt(typical.reduce((sum, t) => sum + (t - center) ** 2, 0) / typical.length);
      expect(bands.vwap[i]).toBeCloseTo(center, 8);
      expect(bands.upperBand[i]).toBeCloseTo(center + 2 * deviation, 6);
      expect(bands.lowerBand[i]).toBeCloseTo(center - 2 * deviation, 6);
    }
    expect(h.getLatestVWAPBands(klines, anchor, 2).upperBand).toBeCloseTo(bands.upperBand.at(-1)!, 9);
  });

  it('PVI follows the textbook definition (moves only on rising volume)', () => {
    let pvi = 1000;
    const expected = [pvi];
    for (let i = 1; i < klines.length; i++) {
      if (volumes[i]! > volumes[i - 1]!) pvi += ((closes[i]! - closes[i - 1]!) / closes[i - 1]!) * pvi;
      expected.push(pvi);
    }
    expectTail(h.calculatePVISeries(klines), expected, 1e-6);
    expect(h.getLatestPVI(klines)).toBeCloseTo(expected.at(-1)!, 6);
  });

  it('high-volume nodes find the price where volume concentrates, and the node queries use them', () => {
    // Prices span 90..120 (30 bins of 1.0); heavy volume trades inside the bin [100, 101).
    const random = seededRandom(11);
    const dense = Array.from({ length: 120 }, (_, i) => {
      if (i === 0) return [0, 95, 120, 94, 96, 10, 59_999, 0, 1, 5, 0, 0];
      if (i === 1) return [60_000, 95, 96, 90, 94, 10, 119_999, 0, 1, 5, 0, 0];
      if (i % 3 === 0) return [i * 60_000, 100.4, 100.6, 100.3, 100.5, 50_000, i * 60_000 + 59_999, 0, 1, 30_000, 0, 0];
      const open = 92 + random() * 25;
      const close = open + (random() - 0.5);
      return [i * 60_000, open, Math.max(open, close) + 0.2, Math.min(open, close) - 0.2, close, 100, i * 60_000 + 59_999, 0, 1, 50, 0, 0];
    });
    const nodes = h.calculateHighVolumeNodes(dense);
    expect(nodes.length).toBeGreaterThan(0);
    const strongest = nodes[0]!;
    expect(strongest.strength).toBe(100);
    expect(strongest.priceRange[0]).toBeCloseTo(100, 9);
    expect(strongest.priceRange[1]).toBeCloseTo(101, 9);
    expect(strongest.buyVolume).toBeGreaterThan(strongest.sellVolume);
    expect(h.isNearHVN(strongest.price, nodes)).toBe(true);
    expect(h.isNearHVN(strongest.price * 2, nodes)).toBe(false);
    expect(h.getClosestHVN(strongest.price + 0.01, nodes, 'below')).toBe(strongest);
    expect(h.countHVNInRange(strongest.priceRange[0], strongest.priceRange[1], nodes)).toBe(1);
    const sum = nodes.reduce((s, n) => s + n.buyVolume + n.sellVolume - n.volume, 0);
    expect(Math.abs(sum)).toBeLessThan(1e-6);
  });

  it('divergence: a lower price low with a higher indicator low is bullish, the mirror is bearish', () => {
    const price = [10, 9, 10, 11, 12, 11, 10, 9, 8, 9, 10, 11, 12, 13, 12, 11, 10, 9, 8, 7, 8, 9];
    const indicator = price.map((_, i) => (i < 12 ? 30 : 40));
    expect(h.detectGenericDivergence(price, indicator, 22, 5)).toBe('bullish_regular');
    const inverted = price.map((p) => 30 - p);
    expect(h.detectGenericDivergence(inverted, indicator.map((v) => 100 - v), 22, 5)).toBe('bearish_regular');
    expect(h.detectGenericDivergence(price, price, 22, 5)).toBeNull();
    expect([null, 'bullish_regular', 'bearish_regular']).toContain(h.detectRSIDivergence(klines));
  });

  it('accepts the browser string klines with identical results', () => {
    expect(h.getLatestRSI(stringKlines as never, 14)).toBe(h.getLatestRSI(klines, 14));
    expect(h.getLatestBollingerBands(stringKlines as never)).toEqual(h.getLatestBollingerBands(klines));
    expect(h.calculateHighVolumeNodes(stringKlines as never)).toEqual(h.calculateHighVolumeNodes(klines));
  });

  it('insufficient or broken data yields null or null-padded series, never NaN or a throw', () => {
    const short = klines.slice(0, 5);
    const results: unknown[] = [];
    for (const [name, fn] of Object.entries(h)) {
      for (const input of [short, [], null, [[1, 'x', 'y', 'z', 'w', 'v']]]) {
        const result = (fn as (...args: unknown[]) => unknown)(input, 14);
        results.push(result);
        expect(JSON.stringify(result) ?? 'undefined', name).not.toMatch(/NaN|Infinity/);
      }
    }
    expect(h.calculateRSI(short, 14)).toBeNull();
    expect(h.calculateMA(short, 20)).toBeNull();
    expect(h.calculateSMA([1, 2], 5)).toBeNull();
    expect(h.calculateEMASeries(short, 20)).toEqual([null, null, null, null, null]);
    expect(h.getLatestMACD(short)).toEqual({ macd: null, signal: null, histogram: null });
    expect(h.calculateADX(short)).toBeNull();
    expect(h.calculateStochastic(short)).toBeNull();
  });

  it('the source injected into isolates rebuilds the textbook library, not the default one', () => {
    const rebuilt = new Function(helpersSource('textbook'))() as TextbookHelpers;
    expect(Object.keys(rebuilt)).toEqual(Object.keys(h));
    expect(rebuilt.getLatestRSI(klines, 14)).toBe(h.getLatestRSI(klines, 14));
    expect(rebuilt.calculateHighVolumeNodes(klines)).toEqual(h.calculateHighVolumeNodes(klines));
    expect(rebuilt.calculateADX(klines, 14)).toBe(h.calculateADX(klines, 14));
    expect(rebuilt.calculateStochRSI(klines)).toEqual(h.calculateStochRSI(klines));
    expect(rebuilt.calculateMACD(closes)).toEqual(h.calculateMACD(closes));
    expect(rebuilt.calculateStochastic(klines)).not.toEqual(helperFunctions('webapp').calculateStochastic(klines));
    expect(helperFunctions('textbook')).toBe(h);
  });
});
