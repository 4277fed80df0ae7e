import type { Server } from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { servedDefinitions } from './proto.js';

/**
 * gRPC server reflection (v1 and v1alpha) describing every service the daemon serves, so generic
 * tools (grpcurl, grpcui, Postman) can list and call them without the proto files.
 */
export function addReflection(server: Server): void {
  new ReflectionService(servedDefinitions()).addToServer(server);
}
