// The operators' HTTP endpoints: GET /health, /ready and /metrics over node:http.
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { LifecycleGuard } from '../lifecycle.ts';
import type { Logger } from '../logger.ts';
import type { LifecycleState } from '../ports.ts';

export interface HealthReport {
  healthy: boolean;
  [detail: string]: unknown;
}

export interface ReadinessReport {
  ready: boolean;
  state: string;
  reasons: string[];
}

export interface OpsServerOptions {
  port: number;
  /** Loopback in tests; every interface by default (Fly routes to the machine's address). */
  host?: string;
  logger: Logger;
  health: () => HealthReport;
  readiness: () => ReadinessReport;
  metrics: () => Promise<{ contentType: string; body: string }>;
}

export class OpsServer {
  private readonly options: OpsServerOptions;
  private readonly lifecycle = new LifecycleGuard('OpsServer');
  private server: Server | null = null;

  constructor(options: OpsServerOptions) {
    this.options = options;
  }

  get state(): LifecycleState {
    return this.lifecycle.state;
  }

  /** The bound port: differs from the configured one when that was 0. */
  get port(): number {
    const address = this.server?.address() as AddressInfo | null | undefined;
    return address?.port ?? this.options.port;
  }

  start(): Promise<void> {
    return this.lifecycle.start(
      () =>
        new Promise<void>((resolve, reject) => {
          const server = createServer((request, response) => void this.handle(request, response));
          // Probes and scrapers open short connections; a stuck one must not hold shutdown.
          server.keepAliveTimeout = 5_000;
          server.requestTimeout = 10_000;
          server.once('error', reject);
          server.listen(this.options.port, this.options.host, () => {
            server.off('error', reject);
            this.server = server;
            this.options.logger.info({ event: 'http_listening', port: this.port }, 'ops server listening');
            resolve();
          });
        }),
    );
  }

  stop(): Promise<void> {
    return this.lifecycle.stop(
      () =>
        new Promise<void>((resolve) => {
          const server = this.server;
          this.server = null;
          if (server === null) {
            resolve();
            return;
          }
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    );
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? '/').split('?')[0];
    try {
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        this.json(response, 405, { error: 'method not allowed' });
        return;
      }
      if (path === '/health') {
        const report = this.options.health();
        this.json(response, report.healthy ? 200 : 503, { status: report.healthy ? 'ok' : 'unhealthy', ...report });
      } else if (path === '/ready') {
        const report = this.options.readiness();
        if (report.ready) this.json(response, 200, { state: report.state });
        else this.json(response, 503, { state: report.state, reason: report.reasons.join('; '), reasons: report.reasons });
      } else if (path === '/metrics') {
        const { contentType, body } = await this.options.metrics();
        response.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
        response.end(body);
      } else {
        this.json(response, 404, { error: 'not found' });
      }
    } catch (error) {
      this.options.logger.error({ event: 'http_error', path, err: error }, 'ops request failed');
      if (!response.headersSent) this.json(response, 500, { error: 'internal error' });
      else response.destroy();
    }
  }

  private json(response: ServerResponse, status: number, body: object): void {
    const text = JSON.stringify(body);
    response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    response.end(text);
  }
}
