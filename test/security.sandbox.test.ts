// A filter reaches nothing outside its own isolate: no network, files, environment, timers, host objects or other traders.
// Complements test/screening.sandbox.test.ts (Node globals, constructor chains, timers, memory bombs, shared rows).
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.ts';
import type { Trader } from '../src/domain.ts';
import { silentLogger } from '../src/logger.ts';
import { evaluateUnsandboxed } from '../bench/support/reference.ts';
import { Screener } from '../src/screening/Screener.ts';
import type { ScreenerRun, TraderTickOutcome } from '../src/ports.ts';
import { ROOT } from '../dev/workerProcess.ts';
import { makeTrader, TestMarket } from './screening.support.ts';

const SYMBOLS = ['AAAUSDT', 'BBBUSDT', 'CCCUSDT'];
const market = TestMarket.build({ symbols: SYMBOLS, intervals: ['1m'], candles: 200, lastCloseTime: Date.UTC(2026, 0, 10) - 1 });
const healthy = makeTrader(`const k = timeframes['1m']; return { match: k.length === 200, conditions: [String(k[k.length - 1][4])] };`);

/** In the environment the screener's threads inherit: nothing a filter runs may ever see it. */
const ENV_SECRET_NAME = 'SECURITY_TEST_SECRET';
const ENV_SECRET = `sb_secret_${'Kx7'.repeat(4)}CANARY${Date.now().toString(36)}`;

let screener: Screener;
/** Counts every TCP connection: a filter that reached the network would show up here. */
let trap: Server;
let trapConnections = 0;
let trapUrl: string;

