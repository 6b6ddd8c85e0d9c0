// One chaos run: own stack, simulator and worker process on a shared accelerated clock; faults by schedule; oracle at the end.
import { BinanceSimulator } from '../../../dev/binanceSim/index.ts';
import { type LocalStack, startLocalStack } from '../../../dev/localStack.ts';
import { AcceleratedClock, systemClock } from '../../../src/clock.ts';
import { type Interval, candleOpenTimeAt, intervalMs } from '../../../src/domain.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, buildWorker, waitFor } from '../../../dev/workerProcess.ts';
import { failHalfBatches, halfBatchFailuresFired, installDbFaults, setSlowWrites } from './dbFaults.ts';
import { type FaultKind, type ScheduledFault, buildSchedule } from './faults.ts';
import { type Exclusion, type OracleVerdict, type SignalRow, runOracle } from './oracle.ts';
import { Rng } from './rng.ts';
import { MAX_CATCH_UP_CANDLES } from '../../../src/orchestration/bootCatchUp.ts';
import { type HostileTrader, type OracleTrader, THREAD_EXIT_MARKER, higherTimeframeTrader, hostileTraders, oracleTrader, threadCrasherTrader } from './traders.ts';
import { type HourlySample, hourlySamples } from './samples.ts';
import { type ClockedLine, WorkerUnderTest } from './worker.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

export interface ChaosProfile {
  name: string;
  seed: number;
  /** Simulated ms per real ms. */
  speed: number;
  /** Simulated run length from the first boot. */
  durationMs: number;
  /** TRADING USDT pairs in the simulator (the universe is all of them). */
  symbols: number;
  klineHistory: number;
  /** Refresh intervals of the oracle traders, one trader per entry. */
  traderIntervals: Interval[];
  /** Extra oracle traders on a slow interval: many traders on one user. */
  crowd: { count: number; interval: Interval } | null;
  hostile: boolean;
  /** A trader that crashes its screening thread on every tick (the worker runs with FAULT_INJECTION's thread-exit marker). */
  threadCrasher: boolean;
  /** Fault kinds scheduled once each; [] for none. */
  faults: readonly FaultKind[];
  randomFaults: number;
  /** Simulated span for connection and process faults; after it only connection-safe faults (so a connection reaches its 24 h rotation). */
  churnMs: number;
  /** Real ms between edits of a trader row (0: none). */
  editEveryRealMs: number;
  screenerThreads: number;
  /** Simulated ms between kline updates of a forming candle. */
  klineUpdateMs: number;
}

export interface RunReport {
  profile: ChaosProfile;
  realMs: number;
  simulatedMs: number;
  generations: number;
  /** Traders the oracle predicts (the profile's, plus any a fault needed). */
  oracleTraders: number;
  faults: Record<string, number>;
  simulatorFaults: Record<string, number>;
  halfBatchFailures: number;
  traderEdits: number;
  verdict: OracleVerdict;
  hostile: Array<{ name: string; expect: HostileTrader['expect']; reason?: RegExp; state: string | null; lastError: string | null; signals: number; maxConditionsBytes: number }>;
  /**
   * Screening threads that crashed mid-tick, as the worker logged each tick that lost its thread: charged to the crasher,
   * to nobody (another tick on the same thread, rerun whole), or to some other trader (never allowed).
   */
  threadCrashes: { total: number; chargedToCrasher: number; chargedToNobody: number; chargedToOthers: string[] };
  samples: HourlySample[];
  peakRssMb: number;
  streamRotations: number;
  ticksSkipped: number;
  secretLeaks: number;
  exitCodes: Array<number | null | undefined>;
  bootFailures: string[];
  violations: string[];
  problems: string[];
}

interface Timeline {
  exclusions: Exclusion[];
  /** Spans of required signals counted apart (downtime a boot catches up, a frozen process). */
  watched: Exclusion[];
  membership: Map<string, { from: number; to: number }>;
}

