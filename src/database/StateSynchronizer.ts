// The only code that talks to Supabase: loads traders, writes signals idempotently, writes status, and buffers writes through outages.
// Past 400 lines: the tables it reads and writes (traders, signals and the trader_versions they cite, worker_status,
// trader_status) share one client, one outage state, one retry loop and one drain order, which a split would have to pass around.
import type { SupabaseClient } from '@supabase/supabase-js';
import { backoffDelay } from '../backoff.ts';
import type { Clock, TimerHandle } from '../clock.ts';
import type { PreviousRun, ProbationMark, Signal, TraderStatus, WorkerStatus } from '../domain.ts';
import { type DatabaseRejectedError, TransientError } from '../errors.ts';
import { LifecycleGuard } from '../lifecycle.ts';
import type { Logger } from '../logger.ts';
import type {
  LifecycleState,
  SignalSink,
  SignalWriteResult,
  StatusSink,
  TraderChanges,
  TraderLoad,
  TraderRepository,
} from '../ports.ts';
import { createWorkerClient } from './client.ts';
import { type PostgrestFailure, toDatabaseError } from './dbErrors.ts';
import { TRADER_COLUMNS, type TraderRow } from './parse.ts';
import {
  previousRunFromRow,
  SIGNAL_CONFLICT_KEY,
  signalRow,
  traderStatusFromRow,
  traderStatusRow,
  type TraderStatusRow,
  WORKER_STATUS_CONFLICT_KEY,
  workerStatusRow,
} from './rows.ts';
import { ownsTrader, type Shard, SINGLE_SHARD } from './shard.ts';
import { newTicket, SignalBuffer, ticketSettled } from './SignalBuffer.ts';
import { traderVersionRow, type TraderVersionRow } from './rows.ts';
import { TraderDiff } from './TraderDiff.ts';

export interface StateSynchronizerOptions {
  supabaseUrl: string;
  /** The worker JWT or a service key. Never logged. */
  supabaseKey: string;
  userId: string;
  machineId: string;
  /** This machine's share of the user's traders (SHARD_INDEX of SHARD_COUNT); all of them by default. */
  shard?: Shard;
  clock: Clock;
  logger: Logger;
  /** Signals held in memory while the database is unreachable. */
  bufferSize?: number;
  retry?: { baseMs?: number; maxMs?: number; random?: () => number };
  requestTimeoutMs?: number;
  /** Rows per insert request. */
  chunkSize?: number;
}

export interface SynchronizerStats {
  signalsWritten: number;
  signalsBuffered: number;
  signalsDropped: number;
  /** Refused for good by the database (RLS, a deleted trader): logged as db_rejected, not retried. */
  signalsRejected: number;
  statusPending: number;
  dbRetries: number;
  dbUp: boolean;
  lastError: string | null;
}

type Outcome = { ok: true } | { ok: false; error: TransientError | DatabaseRejectedError };

function versionKey(signal: Signal): string {
  return `${signal.userId}|${signal.provenance.filterCodeHash}`;
}

const PAGE_SIZE = 1000;
/** A floor under full jitter, so a failed retry never spins. */
const MIN_RETRY_MS = 50;

export class StateSynchronizer implements TraderRepository, SignalSink, StatusSink {
  private readonly options: StateSynchronizerOptions;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly client: SupabaseClient;
  private readonly lifecycle = new LifecycleGuard('StateSynchronizer');
  private readonly chunkSize: number;
  private readonly shard: Shard;
  private readonly diff = new TraderDiff();
  private readonly signals: SignalBuffer;
  private pendingWorker: WorkerStatus | null = null;
  private readonly pendingTraders = new Map<string, TraderStatus>();
  /** Status writes the database refused, so the caller of that write hears about it. */
  private readonly rejections = new WeakMap<object, DatabaseRejectedError>();
  private draining: Promise<void> | null = null;
  private retryTimer: TimerHandle | undefined;
  private retryAttempt = 0;
  /** After a permanent failure of a multi-row insert, this many rows go one at a time to find the culprits. */
  private isolateRows = 0;
  private downSince: number | null = null;
  private closed = false;
  private counters = { signalsWritten: 0, signalsRejected: 0, dbRetries: 0 };
  /** trader_versions rows known committed (`userId|codeHash`): each is written once, before the first signal citing it. */
  private readonly versionsWritten = new Set<string>();
  /** Versions the database refused (permanently): their signals are written without the reference rather than lost. */
  private readonly versionsRefused = new Set<string>();
  private lastError: string | null = null;
  /** A warm-up read in flight (see warm()). */
  private warming = false;

