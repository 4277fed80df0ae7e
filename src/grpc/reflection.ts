import { createRequire } from 'node:module';
import type { MethodDefinition, Server, ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { ReflectionService } from '@grpc/reflection';
import { servedDefinitions } from './proto.js';

/**
 * gRPC server reflection (v1 and v1alpha) describing every service the daemon serves, so generic
 * tools (grpcurl, grpcui, Postman) can list and call them without the proto files.
 *
 * The reflection service is built at its first call, not at start-up: building it loads
 * @grpc/reflection and every served proto file once more, and indexes and encodes their
 * descriptors twice (once a version), about 2 MiB of an idle daemon's memory for a service few
 * daemons are ever asked. Until then each version is registered under its method's path with
 * stand-ins that build the real service (synchronously: a message must be decoded as it
 * arrives) and hand over to what @grpc/reflection would have registered.
 */
export function addReflection(server: Server): void {
  for (const version of ['v1', 'v1alpha']) server.addService(lazyService(`grpc.reflection.${version}.ServerReflection`), lazyHandlers(version));
}

const METHOD = 'ServerReflectionInfo';

interface Registered {
  definition: MethodDefinition<unknown, unknown>;
  handler: (call: unknown) => void;
}

let built: Map<string, Registered> | undefined;

/** What @grpc/reflection registers, by service name, built at the first call. */
function reflection(): Map<string, Registered> {
  if (built) return built;
  const { ReflectionService: Service } = createRequire(import.meta.url)('@grpc/reflection') as { ReflectionService: typeof ReflectionService };
  const registered = new Map<string, Registered>();
  // addToServer's only use of the server is addService: this one notes what it is given.
  const recorder = {
    addService(service: ServiceDefinition, implementation: UntypedServiceImplementation) {
      const definition = service[METHOD] as MethodDefinition<unknown, unknown>;
      const name = definition.path.split('/')[1] as string;
      registered.set(name, { definition, handler: implementation[METHOD] as (call: unknown) => void });
    },
  };
  new Service(servedDefinitions()).addToServer(recorder as unknown as Server);
  built = registered;
  return built;
}

function real(service: string): Registered {
  const found = reflection().get(service);
  if (!found) throw new Error(`@grpc/reflection registered no ${service}`);
  return found;
}

function lazyService(service: string): ServiceDefinition {
  const method: MethodDefinition<unknown, unknown> = {
    path: `/${service}/${METHOD}`,
    requestStream: true,
    responseStream: true,
    originalName: METHOD,
    requestSerialize: (value) => real(service).definition.requestSerialize(value),
    requestDeserialize: (bytes) => real(service).definition.requestDeserialize(bytes),
    responseSerialize: (value) => real(service).definition.responseSerialize(value),
    responseDeserialize: (bytes) => real(service).definition.responseDeserialize(bytes),
  };
  return { [METHOD]: method };
}

function lazyHandlers(version: string): UntypedServiceImplementation {
  const service = `grpc.reflection.${version}.ServerReflection`;
  return { [METHOD]: (call: unknown) => real(service).handler(call) };
}
