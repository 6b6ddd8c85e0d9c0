// A detached shell that outlives a crashed or SIGKILLed parent just long enough to kill its servers.
import { type ChildProcess, spawn } from 'node:child_process';

/**
 * Postgres and PostgREST do not notice their parent dying, so a killed test run would leave them
 * running. The watchdog polls the parent's pid; once it is gone it kills whatever pids the files
 * name and removes the temporary root. A clean stop() kills the watchdog first.
 */
export function startWatchdog(options: { parentPid: number; postgrestPidFile: string; postmasterPidFile: string; removeDir: string | null }): ChildProcess {
  const script = [
    'while kill -0 "$1" 2>/dev/null; do sleep 1; done',
    '[ -f "$2" ] && kill -9 "$(cat "$2")" 2>/dev/null',
    '[ -f "$3" ] && kill -QUIT "$(head -n 1 "$3")" 2>/dev/null',
    'if [ -n "$4" ]; then sleep 2; rm -rf "$4"; fi',
  ].join('\n');
  const child = spawn(
    'sh',
    ['-c', script, 'stack-watchdog', String(options.parentPid), options.postgrestPidFile, options.postmasterPidFile, options.removeDir ?? ''],
    { detached: true, stdio: 'ignore' },
  );
  child.unref();
  return child;
}
