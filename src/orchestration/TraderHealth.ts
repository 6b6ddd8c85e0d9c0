// The worker's one record of each trader's health: running totals that become trader_status rows, rate-limited
// trader_error events, and every disable (a failing run's, which the screener decides and reports in its outcome; a
// restored one; a probation suspect's). A disable decided here is handed to the screener from here, so the two agree.
import type { Clock } from '../clock.ts';
import type { LastTickCounts, RejectedTrader, Trader, TraderState, TraderStatus } from '../domain.ts';
import type { Logger } from '../logger.ts';
import type { ScreenerPort, TraderChanges, TraderTickOutcome } from '../ports.ts';

interface TraderRecord {
  traderId: string;
  name: string | null;
  updatedAt: string | null;
  state: TraderState;
  lastError: string | null;
  lastWarning: string | null;
  lastTick?: LastTickCounts;
  lastEvaluatedAt: number | null;
  evaluations: number;
  matches: number;
  totalEvaluationMs: number;
  dirty: boolean;
  /** Clock time of the last trader_error log line, for rate limiting. */
  lastErrorLoggedAt: number;
  suppressedErrors: number;
}

/** One trader_error line per trader per window; the rest are counted into the next line. */
const ERROR_LOG_WINDOW_MS = 60_000;

export class TraderHealth {
  private readonly records = new Map<string, TraderRecord>();
  private readonly userId: string;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly screener: Pick<ScreenerPort, 'disable'>;

  constructor(options: { userId: string; clock: Clock; logger: Logger; screener: Pick<ScreenerPort, 'disable'> }) {
    this.userId = options.userId;
    this.clock = options.clock;
    this.logger = options.logger;
    this.screener = options.screener;
  }

  /** Start tracking a trader afresh (boot, or its row changed: a change lifts a disable). */
  track(trader: Trader): void {
    const previous = this.records.get(trader.id);
    if (previous !== undefined && previous.updatedAt === trader.updatedAt) return;
    this.records.set(trader.id, {
      traderId: trader.id,
      name: trader.name,
      updatedAt: trader.updatedAt,
      state: 'running',
      lastError: null,
      lastWarning: null,
      lastEvaluatedAt: previous?.lastEvaluatedAt ?? null,
      evaluations: previous?.evaluations ?? 0,
      matches: previous?.matches ?? 0,
      totalEvaluationMs: previous?.totalEvaluationMs ?? 0,
      dirty: true,
      lastErrorLoggedAt: Number.NEGATIVE_INFINITY,
      suppressedErrors: 0,
    });
  }

  /** A row that could not become a trader: disabled in trader_status with the reason, where the web app shows it. */
  reject(rejected: RejectedTrader): void {
    this.records.set(rejected.id, {
      traderId: rejected.id,
      name: rejected.name,
      updatedAt: rejected.updatedAt,
      state: 'disabled',
      lastError: rejected.reason,
      lastWarning: null,
      lastEvaluatedAt: null,
      evaluations: 0,
      matches: 0,
      totalEvaluationMs: 0,
      dirty: true,
      lastErrorLoggedAt: Number.NEGATIVE_INFINITY,
      suppressedErrors: 0,
    });
    this.logger.warn({ event: 'trader_rejected', traderId: rejected.id, traderName: rejected.name, reason: rejected.reason }, 'trader row rejected');
  }

  /**
   * Carry the totals of the previous run over (boot): a restart must not reset `evaluations` to zero,
   * nor forget `last_evaluated_at`, which the next boot resumes from.
   */
  private restoreTotals(status: TraderStatus): void {
    const record = this.records.get(status.traderId);
    if (record === undefined || record.evaluations > 0) return;
    record.lastEvaluatedAt = status.lastEvaluatedAt;
    record.evaluations = status.evaluations;
    record.matches = status.matches;
    record.totalEvaluationMs = status.meanEvaluationMs * status.evaluations;
  }

  /**
   * Boot: carry the previous run's trader_status rows over. Totals always; a disable only while the row it judged is
   * unchanged; and, per trader unchanged and not disabled, when that run last evaluated it (the boot catch-up resumes there).
   */
  restore(statuses: readonly TraderStatus[], traders: ReadonlyMap<string, Trader>): { restoredDisabled: number; resumeFrom: Map<string, number> } {
    const resumeFrom = new Map<string, number>();
    let restoredDisabled = 0;
    for (const status of statuses) {
      const trader = traders.get(status.traderId);
      this.restoreTotals(status);
      const unchanged = trader !== undefined && status.traderUpdatedAt === trader.updatedAt;
      // Candles that closed while no worker ran are screened at boot, for the filter that was running then.
      if (unchanged && status.lastEvaluatedAt !== null && status.state !== 'disabled') resumeFrom.set(status.traderId, status.lastEvaluatedAt);
      if (!unchanged || status.state !== 'disabled') continue;
      this.restoreDisabled(status.traderId, status.lastError);
      restoredDisabled += 1;
    }
    return { restoredDisabled, resumeFrom };
  }

  /** A poll's changes: new and changed rows tracked afresh, removed ones forgotten, then rejected ones recorded (a rejected row's previous version is among the removed). */
  apply(changes: TraderChanges): void {
    for (const trader of changes.upserted) this.track(trader);
    for (const id of changes.removed) this.forget(id);
    for (const row of changes.rejected) this.reject(row);
  }

  /** Restore a disable that survived a restart (its row did not change since); the screener holds it until the row changes. */
  private restoreDisabled(traderId: string, reason: string | null): void {
    const record = this.records.get(traderId);
    if (record === undefined || record.updatedAt === null) return;
    this.screener.disable(traderId, reason ?? 'disabled', record.updatedAt);
    record.state = 'disabled';
    record.lastError = reason;
  }

