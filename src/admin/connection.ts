import { readFileSync } from 'node:fs';
import { credentials, Metadata, type ChannelCredentials, type Client, type ServiceError } from '@grpc/grpc-js';
import { ConfigError } from '../config.js';
import { parseAddress } from '../config/values.js';
import { protos } from '../grpc/proto.js';
import type { ContentClient } from '../generated/containerd/services/content/v1/Content.js';
import type { LeasesClient } from '../generated/containerd/services/leases/v1/Leases.js';
import type { HealthClient } from '../generated/grpc/health/v1/Health.js';
import type { NamespacesClient } from '../generated/containerd/services/namespaces/v1/Namespaces.js';
import type { CacheRecordsClient } from '../generated/s3cs/records/v1/CacheRecords.js';
import { AdminFailure, UsageError } from './failure.js';

export interface ConnectionFlags {
  address: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  insecure: boolean;
}

/**
 * The daemon's limit, so a record of up to 8 MiB (and a Read chunk of 1 MiB) passes either way;
 * grpc-js would refuse anything over 4 MiB by default.
 */
const MESSAGE_BYTES = 16 << 20;

type ClientClass<T> = new (address: string, creds: ChannelCredentials, options: object) => T;

/** grpc-js clients of one daemon, made on first use and closed together. */
export class Connection {
  private readonly clients: Client[] = [];

  private constructor(
    /** The address as the user gave it, for messages. */
    readonly address: string,
    private readonly target: string,
    private readonly creds: ChannelCredentials,
  ) {}

  static open(flags: ConnectionFlags): Connection {
    const address = flags.address.split(',')[0]!.trim();
    // A bare path is a unix socket, as ctr's --address takes it.
    const spelled = address.startsWith('/') ? `unix://${address}` : address;
    let parsed;
    try {
      parsed = parseAddress(spelled);
    } catch (err) {
      if (err instanceof ConfigError) throw new UsageError(err.message);
      throw err;
    }
    const tlsGiven = [flags.tlsCa, flags.tlsCert, flags.tlsKey].some((v) => v !== undefined);
    if (parsed.kind === 'unix') {
      if (tlsGiven) throw new UsageError(`--tls-ca, --tls-cert and --tls-key apply to tcp:// addresses; ${address} is a unix socket`);
      return new Connection(address, `unix://${parsed.path}`, credentials.createInsecure());
    }
    const target = `${parsed.host}:${parsed.port}`;
    if (flags.insecure) {
      if (tlsGiven) throw new UsageError('--insecure (plaintext) and --tls-ca, --tls-cert, --tls-key exclude each other');
      return new Connection(address, target, credentials.createInsecure());
    }
    if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
    // Node warns (DEP0123) when grpc-js names an IP address as the TLS server name; that line
    // on stderr would break the one-line contract of a failing command, and says nothing to act on.
    process.noDeprecation = true;
    const ca = flags.tlsCa === undefined ? null : readPem(flags.tlsCa, 'tls-ca');
    const key = flags.tlsKey === undefined ? null : readPem(flags.tlsKey, 'tls-key');
    const cert = flags.tlsCert === undefined ? null : readPem(flags.tlsCert, 'tls-cert');
    return new Connection(address, target, credentials.createSsl(ca, key, cert));
  }

  content(): ContentClient {
    return this.make(protos().content.containerd.services.content.v1.Content as never);
  }

  leases(): LeasesClient {
    return this.make(protos().leases.containerd.services.leases.v1.Leases as never);
  }

  records(): CacheRecordsClient {
    return this.make(protos().records.s3cs.records.v1.CacheRecords as never);
  }

  namespaces(): NamespacesClient {
    return this.make(protos().namespaces.containerd.services.namespaces.v1.Namespaces as never);
  }

  health(): HealthClient {
    return this.make(protos().health.grpc.health.v1.Health as never);
  }

  close(): void {
    for (const c of this.clients.splice(0)) c.close();
  }

  private make<T extends Client>(ctor: ClientClass<T>): T {
    const client = new ctor(this.target, this.creds, {
      'grpc.max_receive_message_length': MESSAGE_BYTES,
      'grpc.max_send_message_length': MESSAGE_BYTES,
    });
    this.clients.push(client);
    return client;
  }
}

function readPem(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new AdminFailure(`--${flag} ${path}: ${(err as Error).message}`);
  }
}

/** containerd's header for the namespace a call works in. */
export function inNamespace(namespace: string): Metadata {
  const md = new Metadata();
  md.set('containerd-namespace', namespace);
  return md;
}

/** A unary call as a promise: `unary<R>((cb) => client.Info(req, md, cb))`. */
export function unary<R>(start: (callback: (err: ServiceError | null, value?: R) => void) => unknown): Promise<R> {
  return new Promise((resolve, reject) => {
    start((err, value) => (err ? reject(err) : resolve(value as R)));
  });
}
