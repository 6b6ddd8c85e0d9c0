// Makes what runs on Fly agree with worker_machines, one user at a time (each under this controller's claim, each
// machine mutation under a Machines API lease), in passes until every user has converged or the passes run out.
import { backoffDelay } from '../backoff.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../logger.ts';
import { inPool } from './batches.ts';
import { FleetDatabaseError, FlyRejectedError, FlyUnavailableError, MachineLeasedError } from './errors.ts';
import type { FleetStore, MachineRecord, WorkerMachineRow } from './FleetStore.ts';
import type { FlyMachine } from './flyMessages.ts';
import type { FlyMachinesClient } from './FlyMachinesClient.ts';
import { appNameFor, machineConfigFor, nextStep, shardOf, type Desired } from './plan.ts';
import { mintWorkerKey } from './workerKey.ts';

export interface ReconcilerSettings {
  flyOrg: string;
  appPrefix: string;
  supabaseUrl: string;
  supabaseJwtSecret: string;
  keyDays: number;
  concurrency: number;
  waitTimeoutSec: number;
  maxPasses: number;
  claimTtlSec: number;
  controllerId: string;
  /** Base of the jittered pause between passes (default 1000 ms). */
  passBackoffMs?: number;
}

export interface UserOutcome {
  userId: string;
  converged: boolean;
  /** What this controller did, in order (`create-app`, `provision`, `update: image a → b`, …). */
  actions: string[];
  /** The machine's state when the controller last looked (shard 0's, when the user has several). */
  state?: string;
  /** Once converged: the machine of each shard, by index. */
  machines?: Array<{ shardIndex: number; machineId: string }>;
  error?: string;
}

export interface ReconcileReport {
  passes: number;
  converged: UserOutcome[];
  notConverged: UserOutcome[];
}

/** A machine did not reach a state in time: the next pass looks again. */
class NotSettledError extends Error {}

/** Steps one user may take in one pass; from nothing to a running machine takes four, and each more shard one or two more. */
const maxStepsFor = (shardCount: number) => 6 + 2 * shardCount;

export class Reconciler {
  private readonly fly: FlyMachinesClient;
  private readonly store: FleetStore;
  private readonly settings: ReconcilerSettings;
  private readonly clock: Clock;
  private readonly logger: Logger;

  constructor(deps: { fly: FlyMachinesClient; store: FleetStore; settings: ReconcilerSettings; clock: Clock; logger: Logger }) {
    this.fly = deps.fly;
    this.store = deps.store;
    this.settings = deps.settings;
    this.clock = deps.clock;
    this.logger = deps.logger;
  }

  appFor(userId: string): string {
    return appNameFor(this.settings.appPrefix, userId);
  }

  /** Converges every user (or the listed ones), pass after pass, until all agree or `maxPasses` is spent. */
  async reconcile(options: { users?: readonly string[]; maxPasses?: number } = {}): Promise<ReconcileReport> {
    const maxPasses = options.maxPasses ?? this.settings.maxPasses;
    const remaining = new Set(options.users ?? (await this.store.allMachines()).map((row) => row.user_id));
    const outcomes = new Map<string, UserOutcome>();
    let pass = 0;
    let idle = 0;
    // Users another controller holds are waited for (its claim is released when it is done, or lapses), not
    // counted against the passes: a pass is spent only when this controller had someone to work on.
    const claimDeadline = this.clock.now() + this.settings.claimTtlSec * 1000;
    while (remaining.size > 0 && pass < maxPasses) {
      if (pass > 0 || idle > 0) await this.clock.sleep(backoffDelay(Math.max(0, pass + idle - 1), { baseMs: this.settings.passBackoffMs ?? 1000, maxMs: 10_000 }));
      const claimed = await this.store.claim(this.settings.claimTtlSec, options.users === undefined && pass === 0 && idle === 0 ? undefined : [...remaining]);
      if (claimed.length === 0 && this.clock.now() < claimDeadline) {
        idle += 1;
        for (const userId of remaining) outcomes.set(userId, { userId, converged: false, actions: [], error: 'another controller is working on this user' });
        continue;
      }
      pass += 1;
      const claimedIds = new Set(claimed.map((row) => row.user_id));
      for (const row of claimed) remaining.add(row.user_id);
      for (const userId of remaining) {
        if (!claimedIds.has(userId)) outcomes.set(userId, { userId, converged: false, actions: [], error: 'another controller is working on this user' });
      }
      const results = await inPool(claimed, this.settings.concurrency, (row) => this.convergeUser(row));
      for (const outcome of results) {
        const previous = outcomes.get(outcome.userId);
        outcomes.set(outcome.userId, { ...outcome, actions: [...(previous?.actions ?? []), ...outcome.actions] });
        if (outcome.converged) remaining.delete(outcome.userId);
      }
      this.logger.info({ event: 'fleet_pass', pass, claimed: claimed.length, remaining: remaining.size, flyRequests: this.fly.requests }, 'reconcile pass');
    }
    const all = [...outcomes.values()];
    return { passes: pass, converged: all.filter((outcome) => outcome.converged), notConverged: all.filter((outcome) => !outcome.converged) };
  }

