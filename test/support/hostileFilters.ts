// The hostile-filter corpus: filter bodies written as an attacker would, shared by test/security.hostile.test.ts and the `hostile` benchmark.
//
// Each entry says what containment must look like for it:
// - `contained`: the filter cannot do what it tries; it fails (an error on its first tick) and ends up
//   disabled with a reason;
// - `harmless`: the tampering changes nothing outside its own isolate; when `verdict` is given, the
//   runtime reads the filter's answer exactly as written on every symbol and tick (the runtime is
//   immune to it), with no error;
// - `either`: it may fail or succeed, as long as nobody else notices and what it returns is bounded.
// Every entry, whatever its kind, must leave its neighbours' results identical and on time.

export type HostileExpectation = 'contained' | 'harmless' | 'either';

export interface HostileFilter {
  name: string;
  /** The class of attack (issue #12's list): amplification, tampering, results, classic. */
  group: 'amplification' | 'tampering' | 'results' | 'classic';
  code: string;
  expect: HostileExpectation;
  /** For `harmless`: the verdict every symbol must get. */
  verdict?: { match: boolean; conditions: string[] };
  /** It has taken the whole process down: run it in a child process, whose survival is the assertion. */
  child?: true;
}

/** One 4 MB string: small inside the isolate however often it is referenced, huge when copied out once per reference. */
const BIG = `const s = 'x'.repeat(4 << 20);`;
const K = `const k = timeframes['1m'];`;
const HVN_OPTION_NAMES = `['bins', 'threshold', 'lookback', 'minStrength', 'peakTolerance']`;
/** Helper calls whose results the host memoizes, so the tampering runs against the runtime's helper wrappers too. */
const USE_HELPERS = `helpers.getLatestRSI(timeframes['1m'], 14); helpers.calculateHighVolumeNodes(timeframes['1m'], { lookback: 50 }); helpers.calculateMASeries(timeframes['1m'].slice(-60), 20); hvnNodes.length;`;
/** The answer the tampering filters return: read by index and defined, never through the prototypes they poisoned. */
const ANSWER = `return { match: true, conditions: ['first', 'second'] };`;
const ANSWERED = { match: true, conditions: ['first', 'second'] };

