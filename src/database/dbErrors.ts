// Turns supabase-js (PostgREST) failures into TransientError (retry later) or DatabaseRejectedError (retrying cannot help).
import { DatabaseRejectedError, TransientError } from '../errors.ts';

/** The error half of a supabase-js response. */
export interface PostgrestFailure {
  message: string;
  code?: string;
  details?: string | null;
  hint?: string | null;
}

/**
 * PostgREST's own codes for "cannot reach or use the database right now"
 * (https://postgrest.org/en/v12/references/errors.html: PGRST000-003 connection and pool errors).
 */
const TRANSIENT_POSTGREST_CODES = new Set(['PGRST000', 'PGRST001', 'PGRST002', 'PGRST003']);

/**
 * Postgres SQLSTATEs that describe the server's condition rather than the request
 * (class 08 connection exceptions, 53 insufficient resources, 57P admin shutdown / cannot connect now,
 * 40001/40P01 serialization failure and deadlock, which succeed when replayed).
 */
function isTransientSqlState(code: string): boolean {
  return code.startsWith('08') || code.startsWith('53') || code.startsWith('57P') || code === '40001' || code === '40P01';
}

export function isTransientFailure(error: PostgrestFailure, status: number): boolean {
  // status 0: fetch itself failed (connection refused, reset, timeout); 502-504: the gateway's upstream is down.
  if (status === 0 || status >= 500 || status === 408 || status === 429) return true;
  const code = error.code ?? '';
  return TRANSIENT_POSTGREST_CODES.has(code) || isTransientSqlState(code);
}

/** One line, no request data: PostgREST messages name tables and constraints, never keys or tokens. */
function describeFailure(operation: string, error: PostgrestFailure, status: number): string {
  const code = error.code ? ` ${error.code}` : '';
  return `${operation} failed (HTTP ${status}${code}): ${error.message}`;
}

export function toDatabaseError(operation: string, error: PostgrestFailure, status: number): TransientError | DatabaseRejectedError {
  const message = describeFailure(operation, error, status);
  if (isTransientFailure(error, status)) return new TransientError(message, { cause: error, code: status === 0 && /abort|timeout/i.test(error.message + (error.hint ?? '')) ? 'TIMEOUT' : 'TRANSIENT' });
  return new DatabaseRejectedError(message, { status, dbCode: error.code ?? '', cause: error });
}
