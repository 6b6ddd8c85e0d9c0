// Isolate collection between ticks: which isolates the policy picks, and what a collection does to a real trader isolate.
import { afterEach, describe, expect, it } from 'vitest';
import { IsolateCollector, RETURN_MARGIN } from '../src/screening/isolateCollector.ts';
import { SymbolSpecBoard } from '../src/screening/specBoard.ts';
import { TraderSandbox } from '../src/screening/sandbox.ts';

const MB = 1024 * 1024;

function collector(options: { rss?: () => number; budgetBytes?: number; maxIdlePerTick?: number; threads?: number } = {}): IsolateCollector {
  return new IsolateCollector({ idleTicks: 3, maxIdlePerTick: options.maxIdlePerTick ?? 8, budgetBytes: options.budgetBytes ?? 400 * MB, rss: options.rss ?? (() => 100 * MB), threads: options.threads ?? 1 });
}

describe('IsolateCollector', () => {
  it('never collects a trader that runs every tick while memory is ample', () => {
    const policy = collector();
    policy.fresh('a');
    for (let tick = 0; tick < 20; tick++) expect(policy.afterTick(['a'])).toEqual([]);
  });

  it('collects a trader once it sat out three ticks in a row, and not again until it has run', () => {
    const policy = collector();
    policy.fresh('slow');
    policy.fresh('fast');
    expect(policy.afterTick(['slow', 'fast'])).toEqual([]);
    expect(policy.afterTick(['fast'])).toEqual([]);
    expect(policy.afterTick(['fast'])).toEqual([]);
    expect(policy.afterTick(['fast'])).toEqual(['slow']);
    for (let tick = 0; tick < 10; tick++) expect(policy.afterTick(['fast'])).toEqual([]);
    expect(policy.afterTick(['slow', 'fast'])).toEqual([]);
    expect(policy.afterTick([])).toEqual([]);
    expect(policy.afterTick([])).toEqual([]);
    expect(policy.afterTick([]).sort()).toEqual(['fast', 'slow']);
  });

  it('does not collect an isolate that never ran since it was built', () => {
    const policy = collector({ rss: () => 900 * MB });
    policy.fresh('new');
    for (let tick = 0; tick < 5; tick++) expect(policy.afterTick([])).toEqual([]);
  });

  it('spreads a crowd going idle over several ticks, the longest idle first', () => {
    const policy = collector({ maxIdlePerTick: 2 });
    const crowd = ['c1', 'c2', 'c3', 'c4', 'c5'];
    for (const id of crowd) policy.fresh(id);
    policy.afterTick(['c1', 'c2']);
    policy.afterTick(['c3', 'c4', 'c5']);
    policy.afterTick([]);
    expect(policy.afterTick([])).toEqual(['c1', 'c2']);
    expect(policy.afterTick([])).toEqual(['c3', 'c4']);
    expect(policy.afterTick([])).toEqual(['c5']);
    expect(policy.afterTick([])).toEqual([]);
  });

  it('collects every isolate that ran since its last collection while the process is above its budget', () => {
    let rss = 100 * MB;
    const policy = collector({ rss: () => rss, budgetBytes: 300 * MB, maxIdlePerTick: 1 });
    for (const id of ['a', 'b', 'c']) policy.fresh(id);
    expect(policy.afterTick(['a', 'b', 'c'])).toEqual([]);
    rss = 350 * MB;
    expect(policy.afterTick(['a', 'b']).sort()).toEqual(['a', 'b', 'c']);
    expect(policy.afterTick(['a'])).toEqual(['a']);
    rss = 200 * MB;
    expect(policy.afterTick(['a'])).toEqual([]);
  });

  it('forgets a removed trader', () => {
    const policy = collector();
    policy.fresh('gone');
    policy.afterTick(['gone']);
    policy.forget('gone');
    for (let tick = 0; tick < 5; tick++) expect(policy.afterTick([])).toEqual([]);
  });
});

