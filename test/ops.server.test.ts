import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { WorkerState } from '../src/domain.ts';
import { createLogger, silentLogger } from '../src/logger.ts';
import { EventLoopMonitor } from '../src/ops/EventLoopMonitor.ts';
import { WorkerMetrics } from '../src/ops/metrics.ts';
import { OpsServer } from '../src/ops/OpsServer.ts';
import { installProcessHandlers } from '../src/ops/processHandlers.ts';
import type { TickServiceLevel, TickSummary } from '../src/ports.ts';

const servers: OpsServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.stop()));
});

async function startServer(options: Partial<ConstructorParameters<typeof OpsServer>[0]> = {}): Promise<OpsServer> {
  const server = new OpsServer({
    port: 0,
    host: '127.0.0.1',
    logger: silentLogger(),
    health: () => ({ healthy: true }),
    readiness: () => ({ ready: true, state: 'ready', reasons: [] }),
    metrics: async () => ({ contentType: 'text/plain', body: '' }),
    ...options,
  });
  servers.push(server);
  await server.start();
  return server;
}

function tickSummary(overrides: Partial<TickSummary> = {}): TickSummary {
  return {
    kind: 'tick',
    interval: '1m',
    openTime: 0,
    traders: 1,
    expected: 4,
    symbols: 3,
    evaluations: 3,
    errors: 1,
    matches: 1,
    signals: 1,
    signalsBuffered: 0,
    durationMs: 42,
    screenMs: 30,
    edgesMs: 2,
    writeMs: 10,
    queuedMs: 0,
    arrivalLagsMs: [10],
    closeToCommitMs: [120],
    incomplete: [],
    skipped: [],
    symbolsEvaluated: ['A', 'B', 'C'],
    outcomes: [{ traderId: 't-1', evaluatedSymbols: ['A', 'B', 'C'], matches: [], errors: [{ symbol: 'X', code: 'TRADER_RUNTIME', message: 'x' }], warnings: [], evaluationMs: 3, disabled: null }],
    ...overrides,
  };
}

