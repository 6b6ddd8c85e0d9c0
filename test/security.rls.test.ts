// One user's worker key against another user's rows, through the real PostgREST with supabase-js.
// Complements test/db.rls.test.ts (own-row reads, foreign signal inserts, worker keys read-only on traders, anon).
import { createHmac } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { signJwt } from '../dev/jwt.ts';
import { clientFor, createTestUser, insertTrader, sharedStack, type TestUser } from './support/stack.ts';

const stack = sharedStack();
const TABLES = ['traders', 'signals', 'worker_status', 'trader_status'] as const;

function signal(userId: string, traderId: string, symbol: string) {
  return {
    user_id: userId,
    trader_id: traderId,
    symbol,
    interval: '1m',
    candle_open_time: '2026-02-01T00:00:00.000Z',
    price: 1,
    matched_conditions: [],
    source: 'cloud',
    machine_id: 'intruder',
    provenance: {},
  };
}

/** Everything of alice's the database holds, read as superuser: what no attempt below may change. */
async function aliceSnapshot(alice: TestUser) {
  const [traders, signals, worker, traderStatus] = await Promise.all([
    stack.sql`select id, name, enabled, filter, updated_at from public.traders where user_id = ${alice.id} order by id`,
    stack.sql`select trader_id, symbol, machine_id, price from public.signals where user_id = ${alice.id} order by symbol`,
    stack.sql`select machine_id, state, heartbeat_at from public.worker_status where user_id = ${alice.id}`,
    stack.sql`select trader_id, user_id, state, last_error from public.trader_status where user_id = ${alice.id} or trader_id in (select id from public.traders where user_id = ${alice.id}) order by trader_id`,
  ]);
  return JSON.stringify({ traders, signals, worker, traderStatus });
}

describe("a worker key against another user's rows", () => {
  let alice: TestUser;
  let bob: TestUser;
  let aliceTrader: string;
  let bobTrader: string;
  let before: string;

  beforeAll(async () => {
    alice = await createTestUser(stack);
    bob = await createTestUser(stack);
    aliceTrader = await insertTrader(stack, { userId: alice.id, name: 'alice-secret-strategy' });
    bobTrader = await insertTrader(stack, { userId: bob.id, name: 'bob' });
    await stack.sql`insert into public.signals (user_id, trader_id, symbol, interval, candle_open_time, source) values (${alice.id}, ${aliceTrader}, 'ETHUSDT', '1m', now(), 'cloud')`;
    await stack.sql`insert into public.worker_status (user_id, machine_id, version, state, started_at, heartbeat_at) values (${alice.id}, 'alice-machine', '1', 'ready', now(), now())`;
    await stack.sql`insert into public.trader_status (trader_id, user_id, state) values (${aliceTrader}, ${alice.id}, 'running')`;
    await stack.sql`insert into public.worker_status (user_id, machine_id, version, state, started_at, heartbeat_at) values (${bob.id}, 'bob-machine', '1', 'ready', now(), now())`;
    await stack.sql`insert into public.trader_status (trader_id, user_id, state) values (${bobTrader}, ${bob.id}, 'running')`;
    before = await aliceSnapshot(alice);
  });

  it('reads nothing of the other user even when asking for it by id, user or count', async () => {
    const bobWorker = clientFor(stack, bob.workerJwt);
    for (const table of TABLES) {
      const byUser = await bobWorker.from(table).select('*').eq('user_id', alice.id);
      expect(byUser.error, table).toBeNull();
      expect(byUser.data, table).toEqual([]);
      const counted = await bobWorker.from(table).select('*', { count: 'exact', head: true }).eq('user_id', alice.id);
      expect(counted.count, table).toBe(0);
    }
    expect((await bobWorker.from('traders').select('id, filter').eq('id', aliceTrader)).data).toEqual([]);
    expect((await bobWorker.from('signals').select('symbol').eq('trader_id', aliceTrader)).data).toEqual([]);
    expect((await bobWorker.from('trader_status').select('state').eq('trader_id', aliceTrader)).data).toEqual([]);
    // Embedding the trader from a signal does not open a side door either.
    expect((await bobWorker.from('signals').select('symbol, traders(name)').eq('user_id', alice.id)).data).toEqual([]);
  });

  it('changes nothing of the other user by update, delete or upsert on any table', async () => {
    const bobWorker = clientFor(stack, bob.workerJwt);
    const now = new Date().toISOString();
    await bobWorker.from('traders').update({ name: 'hijacked', enabled: false }).eq('id', aliceTrader);
    await bobWorker.from('traders').delete().eq('id', aliceTrader);
    await bobWorker.from('traders').upsert({ id: aliceTrader, user_id: bob.id, name: 'stolen', filter: { code: 'return true;' } });
    await bobWorker.from('signals').delete().eq('user_id', alice.id);
    await bobWorker.from('signals').update({ price: 0 }).eq('user_id', alice.id);
    await bobWorker.from('worker_status').update({ state: 'stopped', machine_id: 'evil' }).eq('user_id', alice.id);
    await bobWorker.from('worker_status').delete().eq('user_id', alice.id);
    await bobWorker.from('worker_status').upsert({ user_id: alice.id, machine_id: 'evil', version: '1', state: 'stopped', started_at: now, heartbeat_at: now }, { ignoreDuplicates: true });
    await bobWorker.from('trader_status').update({ state: 'disabled', last_error: 'evil' }).eq('trader_id', aliceTrader);
    await bobWorker.from('trader_status').delete().eq('trader_id', aliceTrader);
    const upsert = await bobWorker.from('trader_status').upsert({ trader_id: aliceTrader, user_id: alice.id, state: 'disabled', last_error: 'evil' });
    expect(upsert.error?.code).toBe('42501');
    expect(await aliceSnapshot(alice)).toBe(before);
  });

  it('cannot insert a signal or status that names the other user or its trader in any combination', async () => {
    const bobWorker = clientFor(stack, bob.workerJwt);
    for (const [userId, traderId] of [[alice.id, bobTrader], [alice.id, aliceTrader], [bob.id, aliceTrader]] as const) {
      const inserted = await bobWorker.from('signals').insert(signal(userId, traderId, 'XRPUSDT'));
      expect(inserted.error?.code, `${userId} ${traderId}`).toBe('42501');
      const ignoringDuplicates = await bobWorker.from('signals').upsert(signal(userId, traderId, 'ADAUSDT'), { onConflict: 'trader_id,symbol,interval,candle_open_time', ignoreDuplicates: true });
      expect(ignoringDuplicates.error?.code, `${userId} ${traderId}`).toBe('42501');
      const status = await bobWorker.from('trader_status').insert({ trader_id: traderId, user_id: userId, state: 'running' });
      expect(status.error, `${userId} ${traderId}`).not.toBeNull();
    }
    const [{ count }] = await stack.sql<{ count: number }[]>`select count(*)::int as count from public.signals where machine_id = 'intruder'`;
    expect(count).toBe(0);
    expect(await aliceSnapshot(alice)).toBe(before);
  });

  it('cannot move its own rows over to the other user', async () => {
    const bobWorker = clientFor(stack, bob.workerJwt);
    const worker = await bobWorker.from('worker_status').update({ user_id: alice.id }).eq('user_id', bob.id);
    expect(worker.error?.code).toBe('42501');
    const toAlice = await bobWorker.from('trader_status').update({ user_id: alice.id }).eq('trader_id', bobTrader);
    expect(toAlice.error?.code).toBe('42501');
    const ontoAliceTrader = await bobWorker.from('trader_status').update({ trader_id: aliceTrader }).eq('trader_id', bobTrader);
    expect(ontoAliceTrader.error).not.toBeNull();
    const [bobStatus] = await stack.sql<{ user_id: string }[]>`select user_id from public.trader_status where trader_id = ${bobTrader}`;
    expect(bobStatus!.user_id).toBe(bob.id);
    expect(await aliceSnapshot(alice)).toBe(before);
  });

  it('reaches no other schema and no function through the API', async () => {
    const bobWorker = clientFor(stack, bob.workerJwt);
    const users = await bobWorker.schema('auth').from('users').select('*');
    expect(users.error).not.toBeNull();
    expect(users.data ?? []).toEqual([]);
    const rpc = await bobWorker.rpc('set_updated_at');
    expect(rpc.error).not.toBeNull();
  });
});

