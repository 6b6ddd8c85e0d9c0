// The worker's key never leaves it: every byte the real worker process prints, serves or writes is searched for it,
// through a normal run, filters that try to steal it, a PostgREST outage and boots with broken keys.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BinanceSimulator } from '../dev/binanceSim/index.ts';
import { signJwt } from '../dev/jwt.ts';
import { type LocalStack, startLocalStack } from '../dev/localStack.ts';
import { systemClock } from '../src/clock.ts';
import { ROOT, type WorkerProcess, buildWorker, spawnWorker, waitFor, workerEnv } from '../dev/workerProcess.ts';
import { startSimulatedMarket } from './support/simulatedMarket.ts';

/** Worker-clock ms per real ms: a 1m candle closes every 2 s. */
const SPEED = 30;
const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];

/** Every way a filter might reach the key, reported as one string per attempt. */
const STEAL = `
const found = [];
const grab = (name, fn) => { try { found.push(name + '=' + String(fn())); } catch (error) { found.push(name + '!' + (error && error.message)); } };
grab('env', () => process.env.SUPABASE_KEY);
grab('ctor', () => this.constructor.constructor('return process')().env.SUPABASE_KEY);
grab('ticker', () => ticker.constructor.constructor('return process.env')().SUPABASE_KEY);
grab('helpers', () => helpers.getLatestRSI.constructor('return process')().env);
grab('globals', () => Object.getOwnPropertyNames(globalThis).join(','));
grab('args', () => JSON.stringify([ticker, Object.keys(timeframes), Object.keys(helpers).length]));
`;

/** Matches every other candle, so the rising edges make signals that carry what the filter found. */
const THIEF = `${STEAL}
const k = timeframes['1m'];
return { match: Math.floor(k[k.length - 1][0] / 60000) % 2 === 0, conditions: found };`;

/** Puts what it found into its error: trader_status.last_error and the trader_error log line. */
const THROWER = `${STEAL}
throw new Error(found.join(' | '));`;

interface Capture {
  name: string;
  text: string;
}

/** The pieces of a key that must never show up: the whole, each JWT segment, the signature's bytes in other encodings, a claim. */
function needlesOf(key: string, claim?: string): string[] {
  const needles = [key];
  const segments = key.split('.');
  if (segments.length === 3) {
    needles.push(...segments.filter((segment) => segment.length >= 8));
    const signature = Buffer.from(segments[2]!, 'base64url');
    needles.push(signature.toString('hex'), signature.toString('base64').replace(/=+$/, ''));
  }
  if (claim) needles.push(claim);
  return needles;
}

function expectNoLeak(captures: Capture[], needles: string[]): void {
  const leaks: string[] = [];
  for (const capture of captures) {
    for (const needle of needles) {
      const at = capture.text.indexOf(needle);
      if (at >= 0) leaks.push(`${capture.name} contains ${needle.slice(0, 12)}… near ${JSON.stringify(capture.text.slice(Math.max(0, at - 80), at))}`);
    }
  }
  expect(leaks).toEqual([]);
}

