// Stream names and how streams are spread over connections within Binance's per-connection limits.
import { isInterval, type Interval } from '../domain.ts';

/** https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams: a connection may hold at most 1024 streams. */
const MAX_STREAMS_PER_CONNECTION = 1024;
/** Small shards so one reconnect (and its gap fill) touches a fraction of the universe. */
export const DEFAULT_STREAMS_PER_CONNECTION = 200;

function klineStream(symbol: string, interval: Interval): string {
  return `${symbol.toLowerCase()}@kline_${interval}`;
}

function tickerStream(symbol: string): string {
  return `${symbol.toLowerCase()}@ticker`;
}

export type StreamRef = { kind: 'kline'; symbol: string; interval: Interval } | { kind: 'ticker'; symbol: string };

/** Inverse of klineStream/tickerStream; symbols come back upper case as the REST API spells them. */
export function parseStreamName(name: string): StreamRef | undefined {
  const at = name.indexOf('@');
  if (at <= 0) return undefined;
  const symbol = name.slice(0, at).toUpperCase();
  const kind = name.slice(at + 1);
  if (kind === 'ticker') return { kind: 'ticker', symbol };
  if (kind.startsWith('kline_')) {
    const interval = kind.slice(6);
    if (isInterval(interval)) return { kind: 'kline', symbol, interval };
  }
  return undefined;
}

/** Every stream for these symbols and intervals, a symbol's streams kept next to each other. */
export function streamsFor(symbols: readonly string[], intervals: readonly Interval[]): string[] {
  const streams: string[] = [];
  for (const symbol of symbols) {
    streams.push(tickerStream(symbol));
    for (const interval of intervals) streams.push(klineStream(symbol, interval));
  }
  return streams;
}

export interface SubscriptionPlan {
  /** Per existing connection (same order as given): streams to add and to remove. */
  changes: Array<{ subscribe: string[]; unsubscribe: string[] }>;
  /** Streams for connections to open. */
  newConnections: string[][];
}

/**
 * Diff the desired streams against what each connection holds. Streams stay where they are (no
 * churn on unrelated connections); new ones fill spare room first, then new connections.
 */
export function planSubscriptions(current: ReadonlyArray<ReadonlySet<string>>, desired: readonly string[], perConnection: number): SubscriptionPlan {
  if (!(perConnection >= 1 && perConnection <= MAX_STREAMS_PER_CONNECTION)) throw new RangeError(`streams per connection must be 1..${MAX_STREAMS_PER_CONNECTION}, got ${perConnection}`);
  const wanted = new Set(desired);
  const held = new Set<string>();
  const changes = current.map((streams) => {
    const unsubscribe = [...streams].filter((stream) => !wanted.has(stream));
    for (const stream of streams) if (wanted.has(stream)) held.add(stream);
    return { subscribe: [] as string[], unsubscribe, size: streams.size - unsubscribe.length };
  });
  const missing = desired.filter((stream) => !held.has(stream));
  let next = 0;
  for (const change of changes) {
    while (next < missing.length && change.size < perConnection) {
      change.subscribe.push(missing[next++]!);
      change.size++;
    }
  }
  const newConnections: string[][] = [];
  while (next < missing.length) {
    newConnections.push(missing.slice(next, next + perConnection));
    next += perConnection;
  }
  return { changes: changes.map(({ subscribe, unsubscribe }) => ({ subscribe, unsubscribe })), newConnections };
}

export function combinedStreamUrl(baseUrl: string, streams: readonly string[]): string {
  return `${baseUrl.replace(/\/+$/, '')}/stream?streams=${streams.join('/')}`;
}
