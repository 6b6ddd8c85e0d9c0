// The signal insert after a candle close reuses a connection warmed just before the close instead of opening one on the
// latency path: Node's HTTP client drops a connection idle for 4 s, and a 1m tick's insert comes a minute after the last.
import { createServer, connect, type Server } from 'node:net';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.ts';
import { StateSynchronizer } from '../src/database/StateSynchronizer.ts';
import { silentLogger } from '../src/logger.ts';
import { signalSeries } from './support/signals.ts';
import { createTestUser, insertTrader, sharedStack } from './support/stack.ts';
import { cleanupsAfterEach, until } from './support/wait.ts';

const stack = sharedStack();
const cleanups = cleanupsAfterEach();

/** A TCP relay in front of the stack's gateway that counts the connections clients open through it, and the chunks the gateway sends back. */
async function countingRelay(): Promise<{ url: string; connections: () => number; answers: () => number }> {
  const upstream = new URL(stack.supabaseUrl);
  let connections = 0;
  let answers = 0;
  const server: Server = createServer((client) => {
    connections += 1;
    const target = connect(Number(upstream.port), upstream.hostname);
    target.on('data', () => (answers += 1));
    client.pipe(target).pipe(client);
    client.on('error', () => target.destroy());
    target.on('error', () => client.destroy());
    client.on('close', () => target.destroy());
    target.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, connections: () => connections, answers: () => answers };
}

describe('warming the signal insert', () => {

  it('lets the insert after an idle minute reuse a connection opened just before, where it would open its own', async () => {
    const user = await createTestUser(stack);
    const traderId = await insertTrader(stack, { userId: user.id, name: 'warm' });
    const relay = await countingRelay();
    const synchronizer = new StateSynchronizer({
      supabaseUrl: relay.url,
      supabaseKey: user.workerJwt,
      userId: user.id,
      machineId: 'test-machine',
      clock: systemClock,
      logger: silentLogger(),
    });
    cleanups.push(() => synchronizer.stop());
    await synchronizer.start();
    const [first, second, third] = [0, 1, 2].map((tick) => signalSeries(user.id, traderId, 3, `SYM${tick}USDT`));
    await synchronizer.writeSignals(first!);
    // Idle past the client's 4 s keep-alive (the local gateway closes sooner, after 1 s), as between two 1m ticks.
    const idle = () => new Promise((resolve) => setTimeout(resolve, 4_500));

    await idle();
    const coldBefore = relay.connections();
    expect((await synchronizer.writeSignals(second!)).committed).toBe(3);
    expect(relay.connections() - coldBefore).toBe(1);

    await idle();
    const warmBefore = relay.connections();
    const answersBefore = relay.answers();
    synchronizer.warm();
    // Polled until the gateway has answered the warm-up read (a loaded machine can take longer than any fixed wait), then a
    // moment for the client to read the answer and put the connection back in its pool (well inside the gateway's 1 s).
    await until(() => relay.connections() > warmBefore && relay.answers() > answersBefore, 'the warm-up read answered');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const insertBefore = relay.connections();
    expect((await synchronizer.writeSignals(third!)).committed).toBe(3);
    expect(relay.connections() - insertBefore).toBe(0);
    const rows = await stack.sql`select symbol from public.signals where trader_id = ${traderId}`;
    expect(rows).toHaveLength(9);
  }, 30_000);
});
