// The market of the tests that run a worker: a Binance simulator on an accelerated clock, both starting now.
import { BinanceSimulator, type SimulatorOptions } from '../../dev/binanceSim/index.ts';
import { AcceleratedClock, systemClock } from '../../src/clock.ts';

export interface SimulatedMarket {
  /** Shared with the worker under test (in-process, or through its CLOCK variable), so both agree on candle closes. */
  clock: AcceleratedClock;
  simulator: BinanceSimulator;
}

/** Start a simulator on a clock `speed` times faster than real time from now; the caller stops the simulator. */
export async function startSimulatedMarket(speed: number, options: Omit<SimulatorOptions, 'clock'>): Promise<SimulatedMarket> {
  const now = systemClock.now();
  const clock = new AcceleratedClock({ speed, originRealMs: now, originClockMs: now });
  const simulator = new BinanceSimulator({ ...options, clock });
  await simulator.start();
  return { clock, simulator };
}
