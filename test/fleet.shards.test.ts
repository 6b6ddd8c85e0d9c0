// A user spread over several machines: the controller keeps one machine per shard from worker_machines.shard_count,
// reshards in the order that never leaves a trader without a machine, and status, rollout and rotate-key see every
// shard. Against the Machines API simulator and a real local stack.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FlySimulator } from '../dev/flySim/index.ts';
import { type FleetRig, startFleetRig } from '../dev/flySim/rig.ts';
import type { SimulatedWorkers } from '../dev/flySim/workers.ts';
import type { LocalStack } from '../dev/localStack.ts';
import { systemClock } from '../src/clock.ts';
import type { FlyMachine } from '../src/fleet/flyMessages.ts';
import { KeyRotation } from '../src/fleet/KeyRotation.ts';
import { type Desired, nextStep } from '../src/fleet/plan.ts';
import { Rollout } from '../src/fleet/Rollout.ts';
import { fleetStatus } from '../src/fleet/status.ts';
import { keyIdOf } from '../src/fleet/workerKey.ts';
import { silentLogger } from '../src/logger.ts';

let rig: FleetRig;
let stack: LocalStack;
let sim: FlySimulator;
let workers: SimulatedWorkers;
/**
 * How long a status row may take to show: a simulated worker reports through the real PostgREST when its machine boots,
 * which a loaded machine can hold up well past expect.poll's default second.
 */
const POLL = { timeout: 20_000, interval: 50 };
/** `user image shard` of workers that never report in: a build that crashes at boot on one shard. */
const broken = new Set<string>();

beforeAll(async () => {
  rig = await startFleetRig({
    seed: 5,
    workers: (event) => (broken.has(`${event.env.USER_ID} ${event.image} ${event.env.SHARD_INDEX}`) ? 'silent' : 'ready'),
  });
  ({ stack, sim } = rig);
  workers = rig.workers!;
}, 60_000);

afterAll(async () => {
  await rig?.stop();
});

async function seedUser(shards: number): Promise<string> {
  const user = await stack.createUser();
  await stack.sql`insert into public.worker_machines (user_id, image, region, memory_mb, shard_count) values (${user}, 'registry.fly.io/screener:v1', 'nrt', 1024, ${shards})`;
  return user;
}

const machinesOf = (app: string) =>
  sim
    .machines()
    .filter((machine) => machine.app === app)
    .map((machine) => ({ id: machine.id, state: machine.state, shard: machine.config.env?.SHARD_INDEX, count: machine.config.env?.SHARD_COUNT, key: machine.config.metadata?.screener_key_id }))
    .sort((a, b) => Number(a.shard) - Number(b.shard));

const statusRows = (user: string) =>
  stack.sql<{ shard_index: number; shard_count: number; machine_id: string; state: string }[]>`
    select shard_index, shard_count, machine_id, state from public.worker_status where user_id = ${user} order by shard_index`;

describe('the plan for a sharded user', () => {
  const desired: Desired = { userId: 'u', state: 'running', region: 'nrt', memoryMb: 1024, image: 'img:v1', shardCount: 1 };
  const machine = (id: string, env: Record<string, string>, createdAt = '2026-01-01T00:00:00Z'): FlyMachine => ({
    id,
    state: 'started',
    region: 'nrt',
    created_at: createdAt,
    config: { image: 'img:v1', guest: { memory_mb: 1024 }, env: { USER_ID: 'u', ...env } },
  });

  it('leaves a machine from before sharding (no SHARD_INDEX, no SHARD_COUNT) alone: a controller upgrade restarts nothing', () => {
    const legacy = machine('m0', {});
    expect(nextStep(desired, [legacy], 'key')).toEqual({ kind: 'converged', machine: legacy, machines: [legacy] });
  });

  it('takes the legacy machine as shard 0 when the count grows, and restarts it with the count only after the new shards', () => {
    const legacy = machine('m0', {});
    expect(nextStep({ ...desired, shardCount: 2 }, [legacy], 'key')).toEqual({ kind: 'provision', shardIndex: 1 });
    const second = machine('m1', { SHARD_INDEX: '1', SHARD_COUNT: '2' });
    expect(nextStep({ ...desired, shardCount: 2 }, [legacy, second], 'key')).toMatchObject({ kind: 'update', machine: { id: 'm0' }, reason: 'shards 1 → 2' });
  });

  it('destroys a machine whose SHARD_INDEX it cannot read, after the shards it keeps are in line', () => {
    const machines = [machine('m0', { SHARD_INDEX: '0', SHARD_COUNT: '1' }), machine('mx', { SHARD_INDEX: 'first', SHARD_COUNT: '1' })];
    expect(nextStep(desired, machines, 'key')).toMatchObject({ kind: 'destroy', machines: [{ id: 'mx' }], reason: 'shards beyond 1' });
  });
});

