// A small stand-in for Supabase's API gateway (Kong): serves PostgREST under /rest/v1 and turns an apikey into a bearer token.
import { type IncomingMessage, type Server, type ServerResponse, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Gateway {
  port: number;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host']);

/** `upstreamPort()` is read per request, so a restarted PostgREST on another port is picked up. */
export async function startGateway(options: { port?: number; upstreamPort: () => number }): Promise<Gateway> {
  const server: Server = createServer((incoming, outgoing) => proxy(incoming, outgoing, options.upstreamPort()));
  // No idle timeout, so no `Keep-Alive: timeout=` hint either: a client keeps its connection as long as its own HTTP
  // client does (Node's: 4 s idle), as against a production gateway. The hint this server sent (timeout=1) made Node's
  // client drop every connection after one request, so every request here paid a new connection. close() still ends
  // idle sockets (closeAllConnections).
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function proxy(incoming: IncomingMessage, outgoing: ServerResponse, upstreamPort: number): void {
  const url = incoming.url ?? '/';
  if (url === '/health') {
    outgoing.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    return;
  }
  if (!url.startsWith('/rest/v1/') && url !== '/rest/v1') {
    outgoing.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"no route matched with those values"}');
    return;
  }
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(incoming.headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
  }
  // Kong's key-auth: a request with only an apikey is made as that key's role.
  const apikey = incoming.headers.apikey;
  if (headers.authorization === undefined && typeof apikey === 'string' && apikey !== '') headers.authorization = `Bearer ${apikey}`;
  const upstream = request(
    { host: '127.0.0.1', port: upstreamPort, method: incoming.method, path: url.slice('/rest/v1'.length) || '/', headers },
    (response) => {
      const responseHeaders: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(response.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) responseHeaders[name] = value;
      }
      outgoing.writeHead(response.statusCode ?? 502, responseHeaders);
      response.pipe(outgoing);
    },
  );
  upstream.on('error', () => {
    // What Kong answers when its upstream is down.
    if (!outgoing.headersSent) {
      outgoing.writeHead(502, { 'content-type': 'application/json' }).end('{"message":"An invalid response was received from the upstream server"}');
    } else {
      outgoing.destroy();
    }
  });
  incoming.pipe(upstream);
}
