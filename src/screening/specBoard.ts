// A tick's symbol specs in shared memory: written once per set of timeframes by the screening thread, read in place by its isolates.
//
// Every trader's isolate needs, per symbol, where each of its timeframes' rows are (series id,
// generation, first row, length). Handed over as JSON, each isolate parsed its own copy every tick:
// ~0.35 ms per trader and tick, 7 ms of a 20-trader tick (a sixth of what the screening cost beyond
// the filters' own work). Here the thread writes them once per layout into a buffer every isolate
// of the thread holds a view on (attached once per buffer), and beginTick passes four numbers.
import { INTERVALS } from '../domain.ts';

/**
 * One symbol's spec as the thread builds it: [position of the hvnNodes timeframe among its timeframes
 * or -1, then per timeframe: interval, series id, generation, start, length] (`length` rows from row
 * `start` of the series' shared buffer); write() puts it on the board, where the isolates read it.
 */
export type SymbolSpec = Array<string | number>;

/** What an isolate asks for when it holds no buffer of the epoch it was pointed at, or a later one: [epoch, buffer]. */
export type SpecBoardConnection = [epoch: number, buffer: SharedArrayBuffer];

/**
 * Where one layout's specs are for this tick: `count` symbols of `stride` cells from cell `offset`,
 * in a buffer of epoch `epoch`. A symbol's cells are [position of the hvnNodes timeframe (-1: none;
 * MISSING_SPEC: the symbol lacks a timeframe and is never evaluated), then per timeframe: index in
 * INTERVALS, series id, generation, first row, length].
 */
export interface TickSpecs {
  epoch: number;
  offset: number;
  stride: number;
  count: number;
}

/** The first cell of a symbol that lacks one of the layout's timeframes (never evaluated, never attached). */
export const MISSING_SPEC = -2;

/** Cells per timeframe of a spec: interval, series id, generation, start, length. */
const TIMEFRAME_CELLS = 5;

/** Enough for 400 symbols of four layouts of two timeframes without growing (128 kB, shared by the thread's isolates). */
const INITIAL_CELLS = 16 * 1024;

export class SymbolSpecBoard {
  private cells = new Float64Array(new SharedArrayBuffer(INITIAL_CELLS * 8));
  /** Moves when the buffer is replaced: an isolate that saw another epoch asks for the buffer again. */
  private epoch = 0;
  private used = 0;

  /** A new tick: the cells written so far may be written again (the isolates read them only during a tick). */
  beginTick(): void {
    this.used = 0;
  }

  /** Write one layout's specs (by symbol number; null: the symbol lacks a timeframe) of `timeframes` timeframes each. */
  write(specs: ReadonlyArray<SymbolSpec | null>, timeframes: number): TickSpecs {
    const stride = 1 + TIMEFRAME_CELLS * timeframes;
    const offset = this.used;
    const end = offset + specs.length * stride;
    // The new buffer starts with a copy of this tick's earlier layouts, so an isolate handed it reads
    // those right too; the replaced one keeps them for the isolates that read it already.
    if (end > this.cells.length) this.grow(end);
    const cells = this.cells;
    for (let s = 0, at = offset; s < specs.length; s++, at += stride) {
      const spec = specs[s];
      if (spec === null || spec === undefined) {
        cells[at] = MISSING_SPEC;
        continue;
      }
      cells[at] = spec[0] as number;
      for (let t = 0, from = 1; t < timeframes; t++, from += TIMEFRAME_CELLS) {
        cells[at + from] = (INTERVALS as readonly string[]).indexOf(spec[from] as string);
        cells[at + from + 1] = spec[from + 1] as number;
        cells[at + from + 2] = spec[from + 2] as number;
        cells[at + from + 3] = spec[from + 3] as number;
        cells[at + from + 4] = spec[from + 4] as number;
      }
    }
    this.used = end;
    return { epoch: this.epoch, offset, stride, count: specs.length };
  }

  connection(): SpecBoardConnection {
    return [this.epoch, this.cells.buffer as SharedArrayBuffer];
  }

  /** Bytes of the buffer every isolate of the thread holds a view on (charged to their memory limits by isolated-vm). */
  get bytes(): number {
    return this.cells.byteLength;
  }

  private grow(cellsNeeded: number): void {
    const next = new Float64Array(new SharedArrayBuffer(Math.max(cellsNeeded, this.cells.length * 2) * 8));
    next.set(this.cells.subarray(0, this.used));
    this.cells = next;
    this.epoch++;
  }
}
