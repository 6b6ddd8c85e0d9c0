// HS256 JWT minting for operators and the local stack; the worker itself never mints tokens.
import { createHmac } from 'node:crypto';
import { systemClock } from '../src/clock.ts';

const DAY_SECONDS = 86_400;

function base64url(value: string | Buffer): string {
  return Buffer.from(value).toString('base64url');
}

/** Sign `claims` with HS256, the algorithm Supabase projects (and PostgREST) verify with the project's JWT secret. */
export function signJwt(claims: Record<string, unknown>, secret: string): string {
  if (secret.length < 32) throw new RangeError('JWT secret must be at least 32 characters (PostgREST refuses shorter ones)');
  const header = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = base64url(JSON.stringify(claims));
  const signature = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

/** A project-level key such as Supabase's anon or service_role key. */
export function mintRoleJwt(role: 'anon' | 'service_role', secret: string, options?: { expiresInSec?: number; nowSec?: number }): string {
  const issuedAt = options?.nowSec ?? Math.floor(systemClock.now() / 1000);
  return signJwt({ iss: 'supabase', role, iat: issuedAt, exp: issuedAt + (options?.expiresInSec ?? 10 * 365 * DAY_SECONDS) }, secret);
}

export interface UserJwtOptions {
  /** Adds the `worker: true` claim: row-level security then makes the token read-only on `traders`. */
  worker?: boolean;
  expiresInSec?: number;
  nowSec?: number;
}

/** A token that acts as `userId` (role authenticated, sub = userId), like a Supabase session or a worker key. */
export function mintUserJwt(userId: string, secret: string, options?: UserJwtOptions): string {
  const issuedAt = options?.nowSec ?? Math.floor(systemClock.now() / 1000);
  const claims: Record<string, unknown> = {
    iss: 'supabase',
    aud: 'authenticated',
    role: 'authenticated',
    sub: userId,
    iat: issuedAt,
    exp: issuedAt + (options?.expiresInSec ?? 3600),
  };
  if (options?.worker) claims.worker = true;
  return signJwt(claims, secret);
}

/** The long-lived per-user worker key an operator sets as a machine's SUPABASE_KEY. */
export function mintWorkerJwt(userId: string, secret: string, options?: { days?: number; nowSec?: number }): string {
  return mintUserJwt(userId, secret, { worker: true, expiresInSec: (options?.days ?? 365) * DAY_SECONDS, nowSec: options?.nowSec });
}
