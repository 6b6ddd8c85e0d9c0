// One combined-stream connection's I/O loop: connect, liveness, paced control messages, reconnect, rotation with overlap.
import WebSocket from 'ws';
import type { Clock, TimerHandle } from '../clock.ts';
import type { Logger } from '../logger.ts';
import type { ConnectionStateEvent } from '../ports.ts';
import { backoffDelay } from '../backoff.ts';
import { combinedStreamUrl } from './subscriptions.ts';

export interface StreamConnectionOptions {
  id: string;
  baseUrl: string;
  clock: Clock;
  logger: Logger;
  streams: readonly string[];
  silenceTimeoutMs: number;
  rotateAfterMs: number;
  openTimeoutMs: number;
  /**
   * Resolves when opening one more connection keeps the IP under Binance's connection-rate limit,
   * with a function to call once the attempt has settled.
   */
  connectGate: () => Promise<() => void>;
  onFrame: (text: string, receivedAt: number, connectionId: string) => void;
  onState: (event: ConnectionStateEvent) => void;
  /** The connection came back after a loss: whatever was sent meanwhile is gone. */
  onReconnected: (disconnectedAt: number) => void;
}

/**
 * https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams: at most 5 incoming
 * messages per second per connection (pings, pongs and control messages), or the server disconnects.
 */
const CONTROL_INTERVAL_MS = 250;
const MAX_PARAMS_PER_MESSAGE = 200;
/**
 * Bound on the texts remembered for de-duplication while two sockets overlap. Past it the oldest are
 * forgotten, which can only let a duplicate through (the store is idempotent), never lose a frame.
 */
const MAX_REMEMBERED_FRAMES = 20_000;

/** A socket opened but not yet adopted: what it was opened for, and what it received meanwhile. */
interface PendingSocket {
  streams: ReadonlySet<string>;
  frames: Array<{ text: string; receivedAt: number }>;
}

export class StreamConnection {
  readonly id: string;
  private readonly options: StreamConnectionOptions;
  private readonly log: Logger;
  private readonly streamSet: Set<string>;
  private socket: WebSocket | null = null;
  private readonly intentionallyClosed = new WeakSet<WebSocket>();
  /**
   * Every socket of this connection from creation until its 'close'. Binance may send right after
   * the upgrade, before we adopt the socket, so each socket's frames are listened to from creation.
   */
  private readonly sockets = new Set<WebSocket>();
  /** Opened, not yet adopted: frames are held here and delivered in order on adoption. */
  private readonly pending = new Map<WebSocket, PendingSocket>();
  /** Replaced by a newer socket and closing: its stream frames still count unless the newer one had them. */
  private readonly retiring = new Set<WebSocket>();
  /** While sockets overlap: each delivered frame's text and the socket it came from. */
  private readonly recentFrames = new Map<string, WebSocket>();
  private stopped = false;
  private attempt = 0;
  private lastFrameAt = 0;
  private openedAt = 0;
  private disconnectedAt: number | null = null;
  private nextControlId = 1;
  private readonly controlQueue: Array<{ method: 'SUBSCRIBE' | 'UNSUBSCRIBE'; params: string[] }> = [];
  private lastControlAt = 0;
  private replacing: Promise<void> | null = null;
  private silenceTimer: TimerHandle | undefined;
  private reconnectTimer: TimerHandle | undefined;
  private controlTimer: TimerHandle | undefined;
  private rotateTimer: TimerHandle | undefined;
  /** Counters for stats. */
  reconnects = 0;
  /** Frames not delivered because another socket of this connection already delivered the same text. */
  duplicates = 0;
  /** Frames not delivered because their socket was no longer wanted (stopped, or closed before adoption). */
  discarded = 0;

  constructor(options: StreamConnectionOptions) {
    this.id = options.id;
    this.options = options;
    this.log = options.logger.child({ connectionId: options.id });
    this.streamSet = new Set(options.streams);
  }

