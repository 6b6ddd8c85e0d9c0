// Waiting and cleaning up in tests that drive real parts: poll with a generous deadline, never sleep a fixed time.
import { afterEach } from 'vitest';

/** Polls `condition` in real time until it holds; the deadline is generous because the machine is shared. */
export async function until(condition: () => boolean | Promise<boolean>, what: string, deadlineMs = 20_000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** A list the test pushes its teardowns to; after each test they run in reverse order, like nested `finally`s. */
export function cleanupsAfterEach(): Array<() => Promise<void> | void> {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  return cleanups;
}