describe('ops server', () => {
  it('answers /health 200 and /ready 503 with a JSON reason until the worker is ready', async () => {
    let ready = false;
    const server = await startServer({
      readiness: () => (ready ? { ready: true, state: 'ready', reasons: [] } : { ready: false, state: 'starting', reasons: ['booting'] }),
    });
    const base = `http://127.0.0.1:${server.port}`;
    expect((await fetch(`${base}/health`)).status).toBe(200);
    const notReady = await fetch(`${base}/ready`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toMatchObject({ state: 'starting', reason: 'booting' });
    ready = true;
    const nowReady = await fetch(`${base}/ready`);
    expect(nowReady.status).toBe(200);
    expect(await nowReady.json()).toEqual({ state: 'ready' });
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });

  it('reports unhealthy with 503 when the health check says so', async () => {
    const server = await startServer({ health: () => ({ healthy: false, eventLoopStalledMs: 9000 }) });
    const response = await fetch(`http://127.0.0.1:${server.port}/health`);
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ status: 'unhealthy', eventLoopStalledMs: 9000 });
  });

  it('serves screener_ metrics that mirror adapter counters and tick events', async () => {
    const stream = { messages: 10, malformed: 1, reconnects: 0, duplicates: 4, discarded: 2 };
    const sink = { signalsWritten: 2, signalsBuffered: 5, signalsDropped: 0, dbRetries: 3 };
    const eventLoop = new EventLoopMonitor();
    eventLoop.start();
    const worker = { state: 'ready' as WorkerState };
    const metrics = new WorkerMetrics({
      sources: { stream: () => stream, sink: () => sink, rest: () => ({ weightUsed: 40, rateLimited: 0 }), worker: () => worker },
      eventLoop,
    });
    const ticks = new EventEmitter();
    metrics.observeTicks(ticks as never);
    const gaps = new EventEmitter();
    metrics.observeGaps(gaps as never);
    const server = await startServer({ metrics: () => metrics.render() });
    const scrape = async () => (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();

    const first = await scrape();
    expect(first).toMatch(/screener_stream_messages_total 10\b/);
    expect(first).toMatch(/screener_worker_state\{state="ready"\} 1\b/);
    expect(first).toMatch(/screener_worker_state\{state="degraded"\} 0\b/);
    worker.state = 'degraded';
    stream.messages = 25;
    const level: TickServiceLevel = {
      interval: '1m',
      openTime: 0,
      expected: 4,
      evaluated: 3,
      coverage: 0.75,
      waitingFor: {},
      arrivalLagP95Ms: 10,
      arrivalLagMaxMs: 10,
      closeToCommitMaxMs: 120,
    };
    ticks.emit('tick', tickSummary(), level);
    ticks.emit('backlog', { interval: '1m' }, 'skipped');
    gaps.emit('gapFilled', { symbol: 'BTCUSDT', interval: '5m', candles: 2, fromOpenTime: 0, toOpenTime: 1 });
    const text = await scrape();
    eventLoop.stop();
    expect(text).toMatch(/screener_stream_messages_total 25\b/);
    expect(text).toMatch(/screener_stream_duplicates_total 4\b/);
    expect(text).toMatch(/screener_stream_discarded_total 2\b/);
    expect(text).toMatch(/screener_signals_buffered 5\b/);
    expect(text).toMatch(/screener_db_retries_total 3\b/);
    expect(text).toMatch(/screener_rest_weight_used 40\b/);
    expect(text).toMatch(/screener_tick_duration_seconds_count\{interval="1m",kind="tick"\} 1\b/);
    expect(text).toMatch(/screener_tick_coverage_ratio\{interval="1m"\} 0.75\b/);
    expect(text).toMatch(/screener_ticks_skipped_total\{interval="1m",outcome="skipped"\} 1\b/);
    expect(text).toMatch(/screener_trader_errors_total\{trader="t-1"\} 1\b/);
    expect(text).toMatch(/screener_evaluations_total\{trader="t-1"\} 3\b/);
    expect(text).toMatch(/screener_gaps_filled_total\{interval="5m"\} 1\b/);
    expect(text).toMatch(/screener_close_to_commit_seconds_count 1\b/);
    expect(text).toMatch(/screener_process_resident_memory_bytes/);
    expect(text).toMatch(/screener_event_loop_lag_p99_seconds/);
    expect(text).toMatch(/screener_worker_state\{state="degraded"\} 1\b/);
    expect(text).toMatch(/screener_worker_state\{state="ready"\} 0\b/);
  });
});

describe('process signals', () => {
  function harness(shutdown: () => Promise<void>) {
    const target = new EventEmitter();
    const exits: number[] = [];
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', userId: 'u', machineId: 'm', sink: { write: (line) => lines.push(line) } });
    const remove = installProcessHandlers({ logger, shutdown, exit: (code) => exits.push(code), target });
    return { target, exits, lines, remove };
  }

  async function until(check: () => boolean): Promise<void> {
    const deadline = Date.now() + 2000;
    while (!check()) {
      if (Date.now() > deadline) throw new Error('condition not met in time');
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  it('shuts down once on SIGTERM and exits 0 when the shutdown completes', async () => {
    let calls = 0;
    const { target, exits, remove } = harness(async () => {
      calls += 1;
    });
    target.emit('SIGTERM');
    await until(() => exits.length > 0);
    expect(calls).toBe(1);
    expect(exits).toEqual([0]);
    remove();
  });

  it('exits at once with 130 on a second SIGINT while the first shutdown is still flushing', async () => {
    let finish = () => {};
    const { target, exits, remove } = harness(() => new Promise<void>((resolve) => (finish = resolve)));
    target.emit('SIGINT');
    target.emit('SIGINT');
    expect(exits).toEqual([130]);
    finish();
    remove();
  });

  it('logs an unhandled rejection as a fatal event and exits non-zero', () => {
    const { target, exits, lines, remove } = harness(async () => {});
    target.emit('unhandledRejection', new Error('boom'));
    expect(exits).toEqual([1]);
    expect(lines.map((line) => JSON.parse(line) as { event: string }).some((line) => line.event === 'fatal')).toBe(true);
    remove();
  });
});
