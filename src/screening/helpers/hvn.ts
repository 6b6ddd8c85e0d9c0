// High-volume nodes and the queries over them. Same as the web app.
import { hvnSettings, spreadVolume, toNumber, volumeNodes } from './internal.ts';
import type { HVNOptions, Kline, VolumeNode } from './types.ts';

/**
 * High-volume nodes of the last `lookback` klines: volume spread evenly over the price bins each
 * candle spans, peaks above the `threshold` percentile that beat both neighbours by
 * `peakTolerance` and reach `minStrength` % of the biggest bin; strongest first.
 * `cacheKey` is accepted and ignored: results are memoized per tick by the screener instead.
 */
export function calculateHighVolumeNodes(klines: ArrayLike<Kline>, options: HVNOptions = {}): VolumeNode[] {
  const { bins, threshold, lookback, minStrength, peakTolerance } = hvnSettings(options);
  if (!klines || klines.length === 0) return [];
  const start = Math.max(0, klines.length - lookback);
  let minPrice = Infinity;
  let maxPrice = -Infinity;
  for (let i = start; i < klines.length; i++) {
    const low = toNumber(klines[i]![3]);
    const high = toNumber(klines[i]![2]);
    if (low < minPrice) minPrice = low;
    if (high > maxPrice) maxPrice = high;
  }
  if (!Number.isFinite(minPrice) || !Number.isFinite(maxPrice) || minPrice >= maxPrice) return [];
  const binSize = (maxPrice - minPrice) / bins;
  const volumeByBin: number[] = new Array(bins).fill(0);
  const buyByBin: number[] = new Array(bins).fill(0);
  for (let i = start; i < klines.length; i++) {
    const kline = klines[i]!;
    const open = toNumber(kline[1]);
    const high = toNumber(kline[2]);
    const low = toNumber(kline[3]);
    const close = toNumber(kline[4]);
    const volume = toNumber(kline[5]);
    const buyVolume = toNumber(kline[9]);
    if (![open, high, low, close, volume].every(Number.isFinite)) continue;
    spreadVolume(volumeByBin, buyByBin, minPrice, binSize, open, high, low, close, volume, buyVolume);
  }
  return volumeNodes(volumeByBin, buyByBin, minPrice, binSize, threshold, minStrength, peakTolerance);
}

/** True when a node lies within `tolerance` percent of `price`. */
export function isNearHVN(price: number, hvnNodes: VolumeNode[], tolerance: number = 0.5): boolean {
  if (!hvnNodes || hvnNodes.length === 0 || !Number.isFinite(price)) return false;
  const allowed = price * (tolerance / 100);
  for (const node of hvnNodes) if (Math.abs(price - node.price) <= allowed) return true;
  return false;
}

/** The node nearest to `price`, optionally only 'above' or 'below' it; null if none. */
export function getClosestHVN(price: number, hvnNodes: VolumeNode[], direction: 'above' | 'below' | 'both' = 'both'): VolumeNode | null {
  if (!hvnNodes || hvnNodes.length === 0 || !Number.isFinite(price)) return null;
  let closest: VolumeNode | null = null;
  let closestDistance = Infinity;
  for (const node of hvnNodes) {
    const distance = node.price - price;
    if (direction === 'above' && distance < 0) continue;
    if (direction === 'below' && distance > 0) continue;
    if (Math.abs(distance) < closestDistance) {
      closestDistance = Math.abs(distance);
      closest = node;
    }
  }
  return closest;
}

/**
 * Number of nodes priced within [priceLow, priceHigh], compared as the web app compares them:
 * infinite bounds are open ends ((0, Infinity) counts every node) and a NaN bound matches nothing.
 */
export function countHVNInRange(priceLow: number, priceHigh: number, hvnNodes: VolumeNode[]): number {
  if (!hvnNodes || !hvnNodes.length) return 0;
  let count = 0;
  for (let i = 0; i < hvnNodes.length; i++) {
    const node = hvnNodes[i];
    if (node && node.price >= priceLow && node.price <= priceHigh) count++;
  }
  return count;
}

/** Kept for filters written against the web app, whose HVN cache it cleared; nothing to clear here. */
export function clearHVNCache(_cacheKey?: string): void {}
