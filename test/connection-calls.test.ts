import { credentials, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import { protos } from '../src/grpc/proto.js';
import { call, failure, startDaemon, WriteSession, type TestDaemon } from './support/harness.js';

const MISSING = `sha256:${'0'.repeat(64)}`;

describe('calls one connection may have open (--max-calls-per-connection)', () => {
  let d: TestDaemon;
  const own: ContentClient[] = [];
  beforeAll(async () => {
    d = await startDaemon({ backend: 'fs', flags: { maxCallsPerConnection: '2' } });
  });
  afterAll(async () => {
    for (const c of own) c.close();
    await d.stop();
  });

  /** A client on a connection of its own (grpc-js shares one between clients of one address otherwise). */
  function ownConnection(): ContentClient {
    const Content = protos().content.containerd.services.content.v1.Content as unknown as new (address: string, creds: ReturnType<typeof credentials.createInsecure>, options: object) => ContentClient;
    const client = new Content(`unix://${d.socket}`, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    own.push(client);
    return client;
  }

  it('holds a connection\'s next call back while it has its most open, answers it once one ends, and serves other connections meanwhile', async () => {
    const client = ownConnection();
    const open = [new WriteSession(client), new WriteSession(client)];
    await Promise.all(open.map((s, i) => s.send({ action: 'STAT', ref: `per-connection-${i}` })));
    let answered = false;
    const third = failure(call(client, 'Info', { digest: MISSING })).finally(() => (answered = true));
    // another connection is not held back by this one's calls
    expect((await failure(call(ownConnection(), 'Info', { digest: MISSING }))).code).toBe(status.NOT_FOUND);
    await new Promise((r) => setTimeout(r, 300));
    expect(answered).toBe(false);
    open[0]!.close();
    await open[0]!.ended;
    expect((await third).code).toBe(status.NOT_FOUND);
    open[1]!.close();
    await open[1]!.ended;
  });
});
