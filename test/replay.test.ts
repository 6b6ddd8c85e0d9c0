// Replay against the live worker: the signals it wrote over a window of the simulator are exactly those replay finds there.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BinanceSimulator } from '../dev/binanceSim/index.ts';
import type { AcceleratedClock } from '../src/clock.ts';
import { candleOpenTimeAt } from '../src/domain.ts';
import { silentLogger } from '../src/logger.ts';
import { BinanceRestClient } from '../src/market/BinanceRestClient.ts';
import { runReplay } from '../src/replay/cli.ts';
import { KlineCache } from '../src/replay/KlineCache.ts';
import { ReplayEngine, type ReplaySignal } from '../src/replay/ReplayEngine.ts';
import { Screener } from '../src/screening/Screener.ts';
import { parseTraderRow } from '../src/database/parse.ts';
import { waitFor } from '../dev/workerProcess.ts';
import { inProcessWorker } from './support/inProcessWorker.ts';
import { startSimulatedMarket } from './support/simulatedMarket.ts';
import { createTestUser, insertTrader, sharedStack } from './support/stack.ts';

/** A 1m candle closes every 3 s of real time. */
const SPEED = 20;
const MINUTE = 60_000;
const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];
/** inProcessWorker's KLINE_HISTORY: replay keeps series as long as the worker did. */
const HISTORY = 60;
const MARKER_VOLUME = 777_777;
/** Matches only the scripted candles, and names what it saw in its conditions (compared too). */
const MARKER_FILTER = {
  refreshInterval: '1m',
  requiredTimeframes: ['1m'],
  code: `const k = timeframes['1m'];
const last = k[k.length - 1];
if (parseFloat(last[5]) !== ${MARKER_VOLUME}) return false;
return { match: true, conditions: ['volume marker', 'bars ' + k.length, 'close ' + last[4]] };`,
};

const stack = sharedStack();
let clock: AcceleratedClock;
let simulator: BinanceSimulator;
let cacheDir: string;

beforeAll(async () => {
  ({ clock, simulator } = await startSimulatedMarket(SPEED, { seed: 16, symbols: SYMBOLS, klineUpdateMs: 3000, tickerUpdateMs: 10_000 }));
  cacheDir = mkdtempSync(join(tmpdir(), 'replay-cache-'));
});

afterAll(async () => {
  await simulator.stop();
  rmSync(cacheDir, { recursive: true, force: true });
});

/** The trader as the worker loads it, read back from its row. */
async function loadTrader(id: string) {
  const [row] = await stack.sql<Array<{ id: string; user_id: string; name: string; enabled: boolean; execution_mode: string; filter: unknown; created_at: Date; updated_at: Date }>>`
    select id, user_id, name, enabled, execution_mode, filter, created_at, updated_at from public.traders where id = ${id}`;
  const parsed = parseTraderRow({ ...row!, created_at: row!.created_at.toISOString(), updated_at: row!.updated_at.toISOString() });
  if (!parsed.ok) throw new Error(parsed.rejected.reason);
  return parsed.trader;
}

async function replay(traderId: string, from: number, to: number) {
  const trader = await loadTrader(traderId);
  const rest = new BinanceRestClient({ baseUrl: simulator.restUrl, clock, logger: silentLogger(), timeoutMs: 600_000 });
  const cache = new KlineCache({ dir: cacheDir, sourceUrl: simulator.restUrl, rest, clock });
  const screener = new Screener({ threads: 1, filterTimeoutMs: 200, filterMemoryMb: 16, failureLimit: 3, clock, logger: silentLogger() });
  await screener.start();
  try {
    const engine = new ReplayEngine({ candles: cache, screener, history: HISTORY, clock, logger: silentLogger() });
    return { report: await engine.replay({ trader, symbols: SYMBOLS, from, to }), cache: cache.stats() };
  } finally {
    await screener.stop();
  }
}

/** The signals the live worker wrote in [from, to), in replay's shape and order. */
async function liveSignals(traderId: string, from: number, to: number): Promise<ReplaySignal[]> {
  const rows = await stack.sql<Array<{ trader_id: string; symbol: string; interval: string; candle_open_time: Date; price: string; matched_conditions: string[] }>>`
    select trader_id, symbol, interval, candle_open_time, price, matched_conditions from public.signals
    where trader_id = ${traderId} and candle_open_time >= ${new Date(from)} and candle_open_time < ${new Date(to)}`;
  return sortSignals(
    rows.map((row) => ({
      trader_id: row.trader_id,
      symbol: row.symbol,
      interval: row.interval as ReplaySignal['interval'],
      candle_open_time: row.candle_open_time.toISOString(),
      price: Number(row.price),
      conditions: row.matched_conditions,
    })),
  );
}

const sortSignals = (signals: ReplaySignal[]) =>
  [...signals].sort((a, b) => a.candle_open_time.localeCompare(b.candle_open_time) || a.symbol.localeCompare(b.symbol));

