import { constants } from 'node:http2';
import type { Server } from '@grpc/grpc-js';

interface Session {
  readonly destroyed: boolean;
  destroy(error?: Error, code?: number): void;
}

/**
 * Destroys every HTTP/2 session the server holds, which cancels the calls on them. grpc-js's
 * forceShutdown (1.14) destroys only the sessions it tracks for channelz, which the daemon turns
 * off (it made objects at every call): without this, a stop past its timeout cut no call, and the
 * Writes it meant to cut never put their ingests aside. Reads grpc-js's private map of its HTTP/2
 * servers; a version without one cuts nothing here, and forceShutdown's own handling stands.
 */
export function cutSessions(server: Server): number {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map)) return 0;
  let cut = 0;
  for (const info of servers.values() as Iterable<{ sessions?: unknown }>) {
    if (!(info?.sessions instanceof Set)) continue;
    for (const session of info.sessions as Set<Session>) {
      if (session.destroyed) continue;
      session.destroy(undefined, constants.NGHTTP2_CANCEL);
      cut++;
    }
  }
  return cut;
}
