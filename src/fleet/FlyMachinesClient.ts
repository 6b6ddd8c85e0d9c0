// A small typed client for the Fly Machines API over fetch: every response validated, 429/5xx/network failures
// retried with jittered backoff (honouring Retry-After), lease nonces passed on mutations.
import type { z } from 'zod';
import { backoffDelay } from '../backoff.ts';
import { systemClock, type Clock } from '../clock.ts';
import { ProtocolError } from '../errors.ts';
import { FlyRejectedError, FlyUnavailableError, MachineLeasedError } from './errors.ts';
import {
  flyApp,
  flyError,
  flyLease,
  flyMachine,
  flyMachineList,
  flySecretsUpdate,
  type FlyApp,
  type FlyMachine,
  type FlyMachineConfig,
} from './flyMessages.ts';

/** Fly's header carrying the nonce of the lease a mutation is made under. */
export const LEASE_NONCE_HEADER = 'fly-machine-lease-nonce';

export interface FlyMachinesClientOptions {
  /** FLY_API_HOSTNAME, e.g. https://api.machines.dev. */
  baseUrl: string;
  token: string;
  clock?: Clock;
  random?: () => number;
  /** Attempts per request on 429, 5xx and network errors (default 6). */
  maxAttempts?: number;
  /** Backoff base and ceiling in ms (defaults 250 and 8000). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Per-attempt deadline in ms, on top of a wait's own timeout (default 30 s). */
  requestTimeoutMs?: number;
  fetch?: typeof fetch;
}

export interface CreateMachineRequest {
  name?: string;
  region: string;
  config: FlyMachineConfig;
  /** Create it stopped. */
  skipLaunch?: boolean;
  /** Boot only with at least this secrets version (from setSecret). */
  minSecretsVersion?: number;
}

export type WaitableState = 'started' | 'stopped' | 'destroyed';

interface Call {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: unknown;
  nonce?: string;
  /** Statuses that are answers, not failures, returned to the caller as they are. */
  expect?: readonly number[];
  /** Extra time the server may take (waits). */
  extraTimeoutMs?: number;
}

interface Answer {
  status: number;
  body: unknown;
}

export class FlyMachinesClient {
  private readonly baseUrl: string;
  private readonly token: string;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly maxAttempts: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly requestTimeoutMs: number;
  private readonly fetchImpl: typeof fetch;
  /** Requests sent, retries included: what the API's rate limits count. */
  requests = 0;
  retries = 0;

  constructor(options: FlyMachinesClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.token = options.token;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.maxAttempts = options.maxAttempts ?? 6;
    this.retryBaseMs = options.retryBaseMs ?? 250;
    this.retryMaxMs = options.retryMaxMs ?? 8000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.fetchImpl = options.fetch ?? fetch;
  }

  // ---- Apps ----

  async getApp(app: string): Promise<FlyApp | null> {
    const answer = await this.call({ method: 'GET', path: `/v1/apps/${enc(app)}`, expect: [404] });
    return answer.status === 404 ? null : parse(flyApp, answer.body, 'app');
  }

  /** Creates the app; `exists` when the name is taken (by us on a previous pass, or by a concurrent controller). */
  async createApp(app: string, org: string): Promise<'created' | 'exists'> {
    const answer = await this.call({ method: 'POST', path: '/v1/apps', body: { app_name: app, org_slug: org }, expect: [409, 422] });
    return answer.status === 409 || answer.status === 422 ? 'exists' : 'created';
  }

  /** Deletes the app with its machines and secrets; an app already gone is fine. */
  async deleteApp(app: string): Promise<void> {
    await this.call({ method: 'DELETE', path: `/v1/apps/${enc(app)}`, expect: [404] });
  }

  /**
   * Sets one app secret (POST /v1/apps/{app}/secrets/{name}). Returns the app's new secrets version: a machine created
   * or updated with it as `min_secrets_version` is guaranteed to boot with this value, not an older one.
   */
  async setSecret(app: string, name: string, value: string): Promise<number | undefined> {
    const answer = await this.call({ method: 'POST', path: `/v1/apps/${enc(app)}/secrets/${enc(name)}`, body: { value } });
    return parse(flySecretsUpdate, answer.body ?? {}, 'secret update').version;
  }

