// The real worker process, compiled as the image runs it (dist/main.js), against the local stack and a Binance simulator: launch, watch its log, read its memory, stop.
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { BinanceSimulator, type StreamCadence } from '../../dev/binanceSim/index.ts';
import type { LocalStack } from '../../dev/localStack.ts';
import { AcceleratedClock, type Clock, systemClock } from '../../src/clock.ts';
import { buildWorker, type LogLine, type WorkerProcess, spawnWorker, waitFor } from '../../dev/workerProcess.ts';
import type { BenchFilter } from './filters.ts';
import { imageRuntimeEnv } from './image.ts';

export interface WorkerRunOptions {
  stack: LocalStack;
  /** Universe size (MAX_SYMBOLS); the simulator lists a few more, so the worker ranks and picks. */
  symbols: number;
  history: number;
  filters: BenchFilter[];
  /** Worker-clock ms per real ms; 1 runs on the system clock. */
  speed: number;
  /** Real ms added to every REST response. */
  restLatencyMs: number;
  /** Simulator cadences (Binance: 2000 and 1000), in worker-clock ms, or real ms with `cadence: 'real'`. */
  klineUpdateMs?: number;
  tickerUpdateMs?: number;
  /** The simulator's pacing of those (SimulatorOptions.cadence); `clock` by default. */
  cadence?: StreamCadence['pace'];
  seed?: number;
  /** Extra environment for the worker (NODE_OPTIONS for a profile, say); wins over the image's. */
  env?: Record<string, string>;
  /** Run with the production image's runtime environment (NODE_OPTIONS, MALLOC_ARENA_MAX…). Default true. */
  imageRuntime?: boolean;
}

export class WorkerRun {
  readonly simulator: BinanceSimulator;
  /** The simulator's stream cadence at launch (a benchmark that changes it puts it back). */
  readonly cadence: StreamCadence;
  readonly clock: Clock;
  readonly speed: number;
  readonly userId: string;
  readonly spawnedAt: number;
  private readonly worker: WorkerProcess;
  private httpBase: string | null = null;
  /** A harness that dies must not leave a worker behind (the local stack has its own watchdog). */
  private readonly killOnExit = () => this.worker.child.kill('SIGKILL');

  private constructor(parts: { simulator: BinanceSimulator; cadence: StreamCadence; clock: Clock; speed: number; userId: string; worker: WorkerProcess; spawnedAt: number }) {
    this.simulator = parts.simulator;
    this.cadence = parts.cadence;
    this.clock = parts.clock;
    this.speed = parts.speed;
    this.userId = parts.userId;
    this.worker = parts.worker;
    this.spawnedAt = parts.spawnedAt;
    process.once('exit', this.killOnExit);
  }

  static async launch(options: WorkerRunOptions): Promise<WorkerRun> {
    const { stack, speed } = options;
    const userId = await stack.createUser();
    for (const [index, filter] of options.filters.entries()) {
      await stack.sql`
        insert into public.traders (user_id, name, enabled, execution_mode, filter)
        values (${userId}, ${`bench ${index + 1}: ${filter.name}`}, true, 'cloud',
                ${stack.sql.json({ code: filter.code, refreshInterval: filter.refreshInterval, requiredTimeframes: filter.requiredTimeframes })})`;
    }
    const now = systemClock.now();
    const clock = speed === 1 ? systemClock : new AcceleratedClock({ speed, originRealMs: now, originClockMs: now });
    const cadence: StreamCadence = { pace: options.cadence ?? 'clock', klineUpdateMs: options.klineUpdateMs ?? 2000, tickerUpdateMs: options.tickerUpdateMs ?? 1000 };
    const simulator = new BinanceSimulator({
      seed: options.seed ?? 7,
      clock,
      symbols: options.symbols + 10,
      restLatencyMs: options.restLatencyMs * speed,
      klineUpdateMs: cadence.klineUpdateMs,
      tickerUpdateMs: cadence.tickerUpdateMs,
      cadence: cadence.pace,
    });
    await simulator.start();
    // Durations the worker reads in its own clock's ms, scaled so they last as long in real time as in production.
    const scaled = (ms: number, max: number) => String(Math.min(max, ms * speed));
    const env: Record<string, string> = {
      USER_ID: userId,
      SUPABASE_URL: stack.supabaseUrl,
      SUPABASE_KEY: stack.mintUserJwt(userId, { worker: true }),
      BINANCE_REST_URL: simulator.restUrl,
      BINANCE_WS_URL: simulator.wsUrl,
      PORT: '0',
      LOG_LEVEL: 'info',
      MAX_SYMBOLS: String(options.symbols),
      KLINE_HISTORY: String(options.history),
      MACHINE_ID: 'bench',
      TICK_GRACE_MS: scaled(1500, 60_000),
      READY_MAX_LAG_MS: scaled(5000, 600_000),
      READY_MAX_LATENCY_MS: scaled(500, 600_000),
      TRADER_POLL_MS: scaled(10_000, 30_000),
      SHUTDOWN_TIMEOUT_MS: scaled(20_000, 300_000),
      // Benchmarks measure the steady state: the look-back replays a fresh deployment runs for every trader are a
      // transient the memory benchmark measures on its own (REPLAY_LOOKBACK_CANDLES in `env`).
      REPLAY_LOOKBACK_CANDLES: '0',
      ...(speed === 1 ? {} : { CLOCK: (clock as AcceleratedClock).spec() }),
      ...(options.imageRuntime === false ? {} : imageRuntimeEnv()),
      ...options.env,
    };
    const spawnedAt = Date.now();
    // The compiled build, as the image runs it (node dist/main.js): Node's type stripping of the .ts
    // sources costs each thread that loads them about 17 MB of RSS the deployed worker never pays.
    // Run from a neutral folder: the worker reads `.env` from its working directory.
    const worker = spawnWorker(buildWorker('bench-dist').entry, env, tmpdir());
    return new WorkerRun({ simulator, cadence, clock, speed, userId, worker, spawnedAt });
  }