  constructor(options: StateSynchronizerOptions) {
    this.options = options;
    this.clock = options.clock;
    this.log = options.logger.child({ component: 'state-synchronizer' });
    this.chunkSize = options.chunkSize ?? 500;
    this.shard = options.shard ?? SINGLE_SHARD;
    this.signals = new SignalBuffer(options.bufferSize ?? 10_000);
    this.client = createWorkerClient(options.supabaseUrl, options.supabaseKey, options.requestTimeoutMs ?? 10_000);
  }

  get state(): LifecycleState {
    return this.lifecycle.state;
  }

  /** Checks that the database answers and accepts the key: a boot against a dead or refusing database fails here. */
  start(): Promise<void> {
    return this.lifecycle.start(async () => {
      this.closed = false;
      const { error, status } = await this.client.from('worker_status').select('user_id').eq('user_id', this.options.userId).limit(1).retry(false);
      if (error) throw this.failed('probe', error, status);
      this.markUp();
    });
  }

  /** Stops retrying. Call flush() first: whatever is still buffered is reported and left behind. */
  stop(): Promise<void> {
    return this.lifecycle.stop(async () => {
      this.closed = true;
      this.clock.clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      await this.draining;
      const unflushed = this.signals.length;
      if (unflushed > 0 || this.statusPending() > 0) {
        this.log.error({ event: 'db_unflushed', signals: unflushed, statuses: this.statusPending() }, 'writes left unflushed at stop');
      }
    });
  }

  stats(): SynchronizerStats {
    return {
      signalsWritten: this.counters.signalsWritten,
      signalsBuffered: this.signals.length,
      signalsDropped: this.signals.droppedTotal,
      signalsRejected: this.counters.signalsRejected,
      statusPending: this.statusPending(),
      dbRetries: this.counters.dbRetries,
      dbUp: this.downSince === null,
      lastError: this.lastError,
    };
  }

  // ---- TraderRepository ----

  async loadTraders(): Promise<TraderLoad> {
    const rows = await this.fetchRunnableRows();
    const load = this.diff.load(rows);
    this.log.info(
      { event: 'traders_loaded', traders: load.traders.length, rejected: load.rejected.length, shardIndex: this.shard.index, shardCount: this.shard.count },
      'traders loaded',
    );
    return load;
  }

  async changesSince(): Promise<TraderChanges> {
    const rows = await this.fetchRunnableRows();
    return this.diff.diff(rows);
  }

  /**
   * The user's enabled traders with execution_mode cloud or both, newest first, all pages: those of this machine's
   * shard. Every shard reads every row and keeps its own (src/database/shard.ts), so each trader, and each rejected
   * row's status, has exactly one owner.
   */
  private async fetchRunnableRows(): Promise<TraderRow[]> {
    const rows: TraderRow[] = [];
    for (let offset = 0; ; offset += PAGE_SIZE) {
      const { data, error, status } = await this.client
        .from('traders')
        .select(TRADER_COLUMNS)
        .eq('user_id', this.options.userId)
        .eq('enabled', true)
        .in('execution_mode', ['cloud', 'both'])
        .order('created_at', { ascending: false })
        .order('id', { ascending: true })
        .range(offset, offset + PAGE_SIZE - 1)
        .retry(false);
      if (error) throw this.failed('load traders', error, status);
      this.markUp();
      const page = (data ?? []) as unknown as TraderRow[];
      rows.push(...page.filter((row) => ownsTrader(this.shard, row.id)));
      if (page.length < PAGE_SIZE) return rows;
    }
  }

  // ---- SignalSink ----

