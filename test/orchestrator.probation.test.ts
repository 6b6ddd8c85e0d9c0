// The probation boot step against the real database and Screener: marks committed per trader, a crash in it reaches trader_status.
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.ts';
import { silentLogger } from '../src/logger.ts';
import { Probation } from '../src/orchestration/Probation.ts';
import { TraderHealth } from '../src/orchestration/TraderHealth.ts';
import { Screener } from '../src/screening/Screener.ts';
import { StateSynchronizer } from '../src/database/StateSynchronizer.ts';
import { makeTrader, TestMarket } from './screening.support.ts';
import { workerStatus } from './support/signals.ts';
import { createTestUser, sharedStack } from './support/stack.ts';

const SYMBOLS = ['AAAUSDT', 'BBBUSDT'];
const market = TestMarket.build({ symbols: SYMBOLS, intervals: ['1m'], candles: 60, lastCloseTime: Date.UTC(2026, 0, 10) - 1 });
const THREAD_EXIT_MARKER = 'PROBATION_TEST_THREAD_EXIT';

describe('probation', () => {
  const stack = sharedStack();
  const stops: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });

  async function setUp(previousState: 'ready' | 'stopped') {
    const user = await createTestUser(stack);
    const database = new StateSynchronizer({
      supabaseUrl: stack.supabaseUrl,
      supabaseKey: user.workerJwt,
      userId: user.id,
      machineId: 'probation-test',
      clock: systemClock,
      logger: silentLogger(),
      bufferSize: 100,
    });
    await database.start();
    stops.push(() => database.stop());
    // What the previous process left: a row it never marked stopped (a crash) or a clean stop.
    await database.writeWorkerStatus(workerStatus(user.id, { state: previousState }));
    const screener = new Screener({ threads: 1, filterTimeoutMs: 200, filterMemoryMb: 16, failureLimit: 5, clock: systemClock, logger: silentLogger(), faults: { threadExitMarker: THREAD_EXIT_MARKER } });
    await screener.start();
    stops.push(() => screener.stop());
    const health = new TraderHealth({ userId: user.id, clock: systemClock, logger: silentLogger(), screener });
    const probation = new Probation({
      status: database,
      screener,
      market,
      clock: systemClock,
      logger: silentLogger(),
      onDisabled: (traderId, reason) => health.noteDisabled(traderId, reason),
    });
    const probationColumn = async () => (await stack.sql<{ probation: unknown }[]>`select probation from public.worker_status where user_id = ${user.id}`)[0]?.probation;
    return { database, screener, health, probation, probationColumn };
  }

  it('after a clean stop there is nothing to prove', async () => {
    const { probation } = await setUp('stopped');
    await probation.readPrevious();
    expect(probation.needed).toBe(false);
  });

  it('after an abnormal exit each trader runs alone; one that crashes its thread there is disabled in its status, and the mark ends cleared', async () => {
    const { screener, health, probation, probationColumn } = await setUp('ready');
    const honest = makeTrader(`return helpers.getLatestRSI(timeframes['1m'], 14) > 0;`);
    const crasher = makeTrader(`/* ${THREAD_EXIT_MARKER} */ return true;`);
    for (const trader of [honest, crasher]) health.track(trader);
    screener.setTraders([honest, crasher]);
    await probation.readPrevious();
    expect(probation.needed).toBe(true);
    expect(await probation.takeSuspect(new Map([[honest.id, honest], [crasher.id, crasher]]))).toBeNull();

    expect(await probation.run([honest, crasher])).toEqual({ probed: 2, alreadyCleared: 0 });
    const statuses = new Map(health.all().map((status) => [status.traderId, status]));
    expect(statuses.get(crasher.id)).toMatchObject({ state: 'disabled', lastError: expect.stringMatching(/crashed its screening thread/) });
    expect(statuses.get(honest.id)?.state).toBe('running');
    expect(screener.disabledTraders().map((d) => d.traderId)).toEqual([crasher.id]);
    expect(await probationColumn()).toBeNull();
  });
});
