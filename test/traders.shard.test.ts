// Sharding on the worker's side: which shard owns a trader, each shard loading only its own, and worker_status and the
// probation mark kept per shard (supabase/migrations/0005_shards.sql), against the shared real stack.
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.ts';
import { fnv1a64, jumpConsistentHash, type Shard, shardOfTrader } from '../src/database/shard.ts';
import { StateSynchronizer } from '../src/database/StateSynchronizer.ts';
import { collectingLogger } from './support/logs.ts';
import { workerStatus } from './support/signals.ts';
import { clientFor, createTestUser, insertTrader, sharedStack, type TestUser } from './support/stack.ts';

const stack = sharedStack();
const synchronizers: StateSynchronizer[] = [];

function synchronizerFor(user: TestUser, shard: Shard) {
  const synchronizer = new StateSynchronizer({
    supabaseUrl: stack.supabaseUrl,
    supabaseKey: user.workerJwt,
    userId: user.id,
    machineId: `machine-${shard.index}`,
    shard,
    clock: systemClock,
    logger: collectingLogger().logger,
    retry: { baseMs: 20, maxMs: 200 },
  });
  synchronizers.push(synchronizer);
  return synchronizer;
}

afterEach(async () => {
  await Promise.all(synchronizers.splice(0).map((synchronizer) => synchronizer.stop()));
});

const ids = Array.from({ length: 3000 }, (_, index) => `${index.toString(16).padStart(8, '0')}-1c2d-4e5f-8a9b-${(index * 7919).toString(16).padStart(12, '0')}`);

describe('the shard of a trader', () => {
  it('is FNV-1a 64 of the id placed by jump consistent hashing, the same answer for the same id every time', () => {
    // FNV-1a 64 reference vectors (Fowler, Noll, Vo: test suite of the FNV authors).
    expect(fnv1a64('')).toBe(0xcbf29ce484222325n);
    expect(fnv1a64('a')).toBe(0xaf63dc4c8601ec8cn);
    expect(fnv1a64('foobar')).toBe(0x85944171f73967e8n);
    // Jump consistent hash reference values (the paper's C++ on key 0 and key 1 with 1, 2 and 10 buckets).
    expect([1, 2, 10].map((buckets) => jumpConsistentHash(0n, buckets))).toEqual([0, 0, 0]);
    expect(jumpConsistentHash(1n, 1)).toBe(0);
    for (const id of ids.slice(0, 50)) {
      expect(shardOfTrader(id, 5)).toBe(shardOfTrader(id.toUpperCase(), 5));
      expect(shardOfTrader(id, 1)).toBe(0);
    }
  });

  it('spreads traders evenly and moves only what a change of count must move', () => {
    const at = (count: number) => ids.map((id) => shardOfTrader(id, count));
    const [one, two, three] = [at(1), at(2), at(3)];
    for (const [count, shards] of [[2, two], [3, three]] as const) {
      for (let index = 0; index < count; index += 1) {
        const share = shards.filter((shard) => shard === index).length / ids.length;
        expect(share, `shard ${index} of ${count}`).toBeGreaterThan(1 / count - 0.04);
        expect(share, `shard ${index} of ${count}`).toBeLessThan(1 / count + 0.04);
      }
    }
    expect(one.every((shard) => shard === 0)).toBe(true);
    // 2 → 3: a trader either stays where it was or moves to the new shard; about a third move.
    const moved = ids.filter((_, index) => two[index] !== three[index]);
    expect(ids.every((_, index) => two[index] === three[index] || three[index] === 2)).toBe(true);
    expect(moved.length / ids.length).toBeGreaterThan(0.28);
    expect(moved.length / ids.length).toBeLessThan(0.39);
  });
});