beforeAll(async () => {
  process.env[ENV_SECRET_NAME] = ENV_SECRET;
  trap = createServer((socket) => {
    trapConnections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
  const address = trap.address();
  trapUrl = `127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  // One thread: every trader here shares a thread with the others and with the host's memo.
  screener = new Screener({ threads: 1, filterTimeoutMs: 100, filterMemoryMb: 16, failureLimit: 1000, clock: systemClock, logger: silentLogger() });
  await screener.start();
});

afterAll(async () => {
  await screener?.stop();
  await new Promise<void>((resolve) => trap?.close(() => resolve()));
  delete process.env[ENV_SECRET_NAME];
});

/** Run `traders` next to a healthy trader, which must evaluate every symbol exactly as it does unsandboxed. */
async function runWithHealthy(...traders: Trader[]): Promise<TraderTickOutcome[]> {
  screener.setTraders([...traders, healthy]);
  const tick: ScreenerRun = { interval: '1m', candleOpenTime: 0, traderIds: [...traders, healthy].map((t) => t.id), symbols: SYMBOLS, market };
  const result = await screener.run(tick);
  const own = result.traders.find((t) => t.traderId === healthy.id)!;
  expect(own.errors).toEqual([]);
  expect(own.matches).toEqual(evaluateUnsandboxed([healthy], tick)[0]!.matches);
  return traders.map((trader) => result.traders.find((t) => t.traderId === trader.id)!);
}

/** Conditions of a probe that reports its findings as `name:outcome` strings (one symbol suffices: all see the same isolate). */
function findings(result: TraderTickOutcome): Record<string, string> {
  expect(result.errors).toEqual([]);
  const entries = result.matches[0]!.conditions.map((text) => {
    const at = text.indexOf(':');
    return [text.slice(0, at), text.slice(at + 1)] as const;
  });
  return Object.fromEntries(entries);
}

/** Filter prelude: `attempt(name, fn)` records what happened (the value's type, or the error's name). */
const ATTEMPT = `
const out = [];
const attempt = (name, fn) => {
  try {
    const value = fn();
    if (value && typeof value.then === 'function') { value.then(() => {}, () => {}); out.push(name + ':promise'); }
    else out.push(name + ':' + typeof value);
  } catch (error) {
    out.push(name + ':' + (error && error.name));
  }
};`;

describe('a filter cannot reach the network', () => {
  it('has no fetch, WebSocket, XMLHttpRequest, EventSource, sockets or workers, and nothing connects', async () => {
    const probe = makeTrader(`${ATTEMPT}
      const url = 'http://${'${TRAP}'}/steal';
      attempt('fetch', () => fetch(url));
      attempt('WebSocket', () => new WebSocket('ws://${'${TRAP}'}/'));
      attempt('XMLHttpRequest', () => { const x = new XMLHttpRequest(); x.open('GET', url); x.send(); });
      attempt('EventSource', () => new EventSource(url));
      attempt('navigator', () => navigator.sendBeacon(url, 'x'));
      attempt('Request', () => new Request(url));
      attempt('importScripts', () => importScripts(url));
      attempt('Worker', () => new Worker(url));
      attempt('postMessage', () => postMessage('x'));
      attempt('net', () => require('node:net').connect(1));
      attempt('Deno', () => Deno.connect({ port: 1 }));
      attempt('Bun', () => Bun.connect({ port: 1 }));
      return { match: true, conditions: out };`.replaceAll('${TRAP}', trapUrl));
    const [result] = await runWithHealthy(probe);
    const seen = findings(result!);
    for (const name of ['fetch', 'WebSocket', 'XMLHttpRequest', 'EventSource', 'navigator', 'Request', 'importScripts', 'Worker', 'postMessage', 'net', 'Deno', 'Bun']) {
      expect(seen[name], name).toBe('ReferenceError');
    }
    expect(trapConnections).toBe(0);
  });

  it('cannot load a module by dynamic import(), from the network, a file or a data: URL', async () => {
    // First tick starts the imports; the second reports how each one ended (the isolate keeps its globals between ticks).
    const importer = makeTrader(`
      if (!globalThis.started) {
        globalThis.started = true;
        globalThis.outcomes = {};
        const sources = { http: 'http://${trapUrl}/m.js', file: 'file:///etc/passwd', fs: 'node:fs', data: 'data:text/javascript,globalThis.loaded=1;export default 1' };
        for (const [name, source] of Object.entries(sources)) {
          try {
            import(source).then(() => { globalThis.outcomes[name] = 'loaded'; }, (error) => { globalThis.outcomes[name] = 'rejected ' + (error && error.name); });
          } catch (error) {
            globalThis.outcomes[name] = 'threw ' + (error && error.name);
          }
        }
      }
      return { match: true, conditions: Object.entries(globalThis.outcomes).map(([name, outcome]) => name + ':' + outcome).concat(['loaded:' + typeof globalThis.loaded]) };`);
    await runWithHealthy(importer);
    const [second] = await runWithHealthy(importer);
    const seen = findings(second!);
    for (const name of ['http', 'file', 'fs', 'data']) expect(seen[name], name).toMatch(/^(rejected|threw) /);
    expect(seen.loaded).toBe('undefined');
    expect(trapConnections).toBe(0);
  });
});

describe('a filter cannot reach the host, the filesystem or the environment', () => {
  it('finds no process, require or host path through any constructor, generator, async function or stack trace', async () => {
    const probe = makeTrader(`${ATTEMPT}
      attempt('Function', () => Function('return process')());
      attempt('GeneratorFunction', () => (function* () {}).constructor('return process')().next());
      attempt('Reflect', () => Reflect.construct(Function, ['return process'])());
      attempt('eval', () => eval('process'));
      attempt('indirectEval', () => (0, eval)('require'));
      attempt('helpers', () => helpers.constructor.constructor('return process')());
      attempt('hvnNodes', () => hvnNodes.constructor.constructor('return require')());
      attempt('ticker', () => ticker.__proto__.constructor.constructor('return module')());
      attempt('klines', () => timeframes['1m'].constructor.constructor('return process')());
      attempt('candle', () => timeframes['1m'][0].constructor.constructor('return process')());
      attempt('globalThis', () => globalThis.constructor.constructor('return process')());
      attempt('processBinding', () => process.binding('fs'));
      let frames = [];
      Error.prepareStackTrace = (error, callSites) => callSites.map((site) => [String(site.getFileName()), typeof site.getThis()].join(' '));
      try { frames = new Error('x').stack; } catch (e) { frames = ['threw ' + e.name]; }
      Error.prepareStackTrace = undefined;
      return { match: true, conditions: out.concat(frames.map((frame, i) => 'frame' + i + ':' + frame)) };`);
    const [result] = await runWithHealthy(probe);
    const seen = findings(result!);
    for (const name of ['Function', 'GeneratorFunction', 'Reflect', 'eval', 'indirectEval', 'helpers', 'hvnNodes', 'ticker', 'klines', 'candle', 'globalThis', 'processBinding']) {
      expect(seen[name], name).toBe('ReferenceError');
    }
    // The stack holds the filter and the sandbox runtime, never a host file of the worker.
    const frames = Object.entries(seen).filter(([name]) => name.startsWith('frame')).map(([, frame]) => frame);
    expect(frames.length).toBeGreaterThan(0);
    for (const frame of frames) {
      expect(frame).not.toContain(ROOT);
      expect(frame).not.toMatch(/node_modules|node:internal|\/src\//);
    }
  });

  it('finds no environment variable anywhere it can walk from its global object and its arguments', async () => {
    // The needle is split so that the filter's own source does not contain it.
    const half = Math.floor(ENV_SECRET.length / 2);
    const walker = makeTrader(`
      const needle = ${JSON.stringify(ENV_SECRET.slice(0, half))} + ${JSON.stringify(ENV_SECRET.slice(half))};
      const seen = new Set();
      let strings = 0;
      let found = [];
      const visit = (value, path, depth) => {
        if (typeof value === 'string') { strings++; if (value.includes(needle) || value.includes(${JSON.stringify(ENV_SECRET_NAME)})) found.push(path); return; }
        if ((typeof value !== 'object' && typeof value !== 'function') || value === null || seen.has(value) || depth > 4) return;
        seen.add(value);
        if (typeof value === 'function') { try { visit(Function.prototype.toString.call(value), path + '#source', depth); } catch (e) {} }
        let keys = [];
        try { keys = Reflect.ownKeys(value); } catch (e) { return; }
        for (const key of keys) {
          if (typeof key === 'symbol') continue;
          if (key.length > 0 && key.charCodeAt(0) >= 48 && key.charCodeAt(0) <= 57 && Number(key) > 3) continue;
          let child;
          try { const d = Object.getOwnPropertyDescriptor(value, key); child = d && 'value' in d ? d.value : undefined; } catch (e) { continue; }
          visit(key, path + '.' + key + '#key', depth + 1);
          visit(child, path + '.' + key, depth + 1);
        }
        try { visit(Object.getPrototypeOf(value), path + '.__proto__', depth + 1); } catch (e) {}
      };
      visit(globalThis, 'globalThis', 0);
      visit([ticker, timeframes, helpers, hvnNodes], 'arguments', 0);
      return { match: true, conditions: ['strings:' + strings, 'found:' + found.slice(0, 5).join(',')] };`);
    const [result] = await runWithHealthy(walker);
    const seen = findings(result!);
    expect(seen.found).toBe('');
    // The walk did visit the helper library, the inputs and the builtins.
    expect(Number(seen.strings)).toBeGreaterThan(500);
  });

  it('a polluted prototype in one trader reaches neither another trader on the thread nor the host', async () => {
    const polluter = makeTrader(`
      Object.prototype.polluted = 'by a filter';
      Object.prototype.match = true;
      Object.prototype.conditions = ['forged'];
      Array.prototype.polluted = 'by a filter';
      JSON.parse('{"__proto__": {"polluted": "via json"}}');
      Object.assign(Object.getPrototypeOf(ticker), { polluted: 'via ticker' });
      // A plain object whose own __proto__ key reaches the host's memo as an argument.
      const nodes = helpers.calculateHighVolumeNodes(timeframes['1m'], JSON.parse('{"__proto__": {"bins": 100000000, "polluted": 1}, "lookback": 50}'));
      return { match: Array.isArray(nodes), conditions: [String(nodes.length)] };`);
    const victim = makeTrader(`const plain = {}; return { match: true, conditions: ['object:' + typeof plain.polluted, 'array:' + typeof [].polluted, 'match:' + typeof plain.match, 'ticker:' + typeof ticker.polluted] };`);
    // (Not compared with evaluateUnsandboxed: that would run the polluter in this very process.)
    const plainNodes = makeTrader(`const nodes = helpers.calculateHighVolumeNodes(timeframes['1m'], { lookback: 50 }); return { match: Array.isArray(nodes), conditions: [String(nodes.length)] };`);
    const [polluted, checked, plain] = await runWithHealthy(polluter, victim, plainNodes);
    expect(polluted!.errors).toEqual([]);
    // The memo ignored the smuggled bin count: the nodes are the ordinary ones of the last 50 candles.
    expect(polluted!.matches).toEqual(plain!.matches);
    expect(polluted!.matches).toHaveLength(SYMBOLS.length);
    expect(findings(checked!)).toEqual({ object: 'undefined', array: 'undefined', match: 'undefined', ticker: 'undefined' });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(([] as unknown as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('a filter cannot outlive or outgrow its budget through the back doors', () => {
  it('endless microtasks and async loops are cut by the time or memory limit, and the thread keeps serving others', async () => {
    const microtasks = makeTrader(`const again = () => Promise.resolve().then(again); again(); return true;`);
    const asyncLoop = makeTrader(`(async () => { while (true) await null; })(); return true;`);
    const results = await runWithHealthy(microtasks, asyncLoop);
    for (const result of results) {
      expect(result.matches.length).toBeLessThan(SYMBOLS.length);
      expect(['TRADER_TIMEOUT', 'TRADER_MEMORY']).toContain(result.errors[0]!.code);
    }
  });

  it('huge ArrayBuffer, SharedArrayBuffer and WebAssembly memory allocations fail inside the filter, not in the worker', async () => {
    const attempts = {
      arrayBuffer: 'new ArrayBuffer(2 ** 31)',
      shared: 'new SharedArrayBuffer(2 ** 31)',
      wasm: 'new WebAssembly.Memory({ initial: 32768 })',
      wasmGrow: '(() => { const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536 }); memory.grow(32000); return memory; })()',
      manyBuffers: '(() => { const hold = []; for (let i = 0; i < 4096; i++) hold.push(new ArrayBuffer(1 << 20)); return hold; })()',
    };
    const traders = Object.values(attempts).map((expression) => makeTrader(`const held = ${expression}; return { match: true, conditions: [String(held)] };`));
    const results = await runWithHealthy(...traders);
    results.forEach((result, i) => {
      const name = Object.keys(attempts)[i]!;
      // Either the allocation throws in the isolate (RangeError) or the isolate's limit stops it; it never succeeds.
      expect(result.matches, name).toEqual([]);
      expect(result.errors.length, name).toBeGreaterThan(0);
      expect(['TRADER_RUNTIME', 'TRADER_MEMORY', 'TRADER_TIMEOUT'], name).toContain(result.errors[0]!.code);
    });
    // The thread is still there for the next tick.
    await runWithHealthy();
  });

  it('callbacks V8 runs later (FinalizationRegistry, Atomics.waitAsync) cannot run unbounded outside an evaluation', async () => {
    const finalizer = makeTrader(`
      if (!globalThis.registry) globalThis.registry = new FinalizationRegistry(() => { while (true) {} });
      for (let i = 0; i < 2000; i++) globalThis.registry.register({ payload: new Array(100).fill(i) }, i);
      const churn = []; for (let i = 0; i < 20000; i++) churn.push({ i }); 
      return true;`);
    const waiter = makeTrader(`
      const cell = new Int32Array(new SharedArrayBuffer(16));
      if (typeof Atomics.waitAsync === 'function') Atomics.waitAsync(cell, 0, 0, 5).value.then(() => { while (true) {} });
      return true;`);
    // Several ticks: whatever V8 scheduled in one tick has had its chance to run by the later ones.
    for (let tick = 0; tick < 4; tick++) {
      const results = await runWithHealthy(finalizer, waiter);
      for (const result of results) for (const error of result.errors) expect(['TRADER_TIMEOUT', 'TRADER_MEMORY']).toContain(error.code);
    }
  });

  it('a getter or thrown value that loops is judged under the time limit', async () => {
    const getterLoop = makeTrader(`return { get match() { while (true) {} } };`);
    const throwLoop = makeTrader(`throw { get message() { while (true) {} } };`);
    const proxyResult = makeTrader(`return new Proxy({}, { get() { throw new Error('trap'); } });`);
    const [getter, thrown, proxy] = await runWithHealthy(getterLoop, throwLoop, proxyResult);
    expect(getter!.errors[0]!.code).toBe('TRADER_TIMEOUT');
    expect(thrown!.errors[0]!.code).toBe('TRADER_TIMEOUT');
    expect(proxy!.matches).toEqual([]);
    expect(proxy!.errors[0]!.code).toBe('TRADER_RUNTIME');
  });
});
