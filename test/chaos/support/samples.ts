// The soak's hourly samples of the worker's own stats lines, and the trend fitted through them.
import type { ClockedLine } from './worker.ts';

const HOUR = 3_600_000;

export interface HourlySample {
  hour: number;
  rssMb: number;
  heapUsedMb: number;
  eventLoopLagP99Ms: number;
  tickMeanMs: number;
  tickMaxMs: number;
  messagesPerSecond: number;
}

/**
 * One sample per simulated hour from that hour's stats lines (one per simulated minute): RSS as the hour's
 * median, heap as its floor, event-loop lag and tick time at their worst, tick time also as a mean.
 * Tick times are converted to real milliseconds: the worker measures them on its accelerated clock.
 */
export function hourlySamples(lines: ClockedLine[], startedAt: number, speed: number): HourlySample[] {
  const byHour = new Map<number, ClockedLine[]>();
  for (const line of lines) {
    const hour = Math.floor((line.at - startedAt) / HOUR) + 1;
    if (hour < 1) continue;
    byHour.set(hour, [...(byHour.get(hour) ?? []), line]);
  }
  const samples: HourlySample[] = [];
  const last = Math.floor((Math.max(startedAt, ...lines.map((line) => line.at)) - startedAt) / HOUR);
  for (let hour = 1; hour <= last; hour++) {
    const hourLines = byHour.get(hour);
    if (!hourLines || hourLines.length === 0) continue;
    const rss = hourLines.map((line) => Number(line.rssMb)).sort((a, b) => a - b);
    const ticks = hourLines.reduce((sum, line) => sum + Number(line.ticks ?? 0), 0);
    const tickTime = hourLines.reduce((sum, line) => sum + Number(line.tickMeanMs ?? 0) * Number(line.ticks ?? 0), 0);
    samples.push({
      hour,
      rssMb: rss[Math.floor((rss.length - 1) / 2)]!,
      // The heap saw-tooths between collections; its floor over the hour is what a leak would raise.
      heapUsedMb: Math.min(...hourLines.map((line) => Number(line.heapUsedMb))),
      eventLoopLagP99Ms: Math.max(...hourLines.map((line) => Number(line.eventLoopLagP99Ms ?? 0))),
      tickMeanMs: ticks === 0 ? 0 : Math.round(tickTime / ticks / speed),
      tickMaxMs: Math.round(Math.max(...hourLines.map((line) => Number(line.tickMaxMs ?? 0))) / speed),
      messagesPerSecond: Math.round(hourLines.reduce((sum, line) => sum + Number(line.messagesPerSecond ?? 0), 0) / hourLines.length),
    });
  }
  return samples;
}

/** Least-squares slope of `values` against their index. */
export function slope(values: number[]): number {
  const n = values.length;
  if (n < 2) return 0;
  const meanX = (n - 1) / 2;
  const meanY = values.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  values.forEach((value, index) => {
    num += (index - meanX) * (value - meanY);
    den += (index - meanX) ** 2;
  });
  return num / den;
}
