// A filter that really aborts the worker process (SIGABRT, as a native fault in isolated-vm would) is found and disabled within two restarts; the rest resume.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BinanceSimulator } from '../dev/binanceSim/index.ts';
import type { AcceleratedClock } from '../src/clock.ts';
import { ROOT, type WorkerProcess, buildWorker, spawnWorker, waitFor, workerEnv } from '../dev/workerProcess.ts';
import { startSimulatedMarket } from './support/simulatedMarket.ts';
import { createTestUser, insertTrader, sharedStack, type TestUser } from './support/stack.ts';

const SPEED = 30;
const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];
/** FAULT_INJECTION's marker: the worker aborts the whole process when a screening thread begins a filter holding it. */
const ABORT_MARKER = `abort_${crypto.randomUUID().slice(0, 8)}_marker`;

describe('crash-loop protection', () => {
  const stack = sharedStack();
  let user: TestUser;
  let simulator: BinanceSimulator;
  let clock: AcceleratedClock;
  let build: { dir: string; entry: string };
  const runs: WorkerProcess[] = [];
  const ids: Record<'first' | 'second' | 'aborter', string> = { first: '', second: '', aborter: '' };

  const spawnRun = () => {
    const worker = spawnWorker(
      build.entry,
      {
        ...workerEnv({ userId: user.id, supabaseUrl: stack.supabaseUrl, key: user.workerJwt, market: simulator, symbols: SYMBOLS, history: 60, clock }),
        TRADER_POLL_MS: '30000',
        READY_MAX_LATENCY_MS: String(SPEED * 3000),
        FAULT_INJECTION: `process-abort=${ABORT_MARKER}`,
      },
      build.dir,
    );
    runs.push(worker);
    return worker;
  };
  const traderStatus = async (traderId: string) =>
    (await stack.sql<{ state: string; last_error: string | null; evaluations: string }[]>`select state, last_error, evaluations from public.trader_status where trader_id = ${traderId}`)[0];
  const workerRow = async () =>
    (await stack.sql<{ state: string; probation: { traderId: string | null; cleared: string[] } | null }[]>`select state, probation from public.worker_status where user_id = ${user.id}`)[0];

  beforeAll(async () => {
    build = buildWorker('crashloop');
    user = await createTestUser(stack);
    ({ clock, simulator } = await startSimulatedMarket(SPEED, { seed: 5, symbols: SYMBOLS, klineUpdateMs: 2000, tickerUpdateMs: 5000, restLatencyMs: 10 }));
    const filter = (code: string) => ({ refreshInterval: '1m', requiredTimeframes: ['1m'], code });
    ids.first = await insertTrader(stack, { userId: user.id, name: 'first', filter: filter(`return { match: timeframes['1m'].length > 10, conditions: ['first'] };`) });
    ids.aborter = await insertTrader(stack, { userId: user.id, name: 'aborter', filter: filter(`/* ${ABORT_MARKER} */ return true;`) });
    ids.second = await insertTrader(stack, { userId: user.id, name: 'second', filter: filter(`return helpers.getLatestRSI(timeframes['1m'], 14) !== null;`) });
  }, 120_000);

  afterAll(async () => {
    writeFileSync(join(ROOT, '.tmp', 'crashloop', 'worker.log'), runs.map((run, i) => `--- run ${i + 1}\n${run.stdout.join('\n')}\n${run.stderr.join('')}`).join('\n'));
    for (const run of runs) await run.stop();
    await simulator?.stop();
  });

  it('a process abort is charged to its trader by the boots that follow, and every other trader resumes', async () => {
    // Run 1: nothing is suspected yet; the first screening that reaches the filter aborts the process.
    const first = spawnRun();
    expect(await first.exited).toEqual({ code: null, signal: 'SIGABRT' });
    expect((await workerRow())?.state).not.toBe('stopped');

    // Run 2 (first restart): the previous run never said `stopped`, so each trader runs alone under a committed mark;
    // the aborter takes the process down again, with its name left behind.
    const second = spawnRun();
    expect(await second.exited).toEqual({ code: null, signal: 'SIGABRT' });
    expect((await workerRow())?.probation?.traderId).toBe(ids.aborter);

    // Run 3 (second restart): the suspect is disabled with the reason before any of its code runs; the others resume.
    const third = spawnRun();
    const disabled = await waitFor('the aborter disabled', async () => {
      const row = await traderStatus(ids.aborter);
      return row?.state === 'disabled' ? row : null;
    }, 60_000, 200);
    expect(disabled.last_error).toMatch(/TRADER_CRASH: the worker process died while this trader was screened alone/);
    await waitFor('run 3 ready', () => third.lines.find((line) => line.event === 'ready'), 60_000, 100);
    expect(third.exitCode()).toBeUndefined();
    // Run 3 went on with the traders run 2 had not cleared yet, then cleared the mark.
    expect(third.lines.find((line) => line.event === 'boot' && line.step === 'probation')).toBeTruthy();
    expect((await workerRow())?.probation).toBeNull();
    for (const id of [ids.first, ids.second]) {
      const before = Number((await traderStatus(id))?.evaluations ?? 0);
      const row = await waitFor('a healthy trader screened again', async () => {
        const status = await traderStatus(id);
        return status && Number(status.evaluations) >= before + SYMBOLS.length ? status : null;
      }, 60_000, 200);
      expect(row.state).toBe('running');
    }
    // Still alive after further ticks: the aborter's code never runs again.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(third.exitCode()).toBeUndefined();
  }, 180_000);
});
