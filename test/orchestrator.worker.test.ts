// The Orchestrator with every real part in-process: simulator-backed MarketData, the sandboxed Screener, a StateSynchronizer on the shared stack.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BinanceSimulator } from '../dev/binanceSim/index.ts';
import type { AcceleratedClock } from '../src/clock.ts';
import { candleOpenTimeAt } from '../src/domain.ts';
import { appendFileSync } from 'node:fs';
import { createLogger, silentLogger } from '../src/logger.ts';
import type { Orchestrator } from '../src/Orchestrator.ts';
import { inProcessWorker } from './support/inProcessWorker.ts';
import { startSimulatedMarket } from './support/simulatedMarket.ts';
import { type TestUser, createTestUser, insertTrader, sharedStack } from './support/stack.ts';
import { waitFor } from '../dev/workerProcess.ts';

/** A 1m candle closes every 3 s of real time. */
const SPEED = 20;
const MINUTE = 60_000;
const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];
const MARKER_VOLUME = 777_777;
const MARKER_FILTER = {
  refreshInterval: '1m',
  requiredTimeframes: ['1m'],
  code: `const k = timeframes['1m']; return parseFloat(k[k.length - 1][5]) === ${MARKER_VOLUME};`,
};

const stack = sharedStack();
let clock: AcceleratedClock;
let simulator: BinanceSimulator;
let defaultUser: TestUser;
let traderId: string;
const running: Orchestrator[] = [];

/** One worker, wired by the composition root src/main.ts uses. */
function createOrchestrator(options: { failureLimit?: number; user?: TestUser; logLines?: string[] } = {}): Orchestrator {
  const user = options.user ?? defaultUser;
  const lines = options.logLines;
  const logger = process.env.DEBUG_LOG
    ? createLogger({ level: 'debug', userId: user.id, machineId: 'test', sink: { write: (line) => appendFileSync(process.env.DEBUG_LOG!, line) } })
    : lines !== undefined
      ? createLogger({ level: 'debug', userId: user.id, machineId: 'test', sink: { write: (line) => void lines.push(line) } })
      : silentLogger();
  const { orchestrator } = inProcessWorker({ stack, user, simulator, clock, symbols: SYMBOLS, logger, failureLimit: options.failureLimit });
  running.push(orchestrator);
  return orchestrator;
}

const signalTimes = async () =>
  (await stack.sql<{ symbol: string; candle_open_time: Date }[]>`
    select symbol, candle_open_time from public.signals where trader_id = ${traderId} order by candle_open_time, symbol`).map(
    (row) => [row.symbol, row.candle_open_time.getTime()] as const,
  );
const upcomingCandle = (ahead: number) => candleOpenTimeAt('1m', clock.now()) + ahead * MINUTE;
const untilClock = (time: number) => waitFor(`clock ${new Date(time).toISOString()}`, () => clock.now() >= time, 60_000, 20);

beforeAll(async () => {
  ({ clock, simulator } = await startSimulatedMarket(SPEED, { seed: 5, symbols: SYMBOLS, klineUpdateMs: 3000, tickerUpdateMs: 10_000 }));
  defaultUser = await createTestUser(stack);
  traderId = await insertTrader(stack, { userId: defaultUser.id, name: 'marker', filter: MARKER_FILTER });
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((orchestrator) => orchestrator.stop(5_000)));
});

afterAll(async () => {
  await simulator.stop();
});

