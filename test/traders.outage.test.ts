// Database outages against a private stack: PostgREST stopped, PostgreSQL restarted; buffered writes arrive exactly once.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type LocalStack, startLocalStack } from '../dev/localStack.ts';
import { systemClock } from '../src/clock.ts';
import { StateSynchronizer } from '../src/database/StateSynchronizer.ts';
import { collectingLogger } from './support/logs.ts';
import { signalSeries, traderStatus, workerStatus } from './support/signals.ts';
import { createTestUser, insertTrader, type TestUser } from './support/stack.ts';
import { until } from './support/wait.ts';

// Stopping PostgREST would break every other test file on the shared stack: this file has its own.
let stack: LocalStack;
const synchronizers: StateSynchronizer[] = [];

beforeAll(async () => {
  stack = await startLocalStack();
});

afterAll(async () => {
  await stack?.stop();
});

afterEach(async () => {
  await stack.startPostgrest();
  await Promise.all(synchronizers.splice(0).map((synchronizer) => synchronizer.stop()));
});

function synchronizerFor(user: TestUser, bufferSize = 1000) {
  const logs = collectingLogger({ secrets: [user.workerJwt] });
  const synchronizer = new StateSynchronizer({
    supabaseUrl: stack.supabaseUrl,
    supabaseKey: user.workerJwt,
    userId: user.id,
    machineId: 'test-machine',
    clock: systemClock,
    logger: logs.logger,
    bufferSize,
    retry: { baseMs: 20, maxMs: 100 },
    requestTimeoutMs: 2000,
  });
  synchronizers.push(synchronizer);
  return { synchronizer, logs };
}


async function countSignals(traderId: string): Promise<number> {
  const [row] = await stack.sql<{ count: number }[]>`select count(*)::int as count from public.signals where trader_id = ${traderId}`;
  return row!.count;
}

describe('database outages', () => {
  it('buffers signals while PostgREST is down and writes every one exactly once when it is back', async () => {
    const user = await createTestUser(stack);
    const trader = await insertTrader(stack, { userId: user.id });
    const { synchronizer, logs } = synchronizerFor(user);
    await synchronizer.start();
    const all = signalSeries(user.id, trader, 30);

    expect(await synchronizer.writeSignals(all.slice(0, 5))).toMatchObject({ committed: 5, buffered: 0 });
    await stack.stopPostgrest();
    const during = await synchronizer.writeSignals(all.slice(5, 20));
    const later = await synchronizer.writeSignals(all.slice(20));
    // A retry of an earlier batch (the same rows again) must not produce duplicates either.
    await synchronizer.writeSignals(all.slice(0, 10));
    await synchronizer.writeWorkerStatus(workerStatus(user.id, { state: 'degraded' }));

    expect(during).toMatchObject({ committed: 0, buffered: 15, committedAt: null });
    expect(later).toMatchObject({ committed: 0, buffered: 10 });
    expect(synchronizer.stats()).toMatchObject({ dbUp: false, signalsBuffered: 35, signalsDropped: 0, lastError: expect.stringMatching(/HTTP 502/) });
    expect(await countSignals(trader)).toBe(5);

    await stack.startPostgrest();
    await until(() => synchronizer.stats().signalsBuffered === 0 && synchronizer.stats().statusPending === 0, 'the buffer to drain', 10_000, 20);

    expect(await countSignals(trader)).toBe(30);
    const rows = await stack.sql`select candle_open_time from public.signals where trader_id = ${trader} group by 1 having count(*) > 1`;
    expect(rows).toHaveLength(0);
    const [status] = await stack.sql`select state from public.worker_status where user_id = ${user.id}`;
    expect(status!.state).toBe('degraded');
    expect(synchronizer.stats()).toMatchObject({ dbUp: true, signalsDropped: 0, lastError: null });
    expect(synchronizer.stats().dbRetries).toBeGreaterThan(0);
    expect(logs.events('db_retry').length).toBeGreaterThan(0);
    expect(logs.lines.join('\n')).not.toContain(user.workerJwt);
  });

  it('flush() writes everything buffered as soon as the database is back, within the deadline', async () => {
    const user = await createTestUser(stack);
    const trader = await insertTrader(stack, { userId: user.id });
    const { synchronizer } = synchronizerFor(user);
    await stack.stopPostgrest();
    await synchronizer.writeSignals(signalSeries(user.id, trader, 12));
    await synchronizer.writeTraderStatus([traderStatus(user.id, trader, { evaluations: 1 })]);
    await synchronizer.writeTraderStatus([traderStatus(user.id, trader, { evaluations: 2 })]);
    expect(synchronizer.stats()).toMatchObject({ signalsBuffered: 12, statusPending: 1 });

    const flushing = synchronizer.flush(10_000);
    await stack.startPostgrest();
    await flushing;

    expect(await countSignals(trader)).toBe(12);
    const [status] = await stack.sql`select evaluations from public.trader_status where trader_id = ${trader}`;
    expect(Number(status!.evaluations)).toBe(2);
  });

  it('flush() gives up at its deadline and says how much is left', async () => {
    const user = await createTestUser(stack);
    const trader = await insertTrader(stack, { userId: user.id });
    const { synchronizer } = synchronizerFor(user);
    await stack.stopPostgrest();
    await synchronizer.writeSignals(signalSeries(user.id, trader, 3));
    await expect(synchronizer.flush(300)).rejects.toThrow(/3 signals/);
    expect(synchronizer.stats().signalsBuffered).toBe(3);
  });

  it('drops the oldest signals when the buffer overflows, and counts them', async () => {
    const user = await createTestUser(stack);
    const trader = await insertTrader(stack, { userId: user.id });
    const { synchronizer, logs } = synchronizerFor(user, 10);
    await stack.stopPostgrest();
    const all = signalSeries(user.id, trader, 25);
    await synchronizer.writeSignals(all.slice(0, 10));
    const overflowing = await synchronizer.writeSignals(all.slice(10));

    expect(overflowing.buffered).toBe(10);
    expect(synchronizer.stats()).toMatchObject({ signalsBuffered: 10, signalsDropped: 15 });
    expect(logs.events('signal_buffer_overflow')).toHaveLength(1);

    await stack.startPostgrest();
    await until(() => synchronizer.stats().signalsBuffered === 0, 'the buffer to drain', 10_000, 20);
    const rows = await stack.sql<{ candle_open_time: Date }[]>`select candle_open_time from public.signals where trader_id = ${trader} order by 1`;
    expect(rows.map((row) => row.candle_open_time.getTime())).toEqual(all.slice(15).map((signal) => signal.candleOpenTime));
  });

  it('survives a PostgreSQL restart: PostgREST reconnects and buffered writes land', async () => {
    const user = await createTestUser(stack);
    const trader = await insertTrader(stack, { userId: user.id });
    const { synchronizer } = synchronizerFor(user);
    await synchronizer.start();
    await stack.restartPostgres();
    await synchronizer.writeSignals(signalSeries(user.id, trader, 4));
    await until(async () => synchronizer.stats().signalsBuffered === 0 && (await countSignals(trader)) === 4, 'the signals to land', 10_000, 20);
    expect((await synchronizer.loadTraders()).traders.map((row) => row.id)).toEqual([trader]);
  });
});