  /** One user, already claimed by this controller: steps until converged, then records the result and releases it. */
  async convergeUser(row: WorkerMachineRow): Promise<UserOutcome> {
    const userId = row.user_id;
    const app = row.app_name ?? this.appFor(userId);
    const desired: Desired = { userId, state: row.desired_state, region: row.region, memoryMb: row.memory_mb, image: row.image, shardCount: row.shard_count ?? 1 };
    const maxSteps = maxStepsFor(desired.shardCount);
    const actions: string[] = [];
    let keyId = row.key_id;
    let retiringKeyId = row.retiring_key_id;
    let machine: FlyMachine | undefined;
    const startedAt = this.clock.now();
    const finish = async (outcome: Omit<UserOutcome, 'userId' | 'actions'>, record: MachineRecord): Promise<UserOutcome> => {
      const acted = actions.length > 0;
      const base: MachineRecord = { key_id: keyId, retiring_key_id: retiringKeyId };
      if (acted) Object.assign(base, { last_action: actions.join('; ').slice(0, 500), last_action_at: new Date(startedAt).toISOString() });
      try {
        await this.store.record(userId, { ...base, ...record }, { release: true });
      } catch (error) {
        return { userId, actions, converged: false, error: `recording the result failed: ${(error as Error).message}` };
      }
      return { userId, actions, ...outcome };
    };
    try {
      let machines = await this.fly.listMachines(app);
      for (let step = 0; step < maxSteps; step += 1) {
        const next = nextStep(desired, machines, keyId);
        if (next.kind === 'converged') {
          machine = next.machine;
          const shards = next.machines.map((entry) => ({ shardIndex: shardOf(entry), machineId: entry.id }));
          return await finish(
            { converged: true, state: machine?.state ?? 'absent', machines: shards },
            {
              app_name: machines === null ? null : app,
              machine_id: machine?.id ?? null,
              actual_state: machine?.state ?? 'absent',
              actual_image: machine?.config.image ?? null,
              last_error: null,
              converged_at: new Date(this.clock.now()).toISOString(),
            },
          );
        }
        switch (next.kind) {
          case 'create-app':
            await this.fly.createApp(app, this.settings.flyOrg);
            actions.push('create-app');
            machines = [];
            continue;
          case 'delete-app':
            await this.fly.deleteApp(app);
            actions.push('delete-app');
            machines = null;
            continue;
          case 'revoke-key':
            for (const id of [keyId, retiringKeyId]) if (id !== null) await this.store.revokeKey(id, userId, 'deprovisioned');
            keyId = null;
            retiringKeyId = null;
            actions.push('revoke-key');
            continue;
          case 'provision':
            ({ keyId, retiringKeyId } = await this.provision(app, desired, { keyId, retiringKeyId, shardIndex: next.shardIndex, appHasMachines: (machines ?? []).length > 0 }));
            actions.push(desired.shardCount > 1 ? `provision shard ${next.shardIndex}` : 'provision');
            break;
          case 'destroy':
            for (const target of next.machines) await this.destroy(app, target);
            actions.push(`destroy ${next.machines.length} (${next.reason})`);
            // The status rows of shards that no longer exist would read as machines gone silent.
            if (desired.state !== 'absent') await this.store.dropShardStatuses(userId, desired.shardCount);
            break;
          case 'update':
            await this.update(app, desired, next.machine, keyId);
            actions.push(`update: ${next.reason}`);
            break;
          case 'start':
            await this.fly.withLease(app, next.machine.id, 'fleet start', async (nonce) => {
              await this.fly.startMachine(app, next.machine.id, nonce);
              await this.settle(app, next.machine.id, 'started');
            });
            actions.push('start');
            break;
          case 'stop':
            await this.fly.withLease(app, next.machine.id, 'fleet stop', async (nonce) => {
              await this.fly.stopMachine(app, next.machine.id, nonce);
              await this.settle(app, next.machine.id, 'stopped');
            });
            actions.push('stop');
            break;
          case 'wait':
            await this.settle(app, next.machine.id, next.state);
            break;
        }
        machines = await this.fly.listMachines(app);
      }
      return await finish({ converged: false, error: `not converged after ${maxSteps} steps` }, { last_error: `not converged after ${maxSteps} steps` });
    } catch (error) {
      const message = describe(error);
      this.logger.warn({ event: 'fleet_user_failed', userId, app, err: message }, 'user not converged');
      return await finish({ converged: false, error: message }, { last_error: message.slice(0, 1000) });
    }
  }

