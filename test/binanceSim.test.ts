// The Binance simulator speaks Binance's wire format, enforces its limits and injects faults on demand.
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { BinanceSimulator, type SimulatorOptions } from '../dev/binanceSim/index.ts';
import { AcceleratedClock } from '../src/clock.ts';
import { candleOpenTimeAt, intervalMs } from '../src/domain.ts';
import { cleanupsAfterEach, until } from './support/wait.ts';

const MINUTE = 60_000;
/** A minute boundary, so tests can place "now" exactly relative to candle closes. */
const T0 = 1_700_000_040_000;
const cleanups = cleanupsAfterEach();

async function simulator(options: SimulatorOptions & { speed?: number; originClockMs?: number } = {}) {
  const clock = new AcceleratedClock({ speed: options.speed ?? 1, originRealMs: Date.now(), originClockMs: options.originClockMs ?? T0 + 1_000 });
  const sim = new BinanceSimulator({ seed: 42, symbols: 5, ...options, clock });
  await sim.start();
  cleanups.push(() => sim.stop());
  return { sim, clock };
}

interface Client {
  socket: WebSocket;
  frames: string[];
  closed: { code: number } | null;
  json(): unknown[];
}

async function connect(url: string): Promise<Client> {
  const socket = new WebSocket(url);
  const client: Client = {
    socket,
    frames: [],
    closed: null,
    json: () => client.frames.flatMap((frame) => {
      try {
        return [JSON.parse(frame) as unknown];
      } catch {
        return [];
      }
    }),
  };
  socket.on('message', (data) => client.frames.push(data.toString()));
  socket.on('close', (code) => (client.closed = { code }));
  cleanups.push(() => socket.terminate());
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return client;
}

type KlineEnvelope = { stream: string; data: { e: string; s: string; k: Record<string, unknown> & { t: number; x: boolean } } };

