import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { credentials } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clockSource, now, type Instant } from '../src/clock.js';
import { digestOf } from '../src/digest.js';
import { protos } from '../src/grpc/proto.js';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import type { InfoResponse__Output } from '../src/generated/containerd/services/content/v1/InfoResponse.js';
import type { StatusResponse__Output } from '../src/generated/containerd/services/content/v1/StatusResponse.js';
import type { UpdateResponse__Output } from '../src/generated/containerd/services/content/v1/UpdateResponse.js';
import type { CreateResponse__Output } from '../src/generated/containerd/services/leases/v1/CreateResponse.js';
import type { LeasesClient } from '../src/generated/containerd/services/leases/v1/Leases.js';
import { contentClient, serve } from './support/child.js';
import { call, newBucket, randomBlob, s3, tempDir, useS3Credentials, WriteSession, writeBlob } from './support/harness.js';

/*
 * A client that reads its own clock just before and just after a call must find the times the
 * daemon gives for what that call changed between its two readings, as containerd's do. The
 * daemon runs in its own process, so its clock is not this one's.
 */

interface Stamp {
  seconds: number | string;
  nanos: number;
}

const children: ChildProcess[] = [];
let content: ContentClient;
let leases: LeasesClient;

function nanosOf(t: Stamp | null | undefined): bigint {
  if (!t) throw new Error('no timestamp in the response');
  return BigInt(t.seconds) * 1_000_000_000n + BigInt(t.nanos);
}

function nanosOfInstant(i: Instant): bigint {
  const t = i.toTimestamp();
  return BigInt(t.seconds) * 1_000_000_000n + BigInt(t.nanos);
}

interface Window {
  before: bigint;
  after: bigint;
  /** The same moments read from Date.now(), which shares no code with the daemon's clock. */
  wallBefore: bigint;
  wallAfter: bigint;
}

/**
 * Runs `act` between two readings of this process's clocks: its fine clock (the project's
 * `now()`, as a client with a nanosecond clock reads one) and, independently, Date.now().
 */
async function bracketed<T>(act: () => Promise<T>): Promise<Window & { result: T }> {
  const wallBefore = BigInt(Date.now()) * 1_000_000n;
  const before = nanosOfInstant(now());
  const result = await act();
  const after = nanosOfInstant(now());
  const wallAfter = (BigInt(Date.now()) + 1n) * 1_000_000n - 1n;
  return { before, after, wallBefore, wallAfter, result };
}

/**
 * Whether both clocks read the wall clock to the nanosecond (native/clock, here and in the
 * daemon, which says at start when it interpolates). Else each process interpolates below the
 * millisecond with its own error (measured in a sandbox: up to 0.7 ms), and only Date.now()'s
 * milliseconds can be held to.
 */
let exact = clockSource.native;

function expectWithin(t: Stamp | null | undefined, window: Window, what: string): void {
  const at = nanosOf(t);
  if (exact) expect(at >= window.before && at <= window.after, `${what} ${at} outside [${window.before}, ${window.after}]`).toBe(true);
  // whatever the fine clocks agree on, the time must lie in the wall clock's milliseconds too
  expect(at >= window.wallBefore && at <= window.wallAfter, `${what} ${at} outside Date.now()'s [${window.wallBefore}, ${window.wallAfter}]`).toBe(true);
}

beforeAll(async () => {
  useS3Credentials();
  const bucket = await newBucket();
  const socket = join(tempDir('s3cs-time-'), 'content.sock');
  const daemon = await serve(['--address', `unix://${socket}`, '--bucket', bucket, '--endpoint-url', s3().endpoint, '--region', s3().region], children);
  const interpolating = daemon.lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('native wall clock not used'));
  exact &&= interpolating === undefined;
  if (!exact) console.warn(`timestamps: times checked to the millisecond only, native/clock not used (here: ${clockSource.native ? 'used' : clockSource.reason}; the daemon: ${interpolating ? String(interpolating.reason) : 'used'})`);
  content = contentClient(`unix://${socket}`);
  const p = protos();
  leases = new (p.leases.containerd.services.leases.v1.Leases as never as new (a: string, c: unknown) => LeasesClient)(
    `unix://${socket}`,
    credentials.createInsecure(),
  );
}, 60_000);

afterAll(() => {
  content?.close();
  leases?.close();
  for (const c of children) c.kill('SIGKILL');
});

describe('timestamps', () => {
  it('keep sub-millisecond precision: not every time is a whole millisecond', async () => {
    const stamps: Stamp[] = [];
    for (let i = 0; i < 8; i++) {
      const blob = randomBlob(100 + i);
      await writeBlob(content, `precision-${i}`, blob, { expected: digestOf(blob) });
      const info = await call<unknown, InfoResponse__Output>(content, 'Info', { digest: digestOf(blob) });
      stamps.push(info.info!.created_at!);
    }
    // With microsecond times, eight whole milliseconds in a row would be a one-in-10^24 chance.
    expect(stamps.some((t) => t.nanos % 1_000_000 !== 0)).toBe(true);
  });

  it("a commit's created_at and updated_at fall between the client's readings around it", async () => {
    for (let i = 0; i < 20; i++) {
      const blob = randomBlob(64 + i);
      const window = await bracketed(() => writeBlob(content, `commit-${i}`, blob, { expected: digestOf(blob) }));
      const info = await call<unknown, InfoResponse__Output>(content, 'Info', { digest: digestOf(blob) });
      expectWithin(info.info!.created_at, window, `created_at of commit ${i}`);
      expectWithin(info.info!.updated_at, window, `updated_at of commit ${i}`);
    }
  });

  it("an Update's updated_at falls between the client's readings around it", async () => {
    const blob = randomBlob(300);
    await writeBlob(content, 'labelled', blob, { expected: digestOf(blob) });
    for (let i = 0; i < 20; i++) {
      const window = await bracketed(() =>
        call<unknown, UpdateResponse__Output>(content, 'Update', {
          info: { digest: digestOf(blob), labels: { round: String(i) } },
          update_mask: { paths: ['labels.round'] },
        }),
      );
      expectWithin(window.result.info!.updated_at, window, `updated_at of update ${i}`);
    }
  });

  it("an ingest's started_at and updated_at fall between the client's readings around the writes", async () => {
    for (let i = 0; i < 10; i++) {
      const s = new WriteSession(content);
      const opened = await bracketed(() => s.send({ action: 'STAT', ref: `status-${i}`, total: 10 }));
      const wrote = await bracketed(() => s.send({ action: 'WRITE', ref: `status-${i}`, offset: 0, data: Buffer.alloc(5) }));
      const status = await call<unknown, StatusResponse__Output>(content, 'Status', { ref: `status-${i}` });
      expectWithin(status.status!.started_at, opened, `started_at of ingest ${i}`);
      expectWithin(status.status!.updated_at, wrote, `updated_at of ingest ${i}`);
      expectWithin(wrote.result.updated_at, wrote, `updated_at in the WRITE response of ingest ${i}`);
      s.close();
      await s.ended;
    }
  });

  it("a lease's created_at falls between the client's readings around its Create", async () => {
    for (let i = 0; i < 20; i++) {
      const window = await bracketed(() => call<unknown, CreateResponse__Output>(leases, 'Create', { id: `lease-${i}` }));
      expectWithin(window.result.lease!.created_at, window, `created_at of lease ${i}`);
    }
  });
});
