// Property-based tests of the market edge: Binance frames and REST bodies of any shape, and candle updates in any order.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.ts';
import { type Candle, INTERVALS, type Interval } from '../src/domain.ts';
import { ProtocolError } from '../src/errors.ts';
import { silentLogger } from '../src/logger.ts';
import { BinanceWebSocketClient, type KlineEvent } from '../src/market/BinanceWebSocketClient.ts';
import { MarketStore } from '../src/market/MarketStore.ts';
import { decodeFrame, parseExchangeInfo, parseKlineRows, parseTickers24h } from '../src/market/parse.ts';
import type { Ticker } from '../src/domain.ts';
import { anyJson, check, nastyString } from './fuzz.support.ts';

// ---- generators of what Binance documents (https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams) ----

const symbolArb = fc.stringMatching(/^[A-Z0-9]{2,12}$/);
const intervalArb = fc.constantFrom(...INTERVALS);
const timeArb = fc.integer({ min: 0, max: 4_102_444_800_000 });
/** A finite decimal as Binance writes it (a string such as "0.00100000"), including huge and tiny magnitudes. */
const decimalArb = fc
  .tuple(fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e300, max: 1e300 }), fc.integer({ min: 0, max: 8 }), fc.boolean())
  .map(([value, digits, fixed]) => (fixed && Math.abs(value) < 1e20 ? value.toFixed(digits) : String(value)));
/** Fields Binance may add one day: a client must ignore them. */
const extraFieldsArb = fc.dictionary(fc.stringMatching(/^[a-z_]{3,8}$/), anyJson, { maxKeys: 3 });

const klinePayloadArb = fc.record({
  E: timeArb,
  s: symbolArb,
  k: fc.record({
    t: timeArb,
    T: timeArb,
    s: symbolArb,
    i: intervalArb,
    f: fc.integer(),
    L: fc.integer(),
    o: decimalArb,
    c: decimalArb,
    h: decimalArb,
    l: decimalArb,
    v: decimalArb,
    n: fc.nat(),
    x: fc.boolean(),
    q: decimalArb,
    V: decimalArb,
    Q: decimalArb,
    B: fc.constant('0'),
  }),
  extra: extraFieldsArb,
}).map(({ extra, ...payload }) => ({ ...extra, ...payload, e: 'kline', k: { ...extra, ...payload.k } }));

const tickerPayloadArb = fc.record({
  E: timeArb,
  s: symbolArb,
  p: decimalArb,
  P: decimalArb,
  w: decimalArb,
  x: decimalArb,
  c: decimalArb,
  Q: decimalArb,
  b: decimalArb,
  B: decimalArb,
  a: decimalArb,
  A: decimalArb,
  o: decimalArb,
  h: decimalArb,
  l: decimalArb,
  v: decimalArb,
  q: decimalArb,
  O: timeArb,
  C: timeArb,
  F: fc.integer(),
  L: fc.integer(),
  n: fc.nat(),
  extra: extraFieldsArb,
}).map(({ extra, ...payload }) => ({ ...extra, ...payload, e: '24hrTicker' }));

type KlinePayload = ReturnType<typeof klinePayloadArb.generate>['value'];

function envelope(stream: string, data: unknown): string {
  return JSON.stringify({ stream, data });
}

const DECIMAL_KLINE_FIELDS = ['o', 'c', 'h', 'l', 'v', 'q', 'V', 'Q'] as const;
const INTEGER_KLINE_FIELDS = ['t', 'T', 'n'] as const;
const DECIMAL_TICKER_FIELDS = ['c', 'p', 'P', 'w', 'o', 'h', 'l', 'v', 'q'] as const;