  // ---- Machines ----

  /** The app's machines (destroyed ones excluded), or null when the app does not exist. */
  async listMachines(app: string): Promise<FlyMachine[] | null> {
    const answer = await this.call({ method: 'GET', path: `/v1/apps/${enc(app)}/machines`, expect: [404] });
    return answer.status === 404 ? null : parse(flyMachineList, answer.body, 'machine list');
  }

  async getMachine(app: string, machineId: string): Promise<FlyMachine | null> {
    const answer = await this.call({ method: 'GET', path: machinePath(app, machineId), expect: [404] });
    return answer.status === 404 ? null : parse(flyMachine, answer.body, 'machine');
  }

  async createMachine(app: string, request: CreateMachineRequest): Promise<FlyMachine> {
    const body = {
      name: request.name,
      region: request.region,
      config: request.config,
      skip_launch: request.skipLaunch ?? false,
      min_secrets_version: request.minSecretsVersion,
    };
    const answer = await this.call({ method: 'POST', path: `/v1/apps/${enc(app)}/machines`, body });
    return parse(flyMachine, answer.body, 'created machine');
  }

  /** Replaces the machine's config (a new instance_id); a running machine restarts on it, reading the app's secrets afresh. */
  async updateMachine(
    app: string,
    machineId: string,
    config: FlyMachineConfig,
    options: { nonce?: string; skipLaunch?: boolean; minSecretsVersion?: number } = {},
  ): Promise<FlyMachine> {
    const answer = await this.call({
      method: 'POST',
      path: machinePath(app, machineId),
      body: { config, skip_launch: options.skipLaunch ?? false, min_secrets_version: options.minSecretsVersion },
      nonce: options.nonce,
    });
    return parse(flyMachine, answer.body, 'updated machine');
  }

  async startMachine(app: string, machineId: string, nonce?: string): Promise<void> {
    await this.call({ method: 'POST', path: `${machinePath(app, machineId)}/start`, nonce });
  }

  async stopMachine(app: string, machineId: string, nonce?: string): Promise<void> {
    await this.call({ method: 'POST', path: `${machinePath(app, machineId)}/stop`, body: {}, nonce });
  }

  /** Destroys the machine (force: even while running). A machine already gone is fine. */
  async destroyMachine(app: string, machineId: string, options: { nonce?: string; force?: boolean } = {}): Promise<void> {
    const query = options.force ? '?force=true' : '';
    await this.call({ method: 'DELETE', path: `${machinePath(app, machineId)}${query}`, nonce: options.nonce, expect: [404] });
  }

  /**
   * Waits server-side until the machine is in `state` (GET .../wait, at most 60 s per call). Returns false when the
   * deadline passed first (Fly answers 408).
   */
  async waitForState(app: string, machineId: string, state: WaitableState, options: { timeoutSec?: number; instanceId?: string } = {}): Promise<boolean> {
    const timeoutSec = Math.max(1, Math.min(60, Math.round(options.timeoutSec ?? 60)));
    const query = new URLSearchParams({ state, timeout: String(timeoutSec) });
    if (options.instanceId !== undefined) query.set('instance_id', options.instanceId);
    const answer = await this.call({
      method: 'GET',
      path: `${machinePath(app, machineId)}/wait?${query.toString()}`,
      expect: [408],
      extraTimeoutMs: timeoutSec * 1000,
    });
    return answer.status !== 408;
  }

  // ---- Leases ----

  /** Takes the machine's lease for `ttlSec`; throws MachineLeasedError when someone else holds it. Returns the nonce. */
  async acquireLease(app: string, machineId: string, ttlSec: number, description: string): Promise<string> {
    const answer = await this.call({ method: 'POST', path: `${machinePath(app, machineId)}/lease`, body: { ttl: ttlSec, description }, expect: [409] });
    if (answer.status === 409) throw new MachineLeasedError(`machine ${machineId} of ${app}`);
    return parse(flyLease, answer.body, 'lease').data.nonce;
  }

