// Benchmark 1, ingest: stream frames parsed and applied per second through the real BinanceWebSocketClient into the MarketStore.
import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { systemClock } from '../src/clock.ts';
import type { Interval } from '../src/domain.ts';
import { silentLogger } from '../src/logger.ts';
import { BinanceWebSocketClient } from '../src/market/BinanceWebSocketClient.ts';
import { MarketStore } from '../src/market/MarketStore.ts';
import { type Benchmark, type BenchContext, distribution, goal, medianFigure, repeat } from './benchmark.ts';
import { buildReplayFrames, replaySymbols, type ReplaySpec } from './ingest/frames.ts';

const INTERVALS: Interval[] = ['1m', '5m', '15m', '1h'];
const GOAL_PER_SECOND = 100_000;

interface Pass {
  perSecond: number;
  perCpuSecond: number;
  closed: number;
}

function client(baseUrl: string): BinanceWebSocketClient {
  // One connection for all 1000 streams (Binance allows 1024): one socket, one core, nothing else.
  return new BinanceWebSocketClient({ baseUrl, clock: systemClock, logger: silentLogger(), streamsPerConnection: 1024, silenceTimeoutMs: 60_000 });
}

/** Apply the client's events to a fresh store as MarketData does; `done` resolves when `frames` have been applied. */
function receive(ws: BinanceWebSocketClient, frames: number): { done: Promise<Pass>; result: () => Pass | undefined } {
  const store = new MarketStore({ history: 500, clock: systemClock });
  let count = 0;
  let closed = 0;
  let firstAt = 0;
  let firstCpu = process.cpuUsage();
  let result: Pass | undefined;
  let finish: (pass: Pass) => void = () => undefined;
  const done = new Promise<Pass>((resolve) => (finish = resolve));
  const counted = () => {
    count++;
    if (count === 1) {
      firstAt = performance.now();
      firstCpu = process.cpuUsage();
    } else if (count === frames) {
      const seconds = (performance.now() - firstAt) / 1000;
      const cpu = process.cpuUsage(firstCpu);
      result = { perSecond: (frames - 1) / seconds, perCpuSecond: (frames - 1) / ((cpu.user + cpu.system) / 1e6), closed };
      finish(result);
    }
  };
  ws.on('kline', (event) => {
    if (store.applyCandle(event.symbol, event.interval, event.candle, event.closed, 'stream', event.receivedAt) === 'closed') closed++;
    counted();
  });
  ws.on('ticker', (ticker) => {
    store.applyTicker(ticker);
    counted();
  });
  return { done, result: () => result };
}

async function throughSocket(port: number, spec: ReplaySpec): Promise<Pass> {
  const ws = client(`ws://127.0.0.1:${port}`);
  const { done } = receive(ws, spec.frames);
  await ws.setStreams({ symbols: replaySymbols(spec.symbols), intervals: spec.intervals });
  await ws.start();
  const pass = await withDeadline(done, 120_000, 'ingest frames');
  const stats = ws.stats();
  await ws.stop();
  if (stats.malformed > 0 || stats.unknownEvents > 0) throw new Error(`ingest: ${stats.malformed} malformed and ${stats.unknownEvents} unknown frames`);
  return pass;
}

function withoutSocket(frames: readonly string[]): Pass {
  const ws = client('ws://unused');
  const { result } = receive(ws, frames.length);
  const receivedAt = systemClock.now();
  for (const frame of frames) ws.handleFrame(frame, receivedAt);
  return result() ?? failed();
}

function failed(): never {
  throw new Error('ingest: not every frame reached the store');
}

export const ingest: Benchmark = {
  name: 'ingest',
  title: 'Ingest: stream messages parsed and applied per second, one core',
  async run(context: BenchContext) {
    const full = context.mode === 'full';
    const spec: ReplaySpec = { symbols: 200, intervals: INTERVALS, frames: full ? 150_000 : 4_000 };
    const plan = full ? { warmup: 1, repetitions: 5 } : { warmup: 0, repetitions: 1 };
    context.progress(`ingest: building ${spec.frames} frames`);
    // As text decoded off a socket is: flat strings, not the concatenations the builder made.
    const frames = buildReplayFrames(spec).map((frame) => Buffer.from(frame, 'utf8').toString('utf8'));
    const server = await startReplayServer(spec);
    try {
      const passes = await repeat(plan, async (index) => {
        // Side by side: the socket path and the same frames handed straight to handleFrame.
        const socket = await throughSocket(server.port, spec);
        await settle();
        const direct = withoutSocket(frames);
        await settle();
        if (index >= 0) context.progress(`ingest: ${Math.round(socket.perSecond)}/s through the socket, ${Math.round(direct.perSecond)}/s without`);
        return { socket, direct };
      });
      const socket = distribution(passes.map((pass) => pass.socket.perSecond));
      const socketCpu = distribution(passes.map((pass) => pass.socket.perCpuSecond));
      const direct = distribution(passes.map((pass) => pass.direct.perSecond));
      const ratio = distribution(passes.map((pass) => pass.socket.perSecond / pass.direct.perSecond));
      const closes = passes[0]!.socket.closed;
      if (closes === 0) throw new Error('ingest: no candle closed in the store');
      return {
        name: 'ingest',
        title: ingest.title,
        figures: [
          medianFigure('through the socket (wall clock)', socket, 'msg/s', {
            goal: goal(context.mode, `≥ ${GOAL_PER_SECOND.toLocaleString('en-US')}/s`, socket.median >= GOAL_PER_SECOND),
          }),
          medianFigure('through the socket, per CPU-second of the process', socketCpu, 'msg/s'),
          medianFigure('same frames to handleFrame, no socket', direct, 'msg/s'),
          medianFigure('socket ÷ no socket', ratio, '×'),
        ],
        tables: [],
        notes: [
          `${spec.frames.toLocaleString('en-US')} combined-stream frames per pass (${spec.symbols} symbols × ${spec.intervals.join('/')} klines every 2 s, closes at candle ends, @ticker every second: Binance's cadence), ${Math.round(server.bytes / spec.frames)} bytes each on average, pre-encoded by a replay server in a child process on loopback; one client connection (1000 streams), events applied to a MarketStore as MarketData does. The server waits 100 ms after the handshake before sending: frames that arrive before the client has adopted its new socket are dropped uncounted (src/market/connection.ts), which would stall a pass.`,
          `${plan.warmup} warm-up and ${plan.repetitions} measured passes; median with min–max. ${closes} candle closes stored per pass.`,
        ],
      };
    } finally {
      server.child.kill();
    }
  },
};

async function startReplayServer(spec: ReplaySpec): Promise<{ child: ChildProcess; port: number; bytes: number }> {
  const child = fork(join(import.meta.dirname, 'ingest', 'replayServer.ts'), [JSON.stringify(spec)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const ready = new Promise<{ port: number; bytes: number }>((resolve, reject) => {
    child.once('message', (message) => resolve(message as { port: number; bytes: number }));
    child.once('exit', (code) => reject(new Error(`ingest replay server exited with ${code}`)));
  });
  const { port, bytes } = await withDeadline(ready, 120_000, 'the replay server');
  return { child, port, bytes };
}

/** Let the previous pass's garbage and sockets go before the next one starts its clock. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 200));
}

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
