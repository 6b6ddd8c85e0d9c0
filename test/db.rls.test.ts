// Row-level security through the real PostgREST: users see and write only their own rows; worker keys cannot write traders.
import { beforeAll, describe, expect, it } from 'vitest';
import { clientFor, createTestUser, insertTrader, SIMPLE_FILTER, sharedStack, type TestUser } from './support/stack.ts';

const stack = sharedStack();

function signalFor(user: TestUser, traderId: string, symbol = 'BTCUSDT') {
  return {
    user_id: user.id,
    trader_id: traderId,
    symbol,
    interval: '1m',
    candle_open_time: '2026-01-01T00:00:00.000Z',
    price: 42000.5,
    matched_conditions: ['rsi < 30'],
    source: 'cloud',
    machine_id: 'test',
    provenance: {},
  };
}

describe('row-level security', () => {
  let alice: TestUser;
  let bob: TestUser;
  let aliceTrader: string;
  let bobTrader: string;

  beforeAll(async () => {
    alice = await createTestUser(stack);
    bob = await createTestUser(stack);
    aliceTrader = await insertTrader(stack, { userId: alice.id, name: 'alice-rsi' });
    bobTrader = await insertTrader(stack, { userId: bob.id, name: 'bob-macd' });
    await stack.sql`insert into public.signals (user_id, trader_id, symbol, interval, candle_open_time, source)
                    values (${alice.id}, ${aliceTrader}, 'ETHUSDT', '1m', now(), 'browser')`;
    await stack.sql`insert into public.worker_status (user_id, machine_id, version, state, started_at, heartbeat_at)
                    values (${alice.id}, 'm', '1', 'ready', now(), now())`;
    await stack.sql`insert into public.trader_status (trader_id, user_id, state) values (${aliceTrader}, ${alice.id}, 'running')`;
  });

  it("a user's worker key reads only that user's traders, signals and status", async () => {
    const bobWorker = clientFor(stack, bob.workerJwt);
    const traders = await bobWorker.from('traders').select('id');
    expect(traders.error).toBeNull();
    expect(traders.data!.map((row) => row.id)).toEqual([bobTrader]);
    for (const table of ['signals', 'worker_status', 'trader_status']) {
      const result = await bobWorker.from(table).select('*');
      expect(result.error).toBeNull();
      expect(result.data).toEqual([]);
    }
    const aliceWorker = clientFor(stack, alice.workerJwt);
    expect((await aliceWorker.from('signals').select('symbol')).data).toEqual([{ symbol: 'ETHUSDT' }]);
    expect((await aliceWorker.from('worker_status').select('machine_id')).data).toEqual([{ machine_id: 'm' }]);
    expect((await aliceWorker.from('trader_status').select('trader_id')).data).toEqual([{ trader_id: aliceTrader }]);
  });

  it("another user's key cannot insert a signal for a foreign trader, under either user id", async () => {
    const bobWorker = clientFor(stack, bob.workerJwt);
    const asAlice = await bobWorker.from('signals').insert(signalFor(alice, aliceTrader));
    expect(asAlice.error?.code).toBe('42501');
    const asBob = await bobWorker.from('signals').insert(signalFor(bob, aliceTrader));
    expect(asBob.error?.code).toBe('42501');
    const [{ count }] = await stack.sql<{ count: number }[]>`select count(*)::int as count from public.signals where trader_id = ${aliceTrader}`;
    expect(count).toBe(1);
  });

  it('an idempotent signal insert (ignore duplicates) works with only the insert policy', async () => {
    const bobWorker = clientFor(stack, bob.workerJwt);
    const row = signalFor(bob, bobTrader, 'SOLUSDT');
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const result = await bobWorker.from('signals').upsert(row, { onConflict: 'trader_id,symbol,interval,candle_open_time', ignoreDuplicates: true });
      expect(result.error).toBeNull();
    }
    const rows = await stack.sql`select id from public.signals where trader_id = ${bobTrader} and symbol = 'SOLUSDT'`;
    expect(rows).toHaveLength(1);
  });

  it('a worker key cannot update, insert or delete traders, even its own user’s', async () => {
    const aliceWorker = clientFor(stack, alice.workerJwt);
    const update = await aliceWorker.from('traders').update({ name: 'hijacked' }).eq('id', aliceTrader).select('id');
    expect(update.data ?? []).toEqual([]);
    const insert = await aliceWorker.from('traders').insert({ user_id: alice.id, name: 'sneaky', filter: SIMPLE_FILTER });
    expect(insert.error?.code).toBe('42501');
    const remove = await aliceWorker.from('traders').delete().eq('id', aliceTrader).select('id');
    expect(remove.data ?? []).toEqual([]);
    const [row] = await stack.sql<{ name: string }[]>`select name from public.traders where id = ${aliceTrader}`;
    expect(row!.name).toBe('alice-rsi');
  });

  it('a worker key cannot update or delete signals', async () => {
    const aliceWorker = clientFor(stack, alice.workerJwt);
    const update = await aliceWorker.from('signals').update({ price: 1 }).eq('trader_id', aliceTrader);
    expect(update.error?.code).toBe('42501');
    await aliceWorker.from('signals').delete().eq('trader_id', aliceTrader);
    const rows = await stack.sql`select id from public.signals where trader_id = ${aliceTrader}`;
    expect(rows).toHaveLength(1);
  });

  it("a user's own session manages its traders but cannot touch another user's", async () => {
    const app = clientFor(stack, alice.userJwt);
    const created = await app.from('traders').insert({ user_id: alice.id, name: 'new', filter: SIMPLE_FILTER, execution_mode: 'cloud' }).select('id').single();
    expect(created.error).toBeNull();
    const id = (created.data as { id: string }).id;
    const renamed = await app.from('traders').update({ name: 'renamed' }).eq('id', id).select('name');
    expect(renamed.data).toEqual([{ name: 'renamed' }]);
    const forBob = await app.from('traders').insert({ user_id: bob.id, name: 'planted', filter: SIMPLE_FILTER });
    expect(forBob.error?.code).toBe('42501');
    const steal = await app.from('traders').update({ user_id: alice.id }).eq('id', bobTrader).select('id');
    expect(steal.data ?? []).toEqual([]);
    const deleted = await app.from('traders').delete().eq('id', id).select('id');
    expect(deleted.data).toEqual([{ id }]);
  });

  it('an anonymous key sees nothing and writes nothing', async () => {
    const anon = clientFor(stack, stack.anonKey);
    for (const table of ['traders', 'signals', 'worker_status', 'trader_status']) {
      const result = await anon.from(table).select('*');
      expect(result.data ?? []).toEqual([]);
    }
    const insert = await anon.from('signals').insert(signalFor(alice, aliceTrader, 'XRPUSDT'));
    expect(insert.error).not.toBeNull();
  });

  it('a status row cannot be written for another user or a foreign trader', async () => {
    const bobWorker = clientFor(stack, bob.workerJwt);
    const worker = await bobWorker
      .from('worker_status')
      .upsert({ user_id: alice.id, machine_id: 'evil', version: '1', state: 'stopped', started_at: new Date().toISOString(), heartbeat_at: new Date().toISOString() });
    expect(worker.error).not.toBeNull();
    const trader = await bobWorker.from('trader_status').upsert({ trader_id: aliceTrader, user_id: bob.id, state: 'disabled' });
    expect(trader.error).not.toBeNull();
    const [row] = await stack.sql<{ machine_id: string }[]>`select machine_id from public.worker_status where user_id = ${alice.id}`;
    expect(row!.machine_id).toBe('m');
  });

  it('editing a trader moves updated_at (trigger-maintained)', async () => {
    const [before] = await stack.sql<{ updated_at: Date }[]>`select updated_at from public.traders where id = ${bobTrader}`;
    const app = clientFor(stack, bob.userJwt);
    await app.from('traders').update({ name: 'bob-macd-2' }).eq('id', bobTrader);
    const [after] = await stack.sql<{ updated_at: Date }[]>`select updated_at from public.traders where id = ${bobTrader}`;
    expect(after!.updated_at.getTime()).toBeGreaterThan(before!.updated_at.getTime());
  });
});