  async writeSignals(batch: Signal[]): Promise<SignalWriteResult> {
    if (batch.length === 0) return { committed: 0, buffered: 0, committedAt: null };
    const ticket = newTicket(batch.length);
    const dropped = this.signals.push(batch, ticket);
    if (dropped.length > 0) {
      this.log.warn(
        {
          event: 'signal_buffer_overflow',
          dropped: dropped.length,
          droppedTotal: this.signals.droppedTotal,
          bufferSize: this.options.bufferSize ?? 10_000,
          oldestDroppedCandleOpenTime: dropped[0]!.signal.candleOpenTime,
          traderIds: [...new Set(dropped.map((entry) => entry.signal.traderId))],
        },
        'signal buffer full: oldest signals dropped',
      );
    }
    // During an outage the retry timer owns the next attempt; a new batch just joins the queue.
    while (!ticketSettled(ticket) && this.retryTimer === undefined && !this.closed) await this.drain();
    return { committed: ticket.committed, buffered: ticket.size - ticket.committed - ticket.rejected - ticket.dropped, committedAt: ticket.committedAt };
  }

  /**
   * Node's HTTP client (undici, under supabase-js) closes a connection idle for 4 s, and a 1m tick's insert comes about a
   * minute after the last request but a heartbeat: without this, nearly every tick's insert opens a new connection, a TCP
   * and a TLS handshake (two round trips to the database's region) before its own. A cheap read a moment before the
   * candle closes leaves a fresh connection in the pool for the insert. Skipped during an outage (the retry loop owns the
   * connection then) and while one is in flight; its outcome is ignored: the insert itself judges the database.
   */
  warm(): void {
    if (this.closed || this.retryTimer !== undefined || this.downSince !== null || this.warming) return;
    this.warming = true;
    void Promise.resolve(this.client.from('signals').select('trader_id').limit(0).retry(false))
      .catch(() => undefined)
      .finally(() => {
        this.warming = false;
      });
  }

  async flush(deadlineMs: number): Promise<void> {
    const deadline = this.clock.now() + deadlineMs;
    while (this.signals.length > 0 || this.statusPending() > 0) {
      // Flushing means "now": skip whatever backoff was pending.
      this.clock.clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      await this.drain();
      if (this.signals.length === 0 && this.statusPending() === 0) break;
      const remaining = deadline - this.clock.now();
      if (remaining <= 0) {
        throw new TransientError(`flush deadline passed with ${this.signals.length} signals and ${this.statusPending()} statuses unwritten`);
      }
      await this.clock.sleep(Math.min(remaining, Math.max(MIN_RETRY_MS, backoffDelay(this.retryAttempt, this.options.retry))));
    }
  }

  // ---- StatusSink ----

  async writeWorkerStatus(status: WorkerStatus): Promise<void> {
    this.pendingWorker = status;
    while (this.pendingWorker === status && this.retryTimer === undefined && !this.closed) await this.drain();
    const rejection = this.rejections.get(status);
    if (rejection) throw rejection;
  }

  async writeTraderStatus(statuses: TraderStatus[]): Promise<void> {
    // Coalesced per trader: only the latest status of each is worth writing.
    for (const status of statuses) this.pendingTraders.set(status.traderId, status);
    const waiting = () => statuses.some((status) => this.pendingTraders.get(status.traderId) === status);
    while (waiting() && this.retryTimer === undefined && !this.closed) await this.drain();
    const rejection = statuses.map((status) => this.rejections.get(status)).find((error) => error !== undefined);
    if (rejection) throw rejection;
  }

  async readTraderStatuses(): Promise<TraderStatus[]> {
    const { data, error, status } = await this.client
      .from('trader_status')
      .select('trader_id,user_id,state,last_error,last_evaluated_at,evaluations,matches,mean_evaluation_ms,trader_updated_at')
      .eq('user_id', this.options.userId)
      .retry(false);
    if (error) throw this.failed('read trader statuses', error, status);
    this.markUp();
    return ((data ?? []) as unknown as TraderStatusRow[]).map(traderStatusFromRow);
  }

  async readPreviousRun(): Promise<PreviousRun | null> {
    const { data, error, status } = await this.client
      .from('worker_status')
      .select('state,probation')
      .eq('user_id', this.options.userId)
      .eq('shard_index', this.shard.index)
      .limit(1)
      .retry(false);
    if (error) throw this.failed('read the previous run', error, status);
    this.markUp();
    const row = (data ?? [])[0] as { state: string; probation: unknown } | undefined;
    return row === undefined ? null : previousRunFromRow(row);
  }

