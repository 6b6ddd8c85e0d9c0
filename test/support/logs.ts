// A logger whose lines a test can read back (parsed JSON), built by the real createLogger.
import { createLogger, type Logger } from '../../src/logger.ts';

export interface CollectedLogs {
  logger: Logger;
  lines: string[];
  events(event: string): Record<string, unknown>[];
}

export function collectingLogger(options: { secrets?: string[]; level?: string } = {}): CollectedLogs {
  const lines: string[] = [];
  const logger = createLogger({
    level: options.level ?? 'debug',
    userId: 'test-user',
    machineId: 'test-machine',
    secrets: options.secrets,
    sink: { write: (line) => lines.push(line) },
  });
  return {
    logger,
    lines,
    events: (event) =>
      lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.event === event),
  };
}
