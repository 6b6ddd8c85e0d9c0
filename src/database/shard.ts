// Which of a user's machines (shards) runs a trader: a pure function of the trader id and the shard count.
//
// The id is hashed with FNV-1a (64 bit, over its UTF-8 bytes, lower case) and the hash placed with jump consistent
// hashing (Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm", 2014). The answer never changes
// while the count stays the same, whichever machine asks and whenever, so a trader moves only when the count changes;
// and a change of count moves as few traders as it can: going from n to n + 1 shards moves about 1/(n + 1) of them,
// all onto the new shard, and going back down moves only the traders of the removed shard. A plain `hash mod count`
// would move most traders on every change, and every move is a handoff (see README, Sharding).

/** This machine's place among the user's machines. */
export interface Shard {
  /** 0 … count - 1. */
  index: number;
  count: number;
}

/** One machine runs everything: the shape of every user who has not sharded. */
export const SINGLE_SHARD: Shard = { index: 0, count: 1 };

const MASK_64 = (1n << 64n) - 1n;
const FNV_OFFSET_BASIS_64 = 0xcbf29ce484222325n;
const FNV_PRIME_64 = 0x100000001b3n;
const JUMP_MULTIPLIER = 2862933555777941757n;

/** FNV-1a, 64 bit, over the UTF-8 bytes of `text`. */
export function fnv1a64(text: string): bigint {
  let hash = FNV_OFFSET_BASIS_64;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= BigInt(byte);
    hash = (hash * FNV_PRIME_64) & MASK_64;
  }
  return hash;
}

/** Lamping and Veach's jump consistent hash: a bucket in [0, buckets) for a 64-bit key. */
export function jumpConsistentHash(key: bigint, buckets: number): number {
  if (!Number.isInteger(buckets) || buckets < 1) throw new RangeError(`buckets must be a positive integer, got ${buckets}`);
  let state = key & MASK_64;
  let bucket = -1;
  let next = 0;
  while (next < buckets) {
    bucket = next;
    state = (state * JUMP_MULTIPLIER + 1n) & MASK_64;
    next = Math.floor((bucket + 1) * (2 ** 31 / (Number(state >> 33n) + 1)));
  }
  return bucket;
}

/** The shard index that runs `traderId` when the user has `count` shards. */
export function shardOfTrader(traderId: string, count: number): number {
  return count === 1 ? 0 : jumpConsistentHash(fnv1a64(traderId.toLowerCase()), count);
}

export function ownsTrader(shard: Shard, traderId: string): boolean {
  return shardOfTrader(traderId, shard.count) === shard.index;
}