  /** Written at once, past the buffered status writes: the mark must be committed before the trader it names runs. */
  async writeProbation(mark: ProbationMark | null): Promise<void> {
    const { error, status } = await this.client
      .from('worker_status')
      .update({ probation: mark })
      .eq('user_id', this.options.userId)
      .eq('shard_index', this.shard.index)
      .retry(false);
    if (error) throw this.failed('write the probation mark', error, status);
    this.markUp();
  }

  // ---- the write loop ----

  private statusPending(): number {
    return this.pendingTraders.size + (this.pendingWorker === null ? 0 : 1);
  }

  /**
   * One drain at a time: signals oldest first, then statuses. Ends empty, or with a retry scheduled.
   * A signal batch that arrives while statuses are being written goes before the next status write:
   * a signal then waits for at most the one status write in flight, never for the whole status backlog.
   */
  private drain(): Promise<void> {
    this.draining ??= (async () => {
      try {
        while ((await this.drainSignals()) && (await this.drainStatuses()) === 'yielded');
      } finally {
        this.draining = null;
      }
    })();
    return this.draining;
  }

  /** Returns false when the database went away (a retry is scheduled). */
  private async drainSignals(): Promise<boolean> {
    while (this.signals.length > 0) {
      const entries = this.signals.take(this.isolateRows > 0 ? 1 : this.chunkSize);
      const versions = await this.writeVersions(entries.map((entry) => entry.signal));
      if (!versions.ok) {
        this.signals.releaseInFlight();
        this.scheduleRetry(versions.error as TransientError);
        return false;
      }
      const handedAt = this.clock.now();
      const rows = entries.map((entry) => signalRow(entry.signal, handedAt, this.versionsWritten.has(versionKey(entry.signal))));
      const outcome = await this.insert('signals', rows, SIGNAL_CONFLICT_KEY, true);
      if (outcome.ok) {
        const committedAt = this.clock.now();
        for (const entry of this.signals.settleInFlight()) {
          entry.ticket.committed += 1;
          entry.ticket.committedAt = committedAt;
        }
        this.counters.signalsWritten += entries.length;
        if (this.isolateRows > 0) this.isolateRows -= 1;
        continue;
      }
      if (outcome.error instanceof TransientError) {
        this.signals.releaseInFlight();
        this.scheduleRetry(outcome.error);
        return false;
      }
      if (entries.length > 1) {
        // One bad row fails the whole statement: resend this chunk row by row so only the bad ones are lost.
        this.signals.releaseInFlight();
        this.isolateRows = entries.length;
        continue;
      }
      const [entry] = this.signals.settleInFlight();
      if (this.isolateRows > 0) this.isolateRows -= 1;
      entry!.ticket.rejected += 1;
      this.counters.signalsRejected += 1;
      this.log.error(
        { event: 'db_rejected', table: 'signals', traderId: entry!.signal.traderId, symbol: entry!.signal.symbol, err: outcome.error },
        'signal refused by the database',
      );
    }
    return true;
  }

  /**
   * The trader_versions rows these signals cite and this process has not written yet, as one insert that ignores
   * conflicts (the row may exist from an earlier run). Fails only transiently; a refused version is logged and its
   * signals go without the reference.
   */
  private async writeVersions(signals: readonly Signal[]): Promise<Outcome> {
    const rows = new Map<string, TraderVersionRow>();
    for (const signal of signals) {
      const key = versionKey(signal);
      if (this.versionsWritten.has(key) || this.versionsRefused.has(key)) continue;
      const row = traderVersionRow(signal);
      if (row !== null) rows.set(key, row);
    }
    if (rows.size === 0) return { ok: true };
    const outcome = await this.insert('trader_versions', [...rows.values()], 'user_id,code_hash', true);
    if (outcome.ok) for (const key of rows.keys()) this.versionsWritten.add(key);
    else if (outcome.error instanceof TransientError) return outcome;
    else {
      for (const key of rows.keys()) this.versionsRefused.add(key);
      this.log.error({ event: 'db_rejected', table: 'trader_versions', err: outcome.error }, 'code version refused by the database: its signals name no version');
    }
    return { ok: true };
  }

