// `npm run fleet -- <command>`: the fleet controller's commands. Configuration comes from the environment only
// (src/fleet/config.ts); results go to stdout, JSON logs to stderr. Exit 0 on success, 1 when the fleet did not get
// where it was asked to (naming who and why), 2 for a usage or configuration error.
import { parseArgs } from 'node:util';
import { systemClock, type Clock } from '../clock.ts';
import { MAX_SHARDS } from '../config.ts';
import { ConfigError } from '../errors.ts';
import { createLogger, type Logger } from '../logger.ts';
import { loadFleetConfig, type FleetConfig } from './config.ts';
import { FleetStore } from './FleetStore.ts';
import { FlyMachinesClient } from './FlyMachinesClient.ts';
import { KeyRotation, RotationFailedError } from './KeyRotation.ts';
import { Reconciler, type ReconcileReport } from './Reconciler.ts';
import { Rollout } from './Rollout.ts';
import { fleetStatus, formatStatusTable } from './status.ts';

const USAGE = `usage: npm run fleet -- <command>
  reconcile [--watch]                 make every user's machine match worker_machines (--watch: every FLEET_INTERVAL_S)
  provision <user> [--image <image>] [--region <region>] [--memory <mb>] [--shards <n>]
                                      want running machines for the user (one per shard), then reconcile that user
  deprovision <user>                  stop and destroy the user's machine, delete its app, revoke its key
  status [--json]                     user, shard, app, machine, state, region, image, worker state, heartbeat age, last error
  rollout <image> [--canaries 2] [--canary <user>]... [--batch 10]
                                      canaries first, then batches; halts at the first machine not ready in time
  rotate-key <user>                   new key, set as the app secret, machine restarted, ready, then the old key revoked
configuration: FLY_API_TOKEN, FLY_API_HOSTNAME, FLY_ORG, SUPABASE_URL, SUPABASE_SERVICE_KEY, SUPABASE_JWT_SECRET (environment only)`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface FleetIo {
  out(text: string): void;
  err(text: string): void;
}

class UsageError extends Error {}

interface Parts {
  config: FleetConfig;
  fly: FlyMachinesClient;
  store: FleetStore;
  reconciler: Reconciler;
  clock: Clock;
  logger: Logger;
}

function assemble(config: FleetConfig, io: FleetIo): Parts {
  const clock = systemClock;
  const logger = createLogger({
    level: config.logLevel,
    userId: 'fleet',
    machineId: config.controllerId,
    secrets: [config.flyApiToken, config.supabaseServiceKey, config.supabaseJwtSecret],
    sink: { write: (line) => io.err(line) },
  });
  const fly = new FlyMachinesClient({ baseUrl: config.flyApiHostname, token: config.flyApiToken, clock });
  const store = new FleetStore({ supabaseUrl: config.supabaseUrl, serviceKey: config.supabaseServiceKey, owner: config.controllerId });
  const reconciler = new Reconciler({ fly, store, clock, logger, settings: { ...config, passBackoffMs: 1000 } });
  return { config, fly, store, reconciler, clock, logger };
}

function userArgument(positionals: string[], command: string): string {
  const user = positionals[1];
  if (user === undefined || !UUID.test(user)) throw new UsageError(`${command} needs the user id (a uuid)`);
  return user.toLowerCase();
}

function printReport(io: FleetIo, report: ReconcileReport): number {
  io.out(`converged: ${report.converged.length} user(s) in ${report.passes} pass(es)`);
  for (const outcome of report.converged) if (outcome.actions.length > 0) io.out(`  ${outcome.userId}: ${outcome.actions.join('; ')}`);
  if (report.notConverged.length === 0) return 0;
  io.out(`NOT converged: ${report.notConverged.length} user(s)`);
  for (const outcome of report.notConverged) io.out(`  ${outcome.userId}: ${outcome.error ?? 'not converged'}`);
  return 1;
}

