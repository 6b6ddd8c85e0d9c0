// Errors named for what the caller must do, each with a stable `code`.

/**
 * One trader's filter failed (this trader only: the rest keep running). Carried as a plain code, not an Error class,
 * because it crosses from the screening threads as data and lands in trader_status.last_error.
 */
export type TraderErrorCode = 'TRADER_COMPILE' | 'TRADER_RUNTIME' | 'TRADER_CONTRACT' | 'TRADER_TIMEOUT' | 'TRADER_MEMORY' | 'TRADER_CRASH';

export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'TRANSIENT'
  | 'RATE_LIMITED'
  | 'IP_BANNED'
  | 'TIMEOUT'
  | TraderErrorCode
  | 'PROTOCOL'
  | 'DB_REJECTED'
  | 'BOOT_FAILED'
  | 'ILLEGAL_STATE';

abstract class WorkerError extends Error {
  abstract readonly code: ErrorCode;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The configuration is wrong: fix it and restart. */
export class ConfigError extends WorkerError {
  readonly code = 'CONFIG_INVALID' as const;
  /** The bad variables, comma-separated. */
  readonly variable: string;
  /** `reason` names each variable itself ("USER_ID is required (a uuid)"), so the message does not repeat it. */
  constructor(variable: string, reason: string) {
    super(reason);
    this.variable = variable;
  }
}

/** Worth retrying later (network, 5xx, outage, rate limit). `retryAfterMs` when the peer said when. */
export class TransientError extends WorkerError {
  readonly code: 'TRANSIENT' | 'RATE_LIMITED' | 'IP_BANNED' | 'TIMEOUT';
  readonly retryAfterMs: number | undefined;
  constructor(
    message: string,
    options?: { cause?: unknown; code?: 'TRANSIENT' | 'RATE_LIMITED' | 'IP_BANNED' | 'TIMEOUT'; retryAfterMs?: number },
  ) {
    super(message, options);
    this.code = options?.code ?? 'TRANSIENT';
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/** The peer broke the documented contract (a malformed payload). Count it and skip it. */
export class ProtocolError extends WorkerError {
  readonly code = 'PROTOCOL' as const;
}

/**
 * The database refused a write or read for good (row-level security, a constraint, a bad or expired
 * key): retrying the same request cannot succeed. `status` is the HTTP status, `dbCode` PostgREST's or Postgres's code.
 */
export class DatabaseRejectedError extends WorkerError {
  readonly code = 'DB_REJECTED' as const;
  readonly status: number;
  readonly dbCode: string;
  constructor(message: string, options: { status: number; dbCode: string; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.status = options.status;
    this.dbCode = options.dbCode;
  }
}

/** A lifecycle transition that is not allowed: a bug in the caller. */
export class IllegalStateError extends WorkerError {
  readonly code = 'ILLEGAL_STATE' as const;
  constructor(component: string, from: string, to: string) {
    super(`${component}: cannot go from ${from} to ${to}`);
  }
}

/**
 * A boot step failed: the process exits non-zero and the platform restarts it. `causeCode` keeps what the step's own
 * error said, so an operator can tell "retrying may help" (TRANSIENT) from "fix the key" (DB_REJECTED).
 */
export class BootFailedError extends WorkerError {
  readonly code = 'BOOT_FAILED' as const;
  readonly step: string;
  readonly causeCode: string | undefined;
  constructor(step: string, cause: unknown) {
    const causeCode = cause instanceof WorkerError ? cause.code : undefined;
    const detail = cause instanceof Error ? cause.message : String(cause);
    const status = cause instanceof DatabaseRejectedError ? cause.status : undefined;
    const hint =
      status === 401 || status === 403
        ? ' (the database refused SUPABASE_KEY: mint a new worker JWT for this USER_ID and check SUPABASE_URL)'
        : '';
    super(`boot step ${step} failed: ${detail}${hint}`, { cause });
    this.step = step;
    this.causeCode = causeCode;
  }
}
