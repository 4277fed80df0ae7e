import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Address } from '../config/values.js';
import type { ListenerFiles } from '../listeners.js';
import { collectProcessMetrics, registry } from './registry.js';

export interface MetricsEndpoint {
  /** Where it listens, as http(s)://host:port/metrics (a port 0 replaced by the one chosen). */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves Prometheus' text format on GET /metrics. With the daemon's TLS material it speaks
 * HTTPS (and asks for client certificates when gRPC does); without, config allows it only on
 * loopback, so what the metrics reveal (namespaces' traffic, bucket usage) stays on the host.
 */
export async function serveMetrics(address: Extract<Address, { kind: 'tcp' }>, files: ListenerFiles, logger: Logger): Promise<MetricsEndpoint> {
  collectProcessMetrics();
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('only GET\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
      (err: unknown) => {
        logger.warn({ err }, 'could not collect metrics');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('could not collect metrics\n');
      },
    );
  };
  const tls = files.tls;
  const server: Server = tls
    ? createHttpsServer({ cert: tls.cert, key: tls.key, ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}) }, handle)
    : createHttpServer(handle);
  // a scraper that opens connections and sends nothing must not keep sockets for ever
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  server.maxConnections = 64;
  const host = address.host.replace(/^\[|\]$/g, '');
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `${tls ? 'https' : 'http'}://${shownHost}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
