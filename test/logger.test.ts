// createLogger: stable fields on every line, and no secret survives into the output in any position.
import { describe, expect, it } from 'vitest';
import { REDACTED, scrubSecrets } from '../src/logger.ts';
import { mintUserJwt } from '../dev/jwt.ts';
import { collectingLogger } from './support/logs.ts';

const JWT = mintUserJwt('6b1f0c2e-8d7a-4c1e-9a55-3f0d2b9e7c11', 'a-signing-secret-of-at-least-32-chars!!', { worker: true });
const SERVICE_SECRET = 'plain-service-secret-0123456789';

describe('the logger', () => {
  it('puts userId, machineId and the event on every line', () => {
    const { logger, events } = collectingLogger();
    logger.info({ event: 'boot', step: 'config' }, 'boot step done');
    expect(events('boot')).toEqual([expect.objectContaining({ userId: 'test-user', machineId: 'test-machine', step: 'config', msg: 'boot step done', level: 'info' })]);
  });

  it('redacts JWT-looking strings in messages, fields and errors', () => {
    const { logger, lines } = collectingLogger();
    logger.warn({ event: 'db_retry', url: `https://x.supabase.co/rest/v1?token=${JWT}`, nested: { header: `Bearer ${JWT}` } }, `request with ${JWT} failed`);
    logger.error({ event: 'db_rejected', err: new Error(`rejected key ${JWT}`) }, 'write refused');
    const output = lines.join('\n');
    expect(output).not.toContain(JWT);
    expect(output).not.toContain(JWT.split('.')[1]!);
    expect(output.split(REDACTED).length - 1).toBeGreaterThanOrEqual(4);
  });

  it('redacts the configured secret wherever it appears, and secret-named fields', () => {
    const { logger, lines } = collectingLogger({ secrets: [SERVICE_SECRET] });
    logger.info({ event: 'boot', detail: `key=${SERVICE_SECRET}`, config: { supabaseKey: 'short' }, apikey: 'abc' }, `using ${SERVICE_SECRET}`);
    logger.error({ event: 'boot', err: new Error(`bad key ${SERVICE_SECRET}`) }, 'boot failed');
    const output = lines.join('\n');
    expect(output).not.toContain(SERVICE_SECRET);
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(first.detail).toBe(`key=${REDACTED}`);
    expect(first.apikey).toBe(REDACTED);
    expect((first.config as Record<string, unknown>).supabaseKey).toBe(REDACTED);
    expect((JSON.parse(lines[1]!) as { err: { message: string } }).err.message).toBe(`bad key ${REDACTED}`);
  });

  it('leaves ordinary text alone', () => {
    expect(scrubSecrets('BTCUSDT 1m candle closed at 42000.5', [SERVICE_SECRET])).toBe('BTCUSDT 1m candle closed at 42000.5');
  });
});