describe('BinanceSimulator REST', () => {
  it('serves klines as 12-field rows with string prices equal to candles(), the forming one only when the range reaches now', async () => {
    const { sim, clock } = await simulator();
    const now = clock.now();
    const forming = candleOpenTimeAt('5m', now);
    const response = await fetch(`${sim.restUrl}/api/v3/klines?symbol=BTCUSDT&interval=5m&limit=20`);
    expect(response.status).toBe(200);
    const rows = (await response.json()) as unknown[][];
    expect(rows).toHaveLength(20);
    for (const row of rows) {
      expect(row).toHaveLength(12);
      expect(row.map((cell) => typeof cell)).toEqual(['number', 'string', 'string', 'string', 'string', 'string', 'number', 'string', 'number', 'string', 'string', 'string']);
    }
    expect(rows.at(-1)![0]).toBe(forming);
    const closed = sim.candles('BTCUSDT', '5m', rows[0]![0] as number, forming - intervalMs('5m'));
    expect(closed).toHaveLength(19);
    const parsed = rows.slice(0, 19).map((row) => ({
      openTime: row[0],
      open: Number(row[1]),
      high: Number(row[2]),
      low: Number(row[3]),
      close: Number(row[4]),
      volume: Number(row[5]),
      closeTime: row[6],
      quoteVolume: Number(row[7]),
      trades: row[8],
      takerBuyBaseVolume: Number(row[9]),
      takerBuyQuoteVolume: Number(row[10]),
    }));
    expect(parsed).toEqual(closed);

    const past = forming - 10 * intervalMs('5m');
    const bounded = (await (await fetch(`${sim.restUrl}/api/v3/klines?symbol=BTCUSDT&interval=5m&startTime=${past}&endTime=${forming - 1}`)).json()) as unknown[][];
    expect(bounded.map((row) => row[0])).toEqual(Array.from({ length: 10 }, (_, i) => past + i * intervalMs('5m')));

    const bad = await fetch(`${sim.restUrl}/api/v3/klines?symbol=NOPEUSDT&interval=5m`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ code: -1121, msg: 'Invalid symbol.' });
  });

  it('lists symbols with statuses and serves 24 h tickers with Binance fields as strings', async () => {
    const { sim } = await simulator();
    const info = (await (await fetch(`${sim.restUrl}/api/v3/exchangeInfo`)).json()) as {
      rateLimits: unknown[];
      symbols: Array<{ symbol: string; status: string; quoteAsset: string; permissionSets: string[][] }>;
    };
    expect(info.rateLimits).toContainEqual({ rateLimitType: 'REQUEST_WEIGHT', interval: 'MINUTE', intervalNum: 1, limit: 6000 });
    const statuses = new Set(info.symbols.map((symbol) => symbol.status));
    expect(statuses).toEqual(new Set(['TRADING', 'BREAK', 'HALT', 'END_OF_DAY', 'CANCEL_ONLY']));
    const tradingUsdt = info.symbols.filter((symbol) => symbol.status === 'TRADING' && symbol.quoteAsset === 'USDT').map((symbol) => symbol.symbol);
    expect(new Set(sim.symbols())).toEqual(new Set(tradingUsdt));

    const tickers = (await (await fetch(`${sim.restUrl}/api/v3/ticker/24hr?symbols=${encodeURIComponent(JSON.stringify(sim.symbols()))}`)).json()) as Array<
      Record<string, unknown>
    >;
    const volumes = tickers.map((ticker) => Number(ticker.quoteVolume));
    expect(volumes).toEqual([...volumes].sort((a, b) => b - a));
    expect(typeof tickers[0]!.lastPrice).toBe('string');
    expect(typeof tickers[0]!.count).toBe('number');

    sim.faults.setSymbolStatus('ETHUSDT', 'BREAK');
    sim.faults.addSymbol('NEWUSDT');
    expect(sim.symbols()).not.toContain('ETHUSDT');
    expect(sim.symbols()).toContain('NEWUSDT');
  });

  it('reports used weight, answers 429 past 6000 a minute and 418 to a client that ignores Retry-After', async () => {
    const { sim } = await simulator({ banAfterIgnored429: 3 });
    const weights: number[] = [];
    let status = 200;
    let retryAfter: string | null = null;
    for (let i = 0; i < 80 && status === 200; i++) {
      const response = await fetch(`${sim.restUrl}/api/v3/ticker/24hr`);
      status = response.status;
      retryAfter = response.headers.get('retry-after');
      weights.push(Number(response.headers.get('x-mbx-used-weight-1m')));
      await response.arrayBuffer();
    }
    expect(weights.slice(0, 3)).toEqual([80, 160, 240]);
    expect(status).toBe(429);
    expect(weights.length).toBe(76);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await fetch(`${sim.restUrl}/api/v3/ping`)).status);
    expect(statuses).toEqual([429, 429, 429, 418, 418]);
    expect(sim.stats().violations.map((violation) => violation.split(':')[0])).toEqual(['rest_weight', 'rest_ban']);
    expect(sim.stats().weightUsedMax).toBe(6000);
  });

  it('injects REST failures, forced 429s, bans and latency on demand', async () => {
    const { sim } = await simulator();
    sim.faults.failRest(2, 503);
    expect((await fetch(`${sim.restUrl}/api/v3/time`)).status).toBe(503);
    expect((await fetch(`${sim.restUrl}/api/v3/time`)).status).toBe(503);
    sim.faults.rateLimit(1, 7);
    const limited = await fetch(`${sim.restUrl}/api/v3/time`);
    expect([limited.status, limited.headers.get('retry-after')]).toEqual([429, '7']);
    sim.faults.ban(0);
    sim.faults.ban(30);
    const banned = await fetch(`${sim.restUrl}/api/v3/time`);
    expect(banned.status).toBe(418);
    expect(Number(banned.headers.get('retry-after'))).toBeGreaterThan(25);
    expect(sim.stats().faults).toMatchObject({ restFailures: 2, rateLimit: 1, ban: 2 });
    expect(sim.stats().violations).toEqual([]);
  });
});

