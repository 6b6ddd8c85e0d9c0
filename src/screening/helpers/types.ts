// Shapes the helper library reads and returns (types only: nothing here reaches the isolates).

/** Binance's 12-field kline; values are numbers in the worker, strings in the browser (both are accepted). */
export type Kline = ArrayLike<number | string>;
export type Series = Array<number | null>;

export interface VolumeNode {
  price: number;
  volume: number;
  buyVolume: number;
  sellVolume: number;
  strength: number;
  priceRange: [number, number];
}

export interface HVNOptions {
  bins?: number;
  threshold?: number;
  lookback?: number;
  minStrength?: number;
  peakTolerance?: number;
  cacheKey?: string;
}
