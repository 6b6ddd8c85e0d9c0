// The fleet at a glance: each user's desired state, what Fly says runs, and what the worker itself reports, one line per
// shard (a user with one machine has one line).
import type { Clock } from '../clock.ts';
import { type FleetStore, shardKey } from './FleetStore.ts';
import type { FlyMachine } from './flyMessages.ts';
import type { FlyMachinesClient } from './FlyMachinesClient.ts';
import { shardMachines } from './plan.ts';
import { inPool } from './batches.ts';
import type { Reconciler } from './Reconciler.ts';

export interface FleetStatusRow {
  user: string;
  /** Which of the user's machines: 0 … shards - 1 (-1: a machine whose SHARD_INDEX cannot be read). */
  shard: number;
  /** worker_machines.shard_count: how many machines the user should have. */
  shards: number;
  desired: string;
  app: string | null;
  machine: string | null;
  /** Fly's state of the machine now ('absent' without one, 'unknown' when Fly could not be asked). */
  state: string;
  region: string | null;
  image: string | null;
  /** worker_status.state, as the worker last wrote it. */
  worker: string | null;
  heartbeatAgeSec: number | null;
  lastError: string | null;
}

export async function fleetStatus(deps: { fly: FlyMachinesClient; store: FleetStore; reconciler: Reconciler; clock: Clock; concurrency: number }): Promise<FleetStatusRow[]> {
  const [rows, statuses] = await Promise.all([deps.store.allMachines(), deps.store.workerStatuses()]);
  const now = deps.clock.now();
  const perUser = await inPool(rows, deps.concurrency, async (row): Promise<FleetStatusRow[]> => {
    const app = row.app_name ?? deps.reconciler.appFor(row.user_id);
    const shards = row.shard_count ?? 1;
    let state: string | null = 'unknown';
    let machines = new Map<number, FlyMachine>();
    try {
      const listed = await deps.fly.listMachines(app);
      machines = listed === null ? machines : shardMachines(listed);
      state = null;
    } catch {
      // Keep the rows: the table is most useful exactly when Fly is having trouble.
    }
    // Every shard the user should have, and any machine beyond them (a reshard under way, a stray).
    const indexes = [...new Set([...Array.from({ length: shards }, (_, index) => index), ...machines.keys()])].sort((a, b) => a - b);
    return indexes.map((shard): FleetStatusRow => {
      const machine = machines.get(shard);
      const worker = shard < 0 ? undefined : statuses.get(shardKey(row.user_id, shard));
      const machineState = state ?? machine?.state ?? 'absent';
      return {
        user: row.user_id,
        shard,
        shards,
        desired: row.desired_state,
        app: machineState === 'absent' && row.app_name === null ? null : app,
        machine: machine?.id ?? (shard === 0 ? row.machine_id : null),
        state: machineState,
        region: machine?.region ?? row.region,
        image: machine?.config.image ?? (shard === 0 ? row.actual_image : null),
        worker: worker?.state ?? null,
        heartbeatAgeSec: worker === undefined ? null : Math.max(0, Math.round((now - Date.parse(worker.heartbeat_at)) / 1000)),
        lastError: (shard === 0 ? row.last_error : null) ?? worker?.last_error ?? null,
      };
    });
  });
  return perUser.flat();
}

/** A plain-text table, one line per machine (shard) of each user. */
export function formatStatusTable(rows: readonly FleetStatusRow[]): string {
  const header = ['USER', 'SHARD', 'DESIRED', 'APP', 'MACHINE', 'STATE', 'REGION', 'IMAGE', 'WORKER', 'HEARTBEAT', 'LAST ERROR'];
  const lines = rows.map((row) => [
    row.user,
    row.shard < 0 ? `?/${row.shards}` : `${row.shard}/${row.shards}`,
    row.desired,
    row.app ?? '-',
    row.machine ?? '-',
    row.state,
    row.region ?? '-',
    row.image ?? '-',
    row.worker ?? '-',
    row.heartbeatAgeSec === null ? '-' : `${row.heartbeatAgeSec}s`,
    (row.lastError ?? '').replace(/\s+/g, ' ').slice(0, 80) || '-',
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column]!.length)));
  return [header, ...lines].map((line) => line.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()).join('\n');
}
