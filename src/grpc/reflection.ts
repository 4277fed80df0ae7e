import { createRequire } from 'node:module';
import { status as Status, type MethodDefinition, type Server, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { PackageDefinition } from '@grpc/proto-loader';
import type { ReflectionService } from '@grpc/reflection';
import type { Logger } from 'pino';
import { servedDefinitions } from './proto.js';

/**
 * gRPC server reflection (v1 and v1alpha) describing every service the daemon serves, so generic
 * tools (grpcurl, grpcui, Postman) can list and call them without the proto files.
 *
 * The reflection service is built at its first call, not at start-up: building it loads
 * @grpc/reflection and every served proto file once more, and indexes and encodes their
 * descriptors twice (once a version), about 2 MiB of an idle daemon's memory for a service few
 * daemons are ever asked. The price is paid once, by the first call: about 0.1 s of the event
 * loop. Until then each version is registered under its method's path with stand-ins that build
 * the real service (synchronously: a message must be decoded as it arrives) and hand over to
 * what @grpc/reflection would have registered. Should building fail (a broken install, or the
 * proto files unreadable for a while, say out of file descriptors), that is logged and reflection
 * calls answer INTERNAL for a minute before the next try, rather than building again at each call.
 */
export function addReflection(server: Pick<Server, 'addService'>, logger: Logger, load: LoadReflection = loadReflection): void {
  const reflection = lazyReflection(logger, load);
  for (const version of ['v1', 'v1alpha']) {
    const service = `grpc.reflection.${version}.ServerReflection`;
    server.addService(lazyService(service, reflection), lazyHandlers(service, reflection));
  }
}

/** @grpc/reflection's service class, loaded when reflection is first asked for. */
export type LoadReflection = () => new (definitions: PackageDefinition) => Pick<ReflectionService, 'addToServer'>;

function loadReflection(): new (definitions: PackageDefinition) => ReflectionService {
  return (createRequire(import.meta.url)('@grpc/reflection') as { ReflectionService: typeof ReflectionService }).ReflectionService;
}

const METHOD = 'ServerReflectionInfo';

interface Registered {
  definition: MethodDefinition<unknown, unknown>;
  handler: (call: unknown) => void;
}

type Built = { services: Map<string, Registered> } | { failure: string; at: number };

/** How long a failed build answers for the calls after it. */
const RETRY_AFTER_MS = 60_000;

/** The real service of a name, or why there is none; what is built is built once, at the first call. */
type Reflection = (service: string) => Registered | string;

function lazyReflection(logger: Logger, load: LoadReflection): Reflection {
  let built: Built | undefined;
  /** What @grpc/reflection registers, by service name, built at the first call (or why it could not be). */
  const reflection = (): Built => {
    if (built && !('failure' in built && Date.now() - built.at >= RETRY_AFTER_MS)) return built;
    try {
      const Service = load();
      const services = new Map<string, Registered>();
      // addToServer's only use of the server is addService: this one notes what it is given.
      const recorder = {
        addService(service: ServiceDefinition, implementation: UntypedServiceImplementation) {
          const definition = service[METHOD] as MethodDefinition<unknown, unknown>;
          const name = definition.path.split('/')[1] as string;
          services.set(name, { definition, handler: implementation[METHOD] as (call: unknown) => void });
        },
      };
      new Service(servedDefinitions()).addToServer(recorder);
      built = { services };
    } catch (err) {
      logger.error({ err }, 'server reflection could not be built; its calls answer INTERNAL for a minute, then it is tried again');
      // the cause is in the log: its message names the daemon's own paths
      const code = (err as NodeJS.ErrnoException).code;
      built = { failure: `could not be built${code ? ` (${code})` : ''}, see the daemon's log`, at: Date.now() };
    }
    return built;
  };
  return (service) => {
    const b = reflection();
    if ('failure' in b) return `server reflection is not available: ${b.failure}`;
    return b.services.get(service) ?? `server reflection is not available: @grpc/reflection registered no ${service}`;
  };
}

function lazyService(service: string, real: Reflection): ServiceDefinition {
  const definition = (): MethodDefinition<unknown, unknown> | undefined => {
    const found = real(service);
    return typeof found === 'string' ? undefined : found.definition;
  };
  // Without a real service the handler has already ended the call: what arrives is left undecoded.
  const method: MethodDefinition<unknown, unknown> = {
    path: `/${service}/${METHOD}`,
    requestStream: true,
    responseStream: true,
    originalName: METHOD,
    requestSerialize: (value) => definition()?.requestSerialize(value) ?? Buffer.alloc(0),
    requestDeserialize: (bytes) => definition()?.requestDeserialize(bytes) ?? bytes,
    responseSerialize: (value) => definition()?.responseSerialize(value) ?? Buffer.alloc(0),
    responseDeserialize: (bytes) => definition()?.responseDeserialize(bytes) ?? bytes,
  };
  return { [METHOD]: method };
}

function lazyHandlers(service: string, real: Reflection): UntypedServiceImplementation {
  return {
    [METHOD]: (call: { emit(event: 'error', err: { code: Status; details: string }): boolean }) => {
      const found = real(service);
      if (typeof found === 'string') call.emit('error', { code: Status.INTERNAL, details: found });
      else found.handler(call);
    },
  };
}
