import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../src/errors.ts';
import { decodeFrame, parseExchangeInfo, parseKlineRows, parseTickers24h } from '../src/market/parse.ts';
import { parseStreamName, planSubscriptions, streamsFor } from '../src/market/subscriptions.ts';
import { backoffDelay } from '../src/backoff.ts';

// Payload from https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#klinecandlestick-streams-for-utc
const KLINE = {
  e: 'kline', E: 1672515782136, s: 'BNBBTC',
  k: { t: 1672515780000, T: 1672515839999, s: 'BNBBTC', i: '1m', f: 100, L: 200, o: '0.0010', c: '0.0020', h: '0.0025', l: '0.0015', v: '1000', n: 100, x: false, q: '1.0000', V: '500', Q: '0.500', B: '123456' },
};
// https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#individual-symbol-ticker-streams
const TICKER = {
  e: '24hrTicker', E: 1672515782136, s: 'BNBBTC', p: '0.0015', P: '250.00', w: '0.0018', x: '0.0009', c: '0.0025', Q: '10', b: '0.0024', B: '10', a: '0.0026', A: '100', o: '0.0010', h: '0.0025', l: '0.0010', v: '10000', q: '18', O: 0, C: 86400000, F: 0, L: 18150, n: 18151,
};
// https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints#klinecandlestick-data
const KLINE_ROW = [1499040000000, '0.01634790', '0.80000000', '0.01575800', '0.01577100', '148976.11427815', 1499644799999, '2434.19055334', 308, '1756.87402397', '28.46694368', '0'];

describe('parse', () => {
  it('decodes a combined-stream kline into a numeric candle', () => {
    const frame = decodeFrame(JSON.stringify({ stream: 'bnbbtc@kline_1m', data: KLINE }));
    expect(frame.kind).toBe('kline');
    if (frame.kind !== 'kline') return;
    expect(frame.kline).toMatchObject({ symbol: 'BNBBTC', interval: '1m', closed: false });
    expect(frame.kline.candle).toEqual({
      openTime: 1672515780000, open: 0.001, high: 0.0025, low: 0.0015, close: 0.002, volume: 1000,
      closeTime: 1672515839999, quoteVolume: 1, trades: 100, takerBuyBaseVolume: 500, takerBuyQuoteVolume: 0.5,
    });
  });

  it('decodes a 24hr ticker', () => {
    const frame = decodeFrame(JSON.stringify({ stream: 'bnbbtc@ticker', data: TICKER }));
    expect(frame).toMatchObject({ kind: 'ticker', ticker: { symbol: 'BNBBTC', lastPrice: 0.0025, priceChangePercent: 250, quoteVolume: 18, tradeCount: 18151 } });
  });

  it('names the field and the raw value of a malformed payload', () => {
    const bad = { ...KLINE, k: { ...KLINE.k, c: 'abc' } };
    expect(() => decodeFrame(JSON.stringify({ stream: 'x', data: bad }))).toThrow(ProtocolError);
    expect(() => decodeFrame(JSON.stringify({ stream: 'x', data: bad }))).toThrow(/k\.c.*"abc"/);
    expect(() => decodeFrame('{not json')).toThrow(/frame JSON/);
    expect(() => decodeFrame('x'.repeat(5000))).toThrow(/…/);
  });

  it('reports unknown events, control replies and serverShutdown without throwing', () => {
    expect(decodeFrame(JSON.stringify({ stream: 'bnbbtc@depth', data: { e: 'depthUpdate' } }))).toMatchObject({ kind: 'unknown', eventType: 'depthUpdate' });
    expect(decodeFrame('{"result":null,"id":3}')).toMatchObject({ kind: 'control', id: 3 });
    expect(decodeFrame('{"e":"serverShutdown","E":1}')).toMatchObject({ kind: 'serverShutdown' });
  });

  it('parses REST kline rows and rejects a row naming the bad field', () => {
    expect(parseKlineRows([KLINE_ROW])[0]).toMatchObject({ openTime: 1499040000000, close: 0.015771, trades: 308 });
    expect(() => parseKlineRows([[...KLINE_ROW.slice(0, 4), 'NaN?', ...KLINE_ROW.slice(5)]])).toThrow(/close/);
  });

  it('reads exchangeInfo tolerantly: any status, permissionSets or permissions, broken entries skipped', () => {
    const symbols = parseExchangeInfo({
      timezone: 'UTC',
      symbols: [
        { symbol: 'BTCUSDT', status: 'TRADING', baseAsset: 'BTC', quoteAsset: 'USDT', permissionSets: [['SPOT', 'MARGIN']] },
        { symbol: 'OLDUSDT', status: 'TRADING', baseAsset: 'OLD', quoteAsset: 'USDT', permissions: ['MARGIN'] },
        { symbol: 'NEWUSDT', status: 'SOMETHING_NEW', baseAsset: 'NEW', quoteAsset: 'USDT' },
        { nosymbol: true },
      ],
    });
    expect(symbols).toEqual([
      { symbol: 'BTCUSDT', status: 'TRADING', baseAsset: 'BTC', quoteAsset: 'USDT', spotTrading: true },
      { symbol: 'OLDUSDT', status: 'TRADING', baseAsset: 'OLD', quoteAsset: 'USDT', spotTrading: false },
      { symbol: 'NEWUSDT', status: 'SOMETHING_NEW', baseAsset: 'NEW', quoteAsset: 'USDT', spotTrading: true },
    ]);
    expect(() => parseExchangeInfo({ nope: 1 })).toThrow(/exchangeInfo\.symbols/);
  });

  it('parses ticker/24hr rows', () => {
    const tickers = parseTickers24h([{ symbol: 'BTCUSDT', priceChange: '1', priceChangePercent: '2', weightedAvgPrice: '3', openPrice: '4', highPrice: '5', lowPrice: '6', lastPrice: '7', volume: '8', quoteVolume: '9', closeTime: 10, count: 11 }]);
    expect(tickers).toEqual([{ symbol: 'BTCUSDT', eventTime: 10, lastPrice: 7, priceChange: 1, priceChangePercent: 2, weightedAvgPrice: 3, openPrice: 4, highPrice: 5, lowPrice: 6, volume: 8, quoteVolume: 9, tradeCount: 11 }]);
  });

  it('decodes well over 100,000 kline frames per second', () => {
    const frame = JSON.stringify({ stream: 'bnbbtc@kline_1m', data: KLINE });
    const count = 50_000;
    const started = performance.now();
    for (let i = 0; i < count; i++) decodeFrame(frame);
    const perSecond = count / ((performance.now() - started) / 1000);
    // A loose floor: the machine is shared; the benchmark reports the real figure.
    expect(perSecond).toBeGreaterThan(100_000);
  });
});

