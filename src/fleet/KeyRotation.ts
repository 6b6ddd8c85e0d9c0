// Rotates one user's worker key: mint a new key, record its id (and the old one as retiring) before it exists
// anywhere else, set it as the app's secret, restart the machine on it, wait until the worker is ready with it, and
// only then revoke the old id. An interrupted rotation is finished by the next one.
import type { Clock } from '../clock.ts';
import type { Logger } from '../logger.ts';
import { MachineLeasedError } from './errors.ts';
import type { FleetStore } from './FleetStore.ts';
import type { FlyMachinesClient } from './FlyMachinesClient.ts';
import { machineConfigFor, shardMachines } from './plan.ts';
import { bootsBefore, waitUntilReady } from './Readiness.ts';
import type { Reconciler } from './Reconciler.ts';
import { mintWorkerKey } from './workerKey.ts';

export interface RotationSettings {
  supabaseUrl: string;
  supabaseJwtSecret: string;
  keyDays: number;
  claimTtlSec: number;
  readyTimeoutMs: number;
  pollMs?: number;
}

export interface RotationResult {
  userId: string;
  newKeyId: string;
  revokedKeyIds: string[];
}

/** The rotation could not finish; the old key stays valid (nothing was revoked) and the reason says what to do. */
export class RotationFailedError extends Error {
  readonly code = 'ROTATION_FAILED' as const;
}

export class KeyRotation {
  private readonly fly: FlyMachinesClient;
  private readonly store: FleetStore;
  private readonly reconciler: Reconciler;
  private readonly settings: RotationSettings;
  private readonly clock: Clock;
  private readonly logger: Logger;

  constructor(deps: { fly: FlyMachinesClient; store: FleetStore; reconciler: Reconciler; settings: RotationSettings; clock: Clock; logger: Logger }) {
    this.fly = deps.fly;
    this.store = deps.store;
    this.reconciler = deps.reconciler;
    this.settings = deps.settings;
    this.clock = deps.clock;
    this.logger = deps.logger;
  }

  async rotate(userId: string): Promise<RotationResult> {
    const [row] = await this.store.claim(this.settings.claimTtlSec, [userId]);
    if (row === undefined) throw new RotationFailedError(`user ${userId} has no worker_machines row or another controller is working on it`);
    const release = (error: string | null, action?: string) =>
      this.store.record(
        userId,
        { last_error: error, ...(action ? { last_action: action, last_action_at: new Date(this.clock.now()).toISOString() } : {}) },
        { release: true },
      );
    try {
      const app = row.app_name ?? this.reconciler.appFor(userId);
      const listed = await this.fly.listMachines(app);
      // Every shard runs on the app's one key: each machine restarts on the new one before the old is revoked.
      const machines = listed === null ? [] : [...shardMachines(listed)].filter(([shardIndex]) => shardIndex >= 0);
      if (machines.length === 0) throw new RotationFailedError(`user ${userId} has no machine: provision it first`);
      const key = mintWorkerKey(userId, this.settings.supabaseJwtSecret, { nowSec: Math.floor(this.clock.now() / 1000), days: this.settings.keyDays });
      // Write-ahead: the old id stays recorded as retiring until the machine runs on the new one.
      const retiring = [row.key_id, row.retiring_key_id].filter((id): id is string => id !== null);
      await this.store.record(userId, { key_id: key.keyId, retiring_key_id: row.key_id ?? row.retiring_key_id }, { release: false });
      const secretsVersion = await this.fly.setSecret(app, 'SUPABASE_KEY', key.token);
      const running = row.desired_state === 'running';
      const bootedBefore = await bootsBefore(this.store, [userId]);
      const sinceMs = this.clock.now();
      for (const [shardIndex, machine] of machines) {
        // The machine keeps its place and count (a change of count is reconcile's); only the key changes.
        const desired = {
          userId,
          state: row.desired_state,
          region: machine.region,
          memoryMb: row.memory_mb,
          image: machine.config.image,
          shardCount: Number(machine.config.env?.SHARD_COUNT ?? '1'),
        };
        // An update with the new key id in its metadata replaces the machine's instance: it boots again and reads the
        // app's secrets afresh (a machine sees secrets as they were at its boot).
        await this.fly.withLease(app, machine.id, 'fleet rotate-key', async (nonce) => {
          const config = machineConfigFor(desired, { supabaseUrl: this.settings.supabaseUrl, keyId: key.keyId, shardIndex });
          const updated = await this.fly.updateMachine(app, machine.id, config, { nonce, skipLaunch: !running, minSecretsVersion: secretsVersion });
          if (running) await this.reconciler.settle(app, machine.id, 'started', updated.instance_id);
        });
      }
      if (running) {
        const targets = machines.map(([shardIndex, machine]) => ({ userId, machineId: machine.id, shardIndex }));
        const notReady = await waitUntilReady(this.store, this.clock, targets, {
          sinceMs,
          bootedBefore,
          timeoutMs: this.settings.readyTimeoutMs,
          pollMs: this.settings.pollMs,
        });
        if (notReady.length > 0) {
          throw new RotationFailedError(`the worker did not come back ready on the new key (${notReady[0]!.seen}); the old key was not revoked`);
        }
      }
      for (const id of retiring) await this.store.revokeKey(id, userId, 'rotated');
      await this.store.record(userId, { retiring_key_id: null }, { release: false });
      await release(null, 'rotate-key');
      this.logger.info({ event: 'fleet_key_rotated', userId, keyId: key.keyId, revoked: retiring }, 'worker key rotated');
      return { userId, newKeyId: key.keyId, revokedKeyIds: retiring };
    } catch (error) {
      const message = error instanceof MachineLeasedError ? `busy: ${error.message}` : (error as Error).message;
      await release(`rotate-key: ${message}`.slice(0, 1000)).catch(() => undefined);
      throw error instanceof RotationFailedError ? error : new RotationFailedError(message, { cause: error });
    }
  }
}
