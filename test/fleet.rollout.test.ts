// Rollouts over 100 machines: canaries one at a time, then batches, each machine ready with a fresh heartbeat (from
// the worker stand-in, written with the machine's own key) before the next; a canary that never gets ready halts it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleetRig, type FleetRig } from '../dev/flySim/rig.ts';
import type { FlySimulator } from '../dev/flySim/index.ts';
import type { SimulatedWorkers } from '../dev/flySim/workers.ts';
import type { LocalStack } from '../dev/localStack.ts';
import { systemClock } from '../src/clock.ts';
import { Rollout } from '../src/fleet/Rollout.ts';
import { silentLogger } from '../src/logger.ts';

const USERS = 100;

let rig: FleetRig;
let stack: LocalStack;
let sim: FlySimulator;
let workers: SimulatedWorkers;
let users: string[];
/** (user, image) pairs whose worker never reports in: a build that crashes at boot. */
const broken = new Set<string>();

beforeAll(async () => {
  rig = await startFleetRig({
    seed: 11,
    transitions: { bootMs: 20, stopMs: 10, jitter: 0.5 },
    workers: (event) => (broken.has(`${event.env.USER_ID} ${event.image}`) ? 'silent' : 'ready'),
  });
  ({ stack, sim } = rig);
  workers = rig.workers!;
  users = (
    await stack.sql<{ id: string }[]>`insert into auth.users (email) select 'rollout-' || n || '@example.test' from generate_series(1, ${USERS}) n returning id`
  ).map((row) => row.id);
  users.sort();
  await stack.sql`insert into public.worker_machines (user_id, image) select id, 'registry.fly.io/screener:v1' from auth.users where email like 'rollout-%'`;
}, 60_000);

afterAll(async () => {
  await rig?.stop();
});

function parts() {
  const { reconciler, store } = rig.controller('rollout-test', { concurrency: 20, maxPasses: 3 });
  const rollout = new Rollout({ store, reconciler, clock: systemClock, logger: silentLogger() });
  return { reconciler, rollout };
}

const imageOf = (user: string) => sim.machines().find((machine) => machine.app === `screener-${user}`)?.config.image;

describe('rollout', () => {
  it('updates 100 machines, canaries first, each batch ready before the next', async () => {
    const { reconciler, rollout } = parts();
    expect((await reconciler.reconcile()).notConverged).toEqual([]);
    const report = await rollout.run({ image: 'registry.fly.io/screener:v2', canaries: 3, batchSize: 25, readyTimeoutMs: 10_000, pollMs: 50 });
    expect(report).toMatchObject({ completed: true, pending: [] });
    expect(report.halted).toBeUndefined();
    expect(report.updated).toHaveLength(USERS);
    expect(report.updated.slice(0, 3)).toEqual(users.slice(0, 3));
    expect(users.every((user) => imageOf(user) === 'registry.fly.io/screener:v2')).toBe(true);
    // Canaries booted on v2 strictly before anyone else did.
    const firstBoots = users.map((user) => workers.boots.findIndex((boot) => boot.event.env.USER_ID === user && boot.event.image === 'registry.fly.io/screener:v2'));
    const lastCanary = Math.max(...firstBoots.slice(0, 3));
    expect(firstBoots.slice(3).every((index) => index > lastCanary)).toBe(true);
  }, 60_000);

  it('halts at the first canary that never gets ready and leaves everyone after it on the old image', async () => {
    const { rollout } = parts();
    broken.add(`${users[1]} registry.fly.io/screener:v3`);
    const report = await rollout.run({ image: 'registry.fly.io/screener:v3', canaries: 3, batchSize: 25, readyTimeoutMs: 1500, pollMs: 50 });
    expect(report.completed).toBe(false);
    expect(report.updated).toEqual([users[0]]);
    expect(report.halted?.userId).toBe(users[1]);
    expect(report.halted?.reason).toMatch(/^not ready within 2 s: worker_status ready, heartbeat \d+ s ago/);
    expect(report.pending).toHaveLength(USERS - 1);
    expect(imageOf(users[0]!)).toBe('registry.fly.io/screener:v3');
    expect(imageOf(users[1]!)).toBe('registry.fly.io/screener:v3');
    expect(users.slice(2).every((user) => imageOf(user) === 'registry.fly.io/screener:v2')).toBe(true);
    const [{ count }] = await stack.sql<{ count: number }[]>`select count(*)::int as count from public.worker_machines where image = 'registry.fly.io/screener:v3'`;
    expect(count).toBe(2);
  }, 60_000);
});
