import { fileURLToPath } from 'node:url';
import { loadPackageDefinition, type GrpcObject } from '@grpc/grpc-js';
import { loadSync, type Options, type PackageDefinition } from '@grpc/proto-loader';
import type { ProtoGrpcType as ContentProto } from '../generated/content.js';
import type { ProtoGrpcType as LeasesProto } from '../generated/leases.js';
import type { ProtoGrpcType as NamespacesProto } from '../generated/namespace.js';
import type { ProtoGrpcType as HealthProto } from '../generated/health.js';
import type { ProtoGrpcType as RecordsProto } from '../generated/records.js';
import type { ReadContentResponse } from '../generated/containerd/services/content/v1/ReadContentResponse.js';
import { encodePiecewise, isPiecewise } from './read-response.js';
import { Instant } from '../clock.js';

/** Same options as `npm run proto:gen`, so the generated types describe what is loaded. */
const LOADER_OPTIONS: Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

// src/grpc and dist/grpc both sit two levels below the package root.
const PROTO_DIR = fileURLToPath(new URL('../../proto', import.meta.url));

/** Every proto file the daemon serves a service of; server reflection describes them all. */
const SERVED_PROTO_FILES = [
  'containerd/services/content/v1/content.proto',
  'containerd/services/leases/v1/leases.proto',
  'containerd/services/namespaces/v1/namespace.proto',
  'grpc/health/v1/health.proto',
  's3cs/records/v1/records.proto',
] as const;

/** One package definition of every served file, as server reflection wants it. */
export function servedDefinitions(): PackageDefinition {
  return loadSync([...SERVED_PROTO_FILES], { ...LOADER_OPTIONS, includeDirs: [PROTO_DIR] });
}

function load<T>(file: string): T {
  const definition = loadSync(file, { ...LOADER_OPTIONS, includeDirs: [PROTO_DIR] });
  return loadPackageDefinition(definition) as GrpcObject as unknown as T;
}

let cache:
  | { content: ContentProto; leases: LeasesProto; namespaces: NamespacesProto; health: HealthProto; records: RecordsProto }
  | undefined;

export function protos() {
  if (!cache) {
    const content = load<ContentProto>('containerd/services/content/v1/content.proto');
    // Read answers carry blob bytes: encoded straight from the pieces storage delivered.
    const read = content.containerd.services.content.v1.Content.service.Read;
    const encodeWhole = read.responseSerialize;
    read.responseSerialize = (message: ReadContentResponse) =>
      isPiecewise(message) ? encodePiecewise(message) : encodeWhole(message);
    cache = {
      content,
      leases: load<LeasesProto>('containerd/services/leases/v1/leases.proto'),
      namespaces: load<NamespacesProto>('containerd/services/namespaces/v1/namespace.proto'),
      health: load<HealthProto>('grpc/health/v1/health.proto'),
      records: load<RecordsProto>('s3cs/records/v1/records.proto'),
    };
  }
  return cache;
}

export function toTimestamp(time: Date | Instant): { seconds: number; nanos: number } {
  return (time instanceof Date ? Instant.fromDate(time) : time).toTimestamp();
}
