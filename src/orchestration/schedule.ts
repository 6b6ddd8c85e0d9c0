// What a set of traders asks of the market: the intervals to stream, and per refresh interval the timeframes its ticks wait for.
import { INTERVALS, type Interval, type Trader } from '../domain.ts';

/** Every timeframe some trader reads, in INTERVALS order. */
export function intervalsOf(traders: Iterable<Trader>): Interval[] {
  const intervals = new Set<Interval>();
  for (const trader of traders) for (const timeframe of trader.timeframes) intervals.add(timeframe);
  return INTERVALS.filter((interval) => intervals.has(interval));
}

/** Refresh interval → every timeframe its traders read. */
export function scheduleOf(traders: Iterable<Trader>): Map<Interval, Interval[]> {
  const schedule = new Map<Interval, Set<Interval>>();
  for (const trader of traders) {
    const timeframes = schedule.get(trader.filter.refreshInterval) ?? new Set<Interval>();
    for (const timeframe of trader.timeframes) timeframes.add(timeframe);
    schedule.set(trader.filter.refreshInterval, timeframes);
  }
  return new Map([...schedule].map(([interval, timeframes]) => [interval, [...timeframes]]));
}
