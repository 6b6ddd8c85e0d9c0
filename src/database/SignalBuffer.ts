// The bounded, oldest-first queue of signals waiting for the database, with per-batch accounting.
import type { Signal } from '../domain.ts';

/** How one writeSignals() batch fared; shared by the batch's entries. */
export interface BatchTicket {
  size: number;
  committed: number;
  rejected: number;
  dropped: number;
  committedAt: number | null;
}

export interface PendingSignal {
  signal: Signal;
  ticket: BatchTicket;
}

export function newTicket(size: number): BatchTicket {
  return { size, committed: 0, rejected: 0, dropped: 0, committedAt: null };
}

export function ticketSettled(ticket: BatchTicket): boolean {
  return ticket.committed + ticket.rejected + ticket.dropped >= ticket.size;
}

/**
 * When full, the OLDEST waiting signal is dropped to make room. A signal is an alert about a candle
 * that just closed: the newest ones are what a trader can still act on, while one that has waited
 * through a long outage is history (and its market moment has passed). Drops are never silent:
 * counted here, logged and exported as a metric by the synchronizer. Entries at the head that are
 * in flight are never dropped, so a commit can never be double-counted.
 */
export class SignalBuffer {
  private readonly capacity: number;
  private readonly entries: PendingSignal[] = [];
  /** Head entries currently being sent. */
  private inFlight = 0;
  droppedTotal = 0;

  constructor(capacity: number) {
    if (!(capacity >= 1)) throw new RangeError(`signal buffer capacity must be ≥ 1, got ${capacity}`);
    this.capacity = capacity;
  }

  get length(): number {
    return this.entries.length;
  }

  /** Adds the batch; returns the entries dropped to make room (oldest first). */
  push(batch: readonly Signal[], ticket: BatchTicket): PendingSignal[] {
    const dropped: PendingSignal[] = [];
    for (const signal of batch) {
      if (this.entries.length >= this.capacity) {
        const victim = this.inFlight < this.entries.length ? this.entries.splice(this.inFlight, 1)[0]! : { signal, ticket };
        victim.ticket.dropped += 1;
        this.droppedTotal += 1;
        dropped.push(victim);
        if (victim.signal === signal) continue;
      }
      this.entries.push({ signal, ticket });
    }
    return dropped;
  }

  /** Marks up to `count` head entries as in flight and returns them. */
  take(count: number): PendingSignal[] {
    const taken = this.entries.slice(0, count);
    this.inFlight = taken.length;
    return taken;
  }

  /** The in-flight head entries are done (committed or rejected): remove them. */
  settleInFlight(): PendingSignal[] {
    const settled = this.entries.splice(0, this.inFlight);
    this.inFlight = 0;
    return settled;
  }

  /** The in-flight entries stay queued (a transient failure): they go first next time. */
  releaseInFlight(): void {
    this.inFlight = 0;
  }
}