const amplification: HostileFilter[] = [
  ...[16, 32, 64, 256].map((references): HostileFilter => ({
    name: `helper options holding ${references} references to one 4 MB string`,
    group: 'amplification',
    code: `${BIG} ${K} const nodes = helpers.calculateHighVolumeNodes(k, { junk: new Array(${references}).fill(s) }); return { match: Array.isArray(nodes), conditions: ['nodes ' + nodes.length] };`,
    expect: 'either',
  })),
  {
    name: 'a replaced Array.prototype.slice hangs 4 MB strings on every array it returns',
    group: 'amplification',
    code: `${BIG} const slice = Array.prototype.slice;
      Array.prototype.slice = function (...args) { const out = slice.apply(this, args); for (let i = 0; i < 64; i++) out['junk' + i] = s; return out; };
      ${K} const a = helpers.getLatestRSI(k, 14); const b = helpers.calculateHighVolumeNodes(k, { lookback: 50 }, s, s); const c = helpers.getLatestEMA(k.slice(-80), 20);
      return { match: true, conditions: [typeof a, typeof b, typeof c] };`,
    expect: 'either',
  },
  {
    name: 'huge strings and many arguments to every kind of helper',
    group: 'amplification',
    code: `${BIG} ${K}
      const out = [];
      for (const name of ['getLatestRSI', 'calculateMASeries', 'calculateHighVolumeNodes', 'getLatestEMA', 'calculateAvgVolume']) {
        try { out.push(name + ' ' + typeof helpers[name](k, s, s, s)); } catch (e) { out.push(name + ' threw'); }
      }
      try { out.push('spread ' + typeof helpers.getLatestRSI(k, ...new Array(100000).fill(s))); } catch (e) { out.push('spread threw'); }
      try { out.push('word ' + typeof helpers.getLatestRSI(k, 'a'.repeat(64), 'b'.repeat(65))); } catch (e) { out.push('word threw'); }
      return { match: true, conditions: out };`,
    expect: 'either',
  },
  {
    name: 'Proxy and getter arguments (option getters that lie, spin or throw)',
    group: 'amplification',
    code: `${BIG} ${K}
      let reads = 0;
      const lying = { get lookback() { reads++; return reads % 2 ? 50 : s; }, get bins() { return 1e300; } };
      const trap = new Proxy({}, { get(t, key) { return key === 'bins' ? s : key === 'lookback' ? 50 : undefined; }, ownKeys() { return Array.from({ length: 100000 }, (_, i) => 'k' + i); }, getPrototypeOf() { return Object.prototype; } });
      const klines = new Proxy(k, { get(t, key) { return key === 'length' ? 1e9 : t[key]; } });
      const out = [];
      for (const args of [[k, lying], [k, trap], [klines, 14], [k, new Proxy([s, s], {})]]) {
        try { out.push(typeof helpers.calculateHighVolumeNodes(...args)); } catch (e) { out.push('threw ' + (e && e.name)); }
      }
      return { match: true, conditions: out };`,
    expect: 'either',
  },
  {
    name: 'an option getter that spins',
    group: 'amplification',
    code: `${K} return helpers.calculateHighVolumeNodes(k, { get lookback() { for (;;) {} } }).length > 0;`,
    expect: 'contained',
  },
  {
    name: 'arguments and options with a toJSON that returns megabytes',
    group: 'amplification',
    code: `${BIG} ${K}
      const options = { lookback: 50, toJSON() { return new Array(64).fill(s); } };
      const period = { valueOf() { return 14; }, toJSON() { return new Array(64).fill(s); }, toString() { return s; } };
      const nodes = helpers.calculateHighVolumeNodes(k, options);
      const rsi = helpers.getLatestRSI(k, period);
      return { match: true, conditions: ['nodes ' + nodes.length, 'rsi ' + typeof rsi] };`,
    expect: 'either',
  },
  {
    name: 'getters on Object.prototype for every option name (huge strings, huge numbers)',
    group: 'amplification',
    code: `${BIG} ${K}
      for (const name of ${HVN_OPTION_NAMES}) Object.defineProperty(Object.prototype, name, { configurable: true, get() { return name === 'bins' ? 1e9 : s; } });
      let a = 'threw', b = 'threw';
      try { a = typeof helpers.calculateHighVolumeNodes(k, {}); } catch (e) {}
      try { b = typeof helpers.calculateHighVolumeNodes(k); } catch (e) {}
      return { match: true, conditions: [a, b, 'hvn ' + hvnNodes.length] };`,
    expect: 'either',
    child: true,
  },
];

