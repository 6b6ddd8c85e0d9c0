// Structured JSON logs: a stable `event` field, userId and machineId on every line, secrets scrubbed.
import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

/** Three base64url parts starting with a JSON header: a JWT, whoever issued it. */
const JWT = /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}/g;
/** Supabase's newer opaque keys. */
const SUPABASE_OPAQUE_KEY = /sb_(?:secret|publishable)_[A-Za-z0-9_-]{10,}/g;
export const REDACTED = '[REDACTED]';

const REDACT_PATHS = [
  'key',
  'apikey',
  'apiKey',
  'token',
  'jwt',
  'secret',
  'password',
  'authorization',
  'supabaseKey',
  'SUPABASE_KEY',
  '*.key',
  '*.apikey',
  '*.apiKey',
  '*.token',
  '*.jwt',
  '*.secret',
  '*.password',
  '*.authorization',
  '*.Authorization',
  '*.supabaseKey',
  '*.SUPABASE_KEY',
  'headers.authorization',
  'headers.apikey',
  'config.supabaseKey',
];

/** Replace every secret-looking substring and every known secret value. */
export function scrubSecrets(text: string, secrets: readonly string[] = []): string {
  let scrubbed = text.replace(JWT, REDACTED).replace(SUPABASE_OPAQUE_KEY, REDACTED);
  for (const secret of secrets) {
    if (secret.length >= 8 && scrubbed.includes(secret)) scrubbed = scrubbed.split(secret).join(REDACTED);
  }
  return scrubbed;
}

export interface LogSink {
  write(line: string): void;
}

export interface LoggerOptions {
  level: string;
  userId: string;
  machineId: string;
  /** Values that must never be printed, such as the Supabase key. */
  secrets?: readonly string[];
  pretty?: boolean;
  /** Where lines go; stdout by default. Tests pass a collector. */
  sink?: LogSink;
}

export function createLogger(options: LoggerOptions): Logger {
  const secrets = options.secrets ?? [];
  const target: LogSink = options.sink ?? process.stdout;
  // Paths catch secrets in known places; the line scrubber catches them anywhere else (error messages, URLs).
  const stream = { write: (line: string) => target.write(scrubSecrets(line, secrets)) };
  const logger = pino(
    {
      level: options.level,
      base: { userId: options.userId, machineId: options.machineId },
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
    },
    options.pretty ? prettyStream(stream) : stream,
  );
  return logger;
}

/** pino-pretty is a devDependency: pretty output exists only where it is installed (locally). */
function prettyStream(stream: LogSink): LogSink {
  try {
    const require = createRequire(import.meta.url);
    const pretty = require('pino-pretty') as (options: object) => NodeJS.WritableStream;
    const prettified = pretty({ colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'userId,machineId' });
    prettified.on('data', (chunk: Buffer) => stream.write(chunk.toString()));
    return { write: (line: string) => prettified.write(line) };
  } catch {
    return stream;
  }
}

/** A logger that drops everything; for unit tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
