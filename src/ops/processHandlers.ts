// Process-level events: SIGTERM/SIGINT start a clean shutdown, a second one exits at once; crashes are logged and end the process.
import type { Logger } from '../logger.ts';

type ShutdownSignal = 'SIGTERM' | 'SIGINT';

/** Conventional 128 + signal number, for a forced exit. */
const FORCED_EXIT_CODE: Record<ShutdownSignal, number> = { SIGINT: 130, SIGTERM: 143 };

export interface ProcessHandlerOptions {
  logger: Logger;
  /** Runs once, on the first signal; its rejection is logged and the exit code becomes 1. */
  shutdown: (signal: ShutdownSignal) => Promise<void>;
  exit: (code: number) => void;
  /** The process to listen on; the real one by default. */
  target?: NodeJS.EventEmitter;
}

/** Install handlers; returns a function that removes them. */
export function installProcessHandlers(options: ProcessHandlerOptions): () => void {
  const target = options.target ?? process;
  const { logger, exit } = options;
  let shuttingDown = false;

  const onSignal = (signal: ShutdownSignal) => {
    if (shuttingDown) {
      logger.warn({ event: 'shutdown', signal, step: 'forced' }, 'second signal: exiting now');
      exit(FORCED_EXIT_CODE[signal]);
      return;
    }
    shuttingDown = true;
    logger.info({ event: 'shutdown', signal, step: 'begin' }, 'shutdown requested');
    options.shutdown(signal).then(
      () => exit(0),
      (error: unknown) => {
        logger.error({ event: 'shutdown', signal, step: 'failed', err: error }, 'shutdown failed');
        exit(1);
      },
    );
  };
  const onTerm = () => onSignal('SIGTERM');
  const onInt = () => onSignal('SIGINT');
  // Crash-only: a broken invariant ends the process non-zero so the platform restarts it from a clean boot.
  const onRejection = (reason: unknown) => {
    logger.fatal({ event: 'fatal', kind: 'unhandledRejection', err: reason }, 'unhandled rejection');
    exit(1);
  };
  const onException = (error: Error, origin: string) => {
    logger.fatal({ event: 'fatal', kind: origin, err: error }, 'uncaught exception');
    exit(1);
  };

  target.on('SIGTERM', onTerm);
  target.on('SIGINT', onInt);
  target.on('unhandledRejection', onRejection);
  target.on('uncaughtException', onException);
  return () => {
    target.off('SIGTERM', onTerm);
    target.off('SIGINT', onInt);
    target.off('unhandledRejection', onRejection);
    target.off('uncaughtException', onException);
  };
}