describe('sharded users', () => {
  it('reshards 1 → 3 → 2: new shards first, then the survivors restarted with the count, extra shards destroyed last', async () => {
    const user = await seedUser(1);
    const { reconciler, store } = rig.controller('controller-a');
    const app = reconciler.appFor(user);
    expect((await reconciler.reconcile({ users: [user] })).notConverged).toEqual([]);
    const [single] = machinesOf(app);
    expect(single).toMatchObject({ shard: '0', count: '1', state: 'started' });
    const keyId = (await store.machine(user))!.key_id;

    await stack.sql`update public.worker_machines set shard_count = 3 where user_id = ${user}`;
    const up = await reconciler.reconcile({ users: [user] });
    expect(up.notConverged).toEqual([]);
    // Overlap, never a gap: shards 1 and 2 run before shard 0 drops their traders.
    expect(up.converged[0]!.actions).toEqual(['provision shard 1', 'provision shard 2', 'update: shards 1 → 3']);
    const three = machinesOf(app);
    expect(three.map((machine) => [machine.shard, machine.count, machine.state])).toEqual([
      ['0', '3', 'started'],
      ['1', '3', 'started'],
      ['2', '3', 'started'],
    ]);
    // Shard 0 is the same machine, updated in place; every shard runs on the app's one key, which stays valid.
    expect(three[0]!.id).toBe(single!.id);
    expect(three.map((machine) => machine.key)).toEqual([keyId, keyId, keyId]);
    expect((await store.machine(user))!).toMatchObject({ key_id: keyId, machine_id: single!.id });
    expect(await store.isRevoked(keyId!)).toBe(false);
    expect(up.converged[0]!.machines).toEqual(three.map((machine) => ({ shardIndex: Number(machine.shard), machineId: machine.id })));
    await expect.poll(() => statusRows(user), POLL).toEqual(three.map((machine, index) => ({ shard_index: index, shard_count: 3, machine_id: machine.id, state: 'ready' })));

    await stack.sql`update public.worker_machines set shard_count = 2 where user_id = ${user}`;
    const down = await reconciler.reconcile({ users: [user] });
    expect(down.notConverged).toEqual([]);
    expect(down.converged[0]!.actions).toEqual(['update: shards 3 → 2', 'update: shards 3 → 2', 'destroy 1 (shards beyond 2)']);
    const two = machinesOf(app);
    expect(two.map((machine) => [machine.id, machine.shard, machine.count])).toEqual([
      [three[0]!.id, '0', '2'],
      [three[1]!.id, '1', '2'],
    ]);
    // The removed shard's status row goes with its machine; the survivors report their new count.
    await expect.poll(() => statusRows(user), POLL).toEqual(two.map((machine, index) => ({ shard_index: index, shard_count: 2, machine_id: machine.id, state: 'ready' })));

    // Converged: the next pass only looks.
    const again = await reconciler.reconcile({ users: [user] });
    expect(again.converged[0]!.actions).toEqual([]);
  });

  it('replaces a missing shard and destroys a duplicate one, keeping the oldest', async () => {
    const user = await seedUser(2);
    const { reconciler, fly } = rig.controller('controller-a');
    const app = reconciler.appFor(user);
    expect((await reconciler.reconcile({ users: [user] })).notConverged).toEqual([]);
    const [first, second] = machinesOf(app);
    await fly.destroyMachine(app, first!.id, { force: true });
    const original = sim.machines().find((machine) => machine.id === second!.id)!;
    await fly.createMachine(app, { region: 'nrt', config: original.config });

    const report = await reconciler.reconcile({ users: [user] });
    expect(report.notConverged).toEqual([]);
    expect(report.converged[0]!.actions).toEqual(['destroy 1 (one machine per shard)', 'provision shard 0']);
    const after = machinesOf(app);
    expect(after.map((machine) => machine.shard)).toEqual(['0', '1']);
    expect(after[1]!.id).toBe(second!.id);
  });

  it('status shows one line per shard, and rotate-key restarts every shard before revoking the old key', async () => {
    const user = await seedUser(3);
    const parts = rig.controller('controller-a');
    expect((await parts.reconciler.reconcile({ users: [user] })).notConverged).toEqual([]);
    const app = parts.reconciler.appFor(user);
    await expect.poll(async () => (await statusRows(user)).length, POLL).toBe(3);

    const rows = (await fleetStatus({ ...parts, clock: systemClock, concurrency: 4 })).filter((row) => row.user === user);
    expect(rows.map((row) => [row.shard, row.shards, row.state, row.worker])).toEqual([
      [0, 3, 'started', 'ready'],
      [1, 3, 'started', 'ready'],
      [2, 3, 'started', 'ready'],
    ]);
    expect(rows.map((row) => row.machine)).toEqual(machinesOf(app).map((machine) => machine.id));

    const oldKeyId = (await parts.store.machine(user))!.key_id!;
    const bootsBefore = workers.bootsOf(user).length;
    const rotation = new KeyRotation({
      ...parts,
      clock: systemClock,
      logger: silentLogger(),
      settings: { supabaseUrl: stack.supabaseUrl, supabaseJwtSecret: stack.jwtSecret, keyDays: 365, claimTtlSec: 60, readyTimeoutMs: 10_000, pollMs: 50 },
    });
    const result = await rotation.rotate(user);
    expect(result.revokedKeyIds).toEqual([oldKeyId]);
    const boots = workers.bootsOf(user).slice(bootsBefore);
    expect(boots.map((boot) => boot.event.env.SHARD_INDEX).sort()).toEqual(['0', '1', '2']);
    expect(boots.every((boot) => boot.status === 201 || boot.status === 200)).toBe(true);
    expect(machinesOf(app).map((machine) => [machine.shard, machine.count, machine.key])).toEqual([
      ['0', '3', result.newKeyId],
      ['1', '3', result.newKeyId],
      ['2', '3', result.newKeyId],
    ]);
    expect(keyIdOf(sim.app(app)!.secrets.get('SUPABASE_KEY')!)).toBe(result.newKeyId);
  });

  it('a rollout waits for every shard of a user and halts naming the shard that never got ready', async () => {
    const user = await seedUser(2);
    const { reconciler, store } = rig.controller('controller-a');
    expect((await reconciler.reconcile({ users: [user] })).notConverged).toEqual([]);
    await expect.poll(async () => (await statusRows(user)).length, POLL).toBe(2);
    broken.add(`${user} registry.fly.io/screener:v2 1`);

    const rollout = new Rollout({ store, reconciler, clock: systemClock, logger: silentLogger() });
    const report = await rollout.run({ image: 'registry.fly.io/screener:v2', canaryUsers: [user], canaries: 1, readyTimeoutMs: 1500, pollMs: 50 });

    expect(report.halted?.userId).toBe(user);
    expect(report.halted?.reason).toMatch(/^not ready within 2 s \(shard 1\): worker_status ready, heartbeat \d+ s ago/);
    expect(report.updated).not.toContain(user);
  });
});
