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
}

/**
 * The machine config fly.toml describes, for the Machines API: always restart, the /health check, metrics scraping,
 * and a kill timeout that covers the worker's flush. USER_ID and SUPABASE_URL are plain config; SUPABASE_KEY is the
 * app's secret. The key id in metadata says which key the machine was (re)started for.
 */
export function machineConfigFor(desired: Desired, options: { supabaseUrl: string; keyId: string }): FlyMachineConfig {
  return {
    image: desired.image,
    env: { USER_ID: desired.userId, SUPABASE_URL: options.supabaseUrl, PORT: '8080', LOG_LEVEL: 'info', SHUTDOWN_TIMEOUT_MS: '20000' },
    guest: { cpu_kind: 'shared', cpus: 1, memory_mb: desired.memoryMb },
    restart: { policy: 'always' },
    metadata: { screener_user: desired.userId, screener_key_id: options.keyId },
    checks: { health: { type: 'http', port: 8080, method: 'GET', path: '/health', grace_period: '60s', interval: '15s', timeout: '5s' } },
    metrics: { port: 8080, path: '/metrics' },
    stop_config: { signal: 'SIGTERM', timeout: '30s' },
  };
}

/** The machine a user keeps when it has several (two controllers' creates racing, a half-done replace): the oldest. */
export function primaryOf(machines: readonly FlyMachine[]): FlyMachine | undefined {
  return [...machines].sort((a, b) => (a.created_at ?? '').localeCompare(b.created_at ?? '') || a.id.localeCompare(b.id))[0];
}

export type Step =
  | { kind: 'converged'; machine?: FlyMachine }
  | { kind: 'create-app' }
  | { kind: 'delete-app' }
  | { kind: 'revoke-key' }
  | { kind: 'provision' }
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
 */
export function nextStep(desired: Desired, machines: readonly FlyMachine[] | null, keyId: string | null): Step {
  if (desired.state === 'absent') {
    if (machines === null) return keyId !== null ? { kind: 'revoke-key' } : { kind: 'converged' };
    if (machines.length > 0) return { kind: 'destroy', machines: [...machines], reason: 'deprovision' };
    return { kind: 'delete-app' };
  }
  if (machines === null) return { kind: 'create-app' };
  const primary = primaryOf(machines);
  if (primary === undefined) return { kind: 'provision' };
  if (machines.length > 1) return { kind: 'destroy', machines: machines.filter((machine) => machine.id !== primary.id), reason: 'one machine per user' };
  if (primary.state === 'destroying' || primary.state === 'destroyed') return { kind: 'destroy', machines: [primary], reason: 'machine is being destroyed' };
  // A machine cannot move between regions: replace it (its successor gets a fresh key).
  if (primary.region !== desired.region) return { kind: 'destroy', machines: [primary], reason: `region ${primary.region} → ${desired.region}` };
  const drift = configDrift(desired, primary.config);
  if (drift !== undefined) return { kind: 'update', machine: primary, reason: drift };
  if (desired.state === 'running') {
    if (primary.state === 'started') return { kind: 'converged', machine: primary };
    if (BOOTING.has(primary.state)) return { kind: 'wait', machine: primary, state: 'started' };
    if (primary.state === 'stopping') return { kind: 'wait', machine: primary, state: 'stopped' };
    return { kind: 'start', machine: primary };
  }
  if (HALTED.has(primary.state)) return { kind: 'converged', machine: primary };
  if (primary.state === 'stopping') return { kind: 'wait', machine: primary, state: 'stopped' };
  return { kind: 'stop', machine: primary };
}

function configDrift(desired: Desired, config: FlyMachineConfig): string | undefined {
  if (config.image !== desired.image) return `image ${config.image} → ${desired.image}`;
  if (config.guest?.memory_mb !== desired.memoryMb) return `memory ${config.guest?.memory_mb ?? '?'} MB → ${desired.memoryMb} MB`;
  return undefined;
}
