// Builtins that allocate their result in one piece, capped at a trader's own memory budget inside its isolate.

/**
 * Make the builtins that allocate a result in one piece refuse sizes past the isolate's own budget.
 * isolated-vm enforces its memory limit as the heap grows, but one builtin call that sizes its result
 * up front (`new Array(1e8).fill(0)`, `Array.from({ length: 1e8 })`, `toSorted`, `'x'.repeat(5e8)`)
 * allocates it in one go: up to a few hundred MB it silently exceeds the limit (the worker's RSS pays),
 * beyond that V8 fails fatally and the whole process dies (SIGSEGV, isolated-vm issues #107, #186,
 * #527). Growth step by step (push, spread, string building) is stopped by the memory limit as usual.
 * Runs before any filter code, on the isolate's own builtins, after installRuntime has captured the
 * originals it uses; the wrappers call the originals too, so results are unchanged below the limits.
 */
export function guardAllocations(maxElements: number, maxChars: number): void {
  'use strict';
  const apply = Reflect.apply;
  const defineProperty = Reflect.defineProperty;
  const isArray = Array.isArray;
  const isView = ArrayBuffer.isView;
  const RangeErrorCtor = RangeError;
  const TypedArrayPrototype = Object.getPrototypeOf(Int8Array.prototype) as Record<string, unknown>;

  function lengthOf(value: unknown): number {
    if (value === null || value === undefined) return 0;
    const n = +(value as { length?: unknown }).length!;
    return n > 0 ? n : 0;
  }
  function textLength(value: unknown, fallback: number): number {
    return typeof value === 'string' ? value.length : fallback;
  }
  function refuse(what: string, size: number, limit: number): never {
    throw new RangeErrorCtor(what + ' of ' + size + ' exceeds the sandbox limit of ' + limit + ' (FILTER_MEMORY_MB)');
  }
  /** Replace `owner[name]` by a wrapper that checks `sizeOf(this, args)` (elements, or characters with `chars`) first. */
  function guard(owner: Record<string, unknown>, name: string, sizeOf: (self: unknown, args: IArguments) => number, chars: boolean): void {
    const original = owner[name] as (...args: unknown[]) => unknown;
    if (typeof original !== 'function') return;
    const limit = chars ? maxChars : maxElements;
    const wrapper = {
      [name](this: unknown) {
        // eslint-disable-next-line prefer-rest-params
        const args = arguments;
        const size = sizeOf(this, args);
        if (size > limit) refuse(name + (chars ? ' result' : ' on a length'), size, limit);
        return apply(original, this, args);
      },
    }[name]!;
    defineProperty(owner, name, { __proto__: null, value: wrapper, writable: true, enumerable: false, configurable: true } as PropertyDescriptor);
  }
  const own = (self: unknown) => lengthOf(self);
  const arrayPrototype = Array.prototype as unknown as Record<string, unknown>;
  const arrayMethods = ['fill', 'slice', 'splice', 'map', 'filter', 'flat', 'flatMap', 'concat', 'sort', 'reverse', 'copyWithin', 'toReversed', 'toSorted', 'toSpliced', 'with', 'join', 'toString', 'toLocaleString'];
  for (let i = 0; i < arrayMethods.length; i++) {
    const name = arrayMethods[i]!;
    if (name === 'concat') {
      guard(arrayPrototype, name, (self, args) => {
        let total = lengthOf(self);
        for (let a = 0; a < args.length; a++) total += isArray(args[a]) ? lengthOf(args[a]) : 1;
        return total;
      }, false);
    } else guard(arrayPrototype, name, own, false);
  }
  // A joined string: elements times the separator, whatever the elements hold (each is at least as long as nothing).
  guard(arrayPrototype, 'join', (self, args) => lengthOf(self) * textLength(args[0], 1), true);
  guard(TypedArrayPrototype, 'join', (self, args) => lengthOf(self) * (textLength(args[0], 1) + 1), true);
  guard(TypedArrayPrototype, 'toString', (self) => lengthOf(self) * 2, true);
  guard(TypedArrayPrototype, 'toLocaleString', (self) => lengthOf(self) * 2, true);
  guard(Array as unknown as Record<string, unknown>, 'from', (_self, args) => lengthOf(args[0]), false);
  const stringPrototype = String.prototype as unknown as Record<string, unknown>;
  guard(stringPrototype, 'repeat', (self, args) => textLength(self, 0) * (+args[0] > 0 ? +args[0] : 0), true);
  guard(stringPrototype, 'padStart', (_self, args) => (+args[0] > 0 ? +args[0] : 0), true);
  guard(stringPrototype, 'padEnd', (_self, args) => (+args[0] > 0 ? +args[0] : 0), true);
  guard(stringPrototype, 'concat', (self, args) => {
    let total = textLength(self, 0);
    for (let a = 0; a < args.length; a++) total += textLength(args[a], 0);
    return total;
  }, true);
  const replacing = (self: unknown, args: IArguments) => textLength(self, 0) * (textLength(args[1], 1) > 1 ? textLength(args[1], 1) : 1);
  guard(stringPrototype, 'replace', replacing, true);
  guard(stringPrototype, 'replaceAll', replacing, true);
  guard(stringPrototype, 'split', (self) => textLength(self, 0), false);
  // Listing the keys of an array or typed array builds them all at once.
  const listed = (_self: unknown, args: IArguments) => (isArray(args[0]) || isView(args[0]) || typeof args[0] === 'string' ? lengthOf(args[0]) : 0);
  const objectCtor = Object as unknown as Record<string, unknown>;
  for (const name of ['keys', 'values', 'entries', 'getOwnPropertyNames']) guard(objectCtor, name, listed, false);
  guard(Reflect as unknown as Record<string, unknown>, 'ownKeys', listed, false);
  // An argument list is built in one piece from an array-like, before any stack check.
  guard(Function.prototype as unknown as Record<string, unknown>, 'apply', (_self, args) => lengthOf(args[1]), false);
  guard(Reflect as unknown as Record<string, unknown>, 'apply', (_self, args) => lengthOf(args[2]), false);
  guard(Reflect as unknown as Record<string, unknown>, 'construct', (_self, args) => lengthOf(args[1]), false);
}
