// compactHeap: the main thread's heap grown by a burst of garbage is handed back, and no context or isolate created afterwards sees V8's gc.
import ivm from 'isolated-vm';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { compactHeap } from '../src/heap.ts';

describe('compactHeap', () => {
  it('returns the heap a burst of short-lived objects grew, as the boot backfill does', () => {
    // About 60 MB of parsed rows kept until the burst ends, like the backfill's responses before they reach the store.
    const parse = () => Array.from({ length: 200 }, (_, i) => JSON.parse(JSON.stringify(Array.from({ length: 500 }, (_, k) => [String(i), String(k), '1.5', '2.5', '0.5', '1.0']))) as string[][]);
    expect(parse().length).toBe(200);
    const grown = process.memoryUsage().heapTotal;
    compactHeap();
    const after = process.memoryUsage().heapTotal;
    expect(after).toBeLessThan(grown - 20 * 1024 * 1024);
  });

  it('leaves no gc global to contexts and trader isolates created after it', () => {
    compactHeap();
    expect(runInNewContext('typeof gc')).toBe(process.execArgv.includes('--expose-gc') ? 'function' : 'undefined');
    const isolate = new ivm.Isolate({ memoryLimit: 16 });
    try {
      expect(isolate.createContextSync().evalSync('typeof gc')).toBe('undefined');
    } finally {
      isolate.dispose();
    }
  });
});
