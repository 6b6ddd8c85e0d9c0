// Stand-ins for the worker process on each simulated machine: when a machine boots, its "worker" reports ready in
// worker_status through the real PostgREST with the SUPABASE_KEY the machine booted with, as the real worker's
// StatusWriter does. Running hundreds of real workers (Binance streams, sandboxes) is not possible in a test;
// what the fleet needs from them is exactly this row, written with the machine's own key.
import type { BootEvent, FlySimulator } from './index.ts';

export type WorkerBehaviour = 'ready' | 'silent';

export interface BootReport {
  event: BootEvent;
  /** HTTP status of the worker_status upsert made with the machine's key (0: not attempted). */
  status: number;
}

export class SimulatedWorkers {
  readonly boots: BootReport[] = [];
  private readonly detach: () => void;
  private readonly pending = new Set<Promise<void>>();

  constructor(simulator: FlySimulator, options: { supabaseUrl: string; behaviour?: (event: BootEvent) => WorkerBehaviour }) {
    this.detach = simulator.onBoot((event) => {
      const behaviour = options.behaviour?.(event) ?? 'ready';
      const report: BootReport = { event, status: 0 };
      this.boots.push(report);
      if (behaviour === 'silent') return;
      const write = this.reportReady(options.supabaseUrl, event).then((status) => {
        report.status = status;
      });
      this.pending.add(write);
      void write.finally(() => this.pending.delete(write));
    });
  }

  /** Boots of a user's machines, oldest first. */
  bootsOf(userId: string): BootReport[] {
    return this.boots.filter((report) => report.event.env.USER_ID === userId);
  }

  async stop(): Promise<void> {
    this.detach();
    await Promise.allSettled([...this.pending]);
  }

  private async reportReady(supabaseUrl: string, event: BootEvent): Promise<number> {
    const key = event.env.SUPABASE_KEY;
    const userId = event.env.USER_ID;
    if (key === undefined || userId === undefined) return 0;
    const now = new Date().toISOString();
    // One row per shard, as the real worker writes it (supabase/migrations/0005_shards.sql); a machine without the
    // variables is shard 0 of 1.
    const shardIndex = Number(event.env.SHARD_INDEX ?? '0');
    const shardCount = Number(event.env.SHARD_COUNT ?? '1');
    const response = await fetch(`${event.env.SUPABASE_URL ?? supabaseUrl}/rest/v1/worker_status?on_conflict=user_id,shard_index`, {
      method: 'POST',
      headers: {
        apikey: key,
        authorization: `Bearer ${key}`,
        'content-type': 'application/json',
        prefer: 'resolution=merge-duplicates,return=minimal',
      },
      body: JSON.stringify({
        user_id: userId,
        shard_index: shardIndex,
        shard_count: shardCount,
        machine_id: event.machineId,
        version: event.image,
        state: 'ready',
        started_at: now,
        heartbeat_at: now,
      }),
    });
    await response.body?.cancel();
    return response.status;
  }
}