describe('IsolateCollector tick order', () => {
  const ids = ['a', 'b', 'c', 'd'];
  /** A memory-saving tick: every trader runs and is collected after its run, the process growing `grown` during each run. */
  function savingTick(policy: IsolateCollector, grown: number, traders = ids): string[] {
    for (const id of traders) if (!policy.keepsGrown(id)) policy.collectedAfterRun(id, grown);
    return policy.afterTick(traders);
  }

  it('runs the normal order while the process is within its budget, whatever ran', () => {
    const policy = collector({ rss: () => 390 * MB, budgetBytes: 400 * MB });
    for (const id of ids) policy.fresh(id);
    for (let tick = 0; tick < 5; tick++) {
      policy.afterTick(ids);
      expect(policy.order).toBe('symbols');
    }
  });

  it('takes the memory-saving order after a tick that left the process above its budget, and collects every grown isolate then', () => {
    let rss = 390 * MB;
    const policy = collector({ rss: () => rss, budgetBytes: 400 * MB });
    for (const id of ids) policy.fresh(id);
    policy.afterTick(ids);
    rss = 410 * MB;
    expect(policy.afterTick(ids).sort()).toEqual(ids);
    expect(policy.order).toBe('traders');
    // Collected right after their runs: nothing is left to collect after the tick.
    rss = 300 * MB;
    expect(savingTick(policy, 4 * MB)).toEqual([]);
  });

  it('stays in the memory-saving order while the RSS plus what the runs grew is above the budget less the margin, and returns once it fits', () => {
    let rss = 410 * MB;
    const policy = collector({ rss: () => rss, budgetBytes: 400 * MB });
    for (const id of ids) policy.fresh(id);
    policy.afterTick(ids);
    expect(policy.order).toBe('traders');
    // The first saving tick is compared with the normal order's last: 1 MB per trader, less than the runs grew.
    rss = 406 * MB;
    savingTick(policy, 4 * MB);
    expect(policy.order).toBe('traders');
    // 370 + 4 × 4 MB = 386 MB: within the budget, but not by the margin.
    expect(400 * (1 - RETURN_MARGIN)).toBe(380);
    rss = 370 * MB;
    savingTick(policy, 4 * MB);
    expect(policy.order).toBe('traders');
    // 360 + 16 = 376 MB: the normal order fits, with the margin to spare.
    rss = 360 * MB;
    savingTick(policy, 4 * MB);
    expect(policy.order).toBe('symbols');
  });

  /**
   * A process whose RSS is `base` plus `perIsolate` for each grown isolate, each run growing it by
   * only `measured` in the collector's eyes (V8 handing pages back late): ticks in whichever order
   * the collector picks, isolates kept or collected as it says. Returns the RSS at the tick's peak.
   */
  function simulated(options: { base: number; perIsolate: number; measured: number; traders: string[] }) {
    const process = { base: options.base, grown: new Set<string>(), traders: options.traders };
    const rss = () => process.base + process.grown.size * options.perIsolate;
    const policy = collector({ rss, budgetBytes: 400 * MB });
    for (const id of process.traders) policy.fresh(id);
    return {
      process,
      policy,
      rss,
      tick(): number {
        let peak = 0;
        const saving = policy.order === 'traders';
        for (const id of process.traders) {
          process.grown.add(id);
          peak = Math.max(peak, rss());
          if (saving && !policy.keepsGrown(id)) {
            process.grown.delete(id);
            policy.collectedAfterRun(id, options.measured);
          }
        }
        for (const id of policy.afterTick(process.traders)) process.grown.delete(id);
        return peak;
      },
    };
  }

  it('trusts what the last change of order showed over what single runs grew, so it does not flip back and forth', () => {
    const sim = simulated({ base: 325 * MB, perIsolate: 20 * MB, measured: 1 * MB, traders: ids });
    // The normal order: 405 MB, over the budget.
    expect(sim.tick()).toBe(405 * MB);
    const orders: string[] = [];
    for (let tick = 0; tick < 10; tick++) {
      expect(sim.tick()).toBeLessThanOrEqual(400 * MB);
      orders.push(sim.policy.order);
    }
    // Single runs say 1 MB each (325 + 4 MB would fit), but the change of order showed 20 MB per trader.
    expect(orders).toEqual(Array.from({ length: 10 }, () => 'traders'));
    // Two traders gone: 285 + 2 × 20 MB fits, and the normal order comes back.
    sim.policy.forget('c');
    sim.policy.forget('d');
    sim.process.traders = ['a', 'b'];
    sim.process.base = 285 * MB;
    sim.tick();
    expect(sim.policy.order).toBe('symbols');
    expect(sim.tick()).toBeLessThanOrEqual(400 * MB);
    expect(sim.policy.order).toBe('symbols');
  });

  it('keeps as many isolates grown as the budget has room for, the first traders of the tick, adding them a few at a time and dropping them at once', () => {
    const traders = ['t1', 't2', 't3', 't4', 't5', 't6', 't7', 't8'];
    const sim = simulated({ base: 330 * MB, perIsolate: 10 * MB, measured: 10 * MB, traders });
    expect(sim.tick()).toBe(410 * MB);
    const kept: number[] = [];
    for (let tick = 0; tick < 8; tick++) {
      expect(sim.tick()).toBeLessThanOrEqual(400 * MB);
      kept.push(traders.filter((id) => sim.policy.keepsGrown(id)).length);
    }
    // Room for 5 grown under 380 MB (the budget less the margin), one of them the trader running: 4 kept, one more a tick.
    expect(kept).toEqual([1, 2, 3, 4, 4, 4, 4, 4]);
    expect(traders.filter((id) => sim.policy.keepsGrown(id))).toEqual(['t1', 't2', 't3', 't4']);
    expect(sim.policy.order).toBe('traders');
    // The rest of the process grows by 20 MB: two fewer kept after the very next tick.
    sim.process.base = 350 * MB;
    sim.tick();
    expect(traders.filter((id) => sim.policy.keepsGrown(id))).toEqual(['t1', 't2']);
    expect(sim.tick()).toBeLessThanOrEqual(400 * MB);
  });

  it('counts its growth once per screening thread sharing the budget', () => {
    const order = (threads: number) => {
      let rss = 410 * MB;
      const policy = collector({ rss: () => rss, budgetBytes: 400 * MB, threads });
      for (const id of ids) policy.fresh(id);
      policy.afterTick(ids);
      rss = 402 * MB;
      savingTick(policy, 5 * MB);
      rss = 350 * MB;
      savingTick(policy, 5 * MB);
      return policy.order;
    };
    // 350 + 4 × 5 = 370 MB fits one thread's; two threads growing alike would need 390 MB.
    expect(order(1)).toBe('symbols');
    expect(order(2)).toBe('traders');
  });
});

