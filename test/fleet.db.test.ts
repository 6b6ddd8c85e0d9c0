// The fleet's tables through the real PostgREST: worker_machines is the platform's to write and each user's to read,
// and a revoked worker key is refused on its very next request while the user's other keys keep working.
import { beforeAll, describe, expect, it } from 'vitest';
import { mintUserJwt } from '../dev/jwt.ts';
import { keyIdOf } from '../src/fleet/workerKey.ts';
import { clientFor, createTestUser, insertTrader, sharedStack, type TestUser } from './support/stack.ts';

const stack = sharedStack();

describe('worker_machines', () => {
  let alice: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    alice = await createTestUser(stack);
    bob = await createTestUser(stack);
    const service = clientFor(stack, stack.serviceKey);
    const seeded = await service.from('worker_machines').insert([
      { user_id: alice.id, desired_state: 'running', region: 'nrt', memory_mb: 1024, image: 'registry.fly.io/screener:v1' },
      { user_id: bob.id, desired_state: 'stopped', region: 'fra', memory_mb: 512, image: 'registry.fly.io/screener:v1' },
    ]);
    expect(seeded.error).toBeNull();
  });

  it("a user and its worker key read only that user's row", async () => {
    for (const key of [alice.userJwt, alice.workerJwt]) {
      const rows = await clientFor(stack, key).from('worker_machines').select('user_id, desired_state');
      expect(rows.error).toBeNull();
      expect(rows.data).toEqual([{ user_id: alice.id, desired_state: 'running' }]);
    }
  });

  it('neither a user, its worker key nor an anonymous caller can write desired state', async () => {
    for (const key of [alice.userJwt, alice.workerJwt, stack.anonKey]) {
      const client = clientFor(stack, key);
      const update = await client.from('worker_machines').update({ desired_state: 'absent', image: 'evil:latest' }).eq('user_id', alice.id);
      expect(update.error?.code).toBe('42501');
      const insert = await client.from('worker_machines').insert({ user_id: bob.id, image: 'evil:latest' });
      expect(insert.error?.code).toBe('42501');
      const remove = await client.from('worker_machines').delete().eq('user_id', alice.id);
      expect(remove.error?.code).toBe('42501');
    }
    const rows = await stack.sql<{ user_id: string; image: string; desired_state: string }[]>`
      select user_id, image, desired_state from public.worker_machines where user_id in (${alice.id}, ${bob.id}) order by desired_state`;
    expect(rows.map((row) => [row.desired_state, row.image])).toEqual([
      ['running', 'registry.fly.io/screener:v1'],
      ['stopped', 'registry.fly.io/screener:v1'],
    ]);
  });

  it('the database checks what the platform writes', async () => {
    const service = clientFor(stack, stack.serviceKey);
    const badState = await service.from('worker_machines').update({ desired_state: 'paused' }).eq('user_id', alice.id);
    expect(badState.error?.code).toBe('23514');
    const badMemory = await service.from('worker_machines').update({ memory_mb: 1000 }).eq('user_id', alice.id);
    expect(badMemory.error?.code).toBe('23514');
  });
});

describe('worker key revocation', () => {
  it('every worker key carries its own id', () => {
    const first = mintUserJwt(crypto.randomUUID(), stack.jwtSecret, { worker: true });
    const second = mintUserJwt(crypto.randomUUID(), stack.jwtSecret, { worker: true });
    expect(keyIdOf(first)).toMatch(/^[0-9a-f-]{36}$/);
    expect(keyIdOf(first)).not.toBe(keyIdOf(second));
    expect(keyIdOf(mintUserJwt(crypto.randomUUID(), stack.jwtSecret))).toBeUndefined();
  });

  it("a revoked key is refused on its next request; the user's new key and own session keep working", async () => {
    const user = await createTestUser(stack);
    const traderId = await insertTrader(stack, { userId: user.id });
    const oldKey = clientFor(stack, user.workerJwt);
    const newKey = clientFor(stack, mintUserJwt(user.id, stack.jwtSecret, { worker: true }));
    expect((await oldKey.from('traders').select('id')).data).toEqual([{ id: traderId }]);

    const service = clientFor(stack, stack.serviceKey);
    const revoked = await service.from('revoked_worker_keys').insert({ jti: keyIdOf(user.workerJwt), user_id: user.id, reason: 'rotated' });
    expect(revoked.error).toBeNull();

    const read = await oldKey.from('traders').select('id');
    expect(read.status).toBe(403);
    expect(read.error?.code).toBe('28000');
    const heartbeat = await oldKey.from('worker_status').upsert({
      user_id: user.id, machine_id: 'm', version: '1', state: 'ready', started_at: new Date().toISOString(), heartbeat_at: new Date().toISOString(),
    });
    expect(heartbeat.error?.code).toBe('28000');
    expect(await stack.sql`select 1 from public.worker_status where user_id = ${user.id}`).toHaveLength(0);

    expect((await newKey.from('traders').select('id')).data).toEqual([{ id: traderId }]);
    expect((await clientFor(stack, user.userJwt).from('traders').select('id')).data).toEqual([{ id: traderId }]);
  });

  it('row-level security refuses a revoked key even where the pre-request hook does not run', async () => {
    const user = await createTestUser(stack);
    await insertTrader(stack, { userId: user.id });
    const claims = JSON.stringify({ sub: user.id, role: 'authenticated', worker: true, jti: keyIdOf(user.workerJwt) });
    const visible = () =>
      stack.sql.begin(async (tx) => {
        await tx`select set_config('request.jwt.claims', ${claims}, true)`;
        await tx`set local role authenticated`;
        return (await tx`select id from public.traders`).length;
      });
    expect(await visible()).toBe(1);
    await stack.sql`insert into public.revoked_worker_keys (jti, user_id) values (${keyIdOf(user.workerJwt)!}, ${user.id})`;
    expect(await visible()).toBe(0);
  });

  it('nobody but the service role reads or writes the revocation list', async () => {
    const user = await createTestUser(stack);
    for (const key of [user.userJwt, user.workerJwt, stack.anonKey]) {
      const client = clientFor(stack, key);
      expect((await client.from('revoked_worker_keys').select('jti')).error?.code).toBe('42501');
      // A user must not be able to revoke (or un-revoke) keys, not even its own.
      expect((await client.from('revoked_worker_keys').insert({ jti: keyIdOf(user.workerJwt) })).error?.code).toBe('42501');
    }
  });
});