export class ChaosRun {
  readonly profile: ChaosProfile;
  private stack!: LocalStack;
  private simulator!: BinanceSimulator;
  private clock!: AcceleratedClock;
  private worker!: WorkerUnderTest;
  private userId!: string;
  private workerJwt!: string;
  private readonly oracleTraders: Array<OracleTrader & { id: string }> = [];
  private readonly hostileTraders: Array<HostileTrader & { id: string }> = [];
  private readonly faultCounts: Record<string, number> = {};
  private readonly timeline: Timeline = { exclusions: [], watched: [], membership: new Map() };
  private readonly pendingUniverse: Promise<void>[] = [];
  private readonly problems: string[] = [];
  private startedAt = 0;
  private firstSpawnAt = 0;
  private realStartedAt = 0;
  private edits = 0;
  /** Every edit of a trader row: sent at, and committed at (null while in flight), clock time. */
  private readonly editLog: Array<{ traderId: string; sentAt: number; doneAt: number | null }> = [];
  private editing = false;
  private editLoop: Promise<void> | null = null;
  private baseRestLatency = 20;
  private listedCount = 0;

  constructor(profile: ChaosProfile) {
    this.profile = profile;
  }

  /** The whole run; always releases what it started. */
  async run(): Promise<RunReport> {
    this.realStartedAt = systemClock.now();
    try {
      await this.setUp();
      await this.worker.start();
      this.startedAt = this.worker.current.marketReadyAt!;
      this.firstSpawnAt = this.worker.generations[0]!.spawnedAt;
      this.startEdits();
      await this.executeFaults();
      await this.untilClock(this.startedAt + this.profile.durationMs);
      await Promise.all(this.pendingUniverse);
      this.editing = false;
      await this.editLoop;
      return await this.finish();
    } finally {
      await this.tearDown();
    }
  }

  // ---- set-up ----

  private async setUp(): Promise<void> {
    const build = buildWorker('chaos');
    this.stack = await startLocalStack();
    await installDbFaults(this.stack.sql);
    this.userId = await this.stack.createUser();
    this.workerJwt = this.stack.mintUserJwt(this.userId, { worker: true });
    const now = systemClock.now();
    this.clock = new AcceleratedClock({ speed: this.profile.speed, originRealMs: now, originClockMs: now });
    this.simulator = new BinanceSimulator({
      seed: this.profile.seed,
      clock: this.clock,
      symbols: this.profile.symbols,
      klineUpdateMs: this.profile.klineUpdateMs,
      tickerUpdateMs: Math.max(5_000, this.profile.klineUpdateMs),
      // Pings keep a connection provably alive between sparse kline updates (the worker calls 10 s of silence dead).
      pingIntervalMs: 3_000,
      restLatencyMs: this.baseRestLatency,
    });
    await this.simulator.start();
    if (this.profile.symbols > 50) this.prewarm();
    await this.insertTraders();
    const speed = this.profile.speed;
    this.worker = new WorkerUnderTest({
      entry: build.entry,
      cwd: build.dir,
      clock: this.clock,
      env: {
        USER_ID: this.userId,
        SUPABASE_URL: this.stack.supabaseUrl,
        SUPABASE_KEY: this.workerJwt,
        BINANCE_REST_URL: this.simulator.restUrl,
        BINANCE_WS_URL: this.simulator.wsUrl,
        PORT: '0',
        MAX_SYMBOLS: String(Math.min(1000, this.profile.symbols + 10)),
        KLINE_HISTORY: String(this.profile.klineHistory),
        CLOCK: this.clock.spec(),
        MACHINE_ID: `chaos-${this.profile.name}`,
        SCREENER_THREADS: String(this.profile.screenerThreads),
        // Worker-clock thresholds, scaled so they mean the same real time at any speed.
        FILTER_TIMEOUT_MS: '200',
        TRADER_FAILURE_LIMIT: '3',
        TRADER_POLL_MS: String(Math.min(30_000, Math.max(1_000, speed * 500))),
        TICK_GRACE_MS: String(Math.min(60_000, speed * 250)),
        READY_MAX_LAG_MS: String(Math.min(600_000, speed * 3_000)),
        READY_MAX_LATENCY_MS: String(Math.min(600_000, speed * 500)),
        SHUTDOWN_TIMEOUT_MS: String(Math.min(300_000, speed * 8_000)),
        ...(this.profile.threadCrasher ? { FAULT_INJECTION: `thread-exit=${THREAD_EXIT_MARKER}` } : {}),
        // A smaller machine's memory budget than this host's (e.g. 384 for a 512 MB machine): the worker then keeps within it.
        ...(process.env.CHAOS_MEMORY_BUDGET_MB ? { MEMORY_BUDGET_MB: process.env.CHAOS_MEMORY_BUDGET_MB } : {}),
      },
    });
  }