describe('TraderSandbox.collectGarbage', () => {
  const sandboxes: TraderSandbox[] = [];
  afterEach(() => {
    for (const sandbox of sandboxes.splice(0)) sandbox.dispose();
  });

  function sandbox(code: string): TraderSandbox {
    // The filters here read no market data, so the host is never asked for any.
    const specBoard = new SymbolSpecBoard();
    const box = new TraderSandbox({ traderId: 't', code, helpers: 'webapp', timeoutMs: 1000, memoryMb: 32, host: { attach: () => undefined, memo: () => undefined, specs: () => specBoard.connection() }, onCatastrophicError: () => undefined });
    sandboxes.push(box);
    expect(box.prepare()).toBeNull();
    expect(box.beginTick('[{"s":"AUSDT"}]', specBoard.write([[-1]], 0), specBoard.bytes)).toBeNull();
    return box;
  }

  it('hands back the heap an evaluation filled with garbage, and the filter still runs after it', () => {
    const box = sandbox(`const rows = []; for (let i = 0; i < 40000; i++) rows.push({ i, label: 'row ' + i }); return rows.length === 40000;`);
    expect(box.evaluate(0)).toMatchObject({ kind: 'ok', match: true });
    const before = box.heapBytes();
    expect(box.collectGarbage()).toBe(true);
    expect(box.heapBytes()).toBeLessThan(before - 2 * MB);
    expect(box.evaluate(0)).toMatchObject({ kind: 'ok', match: true });
  });

  it('leaves the filter no way to V8s gc', () => {
    const box = sandbox(`return { match: typeof gc === 'undefined' && typeof globalThis.gc === 'undefined', conditions: [String(Object.getOwnPropertyNames(globalThis).filter((name) => typeof globalThis[name] === 'function' && /gc/i.test(name)))] };`);
    expect(box.collectGarbage()).toBe(true);
    expect(box.evaluate(0)).toMatchObject({ kind: 'ok', match: true, conditions: [''] });
  });
});