  /** Gives the lease back early; a lease already gone (expired, machine destroyed) is fine. */
  async releaseLease(app: string, machineId: string, nonce: string): Promise<void> {
    await this.call({ method: 'DELETE', path: `${machinePath(app, machineId)}/lease`, nonce, expect: [404, 409, 412] });
  }

  /** Runs `action` under the machine's lease and releases it afterwards, whatever happened. */
  async withLease<T>(app: string, machineId: string, description: string, action: (nonce: string) => Promise<T>, ttlSec = 120): Promise<T> {
    const nonce = await this.acquireLease(app, machineId, ttlSec, description);
    try {
      return await action(nonce);
    } finally {
      await this.releaseLease(app, machineId, nonce).catch(() => undefined);
    }
  }

  // ---- Transport ----

  private async call(call: Call): Promise<Answer> {
    let lastFailure = '';
    let lastStatus = 0;
    for (let attempt = 0; attempt < this.maxAttempts; attempt += 1) {
      if (attempt > 0) this.retries += 1;
      this.requests += 1;
      let response: Response;
      try {
        const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, accept: 'application/json' };
        if (call.body !== undefined) headers['content-type'] = 'application/json';
        if (call.nonce !== undefined) headers[LEASE_NONCE_HEADER] = call.nonce;
        response = await this.fetchImpl(`${this.baseUrl}${call.path}`, {
          method: call.method,
          headers,
          body: call.body === undefined ? undefined : JSON.stringify(call.body),
          signal: AbortSignal.timeout(this.requestTimeoutMs + (call.extraTimeoutMs ?? 0)),
        });
      } catch (error) {
        lastFailure = `${call.method} ${routeOf(call.path)}: ${(error as Error).message}`;
        lastStatus = 0;
        await this.clock.sleep(backoffDelay(attempt, { baseMs: this.retryBaseMs, maxMs: this.retryMaxMs, random: this.random }));
        continue;
      }
      const body = await readBody(response);
      if (response.ok || call.expect?.includes(response.status)) return { status: response.status, body };
      const detail = errorText(body);
      if (response.status === 429 || response.status >= 500) {
        lastFailure = `${call.method} ${routeOf(call.path)} answered ${response.status}${detail}`;
        lastStatus = response.status;
        const retryAfterMs = retryAfter(response.headers.get('retry-after'), this.clock.now());
        const delay = backoffDelay(attempt, { baseMs: this.retryBaseMs, maxMs: this.retryMaxMs, random: this.random });
        await this.clock.sleep(Math.max(delay, retryAfterMs ?? 0));
        continue;
      }
      // A mutation refused because another owner holds the machine's lease (412 failed_precondition).
      if (response.status === 412 && /lease/i.test(detail)) throw new MachineLeasedError(routeOf(call.path));
      throw new FlyRejectedError(`${call.method} ${routeOf(call.path)} answered ${response.status}${detail}`, response.status);
    }
    throw new FlyUnavailableError(`${lastFailure} (gave up after ${this.maxAttempts} attempts)`, lastStatus);
  }
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}

function machinePath(app: string, machineId: string): string {
  return `/v1/apps/${enc(app)}/machines/${enc(machineId)}`;
}

/** The path without its query, for error messages (queries carry nothing secret, but keep messages short). */
function routeOf(path: string): string {
  return path.split('?')[0] ?? path;
}

async function readBody(response: Response): Promise<unknown> {
  const text = await response.text();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function errorText(body: unknown): string {
  const parsed = flyError.safeParse(body);
  return parsed.success ? `: ${parsed.data.error}` : '';
}

/** Retry-After in seconds (Fly sends seconds) or as an HTTP date. */
function retryAfter(header: string | null, nowMs: number): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

function parse<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw new ProtocolError(`the Machines API sent a malformed ${what}: ${issue?.path.join('.') || '(root)'} ${issue?.message ?? ''}`.trim());
}
