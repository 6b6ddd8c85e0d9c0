// Worker keys: HS256 JWTs that act as one user (role authenticated, claim worker = true), each with its own id (`jti`)
// so that one key can be revoked (public.revoked_worker_keys) without touching any other.
import { createHmac, randomUUID } from 'node:crypto';

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

export interface UserClaimsOptions {
  /** Adds the `worker: true` claim (row-level security then makes the token read-only on `traders`) and a `jti`. */
  worker?: boolean;
  expiresInSec?: number;
  nowSec: number;
  /** The key's id; a fresh uuid by default. Only worker tokens carry one. */
  jti?: string;
}

/** The claims of a token that acts as `userId`, like a Supabase session or a worker key. */
export function userClaims(userId: string, options: UserClaimsOptions): Record<string, unknown> {
  const claims: Record<string, unknown> = {
    iss: 'supabase',
    aud: 'authenticated',
    role: 'authenticated',
    sub: userId,
    iat: options.nowSec,
    exp: options.nowSec + (options.expiresInSec ?? 3600),
  };
  if (options.worker) {
    claims.worker = true;
    claims.jti = options.jti ?? randomUUID();
  }
  return claims;
}

export interface WorkerKey {
  /** The JWT itself: a secret, set only as the user's Fly app secret SUPABASE_KEY. */
  token: string;
  /** Its `jti`: not secret; recorded in worker_machines.key_id and, to revoke it, in revoked_worker_keys. */
  keyId: string;
  expiresAt: Date;
}

/** A long-lived per-user worker key, as a machine's SUPABASE_KEY. */
export function mintWorkerKey(userId: string, secret: string, options: { nowSec: number; days?: number; jti?: string }): WorkerKey {
  const claims = userClaims(userId, { worker: true, expiresInSec: (options.days ?? 365) * DAY_SECONDS, nowSec: options.nowSec, jti: options.jti });
  return { token: signJwt(claims, secret), keyId: claims.jti as string, expiresAt: new Date((claims.exp as number) * 1000) };
}

/** The `jti` of a worker key, or undefined for a token without one (minted before keys had ids). Does not verify. */
export function keyIdOf(token: string): string | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { jti?: unknown };
    return typeof claims.jti === 'string' ? claims.jti : undefined;
  } catch {
    return undefined;
  }
}
