// The fleet controller against the Machines API simulator and a real local stack: provision, update, stop and
// deprovision from worker_machines; idempotence; two controllers at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleetRig, type FleetRig } from '../dev/flySim/rig.ts';
import type { FlySimulator } from '../dev/flySim/index.ts';
import type { SimulatedWorkers } from '../dev/flySim/workers.ts';
import type { LocalStack } from '../dev/localStack.ts';
import { keyIdOf } from '../src/fleet/workerKey.ts';

let rig: FleetRig;
let stack: LocalStack;
let sim: FlySimulator;
let workers: SimulatedWorkers;

beforeAll(async () => {
  rig = await startFleetRig({ seed: 7 });
  ({ stack, sim } = rig);
  workers = rig.workers!;
}, 60_000);

afterAll(async () => {
  await rig?.stop();
});

const controller = (owner: string) => rig.controller(owner);

async function seed(count: number, spec: { image?: string; desired_state?: string } = {}): Promise<string[]> {
  const users: string[] = [];
  for (let index = 0; index < count; index += 1) users.push(await stack.createUser());
  await stack.sql`insert into public.worker_machines ${stack.sql(
    users.map((user_id) => ({ user_id, image: spec.image ?? 'registry.fly.io/screener:v1', desired_state: spec.desired_state ?? 'running', region: 'nrt', memory_mb: 1024 })),
  )}`;
  return users;
}

async function clearFleet(): Promise<void> {
  await stack.sql`delete from public.worker_machines`;
}

async function status(key: string): Promise<number> {
  const response = await fetch(`${stack.supabaseUrl}/rest/v1/traders?select=id`, { headers: { apikey: key, authorization: `Bearer ${key}` } });
  await response.body?.cancel();
  return response.status;
}

