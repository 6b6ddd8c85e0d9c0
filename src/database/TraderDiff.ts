// Pure bookkeeping for trader polling: what the last load saw, and what changed since.
import { createHash } from 'node:crypto';
import type { RejectedTrader, Trader } from '../domain.ts';
import type { TraderChanges } from '../ports.ts';
import { parseTraderRow, type TraderRow } from './parse.ts';

interface SeenRow {
  fingerprint: string;
  /** null when the row was rejected: nothing of it runs. */
  trader: Trader | null;
}

/**
 * updated_at is trigger-maintained, but two edits in one transaction share a timestamp; the
 * content hash catches those too.
 */
function fingerprintOf(row: TraderRow): string {
  const content = JSON.stringify([row.name, row.enabled, row.execution_mode, row.filter]);
  return `${row.updated_at ?? ''}|${createHash('sha1').update(content).digest('base64')}`;
}

export class TraderDiff {
  private seen = new Map<string, SeenRow>();

  /** Replace what was seen with `rows` (a full load); returns the parsed traders and rejections in row order. */
  load(rows: readonly TraderRow[]): { traders: Trader[]; rejected: RejectedTrader[] } {
    const traders: Trader[] = [];
    const rejected: RejectedTrader[] = [];
    const seen = new Map<string, SeenRow>();
    for (const row of rows) {
      const parsed = parseTraderRow(row);
      if (parsed.ok) traders.push(parsed.trader);
      else rejected.push(parsed.rejected);
      seen.set(row.id, { fingerprint: fingerprintOf(row), trader: parsed.ok ? parsed.trader : null });
    }
    this.seen = seen;
    return { traders, rejected };
  }

  /** Compare `rows` (the runnable rows now) with what was seen, then remember `rows`. */
  diff(rows: readonly TraderRow[]): TraderChanges {
    const upserted: Trader[] = [];
    const removed: string[] = [];
    const rejected: RejectedTrader[] = [];
    const next = new Map<string, SeenRow>();
    for (const row of rows) {
      const fingerprint = fingerprintOf(row);
      const previous = this.seen.get(row.id);
      if (previous !== undefined && previous.fingerprint === fingerprint) {
        next.set(row.id, previous);
        continue;
      }
      const parsed = parseTraderRow(row);
      if (parsed.ok) {
        upserted.push(parsed.trader);
        next.set(row.id, { fingerprint, trader: parsed.trader });
      } else {
        rejected.push(parsed.rejected);
        // The previous version stops running: the row no longer says what it should do.
        if (previous?.trader) removed.push(row.id);
        next.set(row.id, { fingerprint, trader: null });
      }
    }
    for (const [id, previous] of this.seen) {
      // Deleted, disabled or switched to execution_mode 'browser': all drop out of the runnable query.
      if (!next.has(id) && previous.trader !== null) removed.push(id);
    }
    this.seen = next;
    return { upserted, removed, rejected };
  }
}