  get streams(): ReadonlySet<string> {
    return this.streamSet;
  }

  get isOpen(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  /** Resolves once the first socket is open; if that fails, keeps retrying in the background and rejects. */
  async start(): Promise<void> {
    this.stopped = false;
    this.armSilenceCheck();
    try {
      this.adopt(await this.open());
    } catch (error) {
      // Whatever these streams carry until the retry succeeds is lost: report it as a gap then.
      this.disconnectedAt ??= this.options.clock.now();
      this.scheduleReconnect((error as Error).message);
      throw error;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.options.clock.clearInterval(this.silenceTimer);
    this.options.clock.clearTimeout(this.reconnectTimer);
    this.options.clock.clearTimeout(this.controlTimer);
    this.options.clock.clearTimeout(this.rotateTimer);
    this.silenceTimer = this.reconnectTimer = this.controlTimer = this.rotateTimer = undefined;
    const socket = this.socket;
    this.socket = null;
    if (socket) await this.discard(socket);
    this.options.onState({ connectionId: this.id, state: 'closed', streams: this.streamSet.size, reason: 'stopped' });
  }

  subscribe(streams: readonly string[]): void {
    const added = streams.filter((stream) => !this.streamSet.has(stream));
    for (const stream of added) this.streamSet.add(stream);
    this.enqueue('SUBSCRIBE', added);
  }

  unsubscribe(streams: readonly string[]): void {
    const removed = streams.filter((stream) => this.streamSet.delete(stream));
    this.enqueue('UNSUBSCRIBE', removed);
  }

  /**
   * Open a fresh socket with the current streams and close the old one only once the new one is
   * open, so nothing is missed: used for the 24 h rotation and for `serverShutdown`.
   */
  replace(reason: string): Promise<void> {
    if (this.replacing) return this.replacing;
    this.log.info({ event: 'stream_rotate', reason }, 'replacing connection');
    this.replacing = this.open()
      .then(
        (fresh) => {
          if (this.stopped) void this.discard(fresh);
          else this.adopt(fresh);
        },
        (error: unknown) => {
          this.log.warn({ event: 'stream_rotate_failed', reason, error: (error as Error).message }, 'replacement failed');
          // The old socket may still be fine; the silence check or its close handler takes it from here.
        },
      )
      .finally(() => {
        this.replacing = null;
      });
    return this.replacing;
  }

  private enqueue(method: 'SUBSCRIBE' | 'UNSUBSCRIBE', params: string[]): void {
    // Queued control messages are replayed in the URL of any new socket, so only a live socket needs them.
    for (let i = 0; i < params.length; i += MAX_PARAMS_PER_MESSAGE) this.controlQueue.push({ method, params: params.slice(i, i + MAX_PARAMS_PER_MESSAGE) });
    this.pumpControl();
  }

  private pumpControl(): void {
    if (this.controlTimer !== undefined || this.stopped) return;
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      this.controlQueue.length = 0;
      return;
    }
    const wait = this.lastControlAt + CONTROL_INTERVAL_MS - this.options.clock.now();
    if (wait > 0) {
      this.controlTimer = this.options.clock.setTimeout(() => {
        this.controlTimer = undefined;
        this.pumpControl();
      }, wait);
      return;
    }
    const message = this.controlQueue.shift();
    if (!message) return;
    this.lastControlAt = this.options.clock.now();
    socket.send(JSON.stringify({ method: message.method, params: message.params, id: this.nextControlId++ }));
    if (this.controlQueue.length > 0) this.pumpControl();
  }

  private async open(): Promise<WebSocket> {
    const settled = await this.options.connectGate();
    const streams = [...this.streamSet];
    this.options.onState({ connectionId: this.id, state: 'connecting', streams: streams.length });
    const socket = new WebSocket(combinedStreamUrl(this.options.baseUrl, streams));
    this.sockets.add(socket);
    this.pending.set(socket, { streams: new Set(streams), frames: [] });
    socket.on('message', (data: WebSocket.RawData) => this.onMessage(socket, (data as Buffer).toString(), this.options.clock.now()));
    socket.on('close', (code: number, reason: Buffer) => this.onClose(socket, code, reason.toString()));
    // Any frame proves liveness; ws answers pings with a pong by itself (autoPong, default true).
    socket.on('ping', () => {
      if (this.socket === socket) this.lastFrameAt = this.options.clock.now();
    });
    socket.on('pong', () => {
      if (this.socket === socket) this.lastFrameAt = this.options.clock.now();
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = this.options.clock.setTimeout(() => {
          socket.terminate();
          reject(new Error('open timed out'));
        }, this.options.openTimeoutMs);
        socket.once('open', () => {
          this.options.clock.clearTimeout(timer);
          resolve();
        });
        socket.once('error', (error) => {
          this.options.clock.clearTimeout(timer);
          reject(error);
        });
      });
    } catch (error) {
      this.pending.delete(socket);
      throw error;
    } finally {
      settled();
    }
    socket.on('error', (error) => this.log.debug({ event: 'stream_error', error: error.message }, 'socket error'));
    return socket;
  }

