// "Ready" as the fleet judges it: the worker on that very machine reports `ready` in worker_status, and it booted and
// beat after the change being checked, so an old process's row can never pass for the new one.
import type { Clock } from '../clock.ts';
import { type FleetStore, shardKey, type WorkerStatusRow } from './FleetStore.ts';

export interface ReadinessTarget {
  userId: string;
  machineId: string;
  /** The shard the machine runs (worker_status has a row per shard); 0 for a user with one machine. */
  shardIndex?: number;
}

export interface NotReady {
  userId: string;
  machineId: string;
  shardIndex?: number;
  /** What worker_status said last, for the report. */
  seen: string;
}

/** Clock skew tolerated between the controller and the database or the machine (their clocks stamp the row). */
const SKEW_MS = 2000;

/**
 * `bootedBefore`: the worker's started_at as read just before the change, if any. Within the skew
 * tolerance a process that booted just before the change could pass for a new one: a row that still
 * carries that boot never does.
 */
export function isFreshlyReady(status: WorkerStatusRow | undefined, target: ReadinessTarget, sinceMs: number, bootedBefore?: string): boolean {
  if (status === undefined || status.state !== 'ready' || status.machine_id !== target.machineId) return false;
  if (bootedBefore !== undefined && status.started_at === bootedBefore) return false;
  return Date.parse(status.started_at) >= sinceMs - SKEW_MS && Date.parse(status.heartbeat_at) >= sinceMs - SKEW_MS;
}

/** The workers' started_at before a change, by shardKey, to tell their next boot from the current one (isFreshlyReady). */
export async function bootsBefore(store: FleetStore, userIds: readonly string[]): Promise<Map<string, string>> {
  const statuses = await store.workerStatuses(userIds);
  return new Map([...statuses].map(([key, status]) => [key, status.started_at]));
}

const keyOf = (target: ReadinessTarget) => shardKey(target.userId, target.shardIndex ?? 0);

function describeStatus(status: WorkerStatusRow | undefined, target: ReadinessTarget, nowMs: number): string {
  if (status === undefined) return 'no worker_status row';
  const age = Math.round((nowMs - Date.parse(status.heartbeat_at)) / 1000);
  const machine = status.machine_id === target.machineId ? '' : `, from machine ${status.machine_id}`;
  const error = status.last_error ? `, last_error: ${status.last_error}` : '';
  return `worker_status ${status.state}, heartbeat ${age} s ago${machine}${error}`;
}

/** Polls worker_status until every target is freshly ready or `timeoutMs` passes; returns those that were not. */
export async function waitUntilReady(
  store: FleetStore,
  clock: Clock,
  targets: readonly ReadinessTarget[],
  options: { sinceMs: number; timeoutMs: number; pollMs?: number; bootedBefore?: ReadonlyMap<string, string> },
): Promise<NotReady[]> {
  const deadline = clock.now() + options.timeoutMs;
  let waiting = [...targets];
  for (;;) {
    const statuses = await store.workerStatuses(waiting.map((target) => target.userId));
    waiting = waiting.filter((target) => !isFreshlyReady(statuses.get(keyOf(target)), target, options.sinceMs, options.bootedBefore?.get(keyOf(target))));
    if (waiting.length === 0) return [];
    if (clock.now() >= deadline) {
      const now = clock.now();
      return waiting.map((target) => ({ ...target, seen: describeStatus(statuses.get(keyOf(target)), target, now) }));
    }
    await clock.sleep(options.pollMs ?? 1000);
  }
}