describe('BinanceSimulator streams', () => {
  it('streams kline envelopes and, at the close, an x:true kline equal to candle()', async () => {
    // 60 sim-s per real second, 5 sim-s before a minute closes.
    const { sim } = await simulator({ speed: 60, originClockMs: T0 + MINUTE - 5_000 });
    const client = await connect(`${sim.wsUrl}/stream?streams=btcusdt@kline_1m/ethusdt@ticker`);
    const klines = () => client.json().filter((m): m is KlineEnvelope => (m as KlineEnvelope).data?.e === 'kline');
    await until(() => klines().some((m) => m.data.k.x) && klines().some((m) => !m.data.k.x && m.data.k.t === T0 + MINUTE), 'a close and the next candle');
    const final = klines().find((m) => m.data.k.x)!;
    expect(final.stream).toBe('btcusdt@kline_1m');
    const truth = sim.candle('BTCUSDT', '1m', final.data.k.t);
    expect(final.data.k.t).toBe(T0);
    expect(final.data.k).toMatchObject({
      T: truth.closeTime,
      s: 'BTCUSDT',
      i: '1m',
      o: truth.open.toFixed(8),
      h: truth.high.toFixed(8),
      l: truth.low.toFixed(8),
      c: truth.close.toFixed(8),
      v: truth.volume.toFixed(8),
      q: truth.quoteVolume.toFixed(8),
      n: truth.trades,
    });
    expect(client.json().some((m) => (m as { stream: string }).stream === 'ethusdt@ticker')).toBe(true);
  });

  it('keeps Binance cadence in real time on an accelerated clock when asked, each stream on its own phase, closes still at the candle end', async () => {
    // ×20: a minute closes every 3 real seconds; start 10 sim-s (0.5 real s) before a close.
    const { sim, clock } = await simulator({ speed: 20, symbols: 12, originClockMs: T0 + MINUTE - 10_000, cadence: 'real', klineUpdateMs: 2000, tickerUpdateMs: 1000 });
    const symbols = sim.symbols().slice(0, 8).map((symbol) => symbol.toLowerCase());
    const streams = symbols.flatMap((symbol) => [`${symbol}@kline_1m`, `${symbol}@ticker`]);
    const client = await connect(`${sim.wsUrl}/stream?streams=${streams.join('/')}`);
    type Envelope = { stream: string; data: { e: string; E: number; k?: { t: number; x: boolean; c: string; T: number } } };
    const frames = () => client.json() as Envelope[];
    // Three real seconds: three ticker periods and one and a half kline periods of real time, a whole minute of the clock.
    const end = T0 + MINUTE + 50_000;
    await until(() => clock.now() >= end, 'three real seconds');
    const seen = frames().filter((frame) => frame.data.E <= end);
    for (const symbol of symbols) {
      const tickers = seen.filter((frame) => frame.stream === `${symbol}@ticker`).length;
      const updates = seen.filter((frame) => frame.stream === `${symbol}@kline_1m` && frame.data.k?.x === false).length;
      const closes = seen.filter((frame) => frame.stream === `${symbol}@kline_1m` && frame.data.k?.x === true);
      // On the clock's own pace (1 s and 2 s of the ×20 clock) this window would carry about 60 tickers and 30 updates.
      expect(tickers, `${symbol} tickers`).toBeGreaterThanOrEqual(2);
      expect(tickers, `${symbol} tickers`).toBeLessThanOrEqual(4);
      expect(updates, `${symbol} kline updates`).toBeGreaterThanOrEqual(1);
      expect(updates, `${symbol} kline updates`).toBeLessThanOrEqual(3);
      // The close itself is not paced: exactly one, in the pass at the candle's end (stamped when that pass ran: its timer
      // may fire a real millisecond late, 20 ms of this clock, and the next pass is a clock second later), equal to the candle.
      expect(closes).toHaveLength(1);
      expect(closes[0]!.data.E).toBeGreaterThanOrEqual(T0 + MINUTE);
      expect(closes[0]!.data.E).toBeLessThan(T0 + MINUTE + 1000);
      expect(Number(closes[0]!.data.k!.c)).toBe(sim.candle(symbol.toUpperCase(), '1m', T0).close);
    }
    // The streams do not all speak in the same pass: their phases spread them over the period.
    const tickerPasses = new Set(seen.filter((frame) => frame.data.e === '24hrTicker').map((frame) => frame.data.E));
    expect(tickerPasses.size).toBeGreaterThan(symbols.length);

    // Switched to the clock's pace, the same streams speak every clock second: twenty times as often in real time.
    sim.setCadence({ pace: 'clock', klineUpdateMs: 2000, tickerUpdateMs: 1000 });
    const switchedAt = clock.now();
    await until(() => clock.now() >= switchedAt + 10_000, 'half a real second');
    const after = frames().filter((frame) => frame.data.E > switchedAt && frame.data.E <= switchedAt + 10_000 && frame.data.e === '24hrTicker');
    expect(after.length / symbols.length).toBeGreaterThanOrEqual(5);
  });

  it('answers SUBSCRIBE, LIST_SUBSCRIPTIONS and bad requests the way Binance does', async () => {
    const { sim } = await simulator();
    const client = await connect(`${sim.wsUrl}/ws`);
    client.socket.send(JSON.stringify({ method: 'SUBSCRIBE', params: ['btcusdt@kline_1m', 'ethusdt@ticker'], id: 1 }));
    client.socket.send(JSON.stringify({ method: 'LIST_SUBSCRIPTIONS', id: 3 }));
    client.socket.send('{not json');
    client.socket.send(JSON.stringify({ method: 'SUBSCRIBE', params: ['BTCUSDT kline'], id: 4 }));
    await until(() => client.json().filter((m) => 'id' in (m as object)).length >= 4, 'four replies');
    const replies = client.json().filter((m) => 'id' in (m as object));
    expect(replies[0]).toEqual({ result: null, id: 1 });
    expect(replies[1]).toEqual({ result: ['btcusdt@kline_1m', 'ethusdt@ticker'], id: 3 });
    expect(replies[2]).toMatchObject({ error: { code: 3 }, id: null });
    expect(replies[3]).toMatchObject({ error: { code: 2 }, id: 4 });
    expect(sim.stats().controlMessagesReceived).toBe(4);
  });

  it('closes a connection sending more than 5 messages a second with 1008 and records it', async () => {
    const { sim } = await simulator();
    const client = await connect(`${sim.wsUrl}/stream`);
    for (let id = 1; id <= 6; id++) client.socket.send(JSON.stringify({ method: 'LIST_SUBSCRIPTIONS', id }));
    await until(() => client.closed !== null, 'the close');
    expect(client.closed!.code).toBe(1008);
    expect(sim.stats().violations).toEqual([expect.stringMatching(/^message_rate:/)]);
  });

  it('refuses more than 1024 streams on one connection and records it', async () => {
    const { sim } = await simulator();
    const client = await connect(`${sim.wsUrl}/stream`);
    const streams = Array.from({ length: 1025 }, (_, i) => `sim${i}usdt@ticker`);
    client.socket.send(JSON.stringify({ method: 'SUBSCRIBE', params: streams, id: 1 }));
    client.socket.send(JSON.stringify({ method: 'LIST_SUBSCRIPTIONS', id: 2 }));
    await until(() => client.json().length >= 2, 'two replies');
    expect(client.json()[0]).toMatchObject({ error: { code: 2 }, id: 1 });
    expect(client.json()[1]).toEqual({ result: [], id: 2 });
    expect(sim.stats().violations).toEqual([expect.stringMatching(/^stream_limit:/)]);
  });

  it('drops connections without a close frame, stalls and sends malformed frames on demand', async () => {
    const { sim, clock } = await simulator({ speed: 20 });
    const first = await connect(`${sim.wsUrl}/stream?streams=btcusdt@kline_1m`);
    const second = await connect(`${sim.wsUrl}/stream?streams=btcusdt@kline_1m`);
    await until(() => sim.stats().connectionsOpen === 2, 'two connections');
    sim.faults.dropConnections(0);
    await until(() => first.closed !== null, 'the drop');
    expect(first.closed!.code).toBe(1006);
    expect(second.closed).toBeNull();

    await until(() => second.frames.length > 0, 'a kline');
    sim.faults.stall();
    const seen = second.frames.length;
    const stalledAt = clock.now();
    // Six sim-seconds is three kline updates' worth of silence.
    await until(() => clock.now() >= stalledAt + 6_000, 'six stalled sim-seconds');
    expect(second.frames.length).toBeLessThanOrEqual(seen + 1);
    sim.faults.clearStall();
    await until(() => second.frames.length > seen + 1, 'the stream to resume');

    sim.faults.sendMalformed(3);
    await until(() => second.frames.length - second.json().length >= 1, 'an invalid JSON frame');
    await until(() => second.frames.some((frame) => frame.includes('"t":"soon"')), 'a wrongly typed frame');
    expect(sim.stats().faults).toMatchObject({ dropConnections: 1, connectionsDropped: 1, stall: 1, malformedFrames: 3 });
  });
});

