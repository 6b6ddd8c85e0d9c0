// HS256 JWT minting for operators and the local stack; the worker itself never mints tokens (the fleet controller does,
// through the same src/fleet/workerKey.ts).
import { systemClock } from '../src/clock.ts';
import { mintWorkerKey, signJwt, userClaims } from '../src/fleet/workerKey.ts';

export { signJwt } from '../src/fleet/workerKey.ts';

const DAY_SECONDS = 86_400;

/** A project-level key such as Supabase's anon or service_role key. */
export function mintRoleJwt(role: 'anon' | 'service_role', secret: string, options?: { expiresInSec?: number; nowSec?: number }): string {
  const issuedAt = options?.nowSec ?? Math.floor(systemClock.now() / 1000);
  return signJwt({ iss: 'supabase', role, iat: issuedAt, exp: issuedAt + (options?.expiresInSec ?? 10 * 365 * DAY_SECONDS) }, secret);
}

export interface UserJwtOptions {
  /** Adds the `worker: true` claim (row-level security then makes the token read-only on `traders`) and a key id (`jti`). */
  worker?: boolean;
  expiresInSec?: number;
  nowSec?: number;
  /** A worker token's id; a fresh uuid by default. */
  jti?: string;
}

/** A token that acts as `userId` (role authenticated, sub = userId), like a Supabase session or a worker key. */
export function mintUserJwt(userId: string, secret: string, options?: UserJwtOptions): string {
  const nowSec = options?.nowSec ?? Math.floor(systemClock.now() / 1000);
  return signJwt(userClaims(userId, { worker: options?.worker, expiresInSec: options?.expiresInSec, nowSec, jti: options?.jti }), secret);
}

/** The long-lived per-user worker key an operator sets as a machine's SUPABASE_KEY. */
export function mintWorkerJwt(userId: string, secret: string, options?: { days?: number; nowSec?: number; jti?: string }): string {
  const nowSec = options?.nowSec ?? Math.floor(systemClock.now() / 1000);
  return mintWorkerKey(userId, secret, { nowSec, days: options?.days, jti: options?.jti }).token;
}