const tampering: HostileFilter[] = [
  {
    name: 'Array.prototype[Symbol.iterator] replaced by a spinner',
    group: 'tampering',
    code: `Array.prototype[Symbol.iterator] = function () { for (;;) {} }; ${USE_HELPERS} ${ANSWER}`,
    expect: 'harmless',
    verdict: ANSWERED,
  },
  {
    name: 'JSON.parse and JSON.stringify replaced by a spinner and a flood',
    group: 'tampering',
    code: `JSON.parse = function () { for (;;) {} }; JSON.stringify = function () { return 'x'.repeat(1 << 22); }; ${USE_HELPERS} ${ANSWER}`,
    expect: 'harmless',
    verdict: ANSWERED,
  },
  {
    name: 'Math.min, Math.max, Math.trunc and String.prototype.slice replaced, with oversized conditions',
    group: 'tampering',
    code: `Math.min = () => 1e9; Math.max = () => 1e9; Math.trunc = (x) => x; Math.floor = () => 1e9;
      String.prototype.slice = function () { return String(this).repeat(1000); }; String.prototype.substring = String.prototype.slice; String.prototype.substr = String.prototype.slice;
      ${USE_HELPERS}
      return { match: true, conditions: Array.from({ length: 500 }, (_, i) => 'long' + i + '-'.repeat(5000)) };`,
    expect: 'harmless',
    verdict: { match: true, conditions: Array.from({ length: 50 }, (_, i) => `long${i}${'-'.repeat(5000)}`.slice(0, 500)) },
  },
  {
    name: 'String.prototype.charCodeAt, codePointAt, String.fromCharCode and String() replaced',
    group: 'tampering',
    code: `String.prototype.charCodeAt = function () { return 65; }; String.prototype.codePointAt = function () { for (;;) {} };
      String.fromCharCode = function () { return '\\u0000'.repeat(1 << 16); }; globalThis.String = function () { return '\\u0000'; };
      ${USE_HELPERS} return { match: true, conditions: ['nul\\u0000here', 'lone\\uD800'] };`,
    expect: 'harmless',
    verdict: { match: true, conditions: ['nul here', 'lone\uFFFD'] },
  },
  {
    name: 'every Reflect method replaced by a spinner',
    group: 'tampering',
    code: `for (const name of Object.getOwnPropertyNames(Reflect)) { try { Reflect[name] = function () { for (;;) {} }; } catch (e) {} } ${USE_HELPERS} ${ANSWER}`,
    expect: 'harmless',
    verdict: ANSWERED,
  },
  {
    name: 'Object.defineProperty, keys, getPrototypeOf, freeze and Array.isArray replaced',
    group: 'tampering',
    code: `const spin = function () { for (;;) {} };
      ${USE_HELPERS}
      for (const name of ['defineProperty', 'defineProperties', 'keys', 'getPrototypeOf', 'getOwnPropertyDescriptor', 'freeze', 'assign', 'entries']) Object[name] = spin;
      Array.isArray = () => false; Number.isInteger = () => false;
      ${USE_HELPERS} ${ANSWER}`,
    expect: 'harmless',
    verdict: ANSWERED,
  },
  {
    name: 'setters on Array.prototype index 0 and on length-like names',
    group: 'tampering',
    code: `Object.defineProperty(Array.prototype, '0', { configurable: true, get() { return 'forged'; }, set(v) { for (;;) {} } });
      Object.defineProperty(Array.prototype, '1', { configurable: true, get() { return 'forged'; }, set(v) { for (;;) {} } });
      Object.defineProperty(Object.prototype, 'conditions', { configurable: true, get() { return ['forged']; }, set(v) { for (;;) {} } });
      ${USE_HELPERS} ${ANSWER}`,
    // The runtime decodes a memoized series by assigning into a fresh array, which runs such a setter:
    // inside the isolate, under the filter's own time limit, so it may only fail itself.
    expect: 'either',
  },
  {
    name: 'descriptor poisoning: get, set, value, writable on Object.prototype',
    group: 'tampering',
    code: `${USE_HELPERS}
      Object.prototype.get = function () { for (;;) {} }; Object.prototype.set = function () { for (;;) {} };
      Object.prototype.value = 'forged'; Object.prototype.writable = false; Object.prototype.enumerable = false; Object.prototype.configurable = false;
      Object.prototype.match = true; Object.prototype.warning = 'forged';
      ${USE_HELPERS} ${ANSWER}`,
    expect: 'harmless',
    verdict: ANSWERED,
  },
  {
    name: 'Symbol.iterator and Symbol.toPrimitive hooks on every prototype',
    group: 'tampering',
    code: `const spin = function () { for (;;) {} };
      // Indexed: the filter's own for…of would call the iterator it replaced on its next evaluation.
      const protos = [Object.prototype, Array.prototype, String.prototype, Number.prototype, Boolean.prototype, Function.prototype];
      for (let i = 0; i < protos.length; i++) {
        try { Object.defineProperty(protos[i], Symbol.toPrimitive, { configurable: true, value: spin }); } catch (e) {}
        try { Object.defineProperty(protos[i], Symbol.iterator, { configurable: true, value: spin }); } catch (e) {}
      }
      Object.prototype.toString = spin; Object.prototype.valueOf = spin; Array.prototype.join = spin;
      Object.defineProperty(Array, Symbol.species, { configurable: true, get: spin });
      ${USE_HELPERS} ${ANSWER}`,
    expect: 'harmless',
    verdict: ANSWERED,
  },
  {
    name: 'Function.prototype.call, apply and bind replaced',
    group: 'tampering',
    code: `const spin = function () { for (;;) {} };
      ${USE_HELPERS}
      Function.prototype.call = spin; Function.prototype.apply = spin; Function.prototype.bind = spin;
      ${USE_HELPERS} ${ANSWER}`,
    expect: 'harmless',
    verdict: ANSWERED,
  },
  {
    name: 'Map, WeakMap, Proxy, Float64Array and Array methods replaced',
    group: 'tampering',
    code: `const spin = function () { for (;;) {} };
      Map.prototype.get = spin; Map.prototype.set = spin; WeakMap.prototype.get = spin; WeakMap.prototype.set = spin;
      globalThis.Proxy = spin; globalThis.Float64Array = spin; globalThis.Error = spin;
      for (const name of ['push', 'map', 'slice', 'concat', 'join', 'indexOf', 'at', 'fill', 'splice']) Array.prototype[name] = spin;
      ${USE_HELPERS} ${ANSWER}`,
    expect: 'harmless',
    verdict: ANSWERED,
  },
];