  get pid(): number {
    return this.worker.child.pid!;
  }

  lines(event?: string): LogLine[] {
    return event === undefined ? this.worker.lines : this.worker.lines.filter((line) => line.event === event);
  }

  /** The first log line matching `test`; fails early if the worker exits. */
  waitForLine(what: string, test: (line: LogLine) => boolean, timeoutMs: number): Promise<LogLine> {
    return waitFor(
      what,
      () => {
        const exit = this.worker.exitCode();
        // The worker logs its fatal line to stdout (pino); stderr holds only what Node itself printed.
        if (exit !== undefined) throw new Error(`worker exited with ${exit}: ${this.tail()}`);
        return this.worker.lines.find(test);
      },
      timeoutMs,
      20,
    );
  }

  /** Poll until `check` holds; fails early if the worker exits. */
  async waitUntil(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
    await this.waitForLine(what, () => check(), timeoutMs);
  }

  /** Screening ticks of `interval` logged so far (first runs, not follow-ups or catch-ups). */
  ticks(interval: string): LogLine[] {
    return this.lines('tick').filter((line) => line.interval === interval);
  }

  /** The real time (epoch ms) at which the worker's clock reads `clockMs`. */
  realTimeOf(clockMs: number): number {
    if (!(this.clock instanceof AcceleratedClock)) return clockMs;
    return this.clock.originRealMs + (clockMs - this.clock.originClockMs) / this.clock.speed;
  }

  /** Real ms from spawn to a log line (pino stamps lines with the system time). */
  sinceSpawn(line: LogLine): number {
    return Date.parse(String(line.time)) - this.spawnedAt;
  }

  async metrics(): Promise<string> {
    if (this.httpBase === null) {
      const listening = await this.waitForLine('the ops server', (line) => line.event === 'http_listening', 30_000);
      this.httpBase = `http://127.0.0.1:${listening.port as number}`;
    }
    return (await fetch(`${this.httpBase}/metrics`)).text();
  }

  /** Resident and peak resident memory of the whole process (all its threads), from the kernel. */
  memory(): { rss: number; peakRss: number } {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), peakRss: kb('VmHWM') };
  }

  /** CPU time (user + system, all threads) the worker process has used so far, in ms, from the kernel. */
  cpuMs(): number {
    // Fields after the command name: state is the 1st, utime the 12th, stime the 13th, in clock ticks (100 per second).
    const fields = readFileSync(`/proc/${this.pid}/stat`, 'utf8').split(') ').at(-1)!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  }

  /** Start the process's peak RSS counter (VmHWM) again from its current RSS (Linux: 5 into clear_refs). */
  resetPeakRss(): void {
    writeFileSync(`/proc/${this.pid}/clear_refs`, '5');
  }

  /** For a failed run: the end of the worker's output. */
  tail(): string {
    return [...this.worker.stdout.slice(-20), this.worker.stderr.join('').slice(-2000)].join('\n');
  }

  async stop(): Promise<void> {
    process.off('exit', this.killOnExit);
    await this.worker.stop();
    await this.simulator.stop();
  }
}

/** A Prometheus sample's value by metric name (first series), NaN when absent. */
export function metricValue(text: string, name: string): number {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : NaN;
}
