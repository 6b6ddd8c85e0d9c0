// The Fly Machines simulator's state: apps with secrets, machines with a state machine and timed transitions,
// leases, and server-side waits. Behaviour follows https://fly.io/docs/machines/api/ (apps, machines and secrets).

export interface MachineConfig {
  image: string;
  env?: Record<string, string>;
  guest?: { cpu_kind?: string; cpus?: number; memory_mb?: number };
  metadata?: Record<string, string>;
  restart?: { policy?: string };
  [key: string]: unknown;
}

export type MachineState = 'created' | 'starting' | 'started' | 'stopping' | 'stopped' | 'replacing' | 'destroying' | 'destroyed';

export interface SimMachine {
  id: string;
  name: string;
  state: MachineState;
  region: string;
  instanceId: string;
  config: MachineConfig;
  createdAt: string;
  updatedAt: string;
}

export interface SimApp {
  name: string;
  id: string;
  org: string;
  secrets: Map<string, string>;
  secretsVersion: number;
  machines: Map<string, SimMachine>;
}

export interface Lease {
  nonce: string;
  owner: string;
  description: string;
  expiresAtMs: number;
}

/** What a booted machine sees: its image and its environment (config env plus the app's secrets at boot time). */
export interface BootEvent {
  app: string;
  machineId: string;
  instanceId: string;
  region: string;
  image: string;
  memoryMb: number | undefined;
  env: Record<string, string>;
}

export interface Transitions {
  /** ms from starting (or replacing) to started. */
  bootMs: number;
  /** ms from stopping to stopped. */
  stopMs: number;
  /** ±fraction of jitter on each. */
  jitter: number;
}

interface Waiter {
  state: MachineState;
  resolve: () => void;
}

export class FlyModel {
  readonly apps = new Map<string, SimApp>();
  private readonly leases = new Map<string, Lease>();
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private readonly bootListeners: Array<(event: BootEvent) => void> = [];
  private readonly now: () => number;
  private readonly random: () => number;
  transitions: Transitions;
  /** Every machine ever created, including destroyed ones, for assertions. */
  machinesCreated = 0;

  constructor(options: { now: () => number; random: () => number; transitions: Transitions }) {
    this.now = options.now;
    this.random = options.random;
    this.transitions = options.transitions;
  }

  onBoot(listener: (event: BootEvent) => void): () => void {
    this.bootListeners.push(listener);
    return () => {
      const index = this.bootListeners.indexOf(listener);
      if (index >= 0) this.bootListeners.splice(index, 1);
    };
  }

  id(length = 14): string {
    let out = '';
    for (let i = 0; i < length; i += 1) out += Math.floor(this.random() * 16).toString(16);
    return out;
  }

  createMachine(app: SimApp, request: { name?: string; region?: string; config: MachineConfig; skipLaunch: boolean }): SimMachine {
    const stamp = new Date(this.now()).toISOString();
    const machine: SimMachine = {
      id: this.id(),
      name: request.name ?? `machine-${this.id(6)}`,
      state: 'created',
      region: request.region ?? 'nrt',
      instanceId: this.id(26).toUpperCase(),
      config: request.config,
      createdAt: stamp,
      updatedAt: stamp,
    };
    app.machines.set(machine.id, machine);
    this.machinesCreated += 1;
    if (request.skipLaunch) this.setState(app, machine, 'stopped');
    else this.boot(app, machine, 'starting');
    return machine;
  }

  update(app: SimApp, machine: SimMachine, config: MachineConfig, skipLaunch: boolean): void {
    machine.config = config;
    machine.instanceId = this.id(26).toUpperCase();
    const running = machine.state === 'started' || machine.state === 'starting' || machine.state === 'replacing';
    if (running) this.boot(app, machine, 'replacing');
    else if (!skipLaunch) this.boot(app, machine, 'starting');
    else this.touch(machine);
  }

  start(app: SimApp, machine: SimMachine): void {
    if (machine.state === 'stopped' || machine.state === 'created') this.boot(app, machine, 'starting');
  }