const results: HostileFilter[] = [
  {
    name: '10,000 conditions',
    group: 'results',
    code: `return { match: true, conditions: Array.from({ length: 10000 }, (_, i) => 'c' + i) };`,
    expect: 'harmless',
    verdict: { match: true, conditions: Array.from({ length: 50 }, (_, i) => `c${i}`) },
  },
  {
    name: 'a 1 MB condition',
    group: 'results',
    code: `return { match: true, conditions: ['z'.repeat(1 << 20), 'ok'] };`,
    expect: 'harmless',
    verdict: { match: true, conditions: ['z'.repeat(500), 'ok'] },
  },
  {
    name: 'NUL, lone surrogates and control characters in conditions',
    group: 'results',
    code: `return { match: true, conditions: ['a\\u0000b', '\\uD800', 'x\\uDC00y', '\\u0007bell\\r\\n', '\\uD83D\\uDE00 ok', 'end\\uD83D', '\\u007f\\u001b[31m'] };`,
    expect: 'harmless',
    verdict: { match: true, conditions: ['a b', '\uFFFD', 'x\uFFFDy', ' bell  ', '\uD83D\uDE00 ok', 'end\uFFFD', '  [31m'] },
  },
  {
    name: 'a surrogate pair cut by the 500-character bound',
    group: 'results',
    code: `return { match: true, conditions: ['a'.repeat(499) + '\\uD83D\\uDE00'] };`,
    expect: 'harmless',
    verdict: { match: true, conditions: ['a'.repeat(499) + '\uFFFD'] },
  },
  {
    name: 'getters for match and conditions',
    group: 'results',
    code: `let calls = 0; return { get match() { calls++; return true; }, get conditions() { return ['g' + calls]; } };`,
    expect: 'harmless',
    verdict: { match: true, conditions: ['g1'] },
  },
  {
    name: 'a Proxy result and a Proxy conditions list claiming a billion entries',
    group: 'results',
    code: `const list = new Proxy([], { get(t, key) { return key === 'length' ? 1e9 : typeof key === 'string' && /^\\d+$/.test(key) ? 'p' + key : t[key]; } });
      return new Proxy({}, { get(t, key) { return key === 'match' ? true : key === 'conditions' ? list : undefined; } });`,
    expect: 'harmless',
    verdict: { match: true, conditions: Array.from({ length: 50 }, (_, i) => `p${i}`) },
  },
  {
    name: 'a toJSON on the result and its conditions',
    group: 'results',
    code: `const conditions = ['t']; conditions.toJSON = () => new Array(100000).fill('q');
      return { match: true, conditions, toJSON() { return { match: false, conditions: new Array(100000).fill('q') }; } };`,
    expect: 'harmless',
    verdict: { match: true, conditions: ['t'] },
  },
  {
    name: 'a conditions list whose length getter loops',
    group: 'results',
    code: `return { match: true, conditions: new Proxy(['a'], { get(t, key) { if (key === 'length') for (;;) {} return t[key]; } }) };`,
    expect: 'contained',
  },
  {
    name: 'conditions that are objects with spinning toString, and a huge non-string match',
    group: 'results',
    code: `return { match: 'y'.repeat(1 << 20), conditions: [{ toString() { for (;;) {} } }, 'ok', 42, null] };`,
    expect: 'harmless',
    verdict: { match: true, conditions: ['ok'] },
  },
  {
    name: 'a thrown value with a megabyte message and NUL in its name',
    group: 'results',
    code: `throw { name: '\\u0000\\uD800'.repeat(1000), message: 'm\\u0000'.repeat(1 << 19) };`,
    expect: 'contained',
  },
];

