// The fleet controller's side of the database (service role): desired state and the controller's record in
// worker_machines, per-user claims, key revocation, and the workers' own worker_status.
import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import type { WorkerStatusRow as WorkerRow } from '../database/rows.ts';
import { chunk } from './batches.ts';
import { FleetDatabaseError } from './errors.ts';

export type DesiredState = 'running' | 'stopped' | 'absent';

export interface WorkerMachineRow {
  user_id: string;
  desired_state: DesiredState;
  region: string;
  memory_mb: number;
  image: string;
  /** Machines the user's traders are spread over, one per shard (supabase/migrations/0005_shards.sql). */
  shard_count: number;
  app_name: string | null;
  machine_id: string | null;
  key_id: string | null;
  retiring_key_id: string | null;
  actual_state: string | null;
  actual_image: string | null;
  last_action: string | null;
  last_action_at: string | null;
  last_error: string | null;
  converged_at: string | null;
  claimed_by: string | null;
  claim_expires_at: string | null;
}

/** What the controller writes back about a user. */
export type MachineRecord = Partial<
  Pick<WorkerMachineRow, 'app_name' | 'machine_id' | 'key_id' | 'retiring_key_id' | 'actual_state' | 'actual_image' | 'last_action' | 'last_action_at' | 'last_error' | 'converged_at'>
>;

/** The columns of the worker's own status row (src/database/rows.ts) the controller reads. */
export type WorkerStatusRow = Pick<
  WorkerRow,
  'user_id' | 'shard_index' | 'shard_count' | 'machine_id' | 'version' | 'state' | 'started_at' | 'heartbeat_at' | 'last_error'
>;

/** worker_status has one row per (user, shard): the key of the maps that hold them. */
export function shardKey(userId: string, shardIndex: number): string {
  return `${userId}#${shardIndex}`;
}

export interface DesiredSpec {
  desired_state?: DesiredState;
  region?: string;
  memory_mb?: number;
  image?: string;
  shard_count?: number;
}

interface Failure {
  message: string;
  code?: string;
}

function check<T>(operation: string, result: { data: T | null; error: Failure | null }): T {
  if (result.error !== null) throw new FleetDatabaseError(`${operation} failed: ${result.error.code ?? ''} ${result.error.message}`.replace(/\s+/g, ' '), { cause: result.error });
  return result.data as T;
}

/** PostgREST pages at 1000 rows by default on Supabase: read in pages so a big fleet is never cut short. */
const PAGE = 1000;

export class FleetStore {
  private readonly db: SupabaseClient;
  private readonly owner: string;

  constructor(options: { supabaseUrl: string; serviceKey: string; owner: string }) {
    this.db = createClient(options.supabaseUrl, options.serviceKey, { auth: { persistSession: false, autoRefreshToken: false } });
    this.owner = options.owner;
  }

  async allMachines(): Promise<WorkerMachineRow[]> {
    const rows: WorkerMachineRow[] = [];
    for (let from = 0; ; from += PAGE) {
      const page = check('read worker_machines', await this.db.from('worker_machines').select('*').order('user_id').range(from, from + PAGE - 1)) as WorkerMachineRow[];
      rows.push(...page);
      if (page.length < PAGE) return rows;
    }
  }

  async machine(userId: string): Promise<WorkerMachineRow | null> {
    const rows = check('read worker_machines', await this.db.from('worker_machines').select('*').eq('user_id', userId)) as WorkerMachineRow[];
    return rows[0] ?? null;
  }

  /**
   * Claims the users (all when `userIds` is undefined) that no other live controller is working on, for `ttlSec`.
   * Returns the claimed rows; a user missing from the answer is another controller's for now.
   */
  async claim(ttlSec: number, userIds?: readonly string[]): Promise<WorkerMachineRow[]> {
    const rows: WorkerMachineRow[] = [];
    // One call claims a whole pass; explicit lists go in chunks to keep each request small.
    const chunks = userIds === undefined ? [undefined] : chunk(userIds, 500);
    for (const users of chunks) {
      const result = await this.db.rpc('claim_worker_machines', { p_owner: this.owner, p_ttl_seconds: ttlSec, p_users: users ?? null });
      rows.push(...(check('claim worker_machines', result) as WorkerMachineRow[]));
    }
    return rows;
  }

  /** Writes what the controller found and did, only while it still holds the claim; `release` gives the user back. */
  async record(userId: string, record: MachineRecord, options: { release: boolean }): Promise<void> {
    const patch: Record<string, unknown> = { ...record };
    if (options.release) {
      patch.claimed_by = null;
      patch.claim_expires_at = null;
    }
    check('record worker_machines', await this.db.from('worker_machines').update(patch).eq('user_id', userId).eq('claimed_by', this.owner));
  }

  /** Sets what the platform wants for a user (the `provision` command, rollouts); creates the row if needed. */
  async setDesired(userId: string, spec: DesiredSpec): Promise<void> {
    const existing = await this.machine(userId);
    if (existing === null) {
      if (spec.image === undefined) throw new FleetDatabaseError(`user ${userId} has no worker_machines row yet: give it an --image`);
      check('insert worker_machines', await this.db.from('worker_machines').insert({ user_id: userId, ...spec }));
      return;
    }
    check('update worker_machines', await this.db.from('worker_machines').update(spec).eq('user_id', userId));
  }

  async setImage(userIds: readonly string[], image: string): Promise<void> {
    for (const users of chunk(userIds, 200)) {
      check('update worker_machines image', await this.db.from('worker_machines').update({ image }).in('user_id', users));
    }
  }

  /** Revokes a worker key id: PostgREST refuses it from the next request on. Revoking twice is fine. */
  async revokeKey(keyId: string, userId: string, reason: string): Promise<void> {
    const result = await this.db.from('revoked_worker_keys').upsert({ jti: keyId, user_id: userId, reason }, { onConflict: 'jti', ignoreDuplicates: true });
    check('revoke worker key', { data: null, error: result.error });
  }

  async isRevoked(keyId: string): Promise<boolean> {
    const rows = check('read revoked_worker_keys', await this.db.from('revoked_worker_keys').select('jti').eq('jti', keyId)) as unknown[];
    return rows.length > 0;
  }

  /** The workers' own status rows, keyed by shardKey(user, shard index). */
  async workerStatuses(userIds?: readonly string[]): Promise<Map<string, WorkerStatusRow>> {
    const statuses = new Map<string, WorkerStatusRow>();
    const columns = 'user_id, shard_index, shard_count, machine_id, version, state, started_at, heartbeat_at, last_error';
    if (userIds !== undefined) {
      for (const users of chunk(userIds, 200)) {
        const rows = check('read worker_status', await this.db.from('worker_status').select(columns).in('user_id', users)) as WorkerStatusRow[];
        for (const row of rows) statuses.set(shardKey(row.user_id, row.shard_index), row);
      }
      return statuses;
    }
    for (let from = 0; ; from += PAGE) {
      const rows = check(
        'read worker_status',
        await this.db.from('worker_status').select(columns).order('user_id').order('shard_index').range(from, from + PAGE - 1),
      ) as WorkerStatusRow[];
      for (const row of rows) statuses.set(shardKey(row.user_id, row.shard_index), row);
      if (rows.length < PAGE) return statuses;
    }
  }

  /** Deletes the status rows of a user's shards at or beyond `shardCount`: their machines are gone. */
  async dropShardStatuses(userId: string, shardCount: number): Promise<void> {
    check('delete worker_status of removed shards', await this.db.from('worker_status').delete().eq('user_id', userId).gte('shard_index', shardCount));
  }
}
