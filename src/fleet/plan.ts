// Pure decisions of the fleet controller: the Fly app and machine config a user should have, and the next step that
// brings what runs (the Machines API's answer) closer to what the platform wants (worker_machines).
import type { FlyMachine, FlyMachineConfig } from './flyMessages.ts';
import type { DesiredState } from './FleetStore.ts';

/** One Fly app per user: Fly secrets are per app, so a user's key reaches only that user's machine. */
export function appNameFor(prefix: string, userId: string): string {
  return `${prefix}-${userId.toLowerCase()}`;
}

export interface Desired {
  userId: string;
  state: DesiredState;
  region: string;
  memoryMb: number;
  image: string;
  /** Machines the user's traders are spread over (worker_machines.shard_count): one per shard index. */
  shardCount: number;
}

/**
 * The machine config fly.toml describes, for the Machines API: always restart, the /health check, metrics scraping,
 * and a kill timeout that covers the worker's flush. USER_ID, SUPABASE_URL, SHARD_INDEX and SHARD_COUNT are plain
 * config; SUPABASE_KEY is the app's secret, shared by the user's shards. The key id in metadata says which key the
 * machine was (re)started for.
 */
export function machineConfigFor(desired: Desired, options: { supabaseUrl: string; keyId: string; shardIndex: number }): FlyMachineConfig {
  return {
    image: desired.image,
    env: {
      USER_ID: desired.userId,
      SUPABASE_URL: options.supabaseUrl,
      SHARD_INDEX: String(options.shardIndex),
      SHARD_COUNT: String(desired.shardCount),
      PORT: '8080',
      LOG_LEVEL: 'info',
      SHUTDOWN_TIMEOUT_MS: '20000',
    },
    guest: { cpu_kind: 'shared', cpus: 1, memory_mb: desired.memoryMb },
    restart: { policy: 'always' },
    metadata: { screener_user: desired.userId, screener_key_id: options.keyId, screener_shard: String(options.shardIndex) },
    checks: { health: { type: 'http', port: 8080, method: 'GET', path: '/health', grace_period: '60s', interval: '15s', timeout: '5s' } },
    metrics: { port: 8080, path: '/metrics' },
    stop_config: { signal: 'SIGTERM', timeout: '30s' },
  };
}

/** Oldest first: the machine a shard keeps when it has several (two controllers' creates racing, a half-done replace). */
function byAge(a: FlyMachine, b: FlyMachine): number {
  return (a.created_at ?? '').localeCompare(b.created_at ?? '') || a.id.localeCompare(b.id);
}

/** The machine a user keeps when it has several: the oldest of shard 0. */
export function primaryOf(machines: readonly FlyMachine[]): FlyMachine | undefined {
  return shardMachines(machines).get(0);
}

/** The shard a machine runs: its SHARD_INDEX; a machine from before sharding has none and is shard 0. -1: unreadable. */
export function shardOf(machine: FlyMachine): number {
  const value = machine.config.env?.SHARD_INDEX;
  if (value === undefined) return 0;
  return /^\d{1,3}$/.test(value) ? Number(value) : -1;
}

/** The machine each shard index keeps (the oldest of any it has), by index. */
export function shardMachines(machines: readonly FlyMachine[]): Map<number, FlyMachine> {
  const kept = new Map<number, FlyMachine>();
  for (const machine of [...machines].sort(byAge)) {
    const shard = shardOf(machine);
    if (!kept.has(shard)) kept.set(shard, machine);
  }
  return new Map([...kept].sort(([a], [b]) => a - b));
}

export type Step =
  | { kind: 'converged'; machine?: FlyMachine; machines: FlyMachine[] }
  | { kind: 'create-app' }
  | { kind: 'delete-app' }
  | { kind: 'revoke-key' }
  | { kind: 'provision'; shardIndex: number }
  | { kind: 'destroy'; machines: FlyMachine[]; reason: string }
  | { kind: 'update'; machine: FlyMachine; reason: string }
  | { kind: 'start'; machine: FlyMachine }
  | { kind: 'stop'; machine: FlyMachine }
  | { kind: 'wait'; machine: FlyMachine; state: 'started' | 'stopped' };

