// Loopback port helpers for the local stack.
import { createServer } from 'node:net';

/** A port the kernel just handed out on 127.0.0.1; free again the moment this resolves. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Poll `probe` until it returns true or the deadline passes. */
export async function waitFor(what: string, probe: () => Promise<boolean>, deadlineMs: number, intervalMs = 50): Promise<void> {
  const deadline = performance.now() + deadlineMs;
  let lastError: unknown;
  while (performance.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`${what} not ready within ${deadlineMs} ms`, { cause: lastError });
}
