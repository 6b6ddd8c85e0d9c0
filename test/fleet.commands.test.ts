// `npm run fleet -- <command>` as an operator runs it (a child process configured by the environment only), against
// the Machines API simulator and a real local stack.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIM_TOKEN as TOKEN, startFleetRig, type FleetRig } from '../dev/flySim/rig.ts';
import type { FlySimulator } from '../dev/flySim/index.ts';
import type { SimulatedWorkers } from '../dev/flySim/workers.ts';
import { REPO_ROOT, type LocalStack } from '../dev/localStack.ts';
import type { FleetStatusRow } from '../src/fleet/status.ts';
import { keyIdOf } from '../src/fleet/workerKey.ts';

const run = promisify(execFile);

let rig: FleetRig;
let stack: LocalStack;
let sim: FlySimulator;
let workers: SimulatedWorkers;

beforeAll(async () => {
  rig = await startFleetRig({ seed: 3 });
  ({ stack, sim } = rig);
  workers = rig.workers!;
}, 60_000);

afterAll(async () => {
  await rig?.stop();
});

async function fleet(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = {
    PATH: process.env.PATH,
    FLY_API_TOKEN: TOKEN,
    FLY_API_HOSTNAME: sim.url,
    FLY_ORG: 'screener-test',
    SUPABASE_URL: stack.supabaseUrl,
    SUPABASE_SERVICE_KEY: stack.serviceKey,
    SUPABASE_JWT_SECRET: stack.jwtSecret,
    FLEET_WAIT_TIMEOUT_S: '5',
    FLEET_READY_TIMEOUT_S: '10',
    FLEET_MAX_PASSES: '2',
    LOG_LEVEL: 'warn',
  };
  try {
    const { stdout, stderr } = await run(process.execPath, ['src/fleet/cli.ts', ...args], { cwd: REPO_ROOT, env, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code: number; stdout: string; stderr: string };
    return { code: failure.code, stdout: failure.stdout, stderr: failure.stderr };
  }
}

async function restStatus(key: string): Promise<number> {
  const response = await fetch(`${stack.supabaseUrl}/rest/v1/traders?select=id`, { headers: { apikey: key, authorization: `Bearer ${key}` } });
  await response.body?.cancel();
  return response.status;
}

const appOf = (user: string) => `screener-${user}`;
const machineOf = (user: string) => sim.machines().find((machine) => machine.app === appOf(user));

describe('npm run fleet', () => {
  it('reconcile provisions, updates and deprovisions from worker_machines, exiting 0 once converged', async () => {
    const users = [await stack.createUser(), await stack.createUser()];
    await stack.sql`insert into public.worker_machines ${stack.sql(users.map((user_id) => ({ user_id, image: 'registry.fly.io/screener:v1' })))}`;
    const provisioned = await fleet('reconcile');
    expect(provisioned.code).toBe(0);
    expect(provisioned.stdout).toContain('converged: 2 user(s)');
    for (const user of users) expect(machineOf(user)).toMatchObject({ state: 'started', config: { image: 'registry.fly.io/screener:v1' } });

    await stack.sql`update public.worker_machines set image = 'registry.fly.io/screener:v2' where user_id = ${users[0]!}`;
    await stack.sql`update public.worker_machines set desired_state = 'absent' where user_id = ${users[1]!}`;
    const key = sim.app(appOf(users[1]!))!.secrets.get('SUPABASE_KEY')!;
    const changed = await fleet('reconcile');
    expect(changed.code).toBe(0);
    expect(machineOf(users[0]!)?.config.image).toBe('registry.fly.io/screener:v2');
    expect(sim.app(appOf(users[1]!))).toBeUndefined();
    expect(await restStatus(key)).toBe(403);
    await stack.sql`delete from public.worker_machines where user_id in ${stack.sql(users)}`;
  });

  it('reconcile exits non-zero naming the users that did not converge, and records why', async () => {
    const [good, bad] = [await stack.createUser(), await stack.createUser()];
    await stack.sql`insert into public.worker_machines ${stack.sql([good, bad].map((user_id) => ({ user_id, image: 'registry.fly.io/screener:v1' })))}`;
    sim.refuseMachinesOf(appOf(bad!), 'image registry.fly.io/screener:v1 not found');
    const result = await fleet('reconcile');
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`NOT converged: 1 user(s)\n  ${bad}: POST /v1/apps/${appOf(bad!)}/machines answered 422: image registry.fly.io/screener:v1 not found`);
    const [row] = await stack.sql<{ last_error: string; claimed_by: string | null }[]>`select last_error, claimed_by from public.worker_machines where user_id = ${bad!}`;
    expect(row).toMatchObject({ last_error: expect.stringContaining('422'), claimed_by: null });
    sim.refuseMachinesOf(appOf(bad!), undefined);
    await stack.sql`update public.worker_machines set desired_state = 'absent'`;
    expect((await fleet('reconcile')).code).toBe(0);
    await stack.sql`delete from public.worker_machines`;
  });

  it('provision, status, rotate-key and deprovision one user', async () => {
    const user = await stack.createUser();
    expect((await fleet('provision', user, '--image', 'registry.fly.io/screener:v1', '--region', 'fra', '--memory', '512')).code).toBe(0);
    expect(machineOf(user)).toMatchObject({ state: 'started', region: 'fra', config: { guest: { memory_mb: 512 } } });

    const status = await fleet('status', '--json');
    expect(status.code).toBe(0);
    const rows = JSON.parse(status.stdout) as FleetStatusRow[];
    expect(rows.find((row) => row.user === user)).toMatchObject({ desired: 'running', state: 'started', region: 'fra', image: 'registry.fly.io/screener:v1', worker: 'ready', lastError: null });
    const table = await fleet('status');
    expect(table.stdout.split('\n')[0]).toMatch(/^USER\s+SHARD\s+DESIRED\s+APP\s+MACHINE\s+STATE\s+REGION\s+IMAGE\s+WORKER\s+HEARTBEAT\s+LAST ERROR$/);

    const oldKey = sim.app(appOf(user))!.secrets.get('SUPABASE_KEY')!;
    const bootsBefore = workers.bootsOf(user).length;
    const rotated = await fleet('rotate-key', user);
    expect(rotated.code).toBe(0);
    const newKey = sim.app(appOf(user))!.secrets.get('SUPABASE_KEY')!;
    expect(keyIdOf(newKey)).not.toBe(keyIdOf(oldKey));
    expect(rotated.stdout).toContain(`revoked ${keyIdOf(oldKey)}`);
    // The machine restarted on the new key and its worker reported ready with it; the old key is refused.
    const boots = workers.bootsOf(user);
    expect(boots.length).toBe(bootsBefore + 1);
    expect(boots.at(-1)).toMatchObject({ event: { env: { SUPABASE_KEY: newKey } } });
    expect(boots.at(-1)!.status).toBe(200);
    expect(await restStatus(oldKey)).toBe(403);
    expect(await restStatus(newKey)).toBe(200);
    const [row] = await stack.sql<{ key_id: string; retiring_key_id: string | null }[]>`select key_id, retiring_key_id from public.worker_machines where user_id = ${user}`;
    expect(row).toEqual({ key_id: keyIdOf(newKey), retiring_key_id: null });

    expect((await fleet('deprovision', user)).code).toBe(0);
    expect(sim.app(appOf(user))).toBeUndefined();
    expect(await restStatus(newKey)).toBe(403);
  });

  it('refuses a bad command line and a missing variable with exit 2, naming the problem', async () => {
    expect(await fleet('provision', 'not-a-user')).toMatchObject({ code: 2, stderr: expect.stringContaining('provision needs the user id') });
    const missing = await run(process.execPath, ['src/fleet/cli.ts', 'status'], { cwd: REPO_ROOT, env: { PATH: process.env.PATH } }).catch((error: { code: number; stderr: string }) => error);
    expect(missing).toMatchObject({ code: 2, stderr: expect.stringContaining('FLY_API_TOKEN is required') });
  });
});
