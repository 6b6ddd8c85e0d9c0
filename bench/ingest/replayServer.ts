// A child process that answers every WebSocket upgrade by writing the same pre-encoded frames as fast as the socket takes them.
// It runs apart from the client so the client's core measures parsing and storing, not sending.
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildReplayFrames, encodeTextFrames, type ReplaySpec } from './frames.ts';

/** RFC 6455 §1.3: the accept key is the client's key plus this GUID, SHA-1, base64. */
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

const spec = JSON.parse(process.argv[2] ?? '{}') as ReplaySpec;
const payload = encodeTextFrames(buildReplayFrames(spec));

// A combined-stream URL for 1000 streams is ~25 KB, past Node's default 16 KB header limit.
const server = createServer({ maxHeaderSize: 1 << 20 }, (_request, response) => response.writeHead(404).end());
server.on('upgrade', (request, socket) => {
  const key = request.headers['sec-websocket-key'];
  if (typeof key !== 'string') {
    socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    return;
  }
  const accept = createHash('sha1').update(key + WEBSOCKET_GUID).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  // Frames right behind the handshake would race the client's adoption of the socket (connection.ts
  // drops frames of a socket it has not adopted yet); a short pause keeps the count exact.
  setTimeout(() => socket.write(payload), 100);
  // The client closes when it has counted every frame; its close frame needs no answer here.
  socket.on('data', () => undefined);
  socket.on('error', () => undefined);
});
server.listen(0, '127.0.0.1', () => {
  process.send?.({ port: (server.address() as AddressInfo).port, bytes: payload.length });
});
process.on('disconnect', () => process.exit(0));