const classic: HostileFilter[] = [
  { name: 'escape through the constructor chain', group: 'classic', code: `return this.constructor.constructor('return process')().pid > 0;`, expect: 'contained' },
  { name: 'escape through a helper constructor', group: 'classic', code: `return helpers.getLatestRSI.constructor('return require')()('fs') !== undefined;`, expect: 'contained' },
  { name: 'Atomics.wait on a filter-made SharedArrayBuffer', group: 'classic', code: `Atomics.wait(new Int32Array(new SharedArrayBuffer(16)), 0, 0); return true;`, expect: 'contained' },
  { name: 'async work after return (endless microtasks)', group: 'classic', code: `const again = () => Promise.resolve().then(again); again(); return true;`, expect: 'contained' },
  { name: 'an infinite loop', group: 'classic', code: `while (true) {}`, expect: 'contained' },
  { name: 'deep recursion', group: 'classic', code: `function f(n) { return f(n + 1) + 1; } return f(0) > 0;`, expect: 'contained' },
  { name: 'a memory bomb', group: 'classic', code: `const hoard = []; while (true) hoard.push(new Array(100000).fill(Math.random())); return true;`, expect: 'contained' },
  { name: 'a huge output', group: 'classic', code: `return { match: true, conditions: [new Array(1 << 20).join('x'), ...new Array(1000).fill('y'.repeat(10000))] };`, expect: 'either' },
];

export const HOSTILE_FILTERS: readonly HostileFilter[] = [...amplification, ...tampering, ...results, ...classic];

/**
 * Tampering preludes and payloads for the property test: any prelude, in any combination, followed by
 * any payload, must leave the neighbours untouched and the result bounded.
 */
export const TAMPERING_PRELUDES: readonly string[] = [
  `Array.prototype[Symbol.iterator] = function () { for (;;) {} };`,
  `JSON.parse = function () { for (;;) {} }; JSON.stringify = () => 'x'.repeat(1 << 20);`,
  `Math.min = () => 1e9; Math.max = () => -1e9; Math.trunc = (x) => x;`,
  `String.prototype.slice = function () { return 'S'.repeat(10000); }; String.prototype.charCodeAt = () => 65;`,
  `for (const name of Object.getOwnPropertyNames(Reflect)) { try { Reflect[name] = function () { for (;;) {} }; } catch (e) {} }`,
  `Object.defineProperty = function () { for (;;) {} }; Object.keys = () => ['forged'];`,
  `Object.defineProperty(Array.prototype, '0', { configurable: true, get() { return 'forged'; }, set(v) { for (;;) {} } });`,
  `Object.prototype.get = function () { for (;;) {} }; Object.prototype.value = 'forged'; Object.prototype.writable = false;`,
  `Object.defineProperty(Object.prototype, Symbol.toPrimitive, { configurable: true, value() { for (;;) {} } });`,
  `Function.prototype.call = function () { for (;;) {} }; Function.prototype.apply = Function.prototype.call;`,
  `for (const name of ${HVN_OPTION_NAMES}) Object.defineProperty(Object.prototype, name, { configurable: true, get() { return 'x'.repeat(1 << 20); } });`,
  `{ const slice = Array.prototype.slice; const s = 'x'.repeat(1 << 20); Array.prototype.slice = function (...a) { const out = slice.apply(this, a); out.junk = new Array(32).fill(s); return out; }; }`,
  `Map.prototype.get = function () { for (;;) {} }; WeakMap.prototype.get = function () { return { seriesId: -1, offset: 0, length: 1e9, dirty: false }; };`,
  `globalThis.Proxy = function () { for (;;) {} }; Array.isArray = () => true;`,
];

