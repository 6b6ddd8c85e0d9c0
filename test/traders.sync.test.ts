// StateSynchronizer against the shared real stack: loading, polling, idempotent signals and status rows.
import { afterEach, describe, expect, it } from 'vitest';
import { AcceleratedClock, systemClock } from '../src/clock.ts';
import { DatabaseRejectedError } from '../src/errors.ts';
import { StateSynchronizer } from '../src/database/StateSynchronizer.ts';
import { collectingLogger } from './support/logs.ts';
import { makeSignal, signalSeries, traderStatus, workerStatus } from './support/signals.ts';
import { createTestUser, insertTrader, sharedStack, type TestUser } from './support/stack.ts';

const stack = sharedStack();
const synchronizers: StateSynchronizer[] = [];

function synchronizerFor(user: TestUser, options: { key?: string; clock?: AcceleratedClock; chunkSize?: number } = {}) {
  const logs = collectingLogger();
  const synchronizer = new StateSynchronizer({
    supabaseUrl: stack.supabaseUrl,
    supabaseKey: options.key ?? user.workerJwt,
    userId: user.id,
    machineId: 'test-machine',
    clock: options.clock ?? systemClock,
    logger: logs.logger,
    bufferSize: 1000,
    retry: { baseMs: 20, maxMs: 200 },
    chunkSize: options.chunkSize,
  });
  synchronizers.push(synchronizer);
  return { synchronizer, logs };
}

afterEach(async () => {
  await Promise.all(synchronizers.splice(0).map((synchronizer) => synchronizer.stop()));
});

const minutesAgo = (minutes: number) => new Date(Date.UTC(2026, 0, 1, 12) - minutes * 60_000);

