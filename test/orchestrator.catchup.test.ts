// The boot catch-up leaves exactly one candle per interval to the scheduler: the latest closed one, however long the other intervals took.
import { describe, expect, it } from 'vitest';
import { AcceleratedClock } from '../src/clock.ts';
import { type Interval, candleOpenTimeAt, intervalMs } from '../src/domain.ts';
import { catchUpMissedCandles } from '../src/orchestration/bootCatchUp.ts';
import { makeTrader } from './screening.support.ts';

const MINUTE = 60_000;
const BOOT = Date.parse('2026-03-02T10:00:30.000Z');

describe('the boot catch-up', () => {
  it('screens a 1m candle that closed while a slower interval was being caught up, so only the latest is left to the scheduler', async () => {
    // Real time under our control, so a screening run can take a simulated minute.
    let realMs = 0;
    const clock = new AcceleratedClock({ speed: 1, originRealMs: 0, originClockMs: BOOT, realNow: () => realMs });
    const fast = makeTrader('return false;', { refreshInterval: '1m' });
    const slow = makeTrader('return false;', { refreshInterval: '5m' });
    const screened: Array<{ interval: Interval; openTime: number; traders: string[] }> = [];
    const candles = await catchUpMissedCandles({
      clock,
      intervals: ['1m', '5m'],
      traders: [fast, slow],
      // Both last ran four minutes before the boot (a kill at 09:56:30).
      resumeFrom: new Map([
        [fast.id, BOOT - 4 * MINUTE],
        [slow.id, Date.parse('2026-03-02T09:50:00.000Z')],
      ]),
      symbols: () => ['BTCUSDT'],
      stopping: () => false,
      run: async (request, traderIds) => {
        screened.push({ interval: request.interval, openTime: request.openTime, traders: [...traderIds] });
        // The 5m candle takes a minute to screen: the 1m candle of 10:00 closes meanwhile.
        if (request.interval === '5m') realMs += MINUTE;
      },
    });

    const latestClosed = (interval: Interval) => candleOpenTimeAt(interval, clock.now()) - intervalMs(interval);
    const fastOpenTimes = screened.filter((run) => run.interval === '1m').map((run) => new Date(run.openTime).toISOString().slice(11, 16));
    // 09:56 (the candle open when it last ran) to 09:59; 10:00 is the latest closed now, the scheduler's.
    expect(fastOpenTimes).toEqual(['09:56', '09:57', '09:58', '09:59']);
    expect(new Date(latestClosed('1m')).toISOString().slice(11, 16)).toBe('10:00');
    // The 5m candle of 09:50 closed before the boot; 09:55 is the latest closed, the scheduler's.
    expect(screened.filter((run) => run.interval === '5m').map((run) => run.openTime)).toEqual([Date.parse('2026-03-02T09:50:00.000Z')]);
    expect(latestClosed('5m')).toBe(Date.parse('2026-03-02T09:55:00.000Z'));
    expect(screened.every((run) => run.traders.length === 1 && run.traders[0] === (run.interval === '1m' ? fast.id : slow.id))).toBe(true);
    expect(candles).toEqual({ '1m': 4, '5m': 1 });
  });
});