describe('reconcile', () => {
  it('provisions, updates, stops and deprovisions a user from worker_machines', async () => {
    await clearFleet();
    const [user] = await seed(1);
    const { reconciler, store } = controller('controller-a');
    const app = reconciler.appFor(user!);

    const first = await reconciler.reconcile();
    expect(first.notConverged).toEqual([]);
    const machines = sim.machines().filter((machine) => machine.app === app);
    expect(machines).toHaveLength(1);
    const machine = machines[0]!;
    expect(machine).toMatchObject({ state: 'started', region: 'nrt', config: { image: 'registry.fly.io/screener:v1', guest: { memory_mb: 1024 }, env: { USER_ID: user } } });
    // The key is the app's secret, never part of the machine config, and the database accepts it.
    expect(JSON.stringify(machine.config)).not.toContain('eyJ');
    const key = sim.app(app)!.secrets.get('SUPABASE_KEY')!;
    let row = (await store.machine(user!))!;
    expect(row).toMatchObject({ app_name: app, machine_id: machine.id, actual_state: 'started', actual_image: 'registry.fly.io/screener:v1', last_error: null, claimed_by: null });
    expect(row.key_id).toBe(keyIdOf(key));
    expect(workers.bootsOf(user!).map((boot) => boot.status)).toEqual([201]);

    await stack.sql`update public.worker_machines set image = 'registry.fly.io/screener:v2', memory_mb = 2048 where user_id = ${user!}`;
    expect((await reconciler.reconcile()).notConverged).toEqual([]);
    const updated = sim.machines().filter((entry) => entry.app === app);
    expect(updated.map((entry) => [entry.id, entry.state, entry.config.image, entry.config.guest?.memory_mb])).toEqual([
      [machine.id, 'started', 'registry.fly.io/screener:v2', 2048],
    ]);

    await stack.sql`update public.worker_machines set desired_state = 'stopped' where user_id = ${user!}`;
    expect((await reconciler.reconcile()).notConverged).toEqual([]);
    expect(sim.machines().find((entry) => entry.app === app)?.state).toBe('stopped');

    await stack.sql`update public.worker_machines set desired_state = 'absent' where user_id = ${user!}`;
    const gone = await reconciler.reconcile();
    expect(gone.notConverged).toEqual([]);
    expect(sim.app(app)).toBeUndefined();
    row = (await store.machine(user!))!;
    expect(row).toMatchObject({ app_name: null, machine_id: null, key_id: null, actual_state: 'absent' });
    expect(await status(key)).toBe(403);
  });

  it('a second reconcile of a converged fleet only looks: one request per user, nothing changed', async () => {
    await clearFleet();
    const users = await seed(5);
    const { reconciler, fly } = controller('controller-a');
    expect((await reconciler.reconcile()).notConverged).toEqual([]);
    const machinesBefore = sim.machines().filter((machine) => users.some((user) => machine.app === reconciler.appFor(user)));
    const before = fly.requests;
    const again = await reconciler.reconcile();
    expect(again.notConverged).toEqual([]);
    expect(again.converged.every((outcome) => outcome.actions.length === 0)).toBe(true);
    expect(fly.requests - before).toBe(users.length);
    const machinesAfter = sim.machines().filter((machine) => users.some((user) => machine.app === reconciler.appFor(user)));
    expect(machinesAfter.map((machine) => [machine.id, machine.instanceId])).toEqual(machinesBefore.map((machine) => [machine.id, machine.instanceId]));
  });

  it('two controllers at once leave exactly one machine per user and both converge', async () => {
    await clearFleet();
    const users = await seed(30);
    const a = controller('controller-a');
    const b = controller('controller-b');
    const [reportA, reportB] = await Promise.all([a.reconciler.reconcile(), b.reconciler.reconcile()]);
    expect(reportA.notConverged).toEqual([]);
    expect(reportB.notConverged).toEqual([]);
    for (const user of users) {
      const machines = sim.machines().filter((machine) => machine.app === a.reconciler.appFor(user));
      expect(machines.map((machine) => machine.state)).toEqual(['started']);
    }
    // Each user was provisioned once: one key, one boot.
    for (const user of users) expect(workers.bootsOf(user)).toHaveLength(1);
  });

  it('a region change replaces the machine with one in the new region, on a fresh key, and revokes the old key', async () => {
    await clearFleet();
    const [user] = await seed(1);
    const { reconciler } = controller('controller-a');
    expect((await reconciler.reconcile()).notConverged).toEqual([]);
    const app = reconciler.appFor(user!);
    const before = sim.machines().find((entry) => entry.app === app)!;
    const oldKey = sim.app(app)!.secrets.get('SUPABASE_KEY')!;
    await stack.sql`update public.worker_machines set region = 'fra' where user_id = ${user!}`;
    const report = await reconciler.reconcile();
    expect(report.notConverged).toEqual([]);
    const after = sim.machines().filter((entry) => entry.app === app);
    expect(after.map((entry) => [entry.region, entry.state])).toEqual([['fra', 'started']]);
    expect(after[0]!.id).not.toBe(before.id);
    const newKey = sim.app(app)!.secrets.get('SUPABASE_KEY')!;
    expect(keyIdOf(newKey)).not.toBe(keyIdOf(oldKey));
    expect(await status(oldKey)).toBe(403);
    expect(await status(newKey)).toBe(200);
  });

  it('an extra machine in a user app (a racing create, a stray flyctl) is destroyed and the oldest kept', async () => {
    await clearFleet();
    const [user] = await seed(1);
    const { reconciler, fly } = controller('controller-a');
    expect((await reconciler.reconcile()).notConverged).toEqual([]);
    const app = reconciler.appFor(user!);
    const original = sim.machines().find((entry) => entry.app === app)!;
    await fly.createMachine(app, { region: 'nrt', config: original.config });
    expect(sim.machines().filter((entry) => entry.app === app)).toHaveLength(2);
    const report = await reconciler.reconcile();
    expect(report.notConverged).toEqual([]);
    expect(report.converged[0]!.actions).toEqual(['destroy 1 (one machine per user)']);
    expect(sim.machines().filter((entry) => entry.app === app).map((entry) => entry.id)).toEqual([original.id]);
  });

  it('a machine leased by someone else is left alone until the lease is released', async () => {
    await clearFleet();
    const [user] = await seed(1);
    const { reconciler, fly } = controller('controller-a');
    expect((await reconciler.reconcile()).notConverged).toEqual([]);
    const app = reconciler.appFor(user!);
    const machine = sim.machines().find((entry) => entry.app === app)!;
    const nonce = await fly.acquireLease(app, machine.id, 60, 'an operator');
    await stack.sql`update public.worker_machines set image = 'registry.fly.io/screener:v3' where user_id = ${user!}`;
    const blocked = await reconciler.reconcile({ maxPasses: 2 });
    expect(blocked.notConverged.map((outcome) => [outcome.userId, outcome.error?.startsWith('busy:')])).toEqual([[user, true]]);
    expect(sim.machines().find((entry) => entry.app === app)?.config.image).toBe('registry.fly.io/screener:v1');
    await fly.releaseLease(app, machine.id, nonce);
    expect((await reconciler.reconcile()).notConverged).toEqual([]);
    expect(sim.machines().find((entry) => entry.app === app)?.config.image).toBe('registry.fly.io/screener:v3');
  });
});
