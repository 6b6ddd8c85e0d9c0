// Signal and status fixtures for the StateSynchronizer tests.
import type { Signal, TraderStatus, WorkerStatus } from '../../src/domain.ts';

export function makeSignal(userId: string, traderId: string, overrides: Partial<Signal> = {}): Signal {
  return {
    userId,
    traderId,
    symbol: 'BTCUSDT',
    interval: '1m',
    candleOpenTime: Date.UTC(2026, 0, 1, 0, 0),
    price: 42_000.25,
    matchedConditions: ['close > ema'],
    machineId: 'test-machine',
    provenance: {
      filterCodeHash: 'abc',
      helpersVersion: '1',
      timeframes: { '1m': { lastOpenTime: Date.UTC(2026, 0, 1, 0, 0), lastCloseTime: Date.UTC(2026, 0, 1, 0, 0) + 59_999, origin: 'stream', length: 500 } },
      workerVersion: '0.1.0',
      ticker: null,
    },
    closeReceivedAt: Date.UTC(2026, 0, 1, 0, 1),
    ...overrides,
  };
}

/** `count` signals of one trader on consecutive 1m candles. */
export function signalSeries(userId: string, traderId: string, count: number, symbol = 'BTCUSDT'): Signal[] {
  return Array.from({ length: count }, (_, index) =>
    makeSignal(userId, traderId, { symbol, candleOpenTime: Date.UTC(2026, 0, 1) + index * 60_000 }),
  );
}

export function workerStatus(userId: string, overrides: Partial<WorkerStatus> = {}): WorkerStatus {
  return {
    userId,
    machineId: 'test-machine',
    version: '0.1.0',
    state: 'ready',
    startedAt: Date.UTC(2026, 0, 1),
    heartbeatAt: Date.UTC(2026, 0, 1, 0, 5),
    symbols: 200,
    traders: 3,
    streams: 2,
    lastError: null,
    ...overrides,
  };
}

export function traderStatus(userId: string, traderId: string, overrides: Partial<TraderStatus> = {}): TraderStatus {
  return {
    traderId,
    userId,
    state: 'running',
    lastError: null,
    lastEvaluatedAt: Date.UTC(2026, 0, 1, 0, 5),
    evaluations: 10,
    matches: 2,
    meanEvaluationMs: 0.75,
    traderUpdatedAt: null,
    ...overrides,
  };
}
