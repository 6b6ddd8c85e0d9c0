// The fleet controller's errors, named for what the caller must do.

/** The Machines API refused the request for good (4xx other than 408/409/429): retrying the same call cannot help. */
export class FlyRejectedError extends Error {
  readonly code = 'FLY_REJECTED' as const;
  readonly status: number;
  constructor(message: string, status: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FlyRejectedError';
    this.status = status;
  }
}

/** Retrying later may help: 429, 5xx or a network failure, still failing after the client's own retries. */
export class FlyUnavailableError extends Error {
  readonly code = 'FLY_UNAVAILABLE' as const;
  readonly status: number;
  constructor(message: string, status: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FlyUnavailableError';
    this.status = status;
  }
}

/** Another controller (or an operator's flyctl) holds the machine's lease: leave this user for the next pass. */
export class MachineLeasedError extends Error {
  readonly code = 'MACHINE_LEASED' as const;
  constructor(what: string) {
    super(`${what} is leased by another owner`);
    this.name = 'MachineLeasedError';
  }
}

/** The fleet database refused or failed a call. */
export class FleetDatabaseError extends Error {
  readonly code = 'FLEET_DB' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FleetDatabaseError';
  }
}