  /**
   * Make `socket` the live one and deliver, in order, what it received before now; any previous
   * socket (rotation, or a race with a reconnect) is retired.
   */
  private adopt(socket: WebSocket): void {
    const previous = this.socket;
    const early = this.pending.get(socket);
    this.pending.delete(socket);
    this.options.clock.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.socket = socket;
    if (previous && previous !== socket) {
      // Frames already on their way on the old socket may predate the new one's subscription: keep them, minus duplicates.
      this.retiring.add(previous);
      void closeSocket(previous, this.intentionallyClosed);
    }
    const now = this.options.clock.now();
    this.lastFrameAt = now;
    this.openedAt = now;
    this.attempt = 0;
    this.options.onState({ connectionId: this.id, state: 'open', streams: this.streamSet.size });
    this.log.info({ event: 'stream_connected', streams: this.streamSet.size }, 'stream connected');
    this.armRotation();
    if (this.disconnectedAt !== null) {
      const disconnectedAt = this.disconnectedAt;
      this.disconnectedAt = null;
      this.options.onReconnected(disconnectedAt);
    }
    for (const frame of early?.frames ?? []) this.deliver(socket, frame.text, frame.receivedAt);
    if (early) this.catchUpStreams(early.streams);
    // It may have closed before we adopted it, when nobody was listening for that: handle it as a loss now.
    if (socket.readyState === WebSocket.CLOSED) this.onClose(socket, 1006, 'closed before adoption');
  }

  /** Streams (un)subscribed while the socket was opening are missing from its URL: send them now. */
  private catchUpStreams(opened: ReadonlySet<string>): void {
    // Anything still queued was meant for the previous socket; the difference below covers it.
    this.controlQueue.length = 0;
    const added = [...this.streamSet].filter((stream) => !opened.has(stream));
    const removed = [...opened].filter((stream) => !this.streamSet.has(stream));
    if (removed.length > 0) this.enqueue('UNSUBSCRIBE', removed);
    if (added.length > 0) this.enqueue('SUBSCRIBE', added);
  }

  private onMessage(socket: WebSocket, text: string, receivedAt: number): void {
    if (socket === this.socket) return this.deliver(socket, text, receivedAt);
    const early = this.pending.get(socket);
    if (early) {
      early.frames.push({ text, receivedAt });
      return;
    }
    // A retiring socket's control replies and serverShutdown concern only that socket; its stream data may still be news.
    if (this.retiring.has(socket) && text.startsWith('{"stream":')) return this.deliver(socket, text, receivedAt);
    this.discarded++;
  }

