// The real worker process (built dist/main.js) against its own local stack and the Binance simulator on an accelerated clock.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BinanceSimulator } from '../dev/binanceSim/index.ts';
import { type LocalStack, startLocalStack } from '../dev/localStack.ts';
import type { AcceleratedClock } from '../src/clock.ts';
import { candleOpenTimeAt } from '../src/domain.ts';
import { ROOT, type WorkerProcess, buildWorker, spawnWorker, waitFor, workerEnv } from '../dev/workerProcess.ts';
import { startSimulatedMarket } from './support/simulatedMarket.ts';

/** Worker-clock ms per real ms: a 1m candle closes every 2 s. */
const SPEED = 30;
const MINUTE = 60_000;
const SYMBOLS = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT'];
/** Candle volumes no generated candle has: a filter that looks for one matches exactly the scripted candle. */
const MARKER_VOLUME = 777_777;
const LATE_MARKER_VOLUME = 888_888;

const markerFilter = (volume: number) => ({
  refreshInterval: '1m',
  requiredTimeframes: ['1m'],
  code: `const k = timeframes['1m']; const last = k[k.length - 1]; return { match: parseFloat(last[5]) === ${volume}, conditions: ['marker volume'] };`,
});

/** A browser-style filter with helpers and parseFloat; true on every candle, so it shows the trader runs on every tick. */
const BROWSER_FILTER = {
  refreshInterval: '1m',
  requiredTimeframes: ['1m', '5m'],
  code: `
const klines = timeframes['1m'];
if (!klines || klines.length < 30) return false;
const rsi = helpers.getLatestRSI(klines, 14);
const ema = helpers.getLatestEMA(timeframes['5m'], 9);
const close = parseFloat(klines[klines.length - 1][4]);
return { match: rsi !== null && ema !== null && close > 0 && parseFloat(ticker.c) > 0, conditions: ['RSI ' + rsi.toFixed(1)] };
`,
};

const BROKEN_FILTERS = {
  'syntax error': 'return (',
  throws: "throw new Error('filter exploded');",
  'endless loop': 'while (true) {}',
  // A helper the library lacks, as AI-drafted filters call them: it throws on every symbol (the browser hides that).
  'missing helper': "return helpers.getLatestMA(timeframes['1m'], 20) > 0;",
} as const;

interface SignalRow {
  trader_id: string;
  symbol: string;
  interval: string;
  candle_open_time: Date;
  source: string;
  machine_id: string;
  provenance: { filterCodeHash: string; helpersVersion: string; workerVersion: string; closeToCommitMs?: number; timeframes: Record<string, { lastOpenTime: number; origin: string; length: number }> };
}