  /** Disable a trader now, for a cause found outside a tick (the previous process died running it): written with the reason. */
  disable(traderId: string, reason: string): void {
    const record = this.records.get(traderId);
    if (record === undefined || record.updatedAt === null) return;
    this.screener.disable(traderId, reason, record.updatedAt);
    record.state = 'disabled';
    record.lastError = reason;
    record.dirty = true;
    this.logger.error({ event: 'trader_disabled', traderId, reason }, 'trader disabled until its row changes');
  }

  /**
   * A disable the screener decided (and logged) in a run whose outcome is no tick's: the edge-priming
   * run of the previous candle, a probation run. Without it trader_status would go on saying `running`.
   */
  noteDisabled(traderId: string, reason: string): void {
    const record = this.records.get(traderId);
    if (record === undefined || record.state === 'disabled') return;
    record.state = 'disabled';
    record.lastError = reason;
    record.dirty = true;
  }

  forget(traderId: string): void {
    this.records.delete(traderId);
  }

  isDisabled(traderId: string): boolean {
    return this.records.get(traderId)?.state === 'disabled';
  }

  /** Fold one tick's outcome for a trader into its totals. */
  /**
   * `candleCloseTime` is the close time of the candle the tick screened: `last_evaluated_at` records it rather than the
   * wall time, so a restart resumes exactly at the next candle however late the tick ran.
   */
  recordOutcome(outcome: TraderTickOutcome, candleCloseTime: number = this.clock.now()): void {
    const record = this.records.get(outcome.traderId);
    if (record === undefined) return;
    const evaluations = outcome.evaluatedSymbols.length + outcome.errors.filter((error) => error.symbol !== null).length;
    if (evaluations > 0) {
      record.evaluations += evaluations;
      record.totalEvaluationMs += outcome.evaluationMs;
      record.lastEvaluatedAt = candleCloseTime;
    }
    record.matches += outcome.matches.length;
    record.lastTick = lastTickCounts(outcome);
    record.dirty = true;
    const warning = outcome.warnings[0];
    if (warning !== undefined) record.lastWarning = `TRADER_CONTRACT: ${warning.message} (${warning.symbol})`;
    if (outcome.errors.length > 0) {
      const first = outcome.errors[0]!;
      record.lastError = `${first.code}: ${first.message}${first.symbol ? ` (${first.symbol})` : ''}`;
      if (record.state !== 'disabled') record.state = 'failing';
      this.logError(record, outcome);
    } else if (record.state === 'failing') {
      record.state = 'running';
    }
    if (outcome.disabled !== null && record.state !== 'disabled') {
      record.state = 'disabled';
      record.lastError = outcome.disabled.reason;
      // The screener logs the trader_disabled event itself; here it only becomes the status row.
    }
  }

  private logError(record: TraderRecord, outcome: TraderTickOutcome): void {
    const now = this.clock.now();
    if (now - record.lastErrorLoggedAt < ERROR_LOG_WINDOW_MS) {
      record.suppressedErrors += outcome.errors.length;
      return;
    }
    const first = outcome.errors[0]!;
    this.logger.warn(
      {
        event: 'trader_error',
        traderId: record.traderId,
        trader: record.name,
        code: first.code,
        symbol: first.symbol,
        error: first.message,
        errors: outcome.errors.length,
        suppressed: record.suppressedErrors,
      },
      'trader error',
    );
    record.lastErrorLoggedAt = now;
    record.suppressedErrors = 0;
  }

  /** Rows changed since the last call, ready for StatusSink.writeTraderStatus; marks them clean. */
  takeDirty(): TraderStatus[] {
    const rows: TraderStatus[] = [];
    for (const record of this.records.values()) {
      if (!record.dirty) continue;
      record.dirty = false;
      rows.push(this.toStatus(record));
    }
    return rows;
  }

  /** Put rows back after a failed write so the next attempt sends them again. */
  markDirty(traderIds: readonly string[]): void {
    for (const id of traderIds) {
      const record = this.records.get(id);
      if (record !== undefined) record.dirty = true;
    }
  }

  all(): TraderStatus[] {
    return [...this.records.values()].map((record) => this.toStatus(record));
  }

  private toStatus(record: TraderRecord): TraderStatus {
    return {
      traderId: record.traderId,
      userId: this.userId,
      state: record.state,
      lastError: record.lastError,
      lastEvaluatedAt: record.lastEvaluatedAt,
      evaluations: record.evaluations,
      matches: record.matches,
      meanEvaluationMs: record.evaluations === 0 ? 0 : record.totalEvaluationMs / record.evaluations,
      traderUpdatedAt: record.updatedAt,
      lastWarning: record.lastWarning,
      ...(record.lastTick === undefined ? {} : { lastTick: record.lastTick }),
    };
  }
}

/** trader_status.last_tick_errors holds this many (supabase/migrations/0006_replay.sql). */
const LAST_TICK_ERRORS = 5;

function lastTickCounts(outcome: TraderTickOutcome): LastTickCounts {
  const failed = new Set(outcome.errors.flatMap((error) => (error.symbol === null ? [] : [error.symbol])));
  return {
    evaluated: outcome.evaluatedSymbols.length + failed.size,
    matched: outcome.matches.length,
    failed: failed.size,
    errors: outcome.errors.slice(0, LAST_TICK_ERRORS).map((error) => ({ symbol: error.symbol, code: error.code, message: error.message })),
  };
}
