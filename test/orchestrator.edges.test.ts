import { describe, expect, it } from 'vitest';
import { RisingEdges } from '../src/orchestration/RisingEdges.ts';
import { LATENCY_WINDOW_RUNS, ServiceLevel } from '../src/orchestration/ServiceLevel.ts';

const MINUTE = 60_000;
const T = 1_700_000_040_000 - (1_700_000_040_000 % MINUTE);

describe('rising edges', () => {
  it('calls a match rising only when the previous candle did not match', () => {
    const edges = new RisingEdges();
    edges.record('a', 'BTCUSDT', T - MINUTE, false);
    expect(edges.verdict('a', 'BTCUSDT', '1m', T)).toBe('rising');
    edges.record('a', 'BTCUSDT', T, true);
    expect(edges.verdict('a', 'BTCUSDT', '1m', T + MINUTE)).toBe('continuing');
  });

  it('has no verdict after a gap, a restart or a trader change, so the caller primes it', () => {
    const edges = new RisingEdges();
    expect(edges.verdict('a', 'BTCUSDT', '1m', T)).toBe('unknown');
    edges.record('a', 'BTCUSDT', T - 3 * MINUTE, false);
    expect(edges.verdict('a', 'BTCUSDT', '1m', T)).toBe('unknown');
    edges.record('a', 'BTCUSDT', T - MINUTE, false);
    edges.forgetTrader('a');
    expect(edges.verdict('a', 'BTCUSDT', '1m', T)).toBe('unknown');
  });

  it('keeps each (trader, symbol) verdict apart: forgetting one pair or one trader leaves the others', () => {
    const edges = new RisingEdges();
    for (const trader of ['a', 'ab']) for (const symbol of ['BTCUSDT', 'ETHUSDT']) edges.record(trader, symbol, T - MINUTE, trader === 'a');
    expect(edges.size).toBe(4);
    edges.forget('a', 'BTCUSDT');
    expect(edges.verdict('a', 'BTCUSDT', '1m', T)).toBe('unknown');
    expect(edges.verdict('a', 'ETHUSDT', '1m', T)).toBe('continuing');
    expect(edges.verdict('ab', 'BTCUSDT', '1m', T)).toBe('rising');
    edges.forgetTrader('a');
    expect(edges.verdict('a', 'ETHUSDT', '1m', T)).toBe('unknown');
    expect(edges.verdict('ab', 'ETHUSDT', '1m', T)).toBe('rising');
    expect(edges.size).toBe(2);
    // Updated in place: the next candle's verdict replaces the pair's, never adds one.
    edges.record('ab', 'ETHUSDT', T, true);
    expect(edges.size).toBe(2);
    expect(edges.verdict('ab', 'ETHUSDT', '1m', T + MINUTE)).toBe('continuing');
  });

  it('does not let a late verdict for an older candle overwrite a newer one', () => {
    const edges = new RisingEdges();
    edges.record('a', 'ETHUSDT', T, true);
    edges.record('a', 'ETHUSDT', T - MINUTE, false);
    expect(edges.verdict('a', 'ETHUSDT', '1m', T + MINUTE)).toBe('continuing');
  });

  it('treats a repeated evaluation of an already matched candle as no new edge', () => {
    const edges = new RisingEdges();
    edges.record('a', 'ETHUSDT', T - MINUTE, false);
    edges.record('a', 'ETHUSDT', T, true);
    expect(edges.verdict('a', 'ETHUSDT', '1m', T)).toBe('continuing');
  });
});

describe('service level', () => {
  const SYMBOLS = Array.from({ length: 10 }, (_, i) => `S${i}USDT`);
  const thresholds = { minCoverage: 0.95, maxLagMs: 5000, maxLatencyMs: 500 };
  const level = (openTime: number, lag: number | null) => ({
    interval: '1m' as const,
    openTime,
    expected: 10,
    arrivalLagP95Ms: lag,
    arrivalLagMaxMs: lag,
    closeToCommitMaxMs: null,
  });
  const covered = (evaluated: string[], waiting: Array<[string, Array<'1h' | '4h'>]> = []) => ({ evaluated, waiting: new Map(waiting) });

  it('is degraded by low coverage until a follow-up fills the late symbols', () => {
    const service = new ServiceLevel(thresholds);
    service.recordTick(level(T, 100), covered(SYMBOLS.slice(0, 8)));
    expect(service.problems()).toEqual([expect.stringContaining('coverage 1m 80.0%')]);
    service.recordFollowUp('1m', T, covered(SYMBOLS.slice(8)), 50);
    expect(service.problems()).toEqual([]);
  });

  it('names the incomplete timeframe a tick skipped evaluations for, and recovers when their follow-up runs', () => {
    const service = new ServiceLevel(thresholds);
    const waiting = SYMBOLS.slice(7).map((symbol) => [symbol, ['1h']] as [string, Array<'1h'>]);
    const tick = service.recordTick(level(T, 100), covered(SYMBOLS.slice(0, 7), waiting));
    expect(tick).toMatchObject({ evaluated: 7, coverage: 0.7, waitingFor: { '1h': 3 } });
    expect(service.problems()).toEqual(['coverage 1m 70.0% < 95.0% (1h incomplete on 3 symbols)']);
    // One symbol's fill lands but its trader also waits on 4h now: still waiting, named by the new timeframe.
    service.recordFollowUp('1m', T, covered(SYMBOLS.slice(7, 9), [[SYMBOLS[9]!, ['4h']]]), null);
    expect(service.snapshot()[0]).toMatchObject({ evaluated: 9, waitingFor: { '4h': 1 } });
    service.recordFollowUp('1m', T, covered([SYMBOLS[9]!]), null);
    expect(service.snapshot()[0]).toMatchObject({ evaluated: 10, coverage: 1, waitingFor: {} });
    expect(service.problems()).toEqual([]);
  });

  it('counts a symbol evaluated twice (a repeated follow-up) once', () => {
    const service = new ServiceLevel(thresholds);
    service.recordTick(level(T, 100), covered(SYMBOLS.slice(0, 8)));
    service.recordFollowUp('1m', T, covered(SYMBOLS.slice(0, 8)), null);
    expect(service.snapshot()[0]!.evaluated).toBe(8);
  });

  it('is degraded by a closing-kline arrival lag past the threshold', () => {
    const service = new ServiceLevel(thresholds);
    service.recordTick(level(T, 6000), covered(SYMBOLS));
    expect(service.problems()).toEqual([expect.stringContaining('arrival lag 1m 6000 ms')]);
    service.recordTick(level(T + MINUTE, 200), covered(SYMBOLS));
    expect(service.problems()).toEqual([]);
  });

  it('is degraded while the p99 close-to-commit latency of the recent ticks is past the threshold, and recovers as they age out', () => {
    const service = new ServiceLevel(thresholds);
    service.recordLatencies([120, 180, 240]);
    expect(service.problems()).toEqual([]);
    service.recordLatencies([30_000]);
    expect(service.problems()).toEqual(['close-to-commit latency p99 30000 ms > 500 ms']);
    // Ticks without signals still move the window on: the slow one ages out after LATENCY_WINDOW_RUNS runs.
    for (let run = 0; run < LATENCY_WINDOW_RUNS - 1; run++) service.recordLatencies([]);
    expect(service.problems()).toHaveLength(1);
    service.recordLatencies([200]);
    expect(service.problems()).toEqual([]);
    expect(service.latencyP99Ms()).toBe(200);
  });
});