  stop(app: SimApp, machine: SimMachine): void {
    if (machine.state !== 'started' && machine.state !== 'starting' && machine.state !== 'replacing') return;
    this.setState(app, machine, 'stopping');
    this.after(this.transitions.stopMs, () => {
      if (machine.state === 'stopping') this.setState(app, machine, 'stopped');
    });
  }

  destroy(app: SimApp, machine: SimMachine): void {
    this.setState(app, machine, 'destroying');
    this.leases.delete(machine.id);
    app.machines.delete(machine.id);
    this.setState(app, machine, 'destroyed');
  }

  deleteApp(app: SimApp): void {
    for (const machine of [...app.machines.values()]) this.destroy(app, machine);
    this.apps.delete(app.name);
  }

  // ---- leases ----

  lease(machineId: string): Lease | undefined {
    const lease = this.leases.get(machineId);
    if (lease !== undefined && lease.expiresAtMs <= this.now()) {
      this.leases.delete(machineId);
      return undefined;
    }
    return lease;
  }

  /** Takes or refreshes (when `nonce` is the holder's) the lease; undefined when someone else holds it. */
  acquireLease(machineId: string, ttlSec: number, description: string, nonce: string | undefined): Lease | undefined {
    const held = this.lease(machineId);
    if (held !== undefined && held.nonce !== nonce) return undefined;
    const lease: Lease = { nonce: held?.nonce ?? this.id(12), owner: 'fleet@example.test', description, expiresAtMs: this.now() + ttlSec * 1000 };
    this.leases.set(machineId, lease);
    return lease;
  }

  releaseLease(machineId: string): void {
    this.leases.delete(machineId);
  }

  /** A mutation is allowed when there is no live lease or it carries the lease's nonce. */
  leaseAllows(machineId: string, nonce: string | undefined): boolean {
    const held = this.lease(machineId);
    return held === undefined || held.nonce === nonce;
  }

  // ---- waits ----

  /** Resolves true when the machine reaches `state`, false after `timeoutMs`. */
  waitFor(machine: SimMachine, state: MachineState, timeoutMs: number): Promise<boolean> {
    if (machine.state === state) return Promise.resolve(true);
    return new Promise((resolve) => {
      const list = this.waiters.get(machine.id) ?? [];
      const waiter: Waiter = {
        state,
        resolve: () => {
          clearTimeout(timer);
          this.timers.delete(timer);
          resolve(true);
        },
      };
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        const current = this.waiters.get(machine.id) ?? [];
        this.waiters.set(machine.id, current.filter((entry) => entry !== waiter));
        resolve(false);
      }, timeoutMs);
      this.timers.add(timer);
      list.push(waiter);
      this.waiters.set(machine.id, list);
    });
  }

  stopAll(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private boot(app: SimApp, machine: SimMachine, via: 'starting' | 'replacing'): void {
    this.setState(app, machine, via);
    const instanceId = machine.instanceId;
    this.after(this.transitions.bootMs, () => {
      if (machine.state !== via || machine.instanceId !== instanceId) return;
      this.setState(app, machine, 'started');
      const event: BootEvent = {
        app: app.name,
        machineId: machine.id,
        instanceId: machine.instanceId,
        region: machine.region,
        image: machine.config.image,
        memoryMb: machine.config.guest?.memory_mb,
        env: { ...(machine.config.env ?? {}), ...Object.fromEntries(app.secrets) },
      };
      for (const listener of [...this.bootListeners]) listener(event);
    });
  }

  private after(baseMs: number, action: () => void): void {
    const jitter = this.transitions.jitter;
    const delay = Math.max(0, baseMs * (1 - jitter + 2 * jitter * this.random()));
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      action();
    }, delay);
    this.timers.add(timer);
  }

  private setState(_app: SimApp, machine: SimMachine, state: MachineState): void {
    machine.state = state;
    this.touch(machine);
    const list = this.waiters.get(machine.id);
    if (list === undefined) return;
    const remaining = list.filter((waiter) => waiter.state !== state);
    for (const waiter of list) if (waiter.state === state) waiter.resolve();
    if (remaining.length > 0) this.waiters.set(machine.id, remaining);
    else this.waiters.delete(machine.id);
  }

  private touch(machine: SimMachine): void {
    machine.updatedAt = new Date(this.now()).toISOString();
  }
}
