// Stateless, seedable randomness for the simulator: every draw is a pure function of its coordinates.

/** FNV-1a over the UTF-16 code units: a stable 32-bit key for a symbol name. */
export function hashString(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** MurmurHash3's finaliser: spreads every input bit over the output. */
export function mix(value: number): number {
  let hash = value >>> 0;
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

/** A uniform draw in (0, 1) addressed by four integers (each taken modulo 2^32). */
export function uniform(key: number, salt: number, index: number, sub = 0): number {
  let hash = mix(key ^ 0x9e3779b9);
  hash = mix(hash ^ salt);
  hash = mix(hash ^ (index >>> 0));
  hash = mix(hash ^ Math.floor(index / 4294967296));
  hash = mix(hash ^ sub);
  return (hash + 0.5) / 4294967296;
}

/** A standard normal draw (Box-Muller) addressed like `uniform`. */
export function normal(key: number, salt: number, index: number, sub = 0): number {
  const u1 = uniform(key, salt, index, sub);
  const u2 = uniform(key ^ 0x5bd1e995, salt, index, sub);
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}
