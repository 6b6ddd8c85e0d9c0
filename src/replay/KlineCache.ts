// Closed klines for replay, fetched by REST in fixed 1000-candle chunks and kept on disk: a closed candle never changes.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../clock.ts';
import { type Candle, type Interval, candleOpenTimeAt, intervalMs } from '../domain.ts';
import type { BinanceRestClient } from '../market/BinanceRestClient.ts';

/** Binance's largest klines page: one request (weight 2) per chunk. */
const CHUNK_CANDLES = 1000;

export interface KlineCacheOptions {
  /** The folder the chunks go in (git-ignored, e.g. .local/replay-cache). */
  dir: string;
  /** The REST origin the candles come from: a simulator's history must never answer for Binance's. */
  sourceUrl: string;
  rest: Pick<BinanceRestClient, 'klines'>;
  clock: Clock;
}

export interface KlineCacheStats {
  chunksFromDisk: number;
  chunksFetched: number;
  chunksWritten: number;
}

/** A chunk on disk: its closed candles, and the time before which every one of its candles that had closed is in it. */
interface ChunkFile {
  closedBefore: number;
  candles: Candle[];
}

/**
 * Chunks are aligned on multiples of 1000 candles, so any window maps onto the same files. A chunk file holds only
 * closed candles and says as of when (`closedBefore`): a later replay reads it when every candle it needs had
 * closed by then, and otherwise fetches the chunk again and rewrites it, so the newest chunk grows as time passes
 * and the forming candle is never frozen half-made.
 */
export class KlineCache {
  private readonly options: KlineCacheOptions;
  private readonly root: string;
  private readonly counters: KlineCacheStats = { chunksFromDisk: 0, chunksFetched: 0, chunksWritten: 0 };

  constructor(options: KlineCacheOptions) {
    this.options = options;
    const source = createHash('sha256').update(options.sourceUrl).digest('hex').slice(0, 16);
    this.root = join(options.dir, source);
  }

  stats(): KlineCacheStats {
    return { ...this.counters };
  }

  /** The closed candles with an open time in [startTime, endTime), oldest first. */
  async closedCandles(symbol: string, interval: Interval, startTime: number, endTime: number): Promise<Candle[]> {
    const chunkMs = CHUNK_CANDLES * intervalMs(interval);
    const candles: Candle[] = [];
    for (let chunk = Math.floor(startTime / chunkMs) * chunkMs; chunk < endTime; chunk += chunkMs) {
      // Every candle needed from this chunk has closed by the end of the last one that opens before `endTime`.
      const needed = Math.min(endTime, chunk + chunkMs);
      const closedBy = candleOpenTimeAt(interval, needed - 1) + intervalMs(interval);
      for (const candle of await this.chunk(symbol, interval, chunk, chunkMs, closedBy)) {
        if (candle.openTime >= startTime && candle.openTime < endTime) candles.push(candle);
      }
    }
    return candles;
  }

  private async chunk(symbol: string, interval: Interval, start: number, chunkMs: number, closedBy: number): Promise<Candle[]> {
    const file = join(this.root, symbol, interval, `${start}.json`);
    const cached = await readChunk(file);
    if (cached !== null && cached.closedBefore >= closedBy) {
      this.counters.chunksFromDisk++;
      return cached.candles;
    }
    const askedAt = this.options.clock.now();
    const rows = await this.options.rest.klines(symbol, interval, { startTime: start, endTime: start + chunkMs - 1, limit: CHUNK_CANDLES });
    this.counters.chunksFetched++;
    // The client marks a candle closed when it closed before the request left, which was no earlier than `askedAt`.
    const candles = rows.filter((row) => row.closed).map((row) => row.candle);
    await mkdir(join(this.root, symbol, interval), { recursive: true });
    // Written aside, then renamed: a replay stopped mid-write leaves no truncated chunk to be read as whole.
    const partial = `${file}.${process.pid}.tmp`;
    await writeFile(partial, JSON.stringify({ closedBefore: Math.min(askedAt, start + chunkMs), candles } satisfies ChunkFile));
    await rename(partial, file);
    this.counters.chunksWritten++;
    return candles;
  }
}

async function readChunk(file: string): Promise<ChunkFile | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  try {
    const value = JSON.parse(text) as Partial<ChunkFile> | null;
    return typeof value?.closedBefore === 'number' && Array.isArray(value.candles) ? (value as ChunkFile) : null;
  } catch {
    // A damaged file is refetched (and overwritten) rather than trusted.
    return null;
  }
}