  /**
   * A shard with no machine. When the app has no machine at all: mint a fresh key (the one recorded before is revoked:
   * no machine uses it), record its id before it exists anywhere else, set it as the app's secret, then create the
   * machine. When other shards run, the new machine boots on the app's secret they run on, the key recorded.
   */
  private async provision(
    app: string,
    desired: Desired,
    current: { keyId: string | null; retiringKeyId: string | null; shardIndex: number; appHasMachines: boolean },
  ): Promise<{ keyId: string; retiringKeyId: string | null }> {
    const { keyId, retiringKeyId, shardIndex } = current;
    if (current.appHasMachines && keyId !== null) {
      await this.createShardMachine(app, desired, { keyId, shardIndex });
      return { keyId, retiringKeyId };
    }
    const key = mintWorkerKey(desired.userId, this.settings.supabaseJwtSecret, { nowSec: Math.floor(this.clock.now() / 1000), days: this.settings.keyDays });
    for (const id of [keyId, retiringKeyId]) if (id !== null) await this.store.revokeKey(id, desired.userId, 'replaced at provisioning');
    await this.store.record(desired.userId, { app_name: app, key_id: key.keyId, retiring_key_id: null }, { release: false });
    const secretsVersion = await this.fly.setSecret(app, 'SUPABASE_KEY', key.token);
    await this.createShardMachine(app, desired, { keyId: key.keyId, shardIndex, minSecretsVersion: secretsVersion });
    return { keyId: key.keyId, retiringKeyId: null };
  }

  private async createShardMachine(app: string, desired: Desired, options: { keyId: string; shardIndex: number; minSecretsVersion?: number }): Promise<void> {
    const machine = await this.fly.createMachine(app, {
      name: options.shardIndex === 0 ? 'worker' : `worker-${options.shardIndex}`,
      region: desired.region,
      config: machineConfigFor(desired, { supabaseUrl: this.settings.supabaseUrl, keyId: options.keyId, shardIndex: options.shardIndex }),
      skipLaunch: desired.state !== 'running',
      ...(options.minSecretsVersion === undefined ? {} : { minSecretsVersion: options.minSecretsVersion }),
    });
    if (desired.state === 'running') await this.settle(app, machine.id, 'started', machine.instance_id);
  }

  private async update(app: string, desired: Desired, machine: FlyMachine, keyId: string | null): Promise<void> {
    const config = machineConfigFor(desired, {
      supabaseUrl: this.settings.supabaseUrl,
      keyId: machine.config.metadata?.screener_key_id ?? keyId ?? '',
      shardIndex: shardOf(machine),
    });
    await this.fly.withLease(app, machine.id, 'fleet update', async (nonce) => {
      const updated = await this.fly.updateMachine(app, machine.id, config, { nonce, skipLaunch: desired.state !== 'running' });
      if (desired.state === 'running') await this.settle(app, machine.id, 'started', updated.instance_id);
    });
  }

  /** Stop, then destroy, under the machine's lease (force: a machine that will not stop still goes). */
  private async destroy(app: string, machine: FlyMachine): Promise<void> {
    await this.fly.withLease(app, machine.id, 'fleet destroy', async (nonce) => {
      if (machine.state !== 'stopped' && machine.state !== 'created' && machine.state !== 'destroying') {
        await this.fly.stopMachine(app, machine.id, nonce);
        await this.fly.waitForState(app, machine.id, 'stopped', { timeoutSec: this.settings.waitTimeoutSec });
      }
      await this.fly.destroyMachine(app, machine.id, { nonce, force: true });
    });
  }

  async settle(app: string, machineId: string, state: 'started' | 'stopped', instanceId?: string): Promise<void> {
    const reached = await this.fly.waitForState(app, machineId, state, { timeoutSec: this.settings.waitTimeoutSec, instanceId });
    if (!reached) throw new NotSettledError(`machine ${machineId} did not reach ${state} within ${this.settings.waitTimeoutSec} s`);
  }
}

function describe(error: unknown): string {
  if (error instanceof MachineLeasedError) return `busy: ${error.message}`;
  if (error instanceof FlyUnavailableError || error instanceof FlyRejectedError || error instanceof FleetDatabaseError || error instanceof NotSettledError) {
    return error.message;
  }
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