/** Values a decimal field must refuse: not a number at all, or a numeral beyond a double. */
const badDecimalArb = fc.oneof(
  nastyString.filter((text) => !/[0-9]/.test(text) || !Number.isFinite(Number(text))),
  fc.constantFrom('1e999', '9'.repeat(400), '-1e400', 'NaN', 'Infinity'),
  fc.constantFrom(null, true, false, [], {}, ['1'], { value: '1' }),
);
/** Values an integer field (times, counts) must refuse. */
const badIntegerArb = fc.oneof(
  fc.double({ noInteger: true, noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(2 ** 53, -(2 ** 53) - 2, 1e300, '1700000000000', '1', null, true, [], {}),
  nastyString,
);
const badIntervalArb = fc.oneof(
  nastyString.filter((text) => !(INTERVALS as readonly string[]).includes(text)),
  fc.constantFrom('1M ', '1min', '60s', 1, null, true, ['1m'], { i: '1m' }),
);
const badBooleanArb = fc.constantFrom('true', 'false', 1, 0, null, 'x', [], {});

function expectedCandle(k: KlinePayload['k']): Candle {
  return {
    openTime: k.t,
    open: Number(k.o),
    high: Number(k.h),
    low: Number(k.l),
    close: Number(k.c),
    volume: Number(k.v),
    closeTime: k.T,
    quoteVolume: Number(k.q),
    trades: k.n,
    takerBuyBaseVolume: Number(k.V),
    takerBuyQuoteVolume: Number(k.Q),
  };
}

/** decodeFrame's contract for bad input: a ProtocolError whose one bounded line names what was wrong. */
function rejectionOf(frame: string): ProtocolError {
  try {
    decodeFrame(frame);
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    return error as ProtocolError;
  }
  throw new Error(`expected a rejection of ${frame.slice(0, 200)}`);
}

function expectClearRejection(error: ProtocolError, field?: string): void {
  expect(error.code).toBe('PROTOCOL');
  expect(error.message).toMatch(/^invalid [^\n\r]+$/);
  // The raw value is quoted but cut short: a 1 MB frame must not become a 1 MB log line.
  expect(error.message.length).toBeLessThan(200);
  if (field !== undefined) expect(error.message.startsWith(`invalid ${field}: `)).toBe(true);
}

/** The real client without sockets: frames go through the same handleFrame as a connection's. */
function frameClient() {
  const client = new BinanceWebSocketClient({ baseUrl: 'ws://127.0.0.1:1', clock: systemClock, logger: silentLogger() });
  const klines: KlineEvent[] = [];
  const tickers: Ticker[] = [];
  client.on('kline', (event) => klines.push(event));
  client.on('ticker', (ticker) => tickers.push(ticker));
  return { client, klines, tickers };
}

describe('fuzzing the stream decoder', () => {
  it('accepts every documented kline frame, whatever its numbers and extra fields, with exactly the sent values', () => {
    check(
      fc.property(klinePayloadArb, (payload) => {
        const frame = decodeFrame(envelope(`${payload.s.toLowerCase()}@kline_${payload.k.i}`, payload));
        expect(frame.kind).toBe('kline');
        if (frame.kind !== 'kline') return;
        expect(frame.kline).toEqual({ symbol: payload.k.s, interval: payload.k.i, closed: payload.k.x, eventTime: payload.E, candle: expectedCandle(payload.k) });
      }),
      300,
    );
  });

  it('accepts every documented 24hr ticker frame with exactly the sent values', () => {
    check(
      fc.property(tickerPayloadArb, (payload) => {
        const frame = decodeFrame(envelope(`${payload.s.toLowerCase()}@ticker`, payload));
        expect(frame).toEqual({
          kind: 'ticker',
          stream: `${payload.s.toLowerCase()}@ticker`,
          ticker: {
            symbol: payload.s,
            eventTime: payload.E,
            lastPrice: Number(payload.c),
            priceChange: Number(payload.p),
            priceChangePercent: Number(payload.P),
            weightedAvgPrice: Number(payload.w),
            openPrice: Number(payload.o),
            highPrice: Number(payload.h),
            lowPrice: Number(payload.l),
            volume: Number(payload.v),
            quoteVolume: Number(payload.q),
            tradeCount: payload.n,
          },
        });
      }),
      200,
    );
  });

  it('rejects a kline whose one field has a wrong type, a non-numeral or a huge number, naming that field', () => {
    const mutation = fc.oneof(
      fc.record({ field: fc.constantFrom(...DECIMAL_KLINE_FIELDS), value: fc.option(badDecimalArb, { nil: undefined }) }),
      fc.record({ field: fc.constantFrom(...INTEGER_KLINE_FIELDS), value: fc.option(badIntegerArb, { nil: undefined }) }),
      fc.record({ field: fc.constant('i' as const), value: fc.option(badIntervalArb, { nil: undefined }) }),
      fc.record({ field: fc.constant('x' as const), value: fc.option(badBooleanArb, { nil: undefined }) }),
    );
    check(
      fc.property(klinePayloadArb, mutation, (payload, { field, value }) => {
        const k: Record<string, unknown> = { ...payload.k };
        if (value === undefined) delete k[field];
        else k[field] = value;
        expectClearRejection(rejectionOf(envelope('btcusdt@kline_1m', { ...payload, k })), `k.${field}`);
      }),
      400,
    );
  });

  it('rejects a ticker whose one numeric field is broken, and a kline or ticker without an event time, naming the field', () => {
    check(
      fc.property(tickerPayloadArb, fc.constantFrom(...DECIMAL_TICKER_FIELDS), badDecimalArb, (payload, field, value) => {
        expectClearRejection(rejectionOf(envelope('btcusdt@ticker', { ...payload, [field]: value })), field);
      }),
      200,
    );
    check(
      fc.property(fc.oneof(klinePayloadArb, tickerPayloadArb), fc.option(badIntegerArb, { nil: undefined }), (payload, value) => {
        const broken: Record<string, unknown> = { ...payload, E: value };
        if (value === undefined) delete broken.E;
        expectClearRejection(rejectionOf(envelope('x', broken)), 'E');
      }),
      100,
    );
  });

  it('rejects every truncation of a valid frame as malformed JSON', () => {
    check(
      fc.property(fc.oneof(klinePayloadArb, tickerPayloadArb), fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), (payload, cut) => {
        const frame = envelope('btcusdt@kline_1m', payload);
        const truncated = frame.slice(0, Math.floor(cut * frame.length));
        expectClearRejection(rejectionOf(truncated), 'frame JSON');
      }),
      200,
    );
  });

  it('turns any text, JSON or garbling of a valid frame into exactly one counted outcome in the client, never a throw', () => {
    const garbled = fc
      .tuple(fc.oneof(klinePayloadArb, tickerPayloadArb), fc.array(fc.tuple(fc.nat(), fc.string({ unit: 'binary', minLength: 0, maxLength: 3 })), { minLength: 1, maxLength: 4 }))
      .map(([payload, edits]) => {
        let frame = envelope('btcusdt@kline_1m', payload);
        for (const [at, text] of edits) {
          const position = at % (frame.length + 1);
          frame = frame.slice(0, position) + text + frame.slice(position + 1);
        }
        return frame;
      });
    const shapes = fc.oneof(
      nastyString,
      anyJson.map((value) => JSON.stringify(value)),
      fc.record({ stream: fc.oneof(fc.string(), anyJson), data: anyJson }).map((value) => JSON.stringify(value)),
      fc.record({ stream: fc.string(), data: fc.record({ e: fc.oneof(fc.string(), anyJson), E: anyJson }) }).map((value) => JSON.stringify(value)),
      fc.record({ result: anyJson, id: anyJson }, { requiredKeys: ['id'] }).map((value) => JSON.stringify(value)),
      fc.record({ e: fc.oneof(fc.constant('serverShutdown'), fc.string()), E: anyJson }).map((value) => JSON.stringify(value)),
      garbled,
    );
    const { client, klines, tickers } = frameClient();
    check(
      fc.property(shapes, (text) => {
        const before = client.stats();
        const seen = { klines: klines.length, tickers: tickers.length };
        let decoded: ReturnType<typeof decodeFrame> | ProtocolError;
        try {
          decoded = decodeFrame(text);
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError);
          expectClearRejection(error as ProtocolError);
          decoded = error as ProtocolError;
        }
        expect(() => client.handleFrame(text, 1)).not.toThrow();
        const after = client.stats();
        expect(after.messages).toBe(before.messages + 1);
        const outcome = {
          malformed: after.malformed - before.malformed,
          unknown: after.unknownEvents - before.unknownEvents,
          kline: klines.length - seen.klines,
          ticker: tickers.length - seen.tickers,
        };
        const kind = decoded instanceof ProtocolError ? 'malformed' : decoded.kind;
        expect(outcome).toEqual({ malformed: kind === 'malformed' ? 1 : 0, unknown: kind === 'unknown' ? 1 : 0, kline: kind === 'kline' ? 1 : 0, ticker: kind === 'ticker' ? 1 : 0 });
        if (!(decoded instanceof ProtocolError) && decoded.kind === 'kline') expect(klines.at(-1)!.candle).toEqual(decoded.kline.candle);
      }),
      1000,
    );
  });

  it('counts any event Binance may add as unknown, not as malformed', () => {
    const known = ['kline', '24hrTicker', 'serverShutdown'];
    const { client } = frameClient();
    check(
      fc.property(fc.string().filter((e) => !known.includes(e)), anyJson, (eventType, E) => {
        const before = client.stats();
        client.handleFrame(JSON.stringify({ stream: 'btcusdt@whatever', data: { e: eventType, E } }), 1);
        const after = client.stats();
        expect([after.unknownEvents - before.unknownEvents, after.malformed - before.malformed]).toEqual([1, 0]);
      }),
      200,
    );
  });
});