  /**
   * Generate, before the worker asks, what its boot will fetch: the 24 h tickers and the backfill of every
   * series. The simulator runs in this process; done on demand, a full universe stalls it for longer than
   * the worker's REST timeout lasts on an accelerated clock.
   */
  private prewarm(): void {
    const now = this.clock.now();
    const intervals = [...new Set([...this.profile.traderIntervals, ...(this.profile.crowd ? [this.profile.crowd.interval] : [])])];
    for (const symbol of this.simulator.symbols()) {
      for (const interval of intervals) {
        const length = intervalMs(interval);
        this.simulator.candles(symbol, interval, candleOpenTimeAt(interval, now) - (this.profile.klineHistory + 1) * length, now);
      }
    }
  }

  private async insertTraders(): Promise<void> {
    const rng = new Rng(this.profile.seed ^ 0x5eed);
    const intervals = [...new Set([...this.profile.traderIntervals, ...(this.profile.crowd ? [this.profile.crowd.interval] : [])])];
    const specs: OracleTrader[] = this.profile.traderIntervals.map((interval, index) => oracleTrader(rng, `oracle ${index + 1} ${interval}`, interval, intervals));
    for (let i = 0; i < (this.profile.crowd?.count ?? 0); i++) specs.push(oracleTrader(rng, `crowd ${i + 1}`, this.profile.crowd!.interval, intervals));
    const readsHigher = specs.some((spec) => spec.filter.requiredTimeframes.some((timeframe) => timeframe !== spec.filter.refreshInterval));
    const fastest = this.profile.traderIntervals[0];
    if (this.profile.faults.includes('rest_htf_gap_fill_fails') && !readsHigher && fastest !== undefined) {
      // Its own generator, so the other traders stay the ones this seed always drew.
      specs.push(higherTimeframeTrader(new Rng(this.profile.seed ^ 0x47f), `oracle higher timeframe ${fastest}`, fastest));
    }
    for (const spec of specs) this.oracleTraders.push({ ...spec, id: await this.insertRow(spec.name, spec.filter) });
    const hostile = [
      ...(this.profile.hostile ? hostileTraders(this.profile.traderIntervals[0] ?? '1m') : []),
      // On the fastest interval: it shares a thread with the most ticks, and each of them would lose its results to the crash if the worker let it.
      ...(this.profile.threadCrasher ? [threadCrasherTrader(this.profile.traderIntervals[0] ?? '1m')] : []),
    ];
    for (const spec of hostile) this.hostileTraders.push({ ...spec, id: await this.insertRow(spec.name, spec.filter) });
  }

  private async insertRow(name: string, filter: unknown): Promise<string> {
    const [row] = await this.stack.sql<{ id: string }[]>`
      insert into public.traders (user_id, name, enabled, execution_mode, filter)
      values (${this.userId}, ${name}, true, 'cloud', ${this.stack.sql.json(filter as never)}) returning id`;
    return row!.id;
  }