describe('a sharded worker against the database', () => {
  it('loads only its own share: the shards of a user together load every trader exactly once', async () => {
    const user = await createTestUser(stack);
    const traders = new Set<string>();
    for (let index = 0; index < 24; index += 1) traders.add(await insertTrader(stack, { userId: user.id, name: `trader ${index}` }));
    // A row no shard can run is still owned by exactly one, which records why it was rejected.
    const rejectedId = await insertTrader(stack, { userId: user.id, name: 'bad interval', filter: { code: 'return true;', refreshInterval: '7m' } });

    const loads = await Promise.all([0, 1, 2].map((index) => synchronizerFor(user, { index, count: 3 }).loadTraders()));

    const loaded = loads.flatMap((load, index) => load.traders.map((trader) => ({ id: trader.id, shard: index })));
    expect(loaded.map((entry) => entry.id).sort()).toEqual([...traders].sort());
    for (const entry of loaded) expect(shardOfTrader(entry.id, 3)).toBe(entry.shard);
    expect(loads.map((load) => load.traders.length).every((count) => count > 0)).toBe(true);
    const rejectedBy = loads.map((load, index) => (load.rejected.some((row) => row.id === rejectedId) ? index : -1)).filter((index) => index >= 0);
    expect(rejectedBy).toEqual([shardOfTrader(rejectedId, 3)]);
    // A poll keeps to the share as well: a trader added later shows up on its own shard only.
    const late = await insertTrader(stack, { userId: user.id, name: 'late' });
    const changes = await Promise.all(synchronizers.map((synchronizer) => synchronizer.changesSince()));
    expect(changes.map((change) => change.upserted.map((trader) => trader.id))).toEqual([0, 1, 2].map((index) => (shardOfTrader(late, 3) === index ? [late] : [])));
  });

  it('writes one worker_status row per shard, which the user reads and the worker key writes', async () => {
    const user = await createTestUser(stack);
    const shards = [0, 1, 2].map((index) => synchronizerFor(user, { index, count: 3 }));
    await Promise.all(shards.map((synchronizer, index) => synchronizer.writeWorkerStatus(workerStatus(user.id, { machineId: `machine-${index}`, state: 'starting' }))));
    await shards[1]!.writeWorkerStatus(workerStatus(user.id, { machineId: 'machine-1', state: 'ready', traders: 7 }));

    const rows = await stack.sql`select shard_index, shard_count, machine_id, state from public.worker_status where user_id = ${user.id} order by shard_index`;
    expect(rows).toEqual([
      { shard_index: 0, shard_count: 3, machine_id: 'machine-0', state: 'starting' },
      { shard_index: 1, shard_count: 3, machine_id: 'machine-1', state: 'ready' },
      { shard_index: 2, shard_count: 3, machine_id: 'machine-2', state: 'starting' },
    ]);
    const { data, error } = await clientFor(stack, user.userJwt).from('worker_status').select('shard_index').order('shard_index');
    expect(error).toBeNull();
    expect(data).toEqual([{ shard_index: 0 }, { shard_index: 1 }, { shard_index: 2 }]);
    // Another user's session sees none of them.
    const other = await createTestUser(stack);
    const { data: foreign } = await clientFor(stack, other.userJwt).from('worker_status').select('shard_index').eq('user_id', user.id);
    expect(foreign).toEqual([]);
  });

  it('keeps the probation mark and the previous run per shard: one shard’s crash leaves the others’ boots alone', async () => {
    const user = await createTestUser(stack);
    const [first, second] = [0, 1].map((index) => synchronizerFor(user, { index, count: 2 }));
    await first!.writeWorkerStatus(workerStatus(user.id, { state: 'ready' }));
    await second!.writeWorkerStatus(workerStatus(user.id, { state: 'stopped' }));
    await first!.writeProbation({ traderId: 'suspect', codeHash: 'hash', cleared: ['a'] });

    expect(await first!.readPreviousRun()).toEqual({ state: 'ready', probation: { traderId: 'suspect', codeHash: 'hash', cleared: ['a'] } });
    expect(await second!.readPreviousRun()).toEqual({ state: 'stopped', probation: null });
    // A shard that never ran has no previous run, whatever its siblings did.
    expect(await synchronizerFor(user, { index: 2, count: 3 }).readPreviousRun()).toBeNull();
  });

  it('refuses a shard index outside the shard count it reports', async () => {
    const user = await createTestUser(stack);
    const stray = synchronizerFor(user, { index: 3, count: 3 });
    await expect(stray.writeWorkerStatus(workerStatus(user.id))).rejects.toThrow(/worker_status_shard_bounded|check constraint/);
  });
});
