// A loopback Fly Machines API simulator (apps, secrets, machines, waits, leases) with fault switches: 429 and 5xx
// answers at a chosen rate, and slow state transitions. Built from https://fly.io/docs/machines/api/.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FlyModel, type BootEvent, type MachineConfig, type MachineState, type SimApp, type SimMachine, type Transitions } from './model.ts';
import { seededRandom } from '../seededRandom.ts';

export type { BootEvent } from './model.ts';

export interface FlySimulatorOptions {
  /** The bearer token requests must carry. */
  token: string;
  seed?: number;
  /** Slow state transitions: ms to boot and to stop (default 30 and 20), ±jitter fraction (default 0.5). */
  transitions?: Partial<Transitions>;
  port?: number;
}

export interface FlySimulatorStats {
  requests: number;
  /** Requests per app name, its creation included. */
  requestsByApp: Map<string, number>;
  faultsInjected: number;
  leaseConflicts: number;
}

/** The same seed gives the same ids and fault draws. */
const seeded = seededRandom;

const WAITABLE: readonly MachineState[] = ['started', 'stopped', 'destroyed'];

class HttpAnswer {
  readonly status: number;
  readonly body: unknown;
  readonly headers: Record<string, string>;
  constructor(status: number, body?: unknown, headers: Record<string, string> = {}) {
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

const notFound = (what: string) => new HttpAnswer(404, { error: `${what} not found` });

export class FlySimulator {
  readonly model: FlyModel;
  readonly stats: FlySimulatorStats = { requests: 0, requestsByApp: new Map(), faultsInjected: 0, leaseConflicts: 0 };
  private readonly options: FlySimulatorOptions;
  private readonly random: () => number;
  private server: Server | null = null;
  private port = 0;
  private faultRate = 0;
  private readonly scripted: number[] = [];
  /** Apps whose machine creates and updates are refused, as Fly refuses an image it cannot pull. */
  private readonly refusedApps = new Map<string, string>();
  /** Destroyed machines, so a wait for `destroyed` on one still answers. */
  private readonly destroyed = new Map<string, SimMachine>();

  constructor(options: FlySimulatorOptions) {
    this.options = options;
    this.random = seeded(options.seed ?? 1);
    this.model = new FlyModel({
      now: () => Date.now(),
      random: this.random,
      transitions: { bootMs: 30, stopMs: 20, jitter: 0.5, ...options.transitions },
    });
  }

  /** FLY_API_HOSTNAME for a client of this simulator. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.server !== null) return;
    const server = createServer((request, response) => void this.handle(request, response));
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port ?? 0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    this.model.stopAll();
    if (server === null) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // ---- fault switches ----

  /** Answer this fraction of requests (0–1) with a 429 or a 5xx, before touching any state. */
  setFaultRate(rate: number): void {
    this.faultRate = rate;
  }

  /** Answer the next requests with these statuses, in order. */
  failNext(...statuses: number[]): void {
    this.scripted.push(...statuses);
  }

  /** Refuse machine creates and updates in `app` with 422 and this message (e.g. an image Fly cannot pull); undefined lifts it. */
  refuseMachinesOf(app: string, message: string | undefined): void {
    if (message === undefined) this.refusedApps.delete(app);
    else this.refusedApps.set(app, message);
  }

  setTransitions(transitions: Partial<Transitions>): void {
    this.model.transitions = { ...this.model.transitions, ...transitions };
  }

  onBoot(listener: (event: BootEvent) => void): () => void {
    return this.model.onBoot(listener);
  }

  // ---- inspection for tests ----

  app(name: string): SimApp | undefined {
    return this.model.apps.get(name);
  }

  /** Every live machine across apps. */
  machines(): Array<SimMachine & { app: string }> {
    return [...this.model.apps.values()].flatMap((app) => [...app.machines.values()].map((machine) => ({ ...machine, app: app.name })));
  }

  // ---- HTTP ----

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    this.stats.requests += 1;
    let answer: HttpAnswer;
    try {
      const body = await readJson(request);
      answer = await this.route(request, body);
    } catch (error) {
      answer = new HttpAnswer(400, { error: (error as Error).message });
    }
    if (response.destroyed) return;
    const payload = answer.body === undefined ? '' : JSON.stringify(answer.body);
    response.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
    response.end(payload);
  }

  private fault(): HttpAnswer | undefined {
    const scripted = this.scripted.shift();
    const status = scripted ?? (this.faultRate > 0 && this.random() < this.faultRate ? [429, 500, 502, 503][Math.floor(this.random() * 4)]! : undefined);
    if (status === undefined) return undefined;
    this.stats.faultsInjected += 1;
    if (status === 429) return new HttpAnswer(429, { error: 'rate limit exceeded' }, { 'retry-after': '0' });
    return new HttpAnswer(status, { error: 'internal error' });
  }

  private async route(request: IncomingMessage, body: unknown): Promise<HttpAnswer> {
    if (request.headers.authorization !== `Bearer ${this.options.token}`) return new HttpAnswer(401, { error: 'unauthorized' });
    const url = new URL(request.url ?? '/', 'http://sim');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const method = request.method ?? 'GET';
    if (parts[0] !== 'v1' || parts[1] !== 'apps') return notFound('route');
    const appName = parts[2];
    // App creation is counted for the app it creates, so a per-app count is everything spent on that app.
    const counted = appName ?? (body as { app_name?: unknown } | undefined)?.app_name;
    if (typeof counted === 'string') this.stats.requestsByApp.set(counted, (this.stats.requestsByApp.get(counted) ?? 0) + 1);
    const injected = this.fault();
    if (injected !== undefined) return injected;
    const nonce = header(request, 'fly-machine-lease-nonce');

    if (appName === undefined) {
      if (method === 'POST') return this.createApp(body);
      return new HttpAnswer(405, { error: 'method not allowed' });
    }
    const app = this.model.apps.get(appName);
    if (parts.length === 3) {
      if (app === undefined) return notFound('app');
      if (method === 'GET') return new HttpAnswer(200, { id: app.id, name: app.name, status: 'deployed', organization: { slug: app.org, name: app.org } });
      if (method === 'DELETE') {
        this.model.deleteApp(app);
        return new HttpAnswer(202);
      }
      return new HttpAnswer(405, { error: 'method not allowed' });
    }
    if (app === undefined) return notFound('app');
    if (parts[3] === 'secrets' && parts.length === 4) {
      if (method === 'GET') return new HttpAnswer(200, { secrets: secretList(app) });
      return new HttpAnswer(405, { error: 'method not allowed' });
    }
    if (parts[3] === 'secrets' && parts.length === 5) return this.secretRoute(app, parts[4]!, method, body);
    if (parts[3] !== 'machines') return notFound('route');
    const refusal = this.refusedApps.get(app.name);
    if (refusal !== undefined && method === 'POST' && (parts.length === 4 || parts.length === 5)) return new HttpAnswer(422, { error: refusal });
    if (parts.length === 4) {
      if (method === 'GET') return new HttpAnswer(200, [...app.machines.values()].map(wire));
      if (method === 'POST') return this.createMachine(app, body);
      return new HttpAnswer(405, { error: 'method not allowed' });
    }
    const machineId = parts[4]!;
    const action = parts[5];
    if (action === 'wait' && method === 'GET') return this.wait(app, machineId, url);
    const machine = app.machines.get(machineId);
    if (machine === undefined) return notFound('machine');
    if (action === 'lease') return this.leaseRoute(machine, method, body, nonce);
    if (method === 'GET' && action === undefined) return new HttpAnswer(200, wire(machine));
    // Every mutation below respects the machine's lease.
    if (!this.model.leaseAllows(machine.id, nonce)) {
      this.stats.leaseConflicts += 1;
      return new HttpAnswer(412, { error: 'failed_precondition: machine has an active lease held by another owner' });
    }
    if (method === 'DELETE' && action === undefined) {
      const running = machine.state !== 'stopped' && machine.state !== 'created';
      if (running && url.searchParams.get('force') !== 'true') {
        return new HttpAnswer(412, { error: 'failed_precondition: machine still active, refusing to delete' });
      }
      this.model.destroy(app, machine);
      this.destroyed.set(machine.id, machine);
      return new HttpAnswer(200, { ok: true });
    }
    if (method !== 'POST') return new HttpAnswer(405, { error: 'method not allowed' });
    if (action === undefined) {
      const request = (body ?? {}) as { config?: MachineConfig; skip_launch?: boolean; min_secrets_version?: number };
      if (request.config === undefined || typeof request.config.image !== 'string') return new HttpAnswer(400, { error: 'config.image is required' });
      if ((request.min_secrets_version ?? 0) > app.secretsVersion) return new HttpAnswer(422, { error: 'min_secrets_version is newer than the app\'s secrets' });
      this.model.update(app, machine, request.config, request.skip_launch === true);
      return new HttpAnswer(200, wire(machine));
    }
    if (action === 'start') {
      this.model.start(app, machine);
      return new HttpAnswer(200, { previous_state: machine.state });
    }
    if (action === 'stop') {
      this.model.stop(app, machine);
      return new HttpAnswer(200, { ok: true });
    }
    return notFound('route');
  }

  private createApp(body: unknown): HttpAnswer {
    const request = (body ?? {}) as { app_name?: unknown; org_slug?: unknown };
    if (typeof request.app_name !== 'string' || !/^[a-z0-9-]{2,63}$/.test(request.app_name)) return new HttpAnswer(400, { error: 'app_name is invalid' });
    if (typeof request.org_slug !== 'string') return new HttpAnswer(400, { error: 'org_slug is required' });
    if (this.model.apps.has(request.app_name)) return new HttpAnswer(409, { error: 'app name already taken' });
    this.model.apps.set(request.app_name, {
      name: request.app_name,
      id: this.model.id(),
      org: request.org_slug,
      secrets: new Map(),
      secretsVersion: 0,
      machines: new Map(),
    });
    return new HttpAnswer(201);
  }

  /** POST sets one secret ({ value }), DELETE unsets it; both move the app's secrets version on. */
  private secretRoute(app: SimApp, name: string, method: string, body: unknown): HttpAnswer {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return new HttpAnswer(400, { error: 'invalid secret name' });
    if (method === 'POST') {
      const value = (body as { value?: unknown } | undefined)?.value;
      if (typeof value !== 'string') return new HttpAnswer(400, { error: 'value must be a string' });
      app.secrets.set(name, value);
    } else if (method === 'DELETE') {
      if (!app.secrets.delete(name)) return notFound('secret');
    } else {
      return new HttpAnswer(405, { error: 'method not allowed' });
    }
    app.secretsVersion += 1;
    return new HttpAnswer(200, { version: app.secretsVersion });
  }

  private createMachine(app: SimApp, body: unknown): HttpAnswer {
    const request = (body ?? {}) as { name?: string; region?: string; config?: MachineConfig; skip_launch?: boolean; min_secrets_version?: number };
    if (request.config === undefined || typeof request.config.image !== 'string') return new HttpAnswer(400, { error: 'config.image is required' });
    if ((request.min_secrets_version ?? 0) > app.secretsVersion) return new HttpAnswer(422, { error: 'min_secrets_version is newer than the app\'s secrets' });
    const machine = this.model.createMachine(app, { name: request.name, region: request.region, config: request.config, skipLaunch: request.skip_launch === true });
    return new HttpAnswer(200, wire(machine));
  }

  private async wait(app: SimApp, machineId: string, url: URL): Promise<HttpAnswer> {
    const state = (url.searchParams.get('state') ?? 'started') as MachineState;
    if (!WAITABLE.includes(state)) return new HttpAnswer(400, { error: `cannot wait for state ${state}` });
    const timeoutSec = Math.min(60, Math.max(1, Number(url.searchParams.get('timeout') ?? '60') || 60));
    const machine = app.machines.get(machineId) ?? this.destroyed.get(machineId);
    if (machine === undefined) return notFound('machine');
    const reached = await this.model.waitFor(machine, state, timeoutSec * 1000);
    return reached ? new HttpAnswer(200, { ok: true }) : new HttpAnswer(408, { error: `deadline_exceeded: machine did not reach ${state}` });
  }

  private leaseRoute(machine: SimMachine, method: string, body: unknown, nonce: string | undefined): HttpAnswer {
    if (method === 'GET') {
      const lease = this.model.lease(machine.id);
      return lease === undefined ? notFound('lease') : new HttpAnswer(200, { status: 'success', data: leaseWire(lease) });
    }
    if (method === 'POST') {
      const request = (body ?? {}) as { ttl?: number; description?: string };
      const lease = this.model.acquireLease(machine.id, request.ttl ?? 30, request.description ?? '', nonce);
      if (lease === undefined) {
        this.stats.leaseConflicts += 1;
        return new HttpAnswer(409, { error: 'lease currently held by another owner' });
      }
      return new HttpAnswer(200, { status: 'success', data: leaseWire(lease) });
    }
    if (method === 'DELETE') {
      if (!this.model.leaseAllows(machine.id, nonce)) return new HttpAnswer(412, { error: 'failed_precondition: lease nonce does not match' });
      this.model.releaseLease(machine.id);
      return new HttpAnswer(200, { ok: true });
    }
    return new HttpAnswer(405, { error: 'method not allowed' });
  }
}

function wire(machine: SimMachine): object {
  return {
    id: machine.id,
    name: machine.name,
    state: machine.state,
    region: machine.region,
    instance_id: machine.instanceId,
    config: machine.config,
    created_at: machine.createdAt,
    updated_at: machine.updatedAt,
  };
}

function leaseWire(lease: { nonce: string; owner: string; description: string; expiresAtMs: number }): object {
  return { nonce: lease.nonce, owner: lease.owner, description: lease.description, expires_at: Math.floor(lease.expiresAtMs / 1000), version: lease.nonce };
}

function secretList(app: SimApp): object[] {
  return [...app.secrets.keys()].map((name) => ({ name, digest: String(name.length) }));
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  if (chunks.length === 0) return undefined;
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}
