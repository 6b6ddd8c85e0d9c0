// Writes worker_status and trader_status rows without ever holding up a tick: ordered, single-flight, failures logged.
import type { Clock } from '../clock.ts';
import type { WorkerState, WorkerStatus } from '../domain.ts';
import type { Logger } from '../logger.ts';
import type { StatusSink } from '../ports.ts';
import type { TraderHealth } from './TraderHealth.ts';

export interface StatusCounts {
  symbols: number;
  traders: number;
  streams: number;
  lastError: string | null;
}

export interface StatusWriterOptions {
  userId: string;
  machineId: string;
  workerVersion: string;
  clock: Clock;
  logger: Logger;
  sink: StatusSink;
  health: TraderHealth;
  counts: () => StatusCounts;
}

export class StatusWriter {
  private readonly options: StatusWriterOptions;
  startedAt = 0;
  // Worker status writes are chained so they land in order: 'stopped' is always the last one.
  private workerChain: Promise<void> = Promise.resolve();
  private workerWrites = 0;
  // Trader rows: one write in flight; a request meanwhile runs once after it, with everything dirty by then.
  private traderWrite: Promise<void> | null = null;
  private traderWriteAgain = false;

  constructor(options: StatusWriterOptions) {
    this.options = options;
  }

  /** True while a worker status write is queued or in flight (a heartbeat then skips its turn). */
  get busy(): boolean {
    return this.workerWrites > 0;
  }

  writeWorker(state: WorkerState): Promise<void> {
    this.workerWrites += 1;
    this.workerChain = this.workerChain.then(async () => {
      try {
        await this.options.sink.writeWorkerStatus(this.workerStatus(state));
      } catch (error) {
        this.options.logger.warn({ event: 'status_write_failed', state, err: error }, 'worker status write failed');
      } finally {
        this.workerWrites -= 1;
      }
    });
    return this.workerChain;
  }

  requestTraders(): void {
    if (this.traderWrite !== null) {
      this.traderWriteAgain = true;
      return;
    }
    this.traderWrite = this.writeTraders().finally(() => {
      this.traderWrite = null;
      if (this.traderWriteAgain) {
        this.traderWriteAgain = false;
        this.requestTraders();
      }
    });
  }

  /** Wait for a write in flight, then write whatever is still dirty. */
  async flushTraders(): Promise<void> {
    await this.traderWrite;
    await this.writeTraders();
  }

  private async writeTraders(): Promise<void> {
    const rows = this.options.health.takeDirty();
    if (rows.length === 0) return;
    try {
      await this.options.sink.writeTraderStatus(rows);
    } catch (error) {
      this.options.health.markDirty(rows.map((row) => row.traderId));
      this.options.logger.warn({ event: 'status_write_failed', rows: rows.length, err: error }, 'trader status write failed');
    }
  }

  /** The first row of a boot: written directly, so a database that is down fails the boot step. */
  startingStatus(): WorkerStatus {
    return this.workerStatus('starting');
  }

  private workerStatus(state: WorkerState): WorkerStatus {
    const counts = this.options.counts();
    return {
      userId: this.options.userId,
      machineId: this.options.machineId,
      version: this.options.workerVersion,
      state,
      startedAt: this.startedAt,
      heartbeatAt: this.options.clock.now(),
      symbols: counts.symbols,
      traders: counts.traders,
      streams: counts.streams,
      lastError: counts.lastError,
    };
  }
}