describe('fuzzing the REST parsers', () => {
  const klineRowArb = fc
    .tuple(timeArb, decimalArb, decimalArb, decimalArb, decimalArb, decimalArb, timeArb, decimalArb, fc.nat(), decimalArb, decimalArb)
    .map((fields) => [...fields, '0'] as unknown[]);
  const KLINE_ROW_FIELDS = ['openTime', 'open', 'high', 'low', 'close', 'volume', 'closeTime', 'quoteVolume', 'trades', 'takerBuyBaseVolume', 'takerBuyQuoteVolume'];

  it('parses every documented klines body exactly, and names the broken field and row of any other', () => {
    check(
      fc.property(fc.array(klineRowArb, { maxLength: 20 }), (rows) => {
        const candles = parseKlineRows(rows);
        expect(candles.map((c) => [c.openTime, c.open, c.close, c.closeTime, c.trades, c.takerBuyQuoteVolume])).toEqual(
          rows.map((r) => [r[0], Number(r[1]), Number(r[4]), r[6], r[8], Number(r[10])]),
        );
      }),
      200,
    );
    check(
      fc.property(fc.array(klineRowArb, { minLength: 1, maxLength: 10 }), fc.nat(), fc.integer({ min: 0, max: 10 }), badDecimalArb, (rows, rowPick, column, value) => {
        const row = rowPick % rows.length;
        const broken = rows.map((r) => [...r]);
        broken[row]![column] = column === 0 || column === 6 || column === 8 ? (typeof value === 'number' ? 0.5 : value) : value;
        const error = (() => {
          try {
            parseKlineRows(broken);
          } catch (caught) {
            return caught;
          }
          throw new Error('expected a rejection');
        })();
        expect(error).toBeInstanceOf(ProtocolError);
        const message = (error as ProtocolError).message;
        expect(message).toMatch(new RegExp(`^invalid klines\\.${row}: invalid ${KLINE_ROW_FIELDS[column]}: `));
        expect(message).not.toMatch(/[\n\r]/);
        expect(message.length).toBeLessThan(400);
      }),
      300,
    );
  });

  it('skips a 24hr ticker row with one broken numeric field instead of handing on NaN', () => {
    const fields = ['priceChange', 'priceChangePercent', 'weightedAvgPrice', 'openPrice', 'highPrice', 'lowPrice', 'lastPrice', 'volume', 'quoteVolume'] as const;
    const validRow = fc.record({
      symbol: symbolArb,
      priceChange: decimalArb,
      priceChangePercent: decimalArb,
      weightedAvgPrice: decimalArb,
      openPrice: decimalArb,
      highPrice: decimalArb,
      lowPrice: decimalArb,
      lastPrice: decimalArb,
      volume: decimalArb,
      quoteVolume: decimalArb,
      closeTime: timeArb,
      count: fc.nat(),
    });
    check(
      fc.property(fc.array(validRow, { minLength: 1, maxLength: 5 }), fc.nat(), fc.constantFrom(...fields), badDecimalArb, (rows, pick, field, value) => {
        const broken = pick % rows.length;
        const body = rows.map((row, i) => (i === broken ? { ...row, [field]: value } : row));
        const tickers = parseTickers24h(body);
        expect(tickers.map((t) => t.symbol)).toEqual(rows.filter((_, i) => i !== broken).map((row) => row.symbol));
      }),
      200,
    );
  });

  it('never throws anything but a ProtocolError on any body, and never hands on a malformed symbol or ticker', () => {
    const tickerRowArb = fc.record({
      symbol: fc.oneof(symbolArb, nastyString, anyJson),
      priceChange: fc.oneof(decimalArb, badDecimalArb),
      priceChangePercent: fc.oneof(decimalArb, badDecimalArb),
      weightedAvgPrice: fc.oneof(decimalArb, badDecimalArb),
      openPrice: fc.oneof(decimalArb, badDecimalArb),
      highPrice: fc.oneof(decimalArb, badDecimalArb),
      lowPrice: fc.oneof(decimalArb, badDecimalArb),
      lastPrice: fc.oneof(decimalArb, badDecimalArb),
      volume: fc.oneof(decimalArb, badDecimalArb),
      quoteVolume: fc.oneof(decimalArb, badDecimalArb),
      closeTime: fc.oneof(timeArb, badIntegerArb),
      count: fc.oneof(fc.nat(), badIntegerArb),
    }, { requiredKeys: [] });
    const exchangeSymbolArb = fc.record({
      symbol: fc.oneof(symbolArb, anyJson),
      status: fc.oneof(fc.constantFrom('TRADING', 'BREAK', 'END_OF_DAY'), anyJson),
      baseAsset: fc.oneof(symbolArb, anyJson),
      quoteAsset: fc.oneof(fc.constant('USDT'), anyJson),
      isSpotTradingAllowed: anyJson,
      permissions: fc.oneof(fc.constant(['SPOT']), anyJson),
      permissionSets: fc.oneof(fc.constant([['SPOT']]), anyJson),
    }, { requiredKeys: [] });
    const bodies = fc.oneof(anyJson, fc.array(fc.oneof(tickerRowArb, anyJson), { maxLength: 6 }), fc.record({ symbols: fc.oneof(anyJson, fc.array(fc.oneof(exchangeSymbolArb, anyJson), { maxLength: 6 })) }));
    const attempt = <T>(parse: () => T): T | null => {
      try {
        return parse();
      } catch (error) {
        expect(error).toBeInstanceOf(ProtocolError);
        expect((error as Error).message).not.toMatch(/[\n\r]/);
        return null;
      }
    };
    check(
      fc.property(bodies, (body) => {
        for (const ticker of attempt(() => parseTickers24h(body)) ?? []) {
          expect(typeof ticker.symbol === 'string' && ticker.symbol.length > 0).toBe(true);
          const numbers = [ticker.eventTime, ticker.lastPrice, ticker.priceChange, ticker.priceChangePercent, ticker.weightedAvgPrice, ticker.openPrice, ticker.highPrice, ticker.lowPrice, ticker.volume, ticker.quoteVolume, ticker.tradeCount];
          expect(numbers.every(Number.isFinite), JSON.stringify(ticker)).toBe(true);
        }
        for (const symbol of attempt(() => parseExchangeInfo(body)) ?? []) {
          expect(typeof symbol.symbol === 'string' && symbol.symbol.length > 0).toBe(true);
          expect([typeof symbol.status, typeof symbol.baseAsset, typeof symbol.quoteAsset, typeof symbol.spotTrading]).toEqual(['string', 'string', 'string', 'boolean']);
        }
        attempt(() => parseKlineRows(body));
      }),
      600,
    );
  });
});