describe('forged and stale worker keys', () => {
  let alice: TestUser;
  let bob: TestUser;
  let aliceTrader: string;
  let before: string;

  beforeAll(async () => {
    alice = await createTestUser(stack);
    bob = await createTestUser(stack);
    aliceTrader = await insertTrader(stack, { userId: alice.id, name: 'alice-forgery-target' });
    before = await aliceSnapshot(alice);
  });

  function forgeries(): Record<string, string> {
    const [header, payload, signature] = bob.workerJwt.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const asAlice = Buffer.from(JSON.stringify({ ...claims, sub: alice.id })).toString('base64url');
    const noneHeader = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
    const nowSec = Math.floor(Date.now() / 1000);
    const wrongSecret = 'x'.repeat(40);
    return {
      "bob's signature on alice's claims": `${header}.${asAlice}.${signature}`,
      'unsigned (alg none)': `${noneHeader}.${asAlice}.`,
      'signed with another secret': signJwt({ ...claims, sub: alice.id }, wrongSecret),
      'service_role signed with another secret': signJwt({ role: 'service_role', iss: 'supabase', iat: nowSec, exp: nowSec + 3600 }, wrongSecret),
      'expired worker key of alice': signJwt({ ...claims, sub: alice.id, iat: nowSec - 7200, exp: nowSec - 3600 }, stack.jwtSecret),
      'HS256 signature over the wrong bytes': `${header}.${asAlice}.${createHmac('sha256', stack.jwtSecret).update(payload).digest('base64url')}`,
    };
  }

  it('are refused outright and neither read nor write anything of the user they claim', async () => {
    for (const [name, token] of Object.entries(forgeries())) {
      const client = clientFor(stack, token);
      const read = await client.from('traders').select('id').eq('user_id', alice.id);
      expect(read.error, name).not.toBeNull();
      expect(read.data ?? [], name).toEqual([]);
      const write = await client.from('signals').insert(signal(alice.id, aliceTrader, 'FORGED'));
      expect(write.error, name).not.toBeNull();
      const status = await client.from('worker_status').upsert({ user_id: alice.id, machine_id: 'forged', version: '1', state: 'stopped', started_at: new Date().toISOString(), heartbeat_at: new Date().toISOString() });
      expect(status.error, name).not.toBeNull();
    }
    expect(await aliceSnapshot(alice)).toBe(before);
  });
});