describe('the worker key never leaks', () => {
  let stack: LocalStack;
  let simulator: BinanceSimulator;
  let build: { dir: string; entry: string };
  let userId: string;
  let key: string;
  let canary: string;
  let baseEnv: Record<string, string>;
  const captures: Capture[] = [];
  const workers: WorkerProcess[] = [];

  const http = async (name: string, baseUrl: string, path: string) => {
    const response = await fetch(`${baseUrl}${path}`);
    captures.push({ name: `${name} GET ${path} ${response.status}`, text: `${JSON.stringify([...response.headers])}\n${await response.text()}` });
  };
  const outputOf = (name: string, worker: WorkerProcess) => {
    captures.push({ name: `${name} stdout`, text: worker.stdout.join('\n') });
    captures.push({ name: `${name} stderr`, text: worker.stderr.join('') });
  };
  const start = (env: Record<string, string>) => {
    const worker = spawnWorker(build.entry, { ...baseEnv, ...env }, build.dir);
    workers.push(worker);
    return worker;
  };
  /** A boot that is expected to fail: wait for its exit, or end it after `ms` if it keeps retrying. */
  const runToEnd = async (worker: WorkerProcess, ms: number) => {
    const ended = await Promise.race([worker.exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms))]);
    if (!ended) {
      worker.child.kill('SIGTERM');
      await Promise.race([worker.exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
      await worker.stop();
    }
    return worker.exitCode();
  };

  beforeAll(async () => {
    build = buildWorker('security');
    // Its own stack: this file stops PostgREST, which the shared one must never see.
    stack = await startLocalStack();
    userId = await stack.createUser();
    // A real worker key (it works) with a recognisable claim, so a leak of any segment is recognisable too.
    canary = `leak-canary-${randomBytes(9).toString('hex')}`;
    const nowSec = Math.floor(systemClock.now() / 1000);
    key = signJwt({ iss: 'supabase', aud: 'authenticated', role: 'authenticated', sub: userId, worker: true, note: canary, iat: nowSec, exp: nowSec + 3600 }, stack.jwtSecret);
    const market = await startSimulatedMarket(SPEED, { seed: 5, symbols: SYMBOLS, klineUpdateMs: 2000, tickerUpdateMs: 5000 });
    simulator = market.simulator;
    for (const [name, code] of [['thief', THIEF], ['thrower', THROWER]]) {
      await stack.sql`insert into public.traders (user_id, name, enabled, execution_mode, filter)
                      values (${userId}, ${name!}, true, 'cloud', ${stack.sql.json({ refreshInterval: '1m', requiredTimeframes: ['1m'], code: code! })})`;
    }
    baseEnv = {
      ...workerEnv({ userId, supabaseUrl: stack.supabaseUrl, key, market: simulator, symbols: SYMBOLS, history: 60, clock: market.clock }),
      MACHINE_ID: 'security-machine',
      // Everything the worker can say, said: a leak in a debug line counts too.
      LOG_LEVEL: 'trace',
      TRADER_FAILURE_LIMIT: '3',
    };
  }, 120_000);

  afterAll(async () => {
    if (captures.length > 0) writeFileSync(join(ROOT, '.tmp', 'security', 'captured.log'), captures.map((c) => `==== ${c.name}\n${c.text}`).join('\n'));
    await Promise.all(workers.map((worker) => worker.stop()));
    await simulator?.stop();
    await stack?.stop();
  });

  it('through a run with key-stealing filters, a PostgREST outage and a shutdown: not in output, HTTP, status rows or signals', async () => {
    const worker = start({});
    const listening = await waitFor('the ops server', () => worker.lines.find((line) => line.event === 'http_listening'), 30_000);
    const baseUrl = `http://127.0.0.1:${listening.port as number}`;
    await waitFor('/ready 200', async () => (await fetch(`${baseUrl}/ready`)).status === 200, 60_000, 100);
    for (const path of ['/health', '/ready', '/metrics', '/nope']) await http('running', baseUrl, path);

    // The filters ran and reported what they found: signals with conditions, and an error in trader_status.
    const thiefSignals = await waitFor('a signal of the thief', async () => {
      const rows = await stack.sql`select s.matched_conditions from public.signals s join public.traders t on t.id = s.trader_id where t.name = 'thief'`;
      return rows.length > 0 ? rows : null;
    }, 30_000, 200);
    const conditions = thiefSignals[0]!.matched_conditions as string[];
    expect(conditions.find((c) => c.startsWith('env'))).toMatch(/process is not defined/);
    expect(conditions.find((c) => c.startsWith('globals='))).toBeDefined();
    await waitFor('the thrower recorded', async () => {
      const [row] = await stack.sql<{ last_error: string | null }[]>`select ts.last_error from public.trader_status ts join public.traders t on t.id = ts.trader_id where t.name = 'thrower'`;
      return row?.last_error?.includes('globals=') ? row : null;
    }, 30_000, 200);

    // PostgREST goes away: the worker retries and reports it, and a second worker boots against the outage.
    await stack.stopPostgrest();
    let bootInOutage: WorkerProcess | undefined;
    try {
      await waitFor('db_down or db_retry', () => worker.lines.some((line) => line.event === 'db_down' || line.event === 'db_retry'), 30_000, 100);
      for (const path of ['/ready', '/metrics']) await http('outage', baseUrl, path);
      bootInOutage = start({ MACHINE_ID: 'security-outage-boot' });
      await runToEnd(bootInOutage, 8_000);
    } finally {
      await stack.startPostgrest();
    }
    outputOf('boot during outage', bootInOutage!);
    await waitFor('db_recovered', () => worker.lines.some((line) => line.event === 'db_recovered'), 60_000, 100);
    for (const path of ['/ready', '/metrics']) await http('recovered', baseUrl, path);

    worker.child.kill('SIGTERM');
    expect((await worker.exited).code).toBe(0);
    outputOf('worker', worker);

    const tables = {
      worker_status: await stack.sql`select row_to_json(w)::text as row from public.worker_status w where user_id = ${userId}`,
      trader_status: await stack.sql`select row_to_json(s)::text as row from public.trader_status s where user_id = ${userId}`,
      signals: await stack.sql`select row_to_json(s)::text as row from public.signals s where user_id = ${userId}`,
    };
    for (const [table, rows] of Object.entries(tables)) {
      expect(rows.length, table).toBeGreaterThan(0);
      captures.push({ name: `table ${table}`, text: rows.map((row) => row.row as string).join('\n') });
    }
    // What was captured is substantial: a quiet worker would prove nothing.
    expect(worker.lines.length).toBeGreaterThan(20);
    expect(worker.lines.some((line) => line.event === 'trader_error')).toBe(true);
    expectNoLeak(captures, needlesOf(key, canary));
  });

  it('through boots with a forged, expired, opaque or malformed key: not in any byte of their output', async () => {
    const nowSec = Math.floor(systemClock.now() / 1000);
    const claims = { iss: 'supabase', aud: 'authenticated', role: 'authenticated', sub: userId, worker: true, note: canary };
    const variants: Record<string, string> = {
      'signed with another secret': signJwt({ ...claims, iat: nowSec, exp: nowSec + 3600 }, randomBytes(32).toString('hex')),
      expired: signJwt({ ...claims, iat: nowSec - 7200, exp: nowSec - 3600 }, stack.jwtSecret),
      'service role with a forged signature': signJwt({ iss: 'supabase', role: 'service_role', note: canary, iat: nowSec, exp: nowSec + 3600 }, randomBytes(32).toString('hex')),
      'opaque secret key': `sb_secret_${randomBytes(24).toString('base64url')}`,
      'not a key at all': `${canary}-${randomBytes(16).toString('hex')}`,
    };
    const runs = Object.entries(variants).map(async ([name, variantKey]) => {
      const worker = start({ SUPABASE_KEY: variantKey, MACHINE_ID: `security-${name.replace(/\W+/g, '-')}` });
      const code = await runToEnd(worker, 15_000);
      return { name, variantKey, worker, code };
    });
    // A key with whitespace is a configuration error: exit 1 before anything else runs.
    const malformed = `${key.slice(0, 40)} ${key.slice(40)}`;
    const configWorker = start({ SUPABASE_KEY: malformed });
    expect(await runToEnd(configWorker, 15_000)).toBe(1);
    expect(configWorker.stderr.join('').trimEnd().split('\n')).toHaveLength(1);
    expectNoLeak([{ name: 'whitespace key stdout', text: configWorker.stdout.join('\n') }, { name: 'whitespace key stderr', text: configWorker.stderr.join('') }], [
      ...needlesOf(key, canary),
      key.slice(0, 40),
      key.slice(41),
    ]);
    for (const { name, variantKey, worker, code } of await Promise.all(runs)) {
      // A refused key ends the boot (non-zero) rather than running blind.
      expect(code, name).not.toBe(0);
      expect(worker.lines.length, name).toBeGreaterThan(0);
      // The operator is told what to do: the boot failure says the key was refused, not "retry later".
      const bootFailed = worker.lines.find((line) => line.event === 'boot_failed');
      expect(JSON.stringify(bootFailed?.err), name).toContain('refused SUPABASE_KEY');
      outputOf(name, worker);
      expectNoLeak(
        [
          { name: `${name} stdout`, text: worker.stdout.join('\n') },
          { name: `${name} stderr`, text: worker.stderr.join('') },
        ],
        needlesOf(variantKey, canary),
      );
    }
  });
});