describe('fuzzing the MarketStore', () => {
  const MINUTE = 60_000;
  const T0 = 1_767_225_600_000;
  const HISTORY = 12;
  const SERIES = [
    ['BTCUSDT', '1m'],
    ['ETHUSDT', '1m'],
    ['BTCUSDT', '5m'],
  ] as const;

  function candleAt(index: number, interval: Interval, close: number): Candle {
    const step = interval === '5m' ? 5 * MINUTE : MINUTE;
    const openTime = T0 + index * step;
    return { openTime, open: close, high: close + 1, low: close - 1, close, volume: 10 + index, closeTime: openTime + step - 1, quoteVolume: close * 10, trades: index, takerBuyBaseVolume: 1, takerBuyQuoteVolume: close };
  }

  /** The close a candle ends with; forming updates carry other values, so a leaked forming update is visible. */
  const finalClose = (series: number, index: number) => 1000 * (series + 1) + index;

  type Update = { series: number; index: number; closed: boolean; close: number };

  const deliveryArb = fc
    .tuple(
      fc.array(fc.uniqueArray(fc.integer({ min: 0, max: 30 }), { minLength: 1, maxLength: 25 }), { minLength: SERIES.length, maxLength: SERIES.length }),
      fc.array(fc.tuple(fc.nat(), fc.nat(), fc.boolean(), fc.integer({ min: 1, max: 999 })), { maxLength: 40 }),
    )
    .map(([present, extras]) => {
      // In order: each present candle gets a forming update, then its close.
      const inOrder: Update[] = [];
      for (let series = 0; series < SERIES.length; series++) {
        for (const index of [...present[series]!].sort((a, b) => a - b)) {
          inOrder.push({ series, index, closed: false, close: 1 + index });
          inOrder.push({ series, index, closed: true, close: finalClose(series, index) });
        }
      }
      // Re-deliveries of a close (REST and stream both), late forming updates, forming updates of candles never closed (gaps).
      const noise: Update[] = extras.map(([seriesPick, indexPick, redeliver, close]) => {
        const series = seriesPick % SERIES.length;
        const indices = present[series]!;
        const index = redeliver ? indices[indexPick % indices.length]! : indexPick % 32;
        return redeliver ? { series, index, closed: true, close: finalClose(series, index) } : { series, index, closed: false, close };
      });
      return { inOrder, noise };
    })
    .chain(({ inOrder, noise }) => fc.shuffledSubarray([...inOrder, ...noise], { minLength: inOrder.length + noise.length }).map((shuffled) => ({ inOrder, shuffled })));

  function apply(store: MarketStore, updates: Update[]): void {
    for (const update of updates) {
      const [symbol, interval] = SERIES[update.series]!;
      store.applyCandle(symbol, interval, candleAt(update.index, interval, update.close), update.closed, 'stream', 1);
    }
  }

  function closedOf(store: MarketStore, series: number): Candle[] {
    const [symbol, interval] = SERIES[series]!;
    const view = store.series(symbol, interval);
    return view ? Array.from({ length: view.length }, (_, i) => view.get(i)) : [];
  }

  it('ends in the same closed series as in-order delivery, bounded, with the forming candle never among the closed ones', () => {
    check(
      fc.property(deliveryArb, ({ inOrder, shuffled }) => {
        const ordered = new MarketStore({ history: HISTORY, clock: systemClock });
        apply(ordered, inOrder);
        const store = new MarketStore({ history: HISTORY, clock: systemClock });
        const announced = new Map<string, number>();
        store.on('candleClosed', (event) => {
          // Store, then announce: the announced candle is already in its series.
          expect(store.series(event.symbol, event.interval)!.has(event.candle.openTime)).toBe(true);
          const key = `${event.symbol}|${event.interval}|${event.candle.openTime}`;
          announced.set(key, (announced.get(key) ?? 0) + 1);
        });
        apply(store, shuffled);
        for (let series = 0; series < SERIES.length; series++) {
          const [symbol, interval] = SERIES[series]!;
          const expected = closedOf(ordered, series);
          const actual = closedOf(store, series);
          expect(actual).toEqual(expected);
          expect(actual.length).toBeLessThanOrEqual(HISTORY);
          // Only final values: a forming update never overwrote a closed candle.
          for (const candle of actual) expect(candle.close).toBe(finalClose(series, Math.round((candle.openTime - T0) / (interval === '5m' ? 5 * MINUTE : MINUTE))));
          const forming = store.forming(symbol, interval);
          const lastClosed = store.series(symbol, interval)?.lastOpenTime();
          if (forming !== undefined && lastClosed !== undefined) expect(forming.openTime).toBeGreaterThan(lastClosed);
        }
        // Announced once per candle at most, however often it was delivered.
        expect([...announced.values()].every((count) => count === 1)).toBe(true);
      }),
      400,
    );
  });
});
