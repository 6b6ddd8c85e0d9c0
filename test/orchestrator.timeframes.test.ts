// Every timeframe a trader requires must be complete before it is evaluated: a failing 1h gap fill against real parts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BinanceSimulator } from '../dev/binanceSim/index.ts';
import { AcceleratedClock, systemClock } from '../src/clock.ts';
import { silentLogger } from '../src/logger.ts';
import type { Orchestrator } from '../src/Orchestrator.ts';
import type { SignalProvenance } from '../src/domain.ts';
import { inProcessWorker } from './support/inProcessWorker.ts';
import { type TestUser, createTestUser, insertTrader, sharedStack } from './support/stack.ts';
import { waitFor } from '../dev/workerProcess.ts';

/** A 1m candle closes every 3 s of real time. */
const SPEED = 20;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];
/** The hour boundary the test spans: the 1h candle closing there is missed by stream and its REST fill fails. */
const H = Math.ceil(systemClock.now() / HOUR) * HOUR + HOUR;

/** Matches on every candle that opens on an even minute: a signal at each of them, each a rising edge. */
const PULSE = {
  refreshInterval: '1m',
  requiredTimeframes: ['1m', '1h'],
  code: `const k = timeframes['1m']; const h = timeframes['1h'];
if (!h || h.length === 0) return false;
return Math.floor(k[k.length - 1][0] / 60000) % 2 === 0;`,
};
/** Matches whenever it is shown a 1h series that lacks the hour candle closed by its 1m candle's close: stale data. */
const STALE_DETECTOR = {
  refreshInterval: '1m',
  requiredTimeframes: ['1m', '1h'],
  code: `const k = timeframes['1m']; const h = timeframes['1h'];
const boundary = k[k.length - 1][6] + 1;
const want = Math.floor(boundary / 3600000) * 3600000 - 3600000;
return !h || h.length === 0 || h[h.length - 1][0] !== want;`,
};

const stack = sharedStack();
let clock: AcceleratedClock;
let simulator: BinanceSimulator;
let user: TestUser;
let orchestrator: Orchestrator;
let pulseId: string;
let detectorId: string;

interface Row {
  trader_id: string;
  symbol: string;
  candle_open_time: Date;
  provenance: SignalProvenance;
}

const signals = async (traderId: string, fromOpenTime: number) =>
  stack.sql<Row[]>`
    select trader_id, symbol, candle_open_time, provenance from public.signals
    where trader_id = ${traderId} and candle_open_time >= ${new Date(fromOpenTime)} order by candle_open_time, symbol`;
const untilClock = (time: number) => waitFor(`clock ${new Date(time).toISOString()}`, () => clock.now() >= time, 60_000, 20);

beforeAll(async () => {
  // The run starts 2.5 simulated minutes before the hour boundary (7.5 s of real time).
  const now = systemClock.now();
  clock = new AcceleratedClock({ speed: SPEED, originRealMs: now, originClockMs: H - 150_000 });
  simulator = new BinanceSimulator({ seed: 11, clock, symbols: SYMBOLS, klineUpdateMs: 3000, tickerUpdateMs: 10_000 });
  await simulator.start();
  user = await createTestUser(stack);
  pulseId = await insertTrader(stack, { userId: user.id, name: 'pulse', filter: PULSE });
  detectorId = await insertTrader(stack, { userId: user.id, name: 'stale detector', filter: STALE_DETECTOR });
  const logger = silentLogger();
  ({ orchestrator } = inProcessWorker({ stack, user, simulator, clock, symbols: SYMBOLS, logger }));
  await orchestrator.start();
}, 60_000);

afterAll(async () => {
  await orchestrator?.stop(5_000);
  await simulator?.stop();
});

describe('a trader requiring a higher timeframe', () => {
  it('is never evaluated on a 1h series whose gap fill fails, and is evaluated on every skipped candle once the fill lands', async () => {
    expect(orchestrator.readiness().ready).toBe(true);
    // Silent across the hour: the 1h candle closing at H arrives by no stream, and its REST fill fails for 3 minutes.
    await untilClock(H - 15_000);
    simulator.faults.failKlines('1h', 3 * MINUTE);
    simulator.faults.stall(40_000);
    simulator.faults.dropConnections('all');

    // 1m ticks go on (their own fill works) while the 1h series waits: the pairs are skipped, and the readiness says why.
    await untilClock(H + 100_000);
    await waitFor('degraded naming the 1h timeframe', () => /1h incomplete/.test(orchestrator.readiness().reasons.join('; ')), 10_000);
    // The candle opened at H (closed at H+1m) is even: its pulse signal waits for the fill.
    expect(await signals(pulseId, H)).toEqual([]);
    const waiting = orchestrator.serviceLevels().find((level) => level.interval === '1m')!;
    expect(waiting.waitingFor['1h']).toBe(SYMBOLS.length);

    // Once the fill lands, every skipped candle is evaluated on the market as it stood at its own close.
    const evenCandles = [H, H + 2 * MINUTE, H + 4 * MINUTE];
    await untilClock(H + 5 * MINUTE + 5_000);
    await waitFor('a pulse signal on every even candle', async () => (await signals(pulseId, H)).length >= evenCandles.length * SYMBOLS.length, 30_000, 100);
    const rows = await signals(pulseId, H - MINUTE);
    expect(rows.filter((row) => row.candle_open_time.getTime() <= evenCandles.at(-1)!).map((row) => [row.candle_open_time.getTime(), row.symbol])).toEqual(
      evenCandles.flatMap((openTime) => SYMBOLS.map((symbol) => [openTime, symbol])),
    );
    for (const row of rows) {
      // Each saw the 1h candle that closed at H: complete data, as its provenance says.
      expect(row.provenance.timeframes['1h']!.lastOpenTime).toBe(H - HOUR);
      // The ticker shown is the snapshot of that candle's close (or none, when its close came only by REST).
      const boundary = row.candle_open_time.getTime() + MINUTE;
      if (row.provenance.ticker !== null) expect(row.provenance.ticker.eventTime).toBeLessThanOrEqual(boundary + 15_000);
    }
    expect(rows.some((row) => row.provenance.ticker !== null)).toBe(true);
    // Nothing at all was evaluated on a stale series: the detector never matched.
    expect(await signals(detectorId, 0)).toEqual([]);

    // The owed signals committed minutes after their closes: the latency reason shows, then ages out on its own.
    await waitFor('degraded by latency', () => /close-to-commit latency p99/.test(orchestrator.readiness().reasons.join('; ')), 10_000);
    await waitFor('ready again', () => orchestrator.readiness().ready, 45_000, 100);
  }, 150_000);
});