export const HOSTILE_PAYLOADS: readonly string[] = [
  `return true;`,
  `return false;`,
  `return undefined;`,
  `return 'truthy\\u0000\\uD800';`,
  `return { match: true, conditions: Array.from({ length: 5000 }, (_, i) => '\\u0000' + i + '\\uDBFF'.repeat(300)) };`,
  `return { match: true, conditions: ['\\u0001\\u001f\\u007f', 'z'.repeat(1 << 20)] };`,
  `return { get match() { return true; }, get conditions() { return new Proxy([], { get(t, k) { return k === 'length' ? 1e9 : 'p'; } }); } };`,
  `return { match: true, conditions: ['t'], toJSON() { return 'x'.repeat(1 << 20); } };`,
  `throw { message: 'm\\u0000'.repeat(1 << 18), name: '\\uD800' };`,
  `const s = 'x'.repeat(4 << 20); return helpers.calculateHighVolumeNodes(timeframes['1m'], { junk: new Array(64).fill(s) }).length >= 0;`,
  `return helpers.getLatestRSI(timeframes['1m'], 14) !== null && hvnNodes.length >= 0;`,
  `const k = timeframes['1m']; return { match: true, conditions: [String(helpers.getLatestEMA(k.slice(-40), 9)), ...Object.keys(k).slice(0, 3)] };`,
  `for (;;) {}`,
  `return { match: true, conditions: new Proxy(['a'], { get(t, k) { if (k === 'length') for (;;) {} return t[k]; } }) };`,
];

/**
 * Ordinary filters that read candles, the memoized helpers (the very ones the hostile filters call),
 * hvnNodes and the ticker: the neighbours every hostile filter is run beside.
 */
export const NEIGHBOUR_FILTERS: readonly string[] = [
  `const rsi = helpers.getLatestRSI(timeframes['1m'], 14); return { match: rsi !== null && rsi > 45, conditions: ['rsi ' + rsi.toFixed(6)] };`,
  `const k = timeframes['1m']; const last = k[k.length - 1]; return { match: last[4] > last[1] || parseFloat(ticker.c) > 0, conditions: ['close ' + last[4], 'open ' + k[0][1], 'c ' + ticker.c] };`,
  `const k = timeframes['1m'];
    const nodes = helpers.calculateHighVolumeNodes(k, { lookback: 50 });
    const ma = helpers.calculateMASeries(k.slice(-60), 20);
    const ema = helpers.getLatestEMA(k, 9);
    return { match: nodes.length > 0, conditions: ['nodes ' + JSON.stringify(nodes.slice(0, 2)), 'hvn ' + JSON.stringify(hvnNodes.slice(0, 2)), 'ma ' + ma[ma.length - 1], 'ema ' + ema] };`,
];

/**
 * Filters that took the whole process down (SIGSEGV inside isolated-vm, on one allocation past V8's
 * hard cap) before the runtime bounded one-piece allocations, and their relatives: run by
 * test/support/hostileChild.ts in a process of their own, all at once beside the neighbours.
 */
export const PROCESS_KILLERS: readonly HostileFilter[] = [
  ...[
    'new Array(1e8).fill(0)',
    'Array.prototype.fill.call(new Array(1e8), 0)',
    'Reflect.apply(Array.prototype.fill, new Array(1e8), [0])',
    'Array.prototype.fill.call({ length: 1e8 }, 0)',
    'Array.from({ length: 1e8 })',
    'new Array(1e8).map((x) => x)',
    'new Array(1e8).toReversed()',
    'new Array(1e8).toSorted()',
    'new Array(1e8).toSpliced(0, 0, 1)',
    'new Array(1e8).with(0, 1)',
    'new Array(1e8).slice(0)',
    'new Array(1e8).concat([1])',
    'new Array(1e8).copyWithin(0, 0)',
    'new Array(1e8).join(",")',
    'JSON.stringify(new Array(1e8))',
    'Object.values(new Array(1e8))',
    '[...new Array(1e8)]',
    "'x'.repeat(2 ** 28)",
    "'x'.padEnd(2 ** 28)",
    "'x'.repeat(5e6).replaceAll('x', 'y'.repeat(50))",
    'String.fromCharCode.apply(null, { length: 5e6 })',
    'Array.of.apply(null, { length: 5e6 })',
  ].map((expression): HostileFilter => ({ name: expression, group: 'classic', code: `const a = ${expression}; return a.length > 0;`, expect: 'contained' })),
  {
    name: 'high-volume nodes with a billion bins (the memo refuses them, so the helper runs in the isolate)',
    group: 'amplification',
    code: `const k = timeframes['1m']; return helpers.calculateHighVolumeNodes(k.slice(0), { bins: 1e9 }).length >= 0;`,
    expect: 'either',
  },
];
