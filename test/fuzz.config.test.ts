// Property-based tests of loadConfig: any environment gives a Config or one clear line naming the bad variables, never a value.
import { inspect } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { ConfigError } from '../src/errors.ts';
import { check, nastyString } from './fuzz.support.ts';

/** Every variable the worker reads (DESIGN.md's table plus the tuning knobs in src/config.ts). */
const VARIABLES = [
  'USER_ID', 'SUPABASE_URL', 'SUPABASE_KEY', 'BINANCE_WS_URL', 'BINANCE_REST_URL', 'PORT', 'LOG_LEVEL', 'LOG_PRETTY', 'SYMBOLS',
  'MAX_SYMBOLS', 'KLINE_HISTORY', 'MACHINE_ID', 'FLY_MACHINE_ID', 'SCREENER_THREADS', 'FILTER_TIMEOUT_MS', 'FILTER_MEMORY_MB', 'FILTER_TICK_BUDGET_MS',
  'TRADER_FAILURE_LIMIT', 'TRADER_POLL_MS', 'TICK_GRACE_MS', 'WRITE_BUFFER_SIZE', 'READY_MIN_COVERAGE', 'READY_MAX_LAG_MS',
  'SHUTDOWN_TIMEOUT_MS', 'CLOCK',
] as const;

const VALID = {
  USER_ID: '6b1f0c2e-8d7a-4c1e-9a55-3f0d2b9e7c11',
  SUPABASE_URL: 'https://project.supabase.co',
  SUPABASE_KEY: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmdXp6In0.c2lnbmF0dXJlLWZ1enotc2VjcmV0',
};

/** A marker no message template contains: if it shows up in an error, a value was echoed. */
const CANARY = 'Qz9CANARYx7';

/** Values of every kind a .env file or an operator's typo produces, some carrying the canary. */
const valueArb = fc.oneof(
  nastyString,
  fc.string({ maxLength: 30 }).map((text) => `${text}${CANARY}${text}`),
  fc.constantFrom('0', '-1', '1.5', '99999999999999999999', '1e3', ' 8080 ', 'ws://x', 'https://', 'debug', 'true', 'BTCUSDT,ETHUSDT', 'btc usdt', `30,${CANARY},1`),
  fc.integer().map(String),
);

/** A key as operators paste it: a JWT, sometimes broken by whitespace, a newline or truncation. */
const secretKeyArb = fc
  .tuple(fc.base64String({ minLength: 8, maxLength: 60 }), fc.base64String({ minLength: 8, maxLength: 60 }), fc.constantFrom('', ' ', '\n', '\t', ' trailing', '\r\n'), fc.nat({ max: 80 }))
  .map(([payload, signature, breakage, keep]) => {
    const key = `eyJ${CANARY}.${payload.replace(/=/g, '')}.${signature.replace(/=/g, '')}${breakage}`;
    return keep < 10 ? key.slice(0, keep + CANARY.length + 3) : key;
  });

function outcome(env: Record<string, string | undefined>): { ok: true } | { ok: false; error: ConfigError } {
  try {
    loadConfig(env);
    return { ok: true };
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return { ok: false, error: error as ConfigError };
  }
}

/** The contract of a config error: one line, the variables named, nothing of any value, wherever the error is printed. */
function expectClearError(error: ConfigError): string[] {
  expect(error.code).toBe('CONFIG_INVALID');
  expect(error.message).not.toMatch(/[\n\r\u2028\u2029]/);
  expect(error.message.length).toBeLessThan(2000);
  const named = error.variable.split(', ');
  for (const variable of named) {
    expect(VARIABLES as readonly string[]).toContain(variable);
    expect(error.message).toContain(variable);
  }
  for (const printed of printedForms(error)) expect(printed).not.toContain(CANARY);
  return named;
}

function printedForms(error: ConfigError): string[] {
  return [error.message, String(error.stack), JSON.stringify(error), inspect(error, { depth: 5 })];
}

describe('fuzzing the configuration', () => {
  it('blames exactly the one variable that holds an arbitrary value, or accepts it', () => {
    check(
      fc.property(fc.constantFrom(...VARIABLES), valueArb, (variable, value) => {
        const env = { ...VALID, [variable]: value };
        const result = outcome(env);
        if (result.ok) return;
        expect(expectClearError(result.error)).toEqual([variable]);
      }),
      1500,
    );
  });

  it('never echoes a malformed SUPABASE_KEY, wherever the error is printed', () => {
    check(
      fc.property(secretKeyArb, fc.option(fc.constantFrom(...VARIABLES.filter((v) => v !== 'SUPABASE_KEY')), { nil: undefined }), valueArb, (key, other, value) => {
        const env: Record<string, string | undefined> = { ...VALID, SUPABASE_KEY: key };
        if (other !== undefined) env[other] = value;
        const result = outcome(env);
        if (result.ok) {
          // Only a well-formed key gets through: at least 20 characters, no whitespace.
          expect(key.length >= 20 && !/\s/.test(key)).toBe(true);
          return;
        }
        expectClearError(result.error);
        // Each part of the key long enough to be its own (a template word could match a short one).
        const parts = key.split(/[.\s]/).filter((part) => part.length >= 16);
        for (const printed of printedForms(result.error)) for (const part of parts) expect(printed).not.toContain(part);
      }),
      800,
    );
  });

  it('turns any environment into a Config or one ConfigError naming only real variables', () => {
    const envArb = fc
      .tuple(
        fc.dictionary(fc.constantFrom(...VARIABLES), fc.option(valueArb, { nil: undefined, freq: 5 }), { maxKeys: VARIABLES.length }),
        fc.dictionary(fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'PATH')), valueArb, { maxKeys: 5 }),
        fc.boolean(),
      )
      .map(([known, junk, startValid]) => ({ ...junk, ...(startValid ? VALID : {}), ...known }));
    check(
      fc.property(envArb, (env) => {
        const result = outcome(env);
        if (!result.ok) expectClearError(result.error);
        // Whatever the input, the prototype of plain objects is untouched.
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }),
      1500,
    );
  });

  it('ignores any number of unknown variables next to a valid configuration', () => {
    check(
      fc.property(fc.dictionary(fc.string({ minLength: 1, maxLength: 20 }).filter((name) => !(VARIABLES as readonly string[]).includes(name)), valueArb, { maxKeys: 10 }), (junk) => {
        expect(outcome({ ...junk, ...VALID })).toEqual({ ok: true });
      }),
      300,
    );
  });
});
