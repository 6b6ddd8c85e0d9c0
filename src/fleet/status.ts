// The fleet at a glance: each user's desired state, what Fly says runs, and what the worker itself reports.
import type { Clock } from '../clock.ts';
import type { FleetStore } from './FleetStore.ts';
import type { FlyMachinesClient } from './FlyMachinesClient.ts';
import { primaryOf } from './plan.ts';
import { inPool } from './batches.ts';
import type { Reconciler } from './Reconciler.ts';

export interface FleetStatusRow {
  user: string;
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
  return inPool(rows, deps.concurrency, async (row): Promise<FleetStatusRow> => {
    const app = row.app_name ?? deps.reconciler.appFor(row.user_id);
    let state = 'unknown';
    let machine: { id: string; region: string; image: string } | null = null;
    try {
      const machines = await deps.fly.listMachines(app);
      const primary = machines === null ? undefined : primaryOf(machines);
      state = primary?.state ?? 'absent';
      if (primary !== undefined) machine = { id: primary.id, region: primary.region, image: primary.config.image };
    } catch {
      // Keep the row: the table is most useful exactly when Fly is having trouble.
    }
    const worker = statuses.get(row.user_id);
    return {
      user: row.user_id,
      desired: row.desired_state,
      app: state === 'absent' && row.app_name === null ? null : app,
      machine: machine?.id ?? row.machine_id,
      state,
      region: machine?.region ?? row.region,
      image: machine?.image ?? row.actual_image,
      worker: worker?.state ?? null,
      heartbeatAgeSec: worker === undefined ? null : Math.max(0, Math.round((now - Date.parse(worker.heartbeat_at)) / 1000)),
      lastError: row.last_error ?? worker?.last_error ?? null,
    };
  });
}

/** A plain-text table, one user per line. */
export function formatStatusTable(rows: readonly FleetStatusRow[]): string {
  const header = ['USER', 'DESIRED', 'APP', 'MACHINE', 'STATE', 'REGION', 'IMAGE', 'WORKER', 'HEARTBEAT', 'LAST ERROR'];
  const lines = rows.map((row) => [
    row.user,
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
