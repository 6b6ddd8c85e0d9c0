// One refresh interval's run queue: one run at a time, the rest waiting one per candle, oldest first, bounded.
import type { Logger } from '../logger.ts';
import type { TickRequest } from './TickScheduler.ts';

/**
 * Candles of one interval that may wait behind a running tick. Each is screened, oldest first, on the
 * market as it stood at its close, so waiting costs latency, not correctness; past this many the oldest
 * is dropped, so a worker that cannot keep up sheds its backlog instead of falling ever further behind.
 */
export const MAX_PENDING_CANDLES = 5;

export interface TickQueueOptions {
  logger: Logger;
  /** Runs one request; a throw is logged as tick_failed and the queue goes on. */
  run: (request: TickRequest) => Promise<void>;
  /** A request was dropped (more than MAX_PENDING_CANDLES waiting) or merged into a queued one; logged here already. */
  onBacklog?: (request: TickRequest, outcome: 'skipped' | 'coalesced') => void;
}

export class TickQueue {
  private readonly options: TickQueueOptions;
  private running = false;
  /** Requests waiting behind the running one, one per candle, oldest first. */
  private queued: TickRequest[] = [];
  private idle: Promise<void> = Promise.resolve();
  private markIdle: () => void = () => {};

  constructor(options: TickQueueOptions) {
    this.options = options;
  }

  /** Runs running or waiting, for stats. */
  get size(): number {
    return (this.running ? 1 : 0) + this.queued.length;
  }

  /** Drop what waits; resolves once the run in progress (if any) has finished. */
  clear(): Promise<void> {
    this.queued = [];
    return this.idle;
  }

  enqueue(request: TickRequest): void {
    if (!this.running) {
      this.runLoop(request);
      return;
    }
    const queued = this.queued.find((waiting) => waiting.openTime === request.openTime);
    if (queued !== undefined) {
      // Same candle: one run covers both (a tick still waiting absorbs its own follow-ups).
      queued.symbols = [...new Set([...queued.symbols, ...request.symbols])];
      // Every trader if either asked for every trader (the run re-judges each pair, so a repeat changes nothing).
      queued.traderIds =
        queued.traderIds === undefined || request.traderIds === undefined ? undefined : [...new Set([...queued.traderIds, ...request.traderIds])];
      if (request.kind === 'tick' || queued.kind === 'followup') {
        queued.kind = request.kind;
        queued.arrivalLagsMs = request.arrivalLagsMs;
      }
      this.backlogged(request, 'coalesced');
      return;
    }
    this.queued.push(request);
    this.queued.sort((a, b) => a.openTime - b.openTime);
    while (this.queued.length > MAX_PENDING_CANDLES) this.backlogged(this.queued.shift()!, 'skipped');
  }

  private backlogged(request: TickRequest, outcome: 'skipped' | 'coalesced'): void {
    const event = outcome === 'skipped' ? 'tick_skipped' : 'tick_coalesced';
    this.options.logger.warn({ event, interval: request.interval, openTime: request.openTime, kind: request.kind }, 'tick backlog');
    this.options.onBacklog?.(request, outcome);
  }

  private runLoop(first: TickRequest): void {
    this.running = true;
    this.idle = new Promise<void>((resolve) => (this.markIdle = resolve));
    const loop = async () => {
      let next: TickRequest | null = first;
      while (next !== null) {
        // Let the code that announced the close finish first (a gap fill clears its gap after its last close).
        await new Promise<void>((resolve) => setImmediate(resolve));
        try {
          await this.options.run(next);
        } catch (error) {
          this.options.logger.error({ event: 'tick_failed', interval: next.interval, openTime: next.openTime, err: error }, 'tick failed');
        }
        next = this.queued.shift() ?? null;
      }
      this.running = false;
      this.markIdle();
    };
    void loop();
  }
}
