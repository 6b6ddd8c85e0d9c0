// Rolls a new image out across the running users: a few canaries one at a time, then batches. Each machine must come
// back ready with a fresh heartbeat before the next batch starts; the rollout halts at the first one that does not,
// leaving every user after it on the image it had.
import type { Clock } from '../clock.ts';
import { chunk } from './batches.ts';
import type { Logger } from '../logger.ts';
import type { FleetStore } from './FleetStore.ts';
import { bootsBefore, waitUntilReady } from './Readiness.ts';
import type { Reconciler } from './Reconciler.ts';

export interface RolloutOptions {
  image: string;
  /** How many users go first, one at a time (default 2). */
  canaries?: number;
  /** Users to take as canaries, before the automatic ones. */
  canaryUsers?: readonly string[];
  batchSize?: number;
  readyTimeoutMs: number;
  pollMs?: number;
}

export interface RolloutReport {
  image: string;
  completed: boolean;
  /** Users now on the image and ready, in rollout order. */
  updated: string[];
  /** Where it stopped and why. */
  halted?: { userId: string; reason: string };
  /** Users left on their previous image. */
  pending: string[];
  /** Stopped users whose machines were given the image without being started. */
  stopped: string[];
}

export class Rollout {
  private readonly store: FleetStore;
  private readonly reconciler: Reconciler;
  private readonly clock: Clock;
  private readonly logger: Logger;

  constructor(deps: { store: FleetStore; reconciler: Reconciler; clock: Clock; logger: Logger }) {
    this.store = deps.store;
    this.reconciler = deps.reconciler;
    this.clock = deps.clock;
    this.logger = deps.logger;
  }

  async run(options: RolloutOptions): Promise<RolloutReport> {
    const rows = await this.store.allMachines();
    const running = rows.filter((row) => row.desired_state === 'running' && row.image !== options.image).map((row) => row.user_id).sort();
    const explicit = (options.canaryUsers ?? []).filter((user) => running.includes(user));
    const automatic = running.filter((user) => !explicit.includes(user)).slice(0, Math.max(0, (options.canaries ?? 2) - explicit.length));
    const canaries = [...explicit, ...automatic];
    const rest = running.filter((user) => !canaries.includes(user));
    const batchSize = options.batchSize ?? 10;
    const batches = [...canaries.map((user) => [user]), ...chunk(rest, batchSize)];
    const report: RolloutReport = { image: options.image, completed: false, updated: [], pending: [...running], stopped: [] };

    for (const [index, batch] of batches.entries()) {
      const bootedBefore = await bootsBefore(this.store, batch);
      const sinceMs = this.clock.now();
      await this.store.setImage(batch, options.image);
      const reconciled = await this.reconciler.reconcile({ users: batch, maxPasses: 3 });
      const failed = batch.map((user) => reconciled.notConverged.find((outcome) => outcome.userId === user)).find((outcome) => outcome !== undefined);
      if (failed !== undefined) return this.halt(report, failed.userId, `machine not updated: ${failed.error ?? 'not converged'}`);
      // Every machine of the user, one per shard, must come back ready.
      const targets = batch.flatMap((userId) => {
        const machines = reconciled.converged.find((outcome) => outcome.userId === userId)?.machines ?? [];
        return machines.length === 0 ? [{ userId, machineId: '' }] : machines.map(({ shardIndex, machineId }) => ({ userId, machineId, shardIndex }));
      });
      const notReady = await waitUntilReady(this.store, this.clock, targets, {
        sinceMs,
        bootedBefore,
        timeoutMs: options.readyTimeoutMs,
        pollMs: options.pollMs,
      });
      const first = batch.map((user) => notReady.find((entry) => entry.userId === user)).find((entry) => entry !== undefined);
      if (first !== undefined) {
        const shard = first.shardIndex ? ` (shard ${first.shardIndex})` : '';
        return this.halt(report, first.userId, `not ready within ${Math.round(options.readyTimeoutMs / 1000)} s${shard}: ${first.seen}`);
      }
      report.updated.push(...batch);
      report.pending = report.pending.filter((user) => !batch.includes(user));
      this.logger.info({ event: 'fleet_rollout_batch', batch: index + 1, of: batches.length, users: batch.length, image: options.image }, 'rollout batch ready');
    }

    // Stopped users get the image too, so they start on it; there is no worker to wait for.
    const stopped = rows.filter((row) => row.desired_state === 'stopped' && row.image !== options.image).map((row) => row.user_id);
    if (stopped.length > 0) {
      await this.store.setImage(stopped, options.image);
      await this.reconciler.reconcile({ users: stopped, maxPasses: 3 });
      report.stopped = stopped;
    }
    report.completed = true;
    return report;
  }

  private halt(report: RolloutReport, userId: string, reason: string): RolloutReport {
    this.logger.warn({ event: 'fleet_rollout_halted', userId, reason }, 'rollout halted');
    return { ...report, halted: { userId, reason }, pending: report.pending.filter((user) => !report.updated.includes(user)) };
  }
}