describe('worker process end to end', () => {
  let stack: LocalStack;
  let simulator: BinanceSimulator;
  let clock: AcceleratedClock;
  let worker: WorkerProcess;
  let userId: string;
  let workerJwt: string;
  let baseUrl: string;
  const traders: Record<string, string> = {};

  const insertTrader = async (name: string, filter: object) => {
    const [row] = await stack.sql<{ id: string }[]>`
      insert into public.traders (user_id, name, enabled, execution_mode, filter)
      values (${userId}, ${name}, true, 'cloud', ${stack.sql.json(filter as never)}) returning id`;
    traders[name] = row!.id;
    return row!.id;
  };
  const signalsOf = (traderId: string) =>
    stack.sql<SignalRow[]>`select trader_id, symbol, interval, candle_open_time, source, machine_id, provenance from public.signals where trader_id = ${traderId} order by candle_open_time`;
  const traderStatus = async (traderId: string) =>
    (await stack.sql<{ state: string; last_error: string | null; evaluations: string }[]>`select state, last_error, evaluations from public.trader_status where trader_id = ${traderId}`)[0];
  const workerState = async () => (await stack.sql<{ state: string }[]>`select state from public.worker_status where user_id = ${userId}`)[0]?.state;
  /** Open time of the 1m candle `ahead` candles after the one forming now. */
  const upcomingCandle = (ahead: number) => candleOpenTimeAt('1m', clock.now()) + ahead * MINUTE;
  /** Wait (polling) until the worker clock has passed `time`. */
  const untilClock = (time: number) => waitFor(`clock ${new Date(time).toISOString()}`, () => clock.now() >= time, 60_000, 20);

  beforeAll(async () => {
    const build = buildWorker('e2e');
    // Its own stack: this file stops PostgREST, which the shared one must never see.
    stack = await startLocalStack();
    userId = await stack.createUser();
    workerJwt = stack.mintUserJwt(userId, { worker: true });
    ({ clock, simulator } = await startSimulatedMarket(SPEED, { seed: 11, symbols: SYMBOLS, klineUpdateMs: 2000, tickerUpdateMs: 5000, restLatencyMs: 30 }));

    await insertTrader('marker', markerFilter(MARKER_VOLUME));
    await insertTrader('browser style', BROWSER_FILTER);
    for (const [name, code] of Object.entries(BROKEN_FILTERS)) await insertTrader(name, { refreshInterval: '1m', requiredTimeframes: ['1m'], code });
    // Off the contract but read like the browser reads it: a truthy string matches, with a warning, and is never a failure.
    await insertTrader('string verdict', { refreshInterval: '1m', requiredTimeframes: ['1m'], code: "return timeframes['1m'].length > 0 ? 'yes' : '';" });
    await insertTrader('invalid row', { refreshInterval: '7m', code: 'return true;' });

    worker = spawnWorker(
      build.entry,
      {
        ...workerEnv({ userId, supabaseUrl: stack.supabaseUrl, key: workerJwt, market: simulator, symbols: SYMBOLS, history: 120, clock }),
        MACHINE_ID: 'e2e-machine',
        FILTER_TIMEOUT_MS: '50',
        TRADER_FAILURE_LIMIT: '2',
        TRADER_POLL_MS: '30000',
      },
      build.dir,
    );
    const listening = await waitFor('the ops server to listen', () => worker.lines.find((line) => line.event === 'http_listening'), 30_000);
    baseUrl = `http://127.0.0.1:${listening.port as number}`;
  }, 120_000);

  afterAll(async () => {
    // Kept for a failing run: the worker's own account of what happened.
    if (worker) writeFileSync(join(ROOT, '.tmp', 'e2e', 'worker.log'), `${worker.stdout.join('\n')}\n${worker.stderr.join('')}`);
    await worker?.stop();
    await simulator?.stop();
    await stack?.stop();
  });

  it('boots to ready with full history and answers /health', async () => {
    await waitFor('/ready 200', async () => (await fetch(`${baseUrl}/ready`)).status === 200, 60_000, 100);
    expect((await fetch(`${baseUrl}/health`)).status).toBe(200);
    const steps = worker.lines.filter((line) => line.event === 'boot').map((line) => line.step);
    expect(steps).toEqual(['config', 'supabase', 'traders', 'market', 'catchup']);
    const market = worker.lines.find((line) => line.event === 'boot' && line.step === 'market')!;
    expect(market).toMatchObject({ symbols: 3, backfilled: true, pendingGaps: 0 });
    // The status row is written right after /ready turns 200: poll for it.
    await waitFor('worker_status ready', async () => /ready|degraded/.test((await workerState()) ?? ''), 30_000, 100);
    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/screener_stream_messages_total \d+/);
  });

  it('writes exactly one signal for a scripted candle, at its open time, with provenance', async () => {
    const scripted = upcomingCandle(2);
    // Two matching candles in a row on BTCUSDT are one episode: one signal, at the first.
    simulator.scriptCandle('ETHUSDT', '1m', scripted, { volume: MARKER_VOLUME });
    simulator.scriptCandle('BTCUSDT', '1m', scripted, { volume: MARKER_VOLUME });
    simulator.scriptCandle('BTCUSDT', '1m', scripted + MINUTE, { volume: MARKER_VOLUME });
    // Poll for the rows (a busy machine may tick late), then give a repeat every chance to appear.
    await waitFor('both signals', async () => (await signalsOf(traders.marker!)).length >= 2, 60_000, 200);
    await untilClock(scripted + 3 * MINUTE + 5000);
    const signals = await signalsOf(traders.marker!);
    expect(signals.map((signal) => [signal.symbol, signal.candle_open_time.getTime()])).toEqual([
      ['BTCUSDT', scripted],
      ['ETHUSDT', scripted],
    ]);
    const [first] = signals;
    expect(first).toMatchObject({ interval: '1m', source: 'cloud', machine_id: 'e2e-machine' });
    expect(first!.provenance.filterCodeHash).toMatch(/^[0-9a-f]{64}$/);
    // The filter saw the full backfilled history, ending with the scripted candle as it streamed in.
    expect(first!.provenance.timeframes['1m']).toMatchObject({ lastOpenTime: scripted, origin: 'stream', length: 120 });
    // Committed well under a real second after the closing kline arrived (provenance is in worker-clock ms).
    expect(first!.provenance.closeToCommitMs).toBeLessThan(SPEED * 1000);
    expect(first!.provenance.helpersVersion).toBeTruthy();
  });

  it('disables broken traders with reasons while the good ones keep running on time', async () => {
    for (const name of Object.keys(BROKEN_FILTERS)) {
      const status = await waitFor(`${name} disabled`, async () => {
        const row = await traderStatus(traders[name]!);
        return row?.state === 'disabled' ? row : null;
      }, 60_000, 200);
      expect(status.last_error, name).toBeTruthy();
    }
    expect((await traderStatus(traders['invalid row']!))?.state).toBe('disabled');
    const stringy = await waitFor('the string verdict recorded as a warning', async () => {
      const [row] = await stack.sql<{ state: string; last_warning: string | null; matches: string }[]>`select state, last_warning, matches from public.trader_status where trader_id = ${traders['string verdict']!}`;
      return row?.last_warning ? row : null;
    }, 60_000, 200);
    expect(stringy.state).toBe('running');
    expect(stringy.last_warning).toMatch(/^TRADER_CONTRACT: returned a string; .* read as a match by its truthiness/);
    // Matching on every candle, it matched on the one before too: counted as matches, but no rising edge, no signal.
    expect(Number(stringy.matches)).toBeGreaterThan(0);
    const before = Number((await traderStatus(traders['browser style']!))!.evaluations);
    // Every 1m close screens all three symbols: two more closes, two more rounds.
    const after = await waitFor('two more ticks of the good trader', async () => {
      const row = await traderStatus(traders['browser style']!);
      return row && Number(row.evaluations) - before >= 2 * SYMBOLS.length ? row : null;
    }, 60_000, 200);
    expect(after.state).toBe('running');
  });

  it('runs a trader inserted at run time within the poll period, subscribing a new interval if it needs one', async () => {
    const id = await insertTrader('hot reloaded', markerFilter(LATE_MARKER_VOLUME));
    const newInterval = await insertTrader('new interval', { refreshInterval: '3m', requiredTimeframes: ['3m'], code: "return timeframes['3m'].length >= 100;" });
    const scripted = upcomingCandle(2);
    simulator.scriptCandle('SOLUSDT', '1m', scripted, { volume: LATE_MARKER_VOLUME });
    const [signal] = await waitFor('a signal from the new trader', async () => {
      const rows = await signalsOf(id);
      return rows.length > 0 ? rows : null;
    }, 30_000, 200);
    expect(signal).toMatchObject({ symbol: 'SOLUSDT' });
    expect(signal!.candle_open_time.getTime()).toBe(scripted);
    // The 3m series was backfilled and streamed without a restart: the trader evaluates every symbol.
    const status = await waitFor('the 3m trader evaluated', async () => {
      const row = await traderStatus(newInterval);
      return row && Number(row.evaluations) >= SYMBOLS.length ? row : null;
    }, 30_000, 200);
    expect(status.state).toBe('running');
  });

  it('still writes exactly one signal when the connection drops across the candle close', async () => {
    const scripted = upcomingCandle(2);
    simulator.scriptCandle('SOLUSDT', '1m', scripted, { volume: MARKER_VOLUME });
    await untilClock(scripted + MINUTE - 1500);
    // Dropped, and the server stays silent past the close: the closing kline never arrives by stream.
    simulator.faults.stall(15_000);
    simulator.faults.dropConnections('all');
    const solana = async () => (await signalsOf(traders.marker!)).filter((row) => row.symbol === 'SOLUSDT');
    await waitFor('the signal of the candle that closed during the drop', async () => (await solana()).some((row) => row.candle_open_time.getTime() === scripted), 60_000, 200);
    await untilClock(scripted + 3 * MINUTE);
    const rows = await solana();
    expect(rows.map((row) => row.candle_open_time.getTime())).toEqual([scripted]);
  });

  it('loses no signal while PostgREST is down, and writes it once it is back', async () => {
    await stack.stopPostgrest();
    const scripted = upcomingCandle(1);
    simulator.scriptCandle('ETHUSDT', '1m', scripted, { volume: MARKER_VOLUME });
    await untilClock(scripted + 2 * MINUTE);
    await stack.startPostgrest();
    const rows = await waitFor('the buffered signal', async () => {
      const all = (await signalsOf(traders.marker!)).filter((row) => row.symbol === 'ETHUSDT' && row.candle_open_time.getTime() === scripted);
      return all.length > 0 ? all : null;
    }, 30_000, 200);
    expect(rows).toHaveLength(1);
  });

  it('exits 0 on SIGTERM with worker_status stopped, and never prints the key', async () => {
    worker.child.kill('SIGTERM');
    const { code } = await worker.exited;
    expect(code).toBe(0);
    expect(await workerState()).toBe('stopped');
    const output = worker.stdout.join('\n') + worker.stderr.join('');
    expect(output).not.toContain(workerJwt);
    expect(output).not.toContain(workerJwt.split('.')[2]!);
    expect(worker.lines.some((line) => line.event === 'shutdown' && line.step === 'done')).toBe(true);
  });
});