describe('BinanceSimulator market', () => {
  it('keeps higher intervals exact aggregates of 1m candles, also around a scripted candle', async () => {
    const { sim, clock } = await simulator();
    const hour = candleOpenTimeAt('1h', clock.now()) - 5 * 60 * MINUTE;
    const check = () => {
      const minutes = sim.candles('SOLUSDT', '1m', hour, hour + 59 * MINUTE);
      const h = sim.candle('SOLUSDT', '1h', hour);
      expect(h.open).toBe(minutes[0]!.open);
      expect(h.close).toBe(minutes[59]!.close);
      expect(h.high).toBe(Math.max(...minutes.map((c) => c.high)));
      expect(h.low).toBe(Math.min(...minutes.map((c) => c.low)));
      expect(h.trades).toBe(minutes.reduce((sum, c) => sum + c.trades, 0));
      expect(h.volume).toBeCloseTo(minutes.reduce((sum, c) => sum + c.volume, 0), 6);
    };
    check();
    const scripted = hour + 59 * MINUTE;
    const spike = sim.candle('SOLUSDT', '1h', hour).high * 1.2;
    sim.scriptCandle('SOLUSDT', '1m', scripted, { close: spike, volume: 123_456 });
    expect(sim.candle('SOLUSDT', '1m', scripted)).toMatchObject({ close: sim.candle('SOLUSDT', '1m', scripted).high, volume: 123_456 });
    check();
    expect(sim.candle('SOLUSDT', '1h', hour).close).toBe(sim.candle('SOLUSDT', '1m', scripted).close);

    const again = new BinanceSimulator({ seed: 42, symbols: 5, clock });
    expect(again.candle('BTCUSDT', '4h', candleOpenTimeAt('4h', clock.now()))).toEqual(sim.candle('BTCUSDT', '4h', candleOpenTimeAt('4h', clock.now())));
  });

  it('generates 200 symbols × 4 intervals × 500 candles in seconds', async () => {
    const clock = new AcceleratedClock({ speed: 1, originRealMs: Date.now(), originClockMs: T0 });
    const sim = new BinanceSimulator({ seed: 3, symbols: 200, clock });
    const started = performance.now();
    for (const symbol of sim.symbols()) {
      for (const interval of ['1m', '5m', '1h', '4h'] as const) {
        const last = candleOpenTimeAt(interval, clock.now()) - intervalMs(interval);
        expect(sim.candles(symbol, interval, last - 499 * intervalMs(interval), last)).toHaveLength(500);
      }
    }
    expect(performance.now() - started).toBeLessThan(15_000);
  });
});