/** Runs one command; returns the exit code. */
export async function runFleet(argv: string[], env: Record<string, string | undefined>, io: FleetIo, signal?: AbortSignal): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        json: { type: 'boolean', default: false },
        watch: { type: 'boolean', default: false },
        image: { type: 'string' },
        region: { type: 'string' },
        memory: { type: 'string' },
        shards: { type: 'string' },
        canaries: { type: 'string', default: '2' },
        canary: { type: 'string', multiple: true },
        batch: { type: 'string', default: '10' },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (error) {
    io.err(`fleet: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (values.help || command === undefined) {
    io.out(USAGE);
    return values.help ? 0 : 2;
  }
  let parts: Parts;
  try {
    parts = assemble(loadFleetConfig(env), io);
  } catch (error) {
    if (error instanceof ConfigError) {
      io.err(`fleet: invalid configuration: ${error.message}`);
      return 2;
    }
    throw error;
  }
  const { config, fly, store, reconciler, clock, logger } = parts;
  try {
    switch (command) {
      case 'reconcile': {
        if (!values.watch) return printReport(io, await reconciler.reconcile());
        // The long-lived form, for the controller's own Fly app: a full reconcile every FLEET_INTERVAL_S.
        while (!signal?.aborted) {
          const report = await reconciler.reconcile();
          logger.info(
            { event: 'fleet_reconciled', converged: report.converged.length, notConverged: report.notConverged.map((outcome) => ({ userId: outcome.userId, error: outcome.error })) },
            'reconcile done',
          );
          await clock.sleep(config.intervalSec * 1000, signal).catch(() => undefined);
        }
        return 0;
      }
      case 'provision': {
        const user = userArgument(positionals, command);
        const memory = values.memory === undefined ? undefined : Number(values.memory);
        if (memory !== undefined && (!Number.isInteger(memory) || memory % 256 !== 0)) throw new UsageError('--memory must be a multiple of 256 (MB)');
        const shards = values.shards === undefined ? undefined : Number(values.shards);
        if (shards !== undefined && (!Number.isInteger(shards) || shards < 1 || shards > MAX_SHARDS)) throw new UsageError(`--shards must be a whole number from 1 to ${MAX_SHARDS}`);
        await store.setDesired(user, { desired_state: 'running', image: values.image, region: values.region, memory_mb: memory, shard_count: shards });
        return printReport(io, await reconciler.reconcile({ users: [user] }));
      }
      case 'deprovision': {
        const user = userArgument(positionals, command);
        await store.setDesired(user, { desired_state: 'absent' });
        return printReport(io, await reconciler.reconcile({ users: [user] }));
      }
      case 'status': {
        const rows = await fleetStatus({ fly, store, reconciler, clock, concurrency: config.concurrency });
        io.out(values.json ? JSON.stringify(rows, null, 2) : formatStatusTable(rows));
        return 0;
      }
      case 'rollout': {
        const image = positionals[1];
        if (image === undefined || image.length > 500) throw new UsageError('rollout needs the image, e.g. registry.fly.io/screener-worker:v42');
        const canaries = Number(values.canaries);
        const batchSize = Number(values.batch);
        if (!Number.isInteger(canaries) || canaries < 0) throw new UsageError('--canaries must be a whole number');
        if (!Number.isInteger(batchSize) || batchSize < 1) throw new UsageError('--batch must be at least 1');
        const rollout = new Rollout({ store, reconciler, clock, logger });
        const report = await rollout.run({ image, canaries, canaryUsers: values.canary, batchSize, readyTimeoutMs: config.readyTimeoutSec * 1000 });
        if (values.json) io.out(JSON.stringify(report, null, 2));
        else {
          io.out(`rollout of ${image}: ${report.updated.length} user(s) updated and ready${report.stopped.length > 0 ? `, ${report.stopped.length} stopped user(s) updated` : ''}`);
          if (report.halted) io.out(`HALTED at ${report.halted.userId}: ${report.halted.reason}\n${report.pending.length} user(s) still on their previous image`);
        }
        return report.completed ? 0 : 1;
      }
      case 'rotate-key': {
        const user = userArgument(positionals, command);
        const rotation = new KeyRotation({
          fly,
          store,
          reconciler,
          clock,
          logger,
          settings: { ...config, readyTimeoutMs: config.readyTimeoutSec * 1000 },
        });
        const result = await rotation.rotate(user);
        io.out(`rotated ${user}: key ${result.newKeyId} in use; revoked ${result.revokedKeyIds.join(', ') || 'nothing (no previous key id)'}`);
        return 0;
      }
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`fleet: ${error.message}\n${USAGE}`);
      return 2;
    }
    if (error instanceof RotationFailedError) {
      io.out(`rotate-key FAILED: ${error.message}`);
      return 1;
    }
    io.err(`fleet: ${command} failed: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) {
  const controller = new AbortController();
  for (const signalName of ['SIGTERM', 'SIGINT'] as const) process.once(signalName, () => controller.abort());
  const code = await runFleet(process.argv.slice(2), process.env, {
    out: (text) => process.stdout.write(`${text}\n`),
    err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  }, controller.signal);
  process.exitCode = code;
}
