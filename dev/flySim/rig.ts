// A test rig for the fleet controller: a local stack, the Machines API simulator, the worker stand-ins, and the
// controller's parts wired to them, so each fleet test states only what differs.
import { systemClock } from '../../src/clock.ts';
import { FleetStore } from '../../src/fleet/FleetStore.ts';
import { FlyMachinesClient } from '../../src/fleet/FlyMachinesClient.ts';
import { Reconciler, type ReconcilerSettings } from '../../src/fleet/Reconciler.ts';
import { silentLogger } from '../../src/logger.ts';
import { startLocalStack, type LocalStack } from '../localStack.ts';
import { FlySimulator, type FlySimulatorOptions } from './index.ts';
import { SimulatedWorkers, type WorkerBehaviour } from './workers.ts';
import type { BootEvent } from './model.ts';

export const SIM_TOKEN = 'fly-test-token-0123456789';

export interface FleetRig {
  stack: LocalStack;
  sim: FlySimulator;
  /** Present unless the rig was started with `workers: false`. */
  workers: SimulatedWorkers | undefined;
  /** A controller's parts, talking to this rig; `owner` names it in claims. */
  controller(owner: string, settings?: Partial<ReconcilerSettings>): { fly: FlyMachinesClient; store: FleetStore; reconciler: Reconciler };
  stop(): Promise<void>;
}

export async function startFleetRig(options: {
  seed?: number;
  transitions?: FlySimulatorOptions['transitions'];
  workers?: false | ((event: BootEvent) => WorkerBehaviour);
}): Promise<FleetRig> {
  const stack = await startLocalStack();
  const sim = new FlySimulator({ token: SIM_TOKEN, seed: options.seed, transitions: options.transitions });
  await sim.start();
  const workers =
    options.workers === false
      ? undefined
      : new SimulatedWorkers(sim, { supabaseUrl: stack.supabaseUrl, behaviour: typeof options.workers === 'function' ? options.workers : undefined });
  return {
    stack,
    sim,
    workers,
    controller(owner, settings) {
      const fly = new FlyMachinesClient({ baseUrl: sim.url, token: SIM_TOKEN, retryBaseMs: 5, retryMaxMs: 100 });
      const store = new FleetStore({ supabaseUrl: stack.supabaseUrl, serviceKey: stack.serviceKey, owner });
      const reconciler = new Reconciler({
        fly,
        store,
        clock: systemClock,
        logger: silentLogger(),
        settings: {
          flyOrg: 'screener-test',
          appPrefix: 'screener',
          supabaseUrl: stack.supabaseUrl,
          supabaseJwtSecret: stack.jwtSecret,
          keyDays: 365,
          concurrency: 8,
          waitTimeoutSec: 5,
          maxPasses: 5,
          claimTtlSec: 120,
          controllerId: owner,
          passBackoffMs: 20,
          ...settings,
        },
      });
      return { fly, store, reconciler };
    },
    async stop() {
      await workers?.stop();
      await sim.stop();
      await stack.stop();
    },
  };
}