  private async tearDown(): Promise<void> {
    this.editing = false;
    if (this.worker) {
      // Kept for a failing run: the worker's own account of what happened.
      const dir = join(ROOT, '.tmp', 'chaos');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${this.profile.name.replace(/\W+/g, '-')}.log`), this.worker.output.join(''));
    }
    for (const generation of this.worker?.generations ?? []) {
      if (generation.exitCode === undefined) {
        generation.child.kill('SIGCONT');
        generation.child.kill('SIGKILL');
        await generation.exit;
      }
    }
    await this.simulator?.stop().catch(() => {});
    await this.stack?.stop().catch(() => {});
  }

  // ---- time ----

  private async untilClock(time: number): Promise<void> {
    await waitFor(`clock ${new Date(time).toISOString()}`, () => this.clock.now() >= time, Math.max(60_000, (time - this.clock.now()) / this.profile.speed + 60_000), 20);
  }

  private sleepClock(ms: number): Promise<void> {
    return this.untilClock(this.clock.now() + ms);
  }

  /** Simulated ms for `realMs` of real time at this speed. */
  private real(realMs: number): number {
    return realMs * this.profile.speed;
  }

  // ---- trader edits ----

  /** Rows edited every few seconds: name, description and a comment in the code, never what the filter computes. */
  private startEdits(): void {
    if (this.profile.editEveryRealMs <= 0 || this.oracleTraders.length === 0) return;
    this.editing = true;
    const rng = new Rng(this.profile.seed ^ 0xed17);
    this.editLoop = (async () => {
      while (this.editing) {
        await new Promise((resolve) => setTimeout(resolve, this.profile.editEveryRealMs));
        if (!this.editing) break;
        const trader = rng.pick(this.oracleTraders);
        this.edits += 1;
        const filter = { ...trader.filter, code: `// edit ${this.edits}\n${trader.filter.code}`, description: [`edited ${this.edits} times`] };
        const edit: (typeof this.editLog)[number] = { traderId: trader.id, sentAt: this.clock.now(), doneAt: null };
        this.editLog.push(edit);
        try {
          await this.stack.sql`update public.traders set name = ${`${trader.name} (edit ${this.edits})`}, filter = ${this.stack.sql.json(filter as never)} where id = ${trader.id}`;
          edit.doneAt = this.clock.now();
        } catch {
          // Postgres may be restarting as part of the schedule; the next edit tries again.
        }
      }
    })();
  }

  // ---- faults ----

  private async executeFaults(): Promise<void> {
    const schedule = buildSchedule({
      seed: this.profile.seed,
      churnMs: this.profile.churnMs,
      totalMs: this.profile.durationMs,
      kinds: this.profile.faults,
      randomFaults: this.profile.randomFaults,
      spacingMs: Math.max(5 * MINUTE, this.real(3_000)),
    });
    for (const fault of schedule) {
      if (this.startedAt + fault.at >= this.startedAt + this.profile.durationMs - this.real(4_000)) break;
      await this.untilClock(this.startedAt + fault.at);
      await this.inject(fault);
      this.faultCounts[fault.kind] = (this.faultCounts[fault.kind] ?? 0) + 1;
    }
  }

  private async inject(fault: ScheduledFault): Promise<void> {
    const faults = this.simulator.faults;
    const restoreLatency = () => faults.setRestLatency(this.baseRestLatency);
    switch (fault.kind) {
      case 'ws_drop':
        faults.dropConnections('all');
        return;
      case 'ws_drop_across_close': {
        // Dropped just before a 1m close and kept silent past it: the closing kline never arrives by stream.
        const close = candleOpenTimeAt('1m', this.clock.now()) + 2 * MINUTE;
        await this.untilClock(close - 1_500);
        faults.stall(15_000);
        faults.dropConnections('all');
        return;
      }
      case 'ws_stall':
        faults.stall(45_000);
        await this.sleepClock(45_000);
        return;
      case 'ws_malformed':
        faults.sendMalformed(6);
        return;
      case 'ws_unknown_events':
        faults.sendUnknownEvents(6);
        return;
      case 'ws_server_shutdown':
        faults.serverShutdown(5_000);
        return;
      case 'rest_5xx':
        faults.failRest(4, new Rng(fault.at).pick([500, 502, 503] as const));
        faults.dropConnections('all');
        return;
      case 'rest_hang':
        faults.failRest(2, 'hang');
        faults.dropConnections('all');
        return;
      case 'rest_429':
        faults.rateLimit(3, 5);
        faults.dropConnections('all');
        return;
      case 'rest_418':
        faults.ban(30);
        faults.dropConnections('all');
        return;
      case 'rest_slow_gap_fill':
        faults.setRestLatency(this.real(300));
        faults.dropConnections('all');
        await this.sleepClock(this.real(3_000));
        restoreLatency();
        return;
      case 'rest_htf_gap_fill_fails':
        return this.failHigherTimeframeFill();
      case 'symbol_suspended':
      case 'symbol_delisted':
        return this.removeSymbol(fault.kind === 'symbol_suspended' ? 'BREAK' : 'HALT', fault.kind);
      case 'symbol_listed':
        return this.listSymbol();
      case 'postgrest_down_1m':
      case 'postgrest_down_5m':
      case 'postgrest_down_15m': {
        const minutes = fault.kind === 'postgrest_down_1m' ? 1 : fault.kind === 'postgrest_down_5m' ? 5 : 15;
        await this.stack.stopPostgrest();
        await this.sleepClock(minutes * MINUTE);
        await this.stack.startPostgrest();
        await this.untilBufferEmpty();
        return;
      }
      case 'postgres_restart':
        await this.stack.restartPostgres();
        await this.untilBufferEmpty();
        return;
      case 'db_slow':
        await setSlowWrites(this.stack.sql, 300);
        await this.sleepClock(this.real(2_000));
        await setSlowWrites(this.stack.sql, 0);
        return;
      case 'db_half_batch':
        await failHalfBatches(this.stack.sql, 3);
        return;
      case 'sigterm_during_flush':
        return this.sigtermDuringFlush();
      case 'sigkill_restart':
        return this.sigkillRestart();
      case 'clock_jump':
        return this.clockJump();
    }
  }

  /**
   * A reconnect whose gap fill fails for minutes on a higher timeframe that a faster trader reads (5m for a 1m
   * trader): the worker must skip those evaluations rather than screen a stale series, and make them up once the
   * fill lands, so the oracle's every signal still exists. Started just after that timeframe's close, so its own
   * next close comes after the failure ends.
   */
  private async failHigherTimeframeFill(): Promise<void> {
    const higher = this.higherTimeframe();
    const length = intervalMs(higher);
    const afterClose = candleOpenTimeAt(higher, this.clock.now()) + length + 20_000;
    await this.untilClock(afterClose);
    const failFor = Math.min(3 * MINUTE, length - 60_000);
    const skippedBefore = this.worker.events('tick_incomplete_timeframe').length;
    this.simulator.faults.failKlines(higher, failFor);
    this.simulator.faults.dropConnections('all');
    await this.sleepClock(failFor);
    // The fault did its job only if ticks ran meanwhile and held evaluations back for the incomplete timeframe.
    if (this.worker.events('tick_incomplete_timeframe').length === skippedBefore) {
      this.problems.push(`rest_htf_gap_fill_fails: no tick skipped an evaluation while the ${higher} fill failed`);
    }
  }

  /** The coarsest timeframe an oracle trader reads besides its refresh interval (5m when none does). */
  private higherTimeframe(): Interval {
    const read = this.oracleTraders.flatMap((trader) => trader.filter.requiredTimeframes.filter((timeframe) => timeframe !== trader.filter.refreshInterval));
    if (read.length === 0) {
      this.problems.push('rest_htf_gap_fill_fails: no oracle trader reads a higher timeframe, so the fault tested only refresh series');
      return '5m';
    }
    return read.sort((a, b) => intervalMs(b) - intervalMs(a))[0]!;
  }

  private async untilBufferEmpty(): Promise<void> {
    await waitFor(
      'the signal buffer to drain',
      async () => {
        const port = this.worker.port;
        if (port === null) return false;
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return /^screener_signals_buffered 0$/m.test(text);
      },
      60_000,
      100,
    );
  }

  private async removeSymbol(status: 'BREAK' | 'HALT', kind: FaultKind): Promise<void> {
    const candidates = this.simulator.symbols().filter((symbol) => !this.timeline.membership.has(symbol));
    const symbol = new Rng(this.profile.seed + this.clock.now()).pick(candidates.slice(Math.floor(candidates.length / 2)));
    const at = this.clock.now();
    this.simulator.faults.setSymbolStatus(symbol, status);
    // Until the worker's hourly universe refresh drops it, a silent symbol is still screened on REST-filled series:
    // its signals there may exist (and must then be right), but are not required. After the drop there must be none.
    const reason = `${kind}: closes between the status change and the worker's universe refresh`;
    this.timeline.membership.set(symbol, { from: Number.NEGATIVE_INFINITY, to: Number.POSITIVE_INFINITY });
    this.timeline.exclusions.push({ symbol, from: at - this.real(1_000), to: Number.POSITIVE_INFINITY, reason });
    this.afterUniverseChange((line) => (line.removed as string[] | undefined)?.includes(symbol) === true, `${symbol} dropped`, (removed) => {
      this.timeline.membership.set(symbol, { from: Number.NEGATIVE_INFINITY, to: removed });
      this.timeline.exclusions = this.timeline.exclusions.map((exclusion) => (exclusion.symbol === symbol ? { ...exclusion, to: removed } : exclusion));
    });
  }

  private async listSymbol(): Promise<void> {
    this.listedCount += 1;
    const symbol = `CHAOSNEW${this.listedCount}USDT`;
    const at = this.clock.now();
    this.simulator.faults.addSymbol(symbol);
    this.timeline.membership.set(symbol, { from: at, to: Number.POSITIVE_INFINITY });
    const reason = 'symbol_listed: closes before the universe refresh and backfill took it in';
    this.timeline.exclusions.push({ symbol, from: at, to: Number.POSITIVE_INFINITY, reason });
    this.afterUniverseChange((line) => (line.added as string[] | undefined)?.includes(symbol) === true, `${symbol} added`, (added) => {
      // The symbol is screened once its backfill is done, shortly after the universe refresh that added it.
      this.timeline.exclusions = this.timeline.exclusions.map((exclusion) =>
        exclusion.symbol === symbol ? { ...exclusion, to: added + HOUR / 12 + this.real(2_000) } : exclusion,
      );
    });
  }

  /**
   * In the background, wait for the worker's universe refresh (hourly, simulated) to report a change,
   * then narrow the timeline with its clock time. The run waits for these before its oracle.
   */
  private afterUniverseChange(match: (line: ClockedLine) => boolean, what: string, apply: (at: number) => void): void {
    const deadline = (2 * HOUR) / this.profile.speed + 30_000;
    this.pendingUniverse.push(
      waitFor(what, () => this.worker.events('universe_changed').find(match), deadline, 50).then(
        (line) => apply(line.at),
        () => {
          this.problems.push(`the worker's universe never reported ${what}`);
        },
      ),
    );
  }

  private async sigtermDuringFlush(): Promise<void> {
    // Signals pile up in the buffer while PostgREST is away; SIGTERM arrives as the flush starts.
    await this.stack.stopPostgrest();
    await this.sleepClock(4 * MINUTE);
    await this.stack.startPostgrest();
    const { code } = await this.worker.end('SIGTERM');
    if (code !== 0) this.problems.push(`SIGTERM during a flush exited ${code}`);
    await this.restart('restart after SIGTERM');
  }

  private async sigkillRestart(): Promise<void> {
    await this.untilBufferEmpty().catch(() => this.problems.push('buffer not empty before SIGKILL'));
    await this.worker.end('SIGKILL');
    await this.restart('SIGKILL and restart');
  }

  /**
   * Boot catches up the candles that closed while no worker was screening (at most MAX_CATCH_UP_CANDLES per
   * interval), for every trader whose trader_status row the previous process left resumable: so those closes are
   * required. Two kinds stay excused, each narrowly: a trader whose row changed since its status last recorded it
   * (a changed filter starts at the latest candle, as in the browser), and closes older than the catch-up window.
   */
  private async restart(reason: string): Promise<void> {
    const previous = this.worker.current;
    // The previous process is gone: its trader_status rows are what the next boot resumes from.
    const snapshotAt = this.clock.now();
    const resumable = await this.resumableTraders();
    const generation = await this.worker.start();
    // After a SIGKILL the boot first probes each trader alone, its name committed first (Probation): that takes real
    // time per trader, so a crowd of them lasts real minutes, simulated hours on this clock, before the catch-up runs.
    await waitFor(`generation ${generation.index} to finish its catch-up`, () => generation.catchUpDoneAt !== null || generation.exitCode !== undefined, 900_000, 20);
    if (generation.catchUpDoneAt === null) {
      this.problems.push(`${reason}: generation ${generation.index} exited ${generation.exitCode} before its catch-up step finished`);
      return;
    }
    // A failed boot in between is downtime too: the spans below start at the last process that screened.
    const from = previous.endedAt! - this.real(1_500);
    // The latest closed candle of each interval is screened for every trader as the scheduler starts, right after the catch-up step.
    const to = generation.catchUpDoneAt + this.real(500);
    this.timeline.watched.push({ from, to, reason: `${reason}: closes while no worker was screening, caught up at boot` });
    // Rows edited after the snapshot, up to the boot's traders step (done before its market step), are loaded changed too.
    const editedMeanwhile = new Set(
      this.editLog.filter((edit) => (edit.doneAt === null || edit.doneAt >= snapshotAt) && edit.sentAt <= generation.marketReadyAt!).map((edit) => edit.traderId),
    );
    for (const trader of this.oracleTraders) {
      if (resumable.has(trader.id) && !editedMeanwhile.has(trader.id)) continue;
      this.timeline.exclusions.push({
        traderId: trader.id,
        from,
        to,
        reason: `${reason}: closes while no worker was screening, for a trader whose row changed since its status was last written (a changed filter starts at the latest candle, as in the browser)`,
      });
    }
    // The catch-up window was computed as the step began, no later than it was reported done: a later time excuses more, never less.
    for (const interval of new Set(this.oracleTraders.map((trader) => trader.filter.refreshInterval))) {
      const oldest = candleOpenTimeAt(interval, generation.catchUpDoneAt) - MAX_CATCH_UP_CANDLES * intervalMs(interval);
      if (oldest < from) continue;
      this.timeline.exclusions.push({ interval, from, to: oldest, reason: `${reason}: closes older than the boot's catch-up window (${MAX_CATCH_UP_CANDLES} candles per interval)` });
    }
  }

  /** Traders the next boot resumes from their status row: evaluated before, not disabled, and judged on the row as it is now. */
  private async resumableTraders(): Promise<Set<string>> {
    const rows = await this.stack.sql<{ id: string }[]>`
      select t.id from public.traders t join public.trader_status s on s.trader_id = t.id
      where t.user_id = ${this.userId} and s.last_evaluated_at is not null and s.state <> 'disabled' and s.trader_updated_at = t.updated_at`;
    return new Set(rows.map((row) => row.id));
  }

  /**
   * The process frozen for two real seconds (two simulated minutes). On waking, the scheduler ticks a close only if
   * its candle is still the latest closed one when the close reaches it: it takes older closes (replayed by the
   * reconnect's gap fill) for history. So closes of a candle that was no longer the latest by then are excused,
   * counted by name; the rest of the frozen span is required (the latest candle, and every slower interval's).
   * No boot happens here, so the restart's catch-up does not apply: a gap the worker does not cover yet.
   */
  private async clockJump(): Promise<void> {
    const { from, to } = await this.worker.freeze(2_000);
    // The reconnect and its gap fill land within about a real second of waking.
    const settled = to + this.real(1_000);
    for (const interval of new Set(this.oracleTraders.map((trader) => trader.filter.refreshInterval))) {
      const lastHistory = candleOpenTimeAt(interval, settled) - intervalMs(interval);
      if (lastHistory < from - this.real(500)) continue;
      this.timeline.exclusions.push({
        interval,
        from: from - this.real(500),
        to: lastHistory,
        reason: 'clock_jump: closes of candles no longer the latest when the frozen process woke (the scheduler takes a late close of an older candle for history; no catch-up without a boot)',
      });
    }
    this.timeline.watched.push({ from: from - this.real(500), to: to + this.real(1_500), reason: 'clock_jump: closes while the process was frozen, screened on waking' });
  }

  // ---- the end ----

  private async finish(): Promise<RunReport> {
    const endAt = this.clock.now();
    const last = this.worker.current;
    const { code } = await this.worker.end('SIGTERM');
    if (code !== 0) this.problems.push(`final SIGTERM exited ${code}`);
    // The last candles closed as the worker was told to stop.
    this.timeline.exclusions.push({ from: last.endedAt! - this.real(1_500), to: Number.POSITIVE_INFINITY, reason: 'end of run: closes during the final shutdown' });
    // A candle the scheduler shed (more than MAX_PENDING_CANDLES waited behind slow ticks) is never screened, by design.
    for (const line of this.worker.events('tick_skipped')) {
      const interval = line.interval as Interval;
      const boundary = Number(line.openTime) + intervalMs(interval);
      this.timeline.exclusions.push({ interval, from: boundary, to: boundary, reason: 'tick shed under overload: too many candles waited behind slow ticks' });
    }
    const rows = await this.stack.sql<SignalRow[]>`select trader_id, symbol, interval, candle_open_time, price, provenance from public.signals where user_id = ${this.userId}`;
    const initialSymbols = new Set(this.simulator.symbols());
    for (const symbol of this.timeline.membership.keys()) initialSymbols.delete(symbol);
    const verdict = runOracle(
      {
        source: this.simulator,
        history: this.profile.klineHistory,
        traders: this.oracleTraders.map((trader) => ({
          id: trader.id,
          name: trader.name,
          code: trader.filter.code,
          refreshInterval: trader.filter.refreshInterval,
          timeframes: [...new Set([trader.filter.refreshInterval, ...trader.filter.requiredTimeframes])],
        })),
        symbols: [...initialSymbols],
        membership: this.timeline.membership,
        // From the first boot: its catch-up candles may carry signals too (optional, but they must be right).
        from: this.firstSpawnAt,
        to: endAt,
        exclusions: [
          // Boot: the first candle of each interval is the catch-up one; before it nothing ran.
          { from: Number.NEGATIVE_INFINITY, to: this.startedAt + this.real(500), reason: 'start of run: closes before the first boot finished (no earlier evaluation to resume from)' },
          ...this.timeline.exclusions,
        ],
        watched: this.timeline.watched,
      },
      rows,
    );
    const hostile = await this.hostileOutcome();
    const crasherIds = new Set(this.hostileTraders.filter((trader) => trader.name === threadCrasherTrader('1m').name).map((trader) => trader.id));
    const crashes = this.worker.events('screener_thread_crashed').map((line) => (line.traderId as string | null | undefined) ?? null);
    const statsLines = this.worker.events('stats');
    const samples = hourlySamples(statsLines, this.startedAt, this.profile.speed);
    const output = this.worker.output.join('');
    const signature = this.workerJwt.split('.')[2]!;
    const simStats = this.simulator.stats();
    return {
      profile: this.profile,
      realMs: systemClock.now() - this.realStartedAt,
      simulatedMs: endAt - this.startedAt,
      generations: this.worker.generations.length,
      oracleTraders: this.oracleTraders.length,
      faults: { ...this.faultCounts },
      simulatorFaults: simStats.faults,
      halfBatchFailures: await halfBatchFailuresFired(this.stack.sql),
      traderEdits: this.edits,
      verdict,
      hostile,
      threadCrashes: {
        total: crashes.length,
        chargedToCrasher: crashes.filter((id) => id !== null && crasherIds.has(id)).length,
        chargedToNobody: crashes.filter((id) => id === null).length,
        chargedToOthers: crashes.filter((id): id is string => id !== null && !crasherIds.has(id)),
      },
      samples,
      peakRssMb: Math.max(0, ...statsLines.map((line) => Number(line.rssMb ?? 0))),
      streamRotations: this.worker.events('stream_rotate').filter((line) => String(line.reason ?? '').includes('24') || String(line.reason ?? '').includes('lifetime')).length,
      ticksSkipped: this.worker.events('tick_skipped').length,
      secretLeaks: (output.split(this.workerJwt).length - 1) + (output.split(signature).length - 1),
      exitCodes: this.worker.generations.map((generation) => generation.exitCode),
      bootFailures: [...this.worker.bootFailures],
      violations: simStats.violations,
      problems: this.problems.filter(Boolean),
    };
  }

  private async hostileOutcome(): Promise<RunReport['hostile']> {
    const results: RunReport['hostile'] = [];
    for (const trader of this.hostileTraders) {
      const [status] = await this.stack.sql<{ state: string; last_error: string | null }[]>`select state, last_error from public.trader_status where trader_id = ${trader.id}`;
      const [signals] = await this.stack.sql<{ count: string; bytes: string | null }[]>`
        select count(*) as count, max(octet_length(matched_conditions::text)) as bytes from public.signals where trader_id = ${trader.id}`;
      results.push({
        name: trader.name,
        expect: trader.expect,
        ...(trader.reason ? { reason: trader.reason } : {}),
        state: status?.state ?? null,
        lastError: status?.last_error ?? null,
        signals: Number(signals!.count),
        maxConditionsBytes: Number(signals!.bytes ?? 0),
      });
    }
    return results;
  }
}