  /**
   * While two sockets overlap both carry the same events: a text another socket already delivered
   * is a duplicate. Only exact copies are dropped, so a frame one socket alone carried still goes through.
   */
  private deliver(socket: WebSocket, text: string, receivedAt: number): void {
    if (this.sockets.size > 1) {
      const from = this.recentFrames.get(text);
      if (from !== undefined && from !== socket) {
        this.recentFrames.delete(text);
        this.duplicates++;
        return;
      }
      this.recentFrames.set(text, socket);
      if (this.recentFrames.size > MAX_REMEMBERED_FRAMES) this.recentFrames.delete(this.recentFrames.keys().next().value!);
    }
    if (socket === this.socket) this.lastFrameAt = receivedAt;
    this.options.onFrame(text, receivedAt, this.id);
  }

  /** Close a socket nobody will adopt; whatever it held back is counted, not delivered. */
  private discard(socket: WebSocket): Promise<void> {
    this.discarded += this.pending.get(socket)?.frames.length ?? 0;
    this.pending.delete(socket);
    return closeSocket(socket, this.intentionallyClosed);
  }

  private armRotation(): void {
    this.options.clock.clearTimeout(this.rotateTimer);
    // Binance ends a connection after 24 h; rotate before that, with overlap.
    this.rotateTimer = this.options.clock.setTimeout(() => {
      this.rotateTimer = undefined;
      if (!this.stopped) void this.replace('rotation');
    }, this.options.rotateAfterMs);
  }

  private armSilenceCheck(): void {
    const period = Math.max(50, Math.floor(this.options.silenceTimeoutMs / 4));
    this.silenceTimer = this.options.clock.setInterval(() => {
      const socket = this.socket;
      if (!socket || this.stopped) return;
      const silentFor = this.options.clock.now() - this.lastFrameAt;
      if (silentFor > this.options.silenceTimeoutMs) {
        this.log.warn({ event: 'stream_silent', silentFor }, 'connection silent, reconnecting');
        // A half-open TCP connection may never deliver 'close' on its own: terminate, then reconnect.
        socket.terminate();
      }
    }, period);
  }

  private onClose(socket: WebSocket, code: number, reason: string): void {
    this.sockets.delete(socket);
    this.retiring.delete(socket);
    if (this.sockets.size <= 1) this.recentFrames.clear();
    // A socket that closes before adoption keeps its frames: adopt() delivers them, then handles the close.
    if (this.intentionallyClosed.has(socket) || this.socket !== socket) return;
    this.socket = null;
    this.disconnectedAt ??= this.options.clock.now();
    this.options.clock.clearTimeout(this.rotateTimer);
    if (this.stopped) return;
    this.log.warn({ event: 'stream_disconnected', code, reason, openForMs: this.options.clock.now() - this.openedAt }, 'stream disconnected');
    this.scheduleReconnect(`closed ${code}`);
  }

  private scheduleReconnect(reason: string): void {
    if (this.stopped || this.reconnectTimer !== undefined) return;
    const delay = backoffDelay(this.attempt++, { baseMs: 500, maxMs: 30_000 });
    this.options.onState({ connectionId: this.id, state: 'reconnecting', streams: this.streamSet.size, reason });
    this.reconnectTimer = this.options.clock.setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.stopped) return;
      this.reconnects++;
      this.open().then(
        (socket) => {
          if (this.stopped) void this.discard(socket);
          else this.adopt(socket);
        },
        (error: unknown) => this.scheduleReconnect((error as Error).message),
      );
    }, delay);
  }
}

/** Mark the close as ours first so nothing reconnects behind our back; force after a deadline. */
function closeSocket(socket: WebSocket, intentional: WeakSet<WebSocket>): Promise<void> {
  intentional.add(socket);
  if (socket.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    // A real-time deadline on purpose: the closing handshake runs on the network, not on the worker's clock.
    const force = setTimeout(() => {
      socket.terminate();
      resolve();
    }, 2_000);
    socket.once('close', () => {
      clearTimeout(force);
      resolve();
    });
    if (socket.readyState === WebSocket.CONNECTING) socket.terminate();
    else socket.close(1000, 'closing');
  });
}
