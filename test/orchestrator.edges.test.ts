import { describe, expect, it } from 'vitest';
import { RisingEdges } from '../src/orchestration/RisingEdges.ts';
import { ServiceLevel } from '../src/orchestration/ServiceLevel.ts';

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
  const level = (openTime: number, evaluated: number, lag: number | null) => ({
    interval: '1m' as const,
    openTime,
    expected: 10,
    evaluated,
    coverage: evaluated / 10,
    arrivalLagP95Ms: lag,
    arrivalLagMaxMs: lag,
    closeToCommitMaxMs: null,
  });

  it('is degraded by low coverage until a follow-up fills the late symbols', () => {
    const service = new ServiceLevel({ minCoverage: 0.95, maxLagMs: 5000 });
    service.recordTick(level(T, 8, 100));
    expect(service.problems()).toEqual([expect.stringContaining('coverage 1m 80.0%')]);
    service.recordFollowUp('1m', T, 2, 50);
    expect(service.problems()).toEqual([]);
  });

  it('is degraded by a closing-kline arrival lag past the threshold', () => {
    const service = new ServiceLevel({ minCoverage: 0.95, maxLagMs: 5000 });
    service.recordTick(level(T, 10, 6000));
    expect(service.problems()).toEqual([expect.stringContaining('arrival lag 1m 6000 ms')]);
    service.recordTick(level(T + MINUTE, 10, 200));
    expect(service.problems()).toEqual([]);
  });
});
