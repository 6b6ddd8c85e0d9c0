// Scale: 1,000 users from an empty Fly organization converge through 5 % injected 429/5xx answers, with a bounded
// number of Machines API requests per user.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleetRig, type FleetRig } from '../dev/flySim/rig.ts';

const USERS = 1000;

let rig: FleetRig;

beforeAll(async () => {
  rig = await startFleetRig({ seed: 42, transitions: { bootMs: 40, stopMs: 20, jitter: 0.5 }, workers: false });
}, 60_000);

afterAll(async () => {
  await rig?.stop();
});

describe('reconcile at scale', () => {
  it('1,000 users from empty converge through 5 % injected faults within a bounded number of API calls per user', async () => {
    const { stack, sim } = rig;
    const users = (
      await stack.sql<{ id: string }[]>`insert into auth.users (email) select 'fleet-' || n || '@example.test' from generate_series(1, ${USERS}) n returning id`
    ).map((row) => row.id);
    await stack.sql`insert into public.worker_machines (user_id, image, region, memory_mb)
                    select id, 'registry.fly.io/screener:v1', 'nrt', 1024 from auth.users where email like 'fleet-%'`;
    sim.setFaultRate(0.05);
    const { fly, reconciler } = rig.controller('scale', { concurrency: 32, waitTimeoutSec: 10, claimTtlSec: 300, passBackoffMs: 50 });

    const startedAt = Date.now();
    const report = await reconciler.reconcile();
    const elapsedMs = Date.now() - startedAt;

    expect(report.notConverged).toEqual([]);
    expect(report.converged).toHaveLength(USERS);
    expect(sim.stats.faultsInjected).toBeGreaterThan(USERS * 0.2);
    // Exactly one running machine per user, and nothing else.
    const machines = sim.machines();
    expect(machines).toHaveLength(USERS);
    expect(new Set(machines.map((machine) => machine.app)).size).toBe(USERS);
    expect(machines.every((machine) => machine.state === 'started')).toBe(true);
    const [{ count }] = await stack.sql<{ count: number }[]>`
      select count(*)::int as count from public.worker_machines where actual_state = 'started' and key_id is not null and claimed_by is null`;
    expect(count).toBe(USERS);

    // From empty a user costs six requests (look, create app, set secret, create machine, wait, look again);
    // faults add their retries, and nothing may loop.
    const perUser = users.map((user) => sim.stats.requestsByApp.get(reconciler.appFor(user)) ?? 0);
    const mean = perUser.reduce((sum, calls) => sum + calls, 0) / USERS;
    const max = Math.max(...perUser);
    console.info(`fleet scale: ${USERS} users in ${elapsedMs} ms, ${report.passes} passes, ${fly.requests} requests (${fly.retries} retries), ${mean.toFixed(2)} per user, max ${max}, ${sim.stats.faultsInjected} faults`);
    expect(mean).toBeLessThanOrEqual(8);
    expect(max).toBeLessThanOrEqual(15);
  }, 120_000);
});