  /** 'yielded' when signals arrived meanwhile and should go first; 'retry' when a retry is scheduled. */
  private async drainStatuses(): Promise<'done' | 'yielded' | 'retry'> {
    const worker = this.pendingWorker;
    if (worker !== null) {
      const outcome = await this.insert('worker_status', [workerStatusRow(worker, this.shard)], WORKER_STATUS_CONFLICT_KEY, false);
      if (!outcome.ok && outcome.error instanceof TransientError) return this.retryLater(outcome.error);
      if (!outcome.ok) this.reject('worker_status', worker, outcome.error as DatabaseRejectedError);
      if (this.pendingWorker === worker) this.pendingWorker = null;
    }
    const traders = [...this.pendingTraders.values()];
    for (let start = 0; start < traders.length; start += this.chunkSize) {
      if (this.signals.length > 0) return 'yielded';
      const chunk = traders.slice(start, start + this.chunkSize);
      const outcome = await this.insert('trader_status', chunk.map(traderStatusRow), 'trader_id', false);
      if (!outcome.ok && outcome.error instanceof TransientError) return this.retryLater(outcome.error);
      if (!outcome.ok) {
        // Typically a trader deleted meanwhile: find which rows are refused, write the rest.
        for (const status of chunk) {
          const single = chunk.length === 1 ? outcome : await this.insert('trader_status', [traderStatusRow(status)], 'trader_id', false);
          if (!single.ok && single.error instanceof TransientError) return this.retryLater(single.error);
          if (!single.ok) this.reject('trader_status', status, single.error as DatabaseRejectedError);
          if (this.pendingTraders.get(status.traderId) === status) this.pendingTraders.delete(status.traderId);
        }
        continue;
      }
      for (const status of chunk) {
        if (this.pendingTraders.get(status.traderId) === status) this.pendingTraders.delete(status.traderId);
      }
    }
    return 'done';
  }

  private retryLater(error: TransientError): 'retry' {
    this.scheduleRetry(error);
    return 'retry';
  }

  private reject(table: string, status: WorkerStatus | TraderStatus, error: DatabaseRejectedError): void {
    this.rejections.set(status, error);
    const traderId = 'traderId' in status ? status.traderId : undefined;
    this.log.error({ event: 'db_rejected', table, traderId, err: error }, 'status refused by the database');
  }

  /** An insert that ignores conflicts (signals) or updates the existing row (status upserts). */
  private async insert(table: string, rows: object[], onConflict: string, ignoreDuplicates: boolean): Promise<Outcome> {
    const { error, status } = await this.client.from(table).upsert(rows, { onConflict, ignoreDuplicates, defaultToNull: false });
    if (!error) {
      this.markUp();
      return { ok: true };
    }
    return { ok: false, error: this.failed(`write ${table}`, error, status) };
  }

  private failed(operation: string, error: PostgrestFailure, status: number): TransientError | DatabaseRejectedError {
    const wrapped = toDatabaseError(operation, error, status);
    this.lastError = wrapped.message;
    if (wrapped instanceof TransientError) {
      this.counters.dbRetries += 1;
      if (this.downSince === null) {
        this.downSince = this.clock.now();
        this.log.warn({ event: 'db_down', err: wrapped }, 'database unreachable');
      }
    }
    return wrapped;
  }

  private markUp(): void {
    this.retryAttempt = 0;
    if (this.downSince === null) return;
    this.log.info(
      { event: 'db_recovered', downForMs: this.clock.now() - this.downSince, signalsBuffered: this.signals.length },
      'database reachable again',
    );
    this.downSince = null;
    // lastError describes the current trouble (it feeds worker_status.last_error); the logs keep the history.
    this.lastError = null;
  }

  private scheduleRetry(error: TransientError): void {
    if (this.retryTimer !== undefined || this.closed) return;
    const delayMs = Math.max(MIN_RETRY_MS, error.retryAfterMs ?? backoffDelay(this.retryAttempt, this.options.retry));
    this.log.warn(
      { event: 'db_retry', attempt: this.retryAttempt + 1, delayMs, signalsBuffered: this.signals.length, statusPending: this.statusPending(), err: error },
      'database write failed: retrying',
    );
    this.retryAttempt += 1;
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = undefined;
      void this.drain();
    }, delayMs);
  }
}
