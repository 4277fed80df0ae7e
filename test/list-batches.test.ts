import { credentials } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { protos } from '../src/grpc/proto.js';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import type { ListContentResponse__Output } from '../src/generated/containerd/services/content/v1/ListContentResponse.js';
import { collect, ns, randomBlob, startDaemon, writeBlob, type TestDaemon } from './support/harness.js';

/** What grpc-go's and grpc-js's clients take in one message unless told otherwise. */
const DEFAULT_MAX_RECEIVE = 4 * 1024 * 1024;

interface ListDefinition {
  List: { responseSerialize(value: ListContentResponse__Output): Buffer };
}

/**
 * 256 labels of 4,095 bytes, each a CJK key and a value of 1,364 CJK characters (3 bytes each in
 * UTF-8): about 1 MiB encoded but a third of that in characters, so four such blobs come to over
 * 4 MiB while their characters stay under 1 Mi.
 */
function heavyLabels(): Record<string, string> {
  const labels: Record<string, string> = {};
  for (let i = 0; i < 256; i++) labels[String.fromCharCode(0x4e00 + i)] = String.fromCharCode(0x5000 + i).repeat(1364);
  return labels;
}

describe('List of content in messages a client takes', () => {
  let d: TestDaemon;
  const md = ns('list-batches');
  const stored: string[] = [];

  beforeAll(async () => {
    d = await startDaemon({ backend: 'fs' });
    const client = d.content();
    for (let i = 0; i < 5; i++) {
      const { digest } = await writeBlob(client, `heavy-${i}`, randomBlob(64), { labels: heavyLabels(), metadata: md });
      stored.push(digest);
    }
  });
  afterAll(async () => d.stop());

  it('lists blobs whose labels encode to three times their characters to a client that takes 4 MiB a message', async () => {
    const p = protos();
    const Client = p.content.containerd.services.content.v1.Content as unknown as new (
      address: string,
      creds: ReturnType<typeof credentials.createInsecure>,
    ) => ContentClient;
    // a client at its defaults, as containerd's is
    const client = new Client(`unix://${d.socket}`, credentials.createInsecure());
    try {
      const responses = await collect<ListContentResponse__Output>(client.List({ filters: [] }, md));
      const listed = responses.flatMap((r) => r.info.map((i) => i.digest));
      expect(listed.sort()).toEqual([...stored].sort());
      for (const r of responses) for (const info of r.info) expect(Object.keys(info.labels)).toHaveLength(256);
    } finally {
      client.close();
    }
  });

  it('sends no message of a listing over 4 MiB encoded', async () => {
    const service = (protos().content.containerd.services.content.v1.Content as unknown as { service: ListDefinition }).service;
    const responses = await collect<ListContentResponse__Output>(d.content().List({ filters: [] }, md));
    expect(responses.flatMap((r) => r.info)).toHaveLength(stored.length);
    for (const r of responses) expect(service.List.responseSerialize(r).length).toBeLessThanOrEqual(DEFAULT_MAX_RECEIVE);
  });
});