describe('orchestrator with real parts', () => {
  it('neither repeats nor drops a rising edge across restarts', async () => {
    // Episode E..E+1 spans a restart: one signal at E. Candle D closes while no worker runs: still signalled.
    const first = createOrchestrator();
    await first.start();
    expect(first.readiness()).toMatchObject({ ready: true, state: 'ready' });
    const episode = upcomingCandle(2);
    simulator.scriptCandle('BTCUSDT', '1m', episode, { volume: MARKER_VOLUME });
    simulator.scriptCandle('BTCUSDT', '1m', episode + MINUTE, { volume: MARKER_VOLUME });
    await waitFor('the episode signal', async () => (await signalTimes()).length === 1, 30_000, 100);
    await first.stop(5_000);
    const totals = async () =>
      (await stack.sql<{ evaluations: string; last_evaluated_at: Date | null }[]>`
        select evaluations, last_evaluated_at from public.trader_status where trader_id = ${traderId}`)[0]!;
    const beforeRestart = await totals();
    expect(Number(beforeRestart.evaluations)).toBeGreaterThan(0);

    const second = createOrchestrator();
    await second.start();
    // The status the new run wrote at boot carries the totals on: a restart is not a reset.
    const afterRestart = await totals();
    expect(Number(afterRestart.evaluations)).toBeGreaterThanOrEqual(Number(beforeRestart.evaluations));
    expect(afterRestart.last_evaluated_at!.getTime()).toBeGreaterThanOrEqual(beforeRestart.last_evaluated_at!.getTime());
    // E+1 (still matching) is screened by the boot catch-up or its own close: no second signal.
    await untilClock(episode + 2 * MINUTE + 5_000);
    expect(await signalTimes()).toEqual([['BTCUSDT', episode]]);

    // Candle D matches and D+1 does not; both close while no worker runs (a slow redeploy), so the
    // latest closed candle at the next boot is D+1 and D's edge must come from the boot catch-up.
    const dark = upcomingCandle(2);
    simulator.scriptCandle('ETHUSDT', '1m', dark, { volume: MARKER_VOLUME });
    await untilClock(dark - 10_000);
    await second.stop(5_000);
    await untilClock(dark + 2 * MINUTE + 1_000);
    const third = createOrchestrator();
    await third.start();
    await waitFor('the signal of the candle that closed while down', async () => (await signalTimes()).length === 2, 30_000, 100);
    expect(await signalTimes()).toEqual([
      ['BTCUSDT', episode],
      ['ETHUSDT', dark],
    ]);
  });

  it('keeps a trader disabled for errors across a restart until its row changes, then runs it again', async () => {
    const brokenId = await insertTrader(stack, { userId: defaultUser.id, name: 'broken', filter: { ...MARKER_FILTER, code: "throw new Error('nope');" } });
    const malformedId = await insertTrader(stack, { userId: defaultUser.id, name: 'malformed', filter: { ...MARKER_FILTER, code: '   ' } });
    const spoiledId = await insertTrader(stack, { userId: defaultUser.id, name: 'spoiled later', filter: MARKER_FILTER });
    const statusOf = async (id: string) =>
      (await stack.sql<{ state: string; last_error: string | null; evaluations: string }[]>`
        select state, last_error, evaluations from public.trader_status where trader_id = ${id}`)[0];
    const status = () => statusOf(brokenId);
    const lines: string[] = [];
    const logged = (event: string) => lines.map((line) => JSON.parse(line) as { event?: string; traderId?: string }).filter((line) => line.event === event);
    const first = createOrchestrator({ failureLimit: 1, logLines: lines });
    await first.start();
    // A row that cannot become a trader is disabled in trader_status with its reason once the boot is done, reported once.
    expect(await statusOf(malformedId)).toMatchObject({ state: 'disabled', last_error: expect.stringMatching(/^filter\.code: /), evaluations: '0' });
    expect(logged('trader_rejected').map((line) => line.traderId)).toEqual([malformedId]);
    await waitFor('the broken trader disabled', async () => (await status())?.state === 'disabled', 20_000, 100);
    expect((await status())!.last_error).toMatch(/nope/);
    expect(logged('trader_disabled').map((line) => line.traderId)).toEqual([brokenId]);
    // One failing tick, one trader_error line (the screener no longer logs its own copy).
    expect(logged('trader_error').map((line) => line.traderId)).toEqual([brokenId]);
    await first.stop(5_000);

    const second = createOrchestrator({ failureLimit: 1 });
    await second.start();
    await untilClock(upcomingCandle(2));
    expect((await status())!.state).toBe('disabled');
    const evaluationsWhileDisabled = Number((await status())!.evaluations);

    await stack.sql`update public.traders set filter = ${stack.sql.json({ ...MARKER_FILTER })} where id = ${brokenId}`;
    // A row spoiled while the worker runs is rejected by the next poll, disabled in trader_status like one found at boot.
    await stack.sql`update public.traders set filter = ${stack.sql.json({ ...MARKER_FILTER, code: '' })} where id = ${spoiledId}`;
    await waitFor('the fixed trader running again', async () => {
      const row = await status();
      return row?.state === 'running' && Number(row.evaluations) > evaluationsWhileDisabled;
    }, 20_000, 100);
    await waitFor('the spoiled trader disabled', async () => (await statusOf(spoiledId))?.state === 'disabled', 20_000, 100);
    expect((await statusOf(spoiledId))!.last_error).toMatch(/^filter\.code: /);
    await stack.sql`delete from public.traders where id in ${stack.sql([brokenId, malformedId, spoiledId])}`;
  });

  it('primes the rising edges of every trader in one screener run, so a match that continues is no new signal', async () => {
    // Two traders that match every candle, new to the worker: the boot catch-up has no verdict for the
    // candle before, for either. One priming run evaluates both; each must end "continuing", not "rising".
    const user = await createTestUser(stack);
    const always = { refreshInterval: '1m', requiredTimeframes: ['1m'], code: 'return true;' };
    const ids = [await insertTrader(stack, { userId: user.id, name: 'always a', filter: always }), await insertTrader(stack, { userId: user.id, name: 'always b', filter: always })];
    const lines: string[] = [];
    const orchestrator = createOrchestrator({ user, logLines: lines });
    await orchestrator.start();
    const events = () => lines.map((line) => JSON.parse(line) as { event?: string; interval?: string });
    await waitFor('the boot catch-up', () => events().some((line) => line.event === 'tick_catchup'), 20_000);
    const catchUp = events().findIndex((line) => line.event === 'tick_catchup');
    const runs = events().slice(0, catchUp).filter((line) => line.event === 'screener_tick');
    // The candle itself, then the candle before for both traders at once (trader by trader would be three).
    expect(runs).toHaveLength(2);
    // A tick on its own close sees verdicts for both traders from then on: still nothing new.
    await untilClock(upcomingCandle(1) + 5_000);
    await waitFor('a tick after the catch-up', () => events().some((line) => line.event === 'tick'), 20_000);
    const signals = await stack.sql`select 1 from public.signals where trader_id in ${stack.sql(ids)}`;
    expect(signals).toHaveLength(0);
    await stack.sql`delete from public.traders where id in ${stack.sql(ids)}`;
  });

  it('reports degraded with a reason while the feed is silent, and ready again after', async () => {
    const orchestrator = createOrchestrator();
    await orchestrator.start();
    const states: string[] = [];
    orchestrator.on('state', (state) => states.push(state));
    const close = upcomingCandle(1);
    await untilClock(close - 1_000);
    simulator.faults.stall(3 * MINUTE);
    await waitFor('degraded', () => orchestrator.readiness().state === 'degraded', 20_000);
    // A silent feed shows as lost coverage at the next close, or as a dead stream once the silence timeout hits.
    expect(orchestrator.readiness().reasons.join(' ')).toMatch(/coverage 1m|streams down/);
    simulator.faults.clearStall();
    // The 'state' event follows the next tick or heartbeat, a moment after readiness() itself turns.
    await waitFor('ready again', () => orchestrator.readiness().ready && states.at(-1) === 'ready', 30_000);
    // Reconnects during the stall may flip it more than once; it starts degraded and ends ready.
    expect(states[0]).toBe('degraded');
    expect(states.at(-1)).toBe('ready');
  });
});