const BOOTING = new Set(['starting', 'replacing']);
const HALTED = new Set(['stopped', 'created', 'suspended']);

/**
 * The next step for one user. `machines` is null when the user's app does not exist; `keyId` is the worker key the
 * controller last set (still to be revoked once the user should have no machine).
 *
 * A user has one machine per shard index below `shardCount`. A change of count is ordered so that a trader's old
 * machine stops only once its new one has started: new shards are created before the existing ones are restarted
 * with the new count, and shards beyond the count are destroyed only after the ones that take their traders over
 * restarted. The price is a short overlap (two machines screening one trader, whose duplicate signals the signals'
 * unique key absorbs); the seconds a restarted worker spends booting are screened by its boot catch-up, as after any
 * restart.
 */
export function nextStep(desired: Desired, machines: readonly FlyMachine[] | null, keyId: string | null): Step {
  if (desired.state === 'absent') {
    if (machines === null) return keyId !== null ? { kind: 'revoke-key' } : { kind: 'converged', machines: [] };
    if (machines.length > 0) return { kind: 'destroy', machines: [...machines], reason: 'deprovision' };
    return { kind: 'delete-app' };
  }
  if (machines === null) return { kind: 'create-app' };
  const dying = machines.filter((machine) => machine.state === 'destroying' || machine.state === 'destroyed');
  if (dying.length > 0) return { kind: 'destroy', machines: dying, reason: 'machine is being destroyed' };
  const kept = shardMachines(machines);
  const duplicates = machines.filter((machine) => kept.get(shardOf(machine)) !== machine);
  if (duplicates.length > 0) return { kind: 'destroy', machines: duplicates, reason: desired.shardCount > 1 ? 'one machine per shard' : 'one machine per user' };
  for (let shardIndex = 0; shardIndex < desired.shardCount; shardIndex += 1) {
    if (!kept.has(shardIndex)) return { kind: 'provision', shardIndex };
  }
  const inShards = [...kept].filter(([shard]) => shard >= 0 && shard < desired.shardCount).map(([, machine]) => machine);
  // A machine cannot move between regions: replace it (its successor runs on the app's key, or a fresh one).
  const moved = inShards.find((machine) => machine.region !== desired.region);
  if (moved !== undefined) return { kind: 'destroy', machines: [moved], reason: `region ${moved.region} → ${desired.region}` };
  for (const machine of inShards) {
    const drift = configDrift(desired, machine.config);
    if (drift !== undefined) return { kind: 'update', machine, reason: drift };
  }
  const beyond = [...kept].filter(([shard]) => shard < 0 || shard >= desired.shardCount).map(([, machine]) => machine);
  if (beyond.length > 0) return { kind: 'destroy', machines: beyond, reason: `shards beyond ${desired.shardCount}` };
  for (const machine of inShards) {
    if (desired.state === 'running') {
      if (machine.state === 'started') continue;
      if (BOOTING.has(machine.state)) return { kind: 'wait', machine, state: 'started' };
      if (machine.state === 'stopping') return { kind: 'wait', machine, state: 'stopped' };
      return { kind: 'start', machine };
    }
    if (HALTED.has(machine.state)) continue;
    if (machine.state === 'stopping') return { kind: 'wait', machine, state: 'stopped' };
    return { kind: 'stop', machine };
  }
  return { kind: 'converged', machine: inShards[0], machines: inShards };
}

function configDrift(desired: Desired, config: FlyMachineConfig): string | undefined {
  if (config.image !== desired.image) return `image ${config.image} → ${desired.image}`;
  if (config.guest?.memory_mb !== desired.memoryMb) return `memory ${config.guest?.memory_mb ?? '?'} MB → ${desired.memoryMb} MB`;
  // A machine from before sharding has no SHARD_COUNT: it runs everything, which is a count of 1.
  const shardCount = config.env?.SHARD_COUNT ?? '1';
  if (shardCount !== String(desired.shardCount)) return `shards ${shardCount} → ${desired.shardCount}`;
  return undefined;
}