describe('replay', () => {
  it('reproduces exactly the signals the live worker wrote over the same window, from its start or mid-episode', async () => {
    const user = await createTestUser(stack);
    const traderId = await insertTrader(stack, { userId: user.id, name: 'marker', filter: MARKER_FILTER });
    const { orchestrator } = inProcessWorker({ stack, user, simulator, clock, symbols: SYMBOLS, logger: silentLogger() });
    await orchestrator.start();
    let liveWindow: { from: number; to: number };
    try {
      // The candle forming at ready is the first the worker screens on its own close.
      const from = candleOpenTimeAt('1m', clock.now());
      const episode = from + 2 * MINUTE;
      // BTC: an episode of two candles (one signal), then a new one; ETH: one candle inside BTC's episode.
      simulator.scriptCandle('BTCUSDT', '1m', episode, { volume: MARKER_VOLUME });
      simulator.scriptCandle('BTCUSDT', '1m', episode + MINUTE, { volume: MARKER_VOLUME });
      simulator.scriptCandle('ETHUSDT', '1m', episode + MINUTE, { volume: MARKER_VOLUME });
      simulator.scriptCandle('BTCUSDT', '1m', episode + 3 * MINUTE, { volume: MARKER_VOLUME });
      liveWindow = { from, to: episode + 5 * MINUTE };
      // Past the window's last close and the worker's tick on it (the grace is 100 real ms).
      await waitFor('the window closed and screened', () => clock.now() >= liveWindow.to + 20_000, 60_000, 50);
    } finally {
      await orchestrator.stop(5_000);
    }
    const live = await liveSignals(traderId, liveWindow.from, liveWindow.to);
    // The window holds what was scripted, so the comparison below is not two empty lists agreeing.
    expect(live.map((signal) => [signal.symbol, Date.parse(signal.candle_open_time) - liveWindow.from])).toEqual([
      ['BTCUSDT', 2 * MINUTE],
      ['ETHUSDT', 3 * MINUTE],
      ['BTCUSDT', 5 * MINUTE],
    ]);

    const whole = await replay(traderId, liveWindow.from, liveWindow.to);
    expect(sortSignals(whole.report.signals)).toEqual(live);
    // One verdict line per closed candle of the window: 7 candles, both symbols each time, 4 matches, 3 edges.
    expect(whole.report.candles).toHaveLength(7);
    expect(whole.report.candles.every((candle) => candle.evaluated === 2 && candle.errors === 0 && candle.skipped === 0)).toBe(true);
    expect(whole.report.candles.reduce((sum, candle) => sum + candle.matched, 0)).toBe(4);
    expect(whole.report.candles.reduce((sum, candle) => sum + candle.signals, 0)).toBe(3);

    // Starting inside BTC's episode: its continuing candle is primed against the one before, as the live tick does, so no signal.
    const midEpisode = liveWindow.from + 3 * MINUTE;
    const late = await replay(traderId, midEpisode, liveWindow.to);
    expect(sortSignals(late.report.signals)).toEqual(await liveSignals(traderId, midEpisode, liveWindow.to));
    expect(late.report.signals.map((signal) => signal.symbol)).toEqual(['ETHUSDT', 'BTCUSDT']);
    // The second replay read its history from the disk cache, not the simulator.
    expect(whole.cache.chunksFetched).toBeGreaterThan(0);
    expect(late.cache.chunksFetched).toBe(0);
    expect(late.cache.chunksFromDisk).toBeGreaterThan(0);
    expect(readdirSync(cacheDir)).toHaveLength(1);

    // The CLI, configured like the worker, loads the trader by id through the user's worker key and prints the same signals.
    const env = {
      USER_ID: user.id,
      SUPABASE_URL: stack.supabaseUrl,
      SUPABASE_KEY: user.workerJwt,
      BINANCE_REST_URL: simulator.restUrl,
      KLINE_HISTORY: String(HISTORY),
      // The clock's parameters: the CLI then judges closes on the simulator's time.
      CLOCK: clock.spec(),
      SYMBOLS: SYMBOLS.join(','),
    };
    const window = ['--from', new Date(liveWindow.from).toISOString(), '--to', String(liveWindow.to), '--cache-dir', cacheDir];
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (text: string) => void out.push(text), err: (text: string) => void err.push(text) };
    expect(await runReplay(['--trader', traderId, ...window, '--json'], env, io)).toBe(0);
    expect(out).toHaveLength(1);
    expect(sortSignals(JSON.parse(out[0]!) as ReplaySignal[])).toEqual(live);
    expect(err.join('\n')).toMatch(/7 candles: 14 evaluations, 4 matches, 3 signals, 0 errors/);
    out.length = 0;
    expect(await runReplay(['--trader', traderId, ...window, '--csv'], env, io)).toBe(0);
    const csv = out[0]!.split('\n');
    expect(csv[0]).toBe('trader_id,symbol,interval,candle_open_time,price,conditions');
    expect(csv.slice(1).map((line) => line.split(',').slice(1, 4).join(','))).toEqual(live.map((s) => `${s.symbol},${s.interval},${s.candle_open_time}`));
    // A time it cannot read is a usage error (exit 2) that says what it accepts.
    err.length = 0;
    expect(await runReplay(['--trader', traderId, '--from', 'yesterday-ish'], env, io)).toBe(2);
    expect(err.join('\n')).toMatch(/--from must be ISO 8601 or epoch ms/);
  }, 90_000);
});
