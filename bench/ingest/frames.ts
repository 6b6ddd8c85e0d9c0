// The ingest benchmark's traffic: combined-stream frames as Binance sends them for a universe, in arrival order, built once.
import { buildCatalog } from '../../dev/binanceSim/catalog.ts';
import { MarketModel } from '../../dev/binanceSim/market.ts';
import { klineEvent, tickerEvent } from '../../dev/binanceSim/wire.ts';
import { candleOpenTimeAt, intervalMs, type Interval } from '../../src/domain.ts';

export interface ReplaySpec {
  symbols: number;
  intervals: Interval[];
  frames: number;
}

/** Four seconds before an hour ends, so even a short replay carries a close of every interval. */
export const REPLAY_START = Date.UTC(2026, 0, 5, 0, 59, 56);

/**
 * Binance's cadence for a universe: every symbol's `@ticker` each second, every kline stream's
 * update every 2 s, and each closing kline (`x: true`) when its candle ends, wrapped in the
 * combined-stream envelope (https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams).
 * Candles come from the simulator's market model, so values and field formats are the simulator's.
 */
export function buildReplayFrames(spec: ReplaySpec): string[] {
  const market = new MarketModel(buildCatalog(spec.symbols, 3));
  const symbols = market
    .specs()
    .filter((s) => s.status === 'TRADING' && s.quoteAsset === 'USDT')
    .slice(0, spec.symbols)
    .map((s) => s.symbol);
  const frames: string[] = [];
  const push = (stream: string, data: object) => frames.push(`{"stream":"${stream}","data":${JSON.stringify(data)}}`);
  for (let second = 0; frames.length < spec.frames; second++) {
    const now = REPLAY_START + second * 1000;
    for (const symbol of symbols) {
      const lower = symbol.toLowerCase();
      for (const interval of spec.intervals) {
        const stream = `${lower}@kline_${interval}`;
        const openTime = candleOpenTimeAt(interval, now);
        if (second > 0 && candleOpenTimeAt(interval, now - 1000) < openTime) {
          const closing = openTime - intervalMs(interval);
          push(stream, klineEvent(symbol, interval, market.candle(symbol, interval, closing), true, now));
        }
        if (second % 2 === 0) push(stream, klineEvent(symbol, interval, market.forming(symbol, interval, openTime, now), false, now));
      }
      push(`${lower}@ticker`, tickerEvent(market.ticker(symbol, now)));
    }
  }
  return frames.slice(0, spec.frames);
}

/** The symbols the frames carry, for the client's subscription. */
export function replaySymbols(count: number): string[] {
  return buildCatalog(count, 3)
    .filter((s) => s.status === 'TRADING' && s.quoteAsset === 'USDT')
    .slice(0, count)
    .map((s) => s.symbol);
}

/** Server-to-client WebSocket text frames (RFC 6455 §5.2: FIN, opcode 1, no mask), back to back in one buffer. */
export function encodeTextFrames(frames: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  for (const frame of frames) {
    const payload = Buffer.from(frame, 'utf8');
    let header: Buffer;
    if (payload.length < 126) {
      header = Buffer.from([0x81, payload.length]);
    } else if (payload.length < 65_536) {
      header = Buffer.alloc(4);
      header[0] = 0x81;
      header[1] = 126;
      header.writeUInt16BE(payload.length, 2);
    } else {
      header = Buffer.alloc(10);
      header[0] = 0x81;
      header[1] = 127;
      header.writeBigUInt64BE(BigInt(payload.length), 2);
    }
    parts.push(header, payload);
  }
  return Buffer.concat(parts);
}
