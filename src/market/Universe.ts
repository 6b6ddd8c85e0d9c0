// Which symbols the worker watches: the configured list validated against the exchange, or the top USDT pairs by volume.
import { EventEmitter } from 'node:events';
import type { Clock, TimerHandle } from '../clock.ts';
import { LifecycleGuard } from '../lifecycle.ts';
import type { Logger } from '../logger.ts';
import type { Lifecycle, LifecycleState } from '../ports.ts';
import type { BinanceRestClient } from './BinanceRestClient.ts';

export interface UniverseResolution {
  symbols: string[];
  dropped: Array<{ symbol: string; reason: string }>;
}

export interface UniverseChange {
  symbols: string[];
  added: string[];
  removed: string[];
}

export interface UniverseOptions {
  rest: Pick<BinanceRestClient, 'exchangeInfo' | 'tickers24h'>;
  symbols?: string[];
  maxSymbols: number;
  clock: Clock;
  logger: Logger;
  refreshMs?: number;
}

export class Universe extends EventEmitter<{ changed: [UniverseChange] }> implements Lifecycle {
  private readonly options: UniverseOptions;
  private readonly log: Logger;
  private readonly lifecycle = new LifecycleGuard('Universe');
  private current: string[] = [];
  private refreshTimer: TimerHandle | undefined;
  private refreshing: Promise<void> | null = null;

  constructor(options: UniverseOptions) {
    super();
    this.options = options;
    this.log = options.logger.child({ component: 'universe' });
  }

  get state(): LifecycleState {
    return this.lifecycle.state;
  }

  symbols(): string[] {
    return [...this.current];
  }

  async resolve(): Promise<UniverseResolution> {
    const [info, tickers] = await Promise.all([
      this.options.rest.exchangeInfo(),
      this.options.symbols && this.options.symbols.length > 0 ? Promise.resolve([]) : this.options.rest.tickers24h(),
    ]);
    const bySymbol = new Map(info.map((entry) => [entry.symbol, entry]));
    const dropped: UniverseResolution['dropped'] = [];
    let symbols: string[];
    if (this.options.symbols && this.options.symbols.length > 0) {
      symbols = [];
      for (const raw of this.options.symbols) {
        const symbol = raw.trim().toUpperCase();
        const entry = bySymbol.get(symbol);
        let reason: string | null = null;
        if (!entry) reason = 'unknown symbol';
        else if (entry.status !== 'TRADING') reason = `status ${entry.status}`;
        else if (!entry.spotTrading) reason = 'not a spot market';
        if (reason) {
          dropped.push({ symbol, reason });
          this.log.warn({ event: 'universe_dropped', symbol, reason }, 'symbol dropped from universe');
        } else if (!symbols.includes(symbol)) symbols.push(symbol);
      }
    } else {
      const volume = new Map(tickers.map((ticker) => [ticker.symbol, ticker.quoteVolume]));
      symbols = info
        .filter((entry) => entry.status === 'TRADING' && entry.spotTrading && entry.quoteAsset === 'USDT')
        .map((entry) => entry.symbol)
        .sort((a, b) => (volume.get(b) ?? 0) - (volume.get(a) ?? 0) || (a < b ? -1 : 1))
        .slice(0, this.options.maxSymbols);
    }
    this.update(symbols);
    return { symbols, dropped };
  }

  /** Hourly refresh; the first resolve is the caller's (MarketData.start). */
  start(): Promise<void> {
    return this.lifecycle.start(async () => {
      this.refreshTimer = this.options.clock.setInterval(() => void this.refresh(), this.options.refreshMs ?? 3_600_000);
    });
  }

  stop(): Promise<void> {
    return this.lifecycle.stop(async () => {
      this.options.clock.clearInterval(this.refreshTimer);
      this.refreshTimer = undefined;
      await this.refreshing;
    });
  }

  private refresh(): Promise<void> {
    this.refreshing ??= this.resolve()
      .then(() => undefined)
      .catch((error: unknown) => this.log.warn({ event: 'universe_refresh_failed', error: (error as Error).message }, 'universe refresh failed'))
      .finally(() => {
        this.refreshing = null;
      });
    return this.refreshing;
  }

  private update(symbols: string[]): void {
    const before = new Set(this.current);
    const after = new Set(symbols);
    const added = symbols.filter((symbol) => !before.has(symbol));
    const removed = this.current.filter((symbol) => !after.has(symbol));
    const first = this.current.length === 0;
    this.current = [...symbols];
    if (!first && (added.length > 0 || removed.length > 0)) {
      this.log.info({ event: 'universe_changed', added, removed, symbols: symbols.length }, 'universe changed');
      this.emit('changed', { symbols: [...symbols], added, removed });
    }
  }
}