describe('loading traders', () => {
  it('loads only the user’s enabled cloud and both traders, newest first', async () => {
    const user = await createTestUser(stack);
    const other = await createTestUser(stack);
    const oldest = await insertTrader(stack, { userId: user.id, name: 'oldest', executionMode: 'both', createdAt: minutesAgo(30) });
    const newest = await insertTrader(stack, { userId: user.id, name: 'newest', executionMode: 'cloud', createdAt: minutesAgo(1) });
    const middle = await insertTrader(stack, { userId: user.id, name: 'middle', executionMode: 'cloud', createdAt: minutesAgo(10) });
    await insertTrader(stack, { userId: user.id, name: 'browser-only', executionMode: 'browser', createdAt: minutesAgo(2) });
    await insertTrader(stack, { userId: user.id, name: 'disabled', enabled: false, createdAt: minutesAgo(3) });
    await insertTrader(stack, { userId: other.id, name: 'someone else', createdAt: minutesAgo(4) });
    const { synchronizer } = synchronizerFor(user);
    await synchronizer.start();

    const { traders, rejected } = await synchronizer.loadTraders();

    expect(traders.map((trader) => trader.id)).toEqual([newest, middle, oldest]);
    expect(rejected).toEqual([]);
    expect(traders[0]).toMatchObject({ userId: user.id, name: 'newest', executionMode: 'cloud', timeframes: ['1m'] });
    expect(traders[0]!.codeHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('rejects malformed rows with a reason naming the field while the others load (the core writes them to trader_status)', async () => {
    const user = await createTestUser(stack);
    const good = await insertTrader(stack, { userId: user.id, name: 'good' });
    const stringFilter = await insertTrader(stack, {
      userId: user.id,
      name: 'json string',
      filter: JSON.stringify({ code: 'return true;', refreshInterval: '5m', requiredTimeframes: ['1h'] }),
    });
    const badJson = await insertTrader(stack, { userId: user.id, name: 'bad json', filter: '{"code": "return true;"' });
    const badInterval = await insertTrader(stack, { userId: user.id, name: 'bad interval', filter: { code: 'return true;', refreshInterval: '7m' } });
    const emptyCode = await insertTrader(stack, { userId: user.id, name: 'empty code', filter: { code: '   ' } });
    const { synchronizer } = synchronizerFor(user);

    const { traders, rejected } = await synchronizer.loadTraders();

    expect(traders.map((trader) => trader.id).sort()).toEqual([good, stringFilter].sort());
    expect(traders.find((trader) => trader.id === stringFilter)!.timeframes).toEqual(['5m', '1h']);
    const reasons = Object.fromEntries(rejected.map((row) => [row.id, row.reason]));
    expect(reasons[badJson]).toMatch(/^filter: malformed JSON/);
    expect(reasons[badInterval]).toMatch(/^filter\.refreshInterval: unknown interval "7m"/);
    expect(reasons[emptyCode]).toMatch(/^filter\.code: must be a non-empty string/);
    expect(rejected.map((row) => row.id).sort()).toEqual([badJson, badInterval, emptyCode].sort());
  });
});

describe('polling for changes', () => {
  it('detects traders added, edited, disabled, deleted and switched to browser', async () => {
    const user = await createTestUser(stack);
    const edited = await insertTrader(stack, { userId: user.id, name: 'edited' });
    const disabled = await insertTrader(stack, { userId: user.id, name: 'disabled' });
    const deleted = await insertTrader(stack, { userId: user.id, name: 'deleted' });
    const toBrowser = await insertTrader(stack, { userId: user.id, name: 'to browser' });
    const untouched = await insertTrader(stack, { userId: user.id, name: 'untouched' });
    const broken = await insertTrader(stack, { userId: user.id, name: 'broken later' });
    const { synchronizer } = synchronizerFor(user);
    await synchronizer.loadTraders();
    expect(await synchronizer.changesSince()).toEqual({ upserted: [], removed: [], rejected: [] });

    const added = await insertTrader(stack, { userId: user.id, name: 'added' });
    await stack.sql`update public.traders set filter = ${stack.sql.json({ code: 'return false;', refreshInterval: '15m' })} where id = ${edited}`;
    await stack.sql`update public.traders set enabled = false where id = ${disabled}`;
    await stack.sql`delete from public.traders where id = ${deleted}`;
    await stack.sql`update public.traders set execution_mode = 'browser' where id = ${toBrowser}`;
    await stack.sql`update public.traders set filter = ${stack.sql.json({ code: '' })} where id = ${broken}`;
    const changes = await synchronizer.changesSince();

    expect(changes.upserted.map((trader) => trader.id).sort()).toEqual([added, edited].sort());
    expect(changes.upserted.find((trader) => trader.id === edited)!.filter.refreshInterval).toBe('15m');
    expect(changes.removed.sort()).toEqual([disabled, deleted, toBrowser, broken].sort());
    expect(changes.rejected.map((row) => row.id)).toEqual([broken]);
    expect(changes.upserted.map((trader) => trader.id)).not.toContain(untouched);
    expect(await synchronizer.changesSince()).toEqual({ upserted: [], removed: [], rejected: [] });
  });
});

describe('writing signals and status', () => {
  it('writes a batch twice and keeps exactly one row per signal, with provenance latency filled in', async () => {
    const user = await createTestUser(stack);
    const trader = await insertTrader(stack, { userId: user.id });
    // The worker's clock reads 250 ms after the closing kline arrived.
    const clock = new AcceleratedClock({ speed: 1, originRealMs: Date.now(), originClockMs: Date.UTC(2026, 0, 1, 0, 1) + 250 });
    const { synchronizer } = synchronizerFor(user, { clock });
    const batch = [...signalSeries(user.id, trader, 3), makeSignal(user.id, trader, { symbol: 'ETHUSDT' })];

    const first = await synchronizer.writeSignals(batch);
    const second = await synchronizer.writeSignals(batch);

    expect(first).toMatchObject({ committed: 4, buffered: 0 });
    expect(first.committedAt).not.toBeNull();
    expect(second).toMatchObject({ committed: 4, buffered: 0 });
    const rows = await stack.sql<{ symbol: string; source: string; candle_open_time: Date; price: string; provenance: { closeToCommitMs: number; filterCodeHash: string } }[]>`
      select symbol, source, candle_open_time, price, provenance from public.signals where trader_id = ${trader} order by candle_open_time, symbol`;
    expect(rows).toHaveLength(4);
    expect(rows[0]).toMatchObject({ symbol: 'BTCUSDT', source: 'cloud', price: '42000.25' });
    expect(rows[0]!.candle_open_time.toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(rows[0]!.provenance.filterCodeHash).toBe('abc');
    expect(rows[0]!.provenance.closeToCommitMs).toBeGreaterThanOrEqual(250);
    expect(rows[0]!.provenance.closeToCommitMs).toBeLessThan(10_000);
    expect(synchronizer.stats()).toMatchObject({ signalsWritten: 8, signalsBuffered: 0, signalsDropped: 0, dbUp: true });
  });

  it('commits a batch of signals before the status writes queued ahead of it, which all land after', async () => {
    const user = await createTestUser(stack);
    const traders = [];
    for (let index = 0; index < 6; index += 1) traders.push(await insertTrader(stack, { userId: user.id, name: `t${index}` }));
    // One status row per request: six writes queued when the batch arrives.
    const { synchronizer } = synchronizerFor(user, { chunkSize: 1 });
    let statusesDoneAt = Number.POSITIVE_INFINITY;
    const statuses = synchronizer.writeTraderStatus(traders.map((id) => traderStatus(user.id, id))).then(() => {
      statusesDoneAt = systemClock.now();
    });

    const result = await synchronizer.writeSignals(signalSeries(user.id, traders[0]!, 2));
    await statuses;

    // A signal waits for at most the status write in flight, not for the whole backlog of them.
    expect(result).toMatchObject({ committed: 2, buffered: 0 });
    expect(result.committedAt!).toBeLessThan(statusesDoneAt);
    const written = await stack.sql`select trader_id from public.trader_status where user_id = ${user.id}`;
    expect(written).toHaveLength(6);
    expect(await stack.sql`select 1 from public.signals where trader_id = ${traders[0]!}`).toHaveLength(2);
  });

  it('drops only the signals the database refuses, without retrying them', async () => {
    const user = await createTestUser(stack);
    const other = await createTestUser(stack);
    const own = await insertTrader(stack, { userId: user.id });
    const foreign = await insertTrader(stack, { userId: other.id });
    const { synchronizer, logs } = synchronizerFor(user);

    const result = await synchronizer.writeSignals([
      ...signalSeries(user.id, own, 2),
      makeSignal(user.id, foreign, { symbol: 'BNBUSDT' }),
      makeSignal(user.id, own, { symbol: 'ADAUSDT' }),
    ]);

    expect(result).toMatchObject({ committed: 3, buffered: 0 });
    expect(synchronizer.stats()).toMatchObject({ signalsWritten: 3, signalsRejected: 1, signalsBuffered: 0, dbRetries: 0, dbUp: true });
    const rows = await stack.sql`select symbol from public.signals where user_id = ${user.id} or trader_id = ${foreign}`;
    expect(rows.map((row) => row.symbol).sort()).toEqual(['ADAUSDT', 'BTCUSDT', 'BTCUSDT']);
    expect(logs.events('db_rejected')).toHaveLength(1);
  });

  it('upserts one worker_status row per user and round-trips trader statuses', async () => {
    const user = await createTestUser(stack);
    const trader = await insertTrader(stack, { userId: user.id });
    const { synchronizer } = synchronizerFor(user);
    const { traders } = await synchronizer.loadTraders();

    await synchronizer.writeWorkerStatus(workerStatus(user.id, { state: 'starting' }));
    await synchronizer.writeWorkerStatus(workerStatus(user.id, { state: 'ready', symbols: 150, lastError: 'stream 2 reconnected' }));
    const status = traderStatus(user.id, trader, { state: 'disabled', lastError: 'timed out 5 times', traderUpdatedAt: traders[0]!.updatedAt });
    await synchronizer.writeTraderStatus([status]);
    await synchronizer.writeTraderStatus([{ ...status, evaluations: 11 }]);

    const workers = await stack.sql`select state, symbols, last_error from public.worker_status where user_id = ${user.id}`;
    expect(workers).toEqual([{ state: 'ready', symbols: 150, last_error: 'stream 2 reconnected' }]);
    const read = await synchronizer.readTraderStatuses();
    expect(read).toEqual([{ ...status, evaluations: 11 }]);
    expect(read[0]!.traderUpdatedAt).toBe(traders[0]!.updatedAt);
  });

  it('refuses a status for a trader that is not the user’s, naming the rejection', async () => {
    const user = await createTestUser(stack);
    const other = await createTestUser(stack);
    const foreign = await insertTrader(stack, { userId: other.id });
    const { synchronizer } = synchronizerFor(user);

    await expect(synchronizer.writeTraderStatus([traderStatus(user.id, foreign)])).rejects.toBeInstanceOf(DatabaseRejectedError);
    expect(synchronizer.stats()).toMatchObject({ statusPending: 0, dbUp: true });
  });
});

describe('starting', () => {
  it('fails with a rejection for a key signed by another project, without echoing the key', async () => {
    const user = await createTestUser(stack);
    const forged = (await import('../dev/jwt.ts')).mintUserJwt(user.id, 'x'.repeat(40), { worker: true });
    const { synchronizer, logs } = synchronizerFor(user, { key: forged });
    const failure = await synchronizer.start().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(DatabaseRejectedError);
    expect((failure as DatabaseRejectedError).status).toBe(401);
    expect(String((failure as Error).message)).not.toContain(forged);
    expect(logs.lines.join('\n')).not.toContain(forged);
  });
});
