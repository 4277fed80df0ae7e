import { credentials, loadPackageDefinition, type ClientDuplexStream } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

type Reflection = new (a: string, c: unknown) => {
  ServerReflectionInfo(): ClientDuplexStream<object, { list_services_response?: { service: { name: string }[] } }>;
  close(): void;
};

/** The services a server lists through gRPC server reflection `version`, as grpcurl asks first. */
export async function listServicesByReflection(address: string, version: 'v1' | 'v1alpha' = 'v1'): Promise<string[]> {
  const definition = loadSync(`grpc/reflection/${version}/reflection.proto`, {
    includeDirs: [new URL('../../node_modules/@grpc/reflection/build/proto', import.meta.url).pathname],
    keepCase: true,
  });
  const Client = (loadPackageDefinition(definition) as never as { grpc: { reflection: Record<string, { ServerReflection: Reflection }> } }).grpc.reflection[version]!.ServerReflection;
  const client = new Client(address, credentials.createInsecure());
  try {
    const stream = client.ServerReflectionInfo();
    const answer = new Promise<string[]>((resolve, reject) => {
      stream.on('data', (r) => resolve((r.list_services_response?.service ?? []).map((s: { name: string }) => s.name)));
      stream.on('error', reject);
    });
    stream.write({ list_services: '' });
    const names = await answer;
    stream.end();
    return names;
  } finally {
    client.close();
  }
}