describe('subscriptions', () => {
  it('names streams as Binance does and reads them back', () => {
    expect(streamsFor(['BTCUSDT'], ['1m', '1h'])).toEqual(['btcusdt@ticker', 'btcusdt@kline_1m', 'btcusdt@kline_1h']);
    expect(parseStreamName('btcusdt@kline_1h')).toEqual({ kind: 'kline', symbol: 'BTCUSDT', interval: '1h' });
    expect(parseStreamName('btcusdt@depth')).toBeUndefined();
  });

  it('shards into connections of at most N streams and diffs without moving unchanged streams', () => {
    const first = planSubscriptions([], ['a', 'b', 'c', 'd', 'e'], 2);
    expect(first.newConnections).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
    const current = first.newConnections.map((streams) => new Set(streams));
    const second = planSubscriptions(current, ['a', 'c', 'd', 'e', 'f', 'g', 'h'], 2);
    expect(second.changes).toEqual([{ subscribe: ['f'], unsubscribe: ['b'] }, { subscribe: [], unsubscribe: [] }, { subscribe: ['g'], unsubscribe: [] }]);
    expect(second.newConnections).toEqual([['h']]);
    expect(() => planSubscriptions([], ['a'], 1025)).toThrow(RangeError);
  });
});

describe('backoffDelay', () => {
  it('grows exponentially up to the cap with full jitter', () => {
    expect(backoffDelay(0, { baseMs: 100, random: () => 0.999 })).toBe(99);
    expect(backoffDelay(3, { baseMs: 100, random: () => 0.5 })).toBe(400);
    expect(backoffDelay(50, { baseMs: 100, maxMs: 1000, random: () => 0.5 })).toBe(500);
    expect(backoffDelay(2, { random: () => 0 })).toBe(0);
  });
});
