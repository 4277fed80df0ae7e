import { once } from 'node:events';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ListContentResponse__Output } from '../src/generated/containerd/services/content/v1/ListContentResponse.js';
import type { HealthCheckResponse__Output } from '../src/generated/grpc/health/v1/HealthCheckResponse.js';
import { childrenOfEachTest, CLI, contentClient, healthClient, serve, type ServingChild } from './support/child.js';
import { call, collect, ns, randomBlob, tempDir, writeBlob } from './support/harness.js';
import { listServicesByReflection } from './support/reflection-client.js';

/*
 * Modules few daemons need stay out of an idle daemon's memory until a call needs them: re2js
 * (the engine of `~=` filters) and @grpc/reflection (server reflection for generic gRPC tools).
 * The daemon runs as `serve` in its own process, so only its own calls load what it holds; a
 * preloaded module reports, on a signal, every module file the process has loaded.
 */

const PRELOAD = new URL('./support/loaded-modules.mjs', import.meta.url).pathname;
const RE2JS = /[\\/]node_modules[\\/]re2js[\\/]/;
const REFLECTION = /[\\/]node_modules[\\/]@grpc[\\/]reflection[\\/]/;
const GRPC = /[\\/]node_modules[\\/]@grpc[\\/]grpc-js[\\/]/;

const { children, clients } = childrenOfEachTest();

/** A daemon on a local directory, in its own process, reporting what it loaded. */
async function daemon(): Promise<{ running: ServingChild; address: string }> {
  const dir = tempDir('s3cs-lazy-');
  const address = `unix://${join(dir, 'content.sock')}`;
  const running = await serve(['--address', address, '--root', join(dir, 'root')], children, ['--import', PRELOAD]);
  return { running, address };
}

/** Every module file the daemon's process has loaded so far. */
async function loadedModules({ child }: ServingChild): Promise<string[]> {
  let buffered = '';
  const report = new Promise<string[]>((resolve, reject) => {
    const onData = (b: Buffer) => {
      buffered += b.toString();
      const line = buffered.split('\n').find((l) => l.startsWith('loaded-modules '));
      if (!line) return;
      child.stderr!.off('data', onData);
      resolve(JSON.parse(line.slice('loaded-modules '.length)) as string[]);
    };
    child.stderr!.on('data', onData);
    void once(child, 'exit').then(() => reject(new Error('the daemon exited before it reported its modules')));
  });
  child.kill('SIGUSR2');
  return report;
}

/** Calls every daemon answers in ordinary use: a Write, Info, a List with an equality filter, a health check. */
async function ordinaryCalls(address: string): Promise<void> {
  const content = contentClient(address);
  clients.push(content);
  const blob = randomBlob(1000);
  const { digest } = await writeBlob(content, 'lazy', blob, { labels: { kind: 'layer' } });
  await call(content, 'Info', { digest });
  const listed = await collect<ListContentResponse__Output>(content.List({ filters: ['labels.kind==layer'] }, ns()));
  expect(listed.flatMap((r) => r.info.map((i) => i.digest))).toEqual([digest]);
  const health = healthClient(address);
  const checked = await call<object, HealthCheckResponse__Output>(health, 'Check', { service: '' }, undefined);
  health.close();
  expect(checked.status).toBe('SERVING');
}


describe('modules a daemon loads only when a call first needs them', () => {
  it('a daemon that served ordinary calls has loaded neither re2js nor @grpc/reflection', async () => {
    const { running, address } = await daemon();
    await ordinaryCalls(address);
    const loaded = await loadedModules(running);
    // the report sees the daemon's own ES modules and the CommonJS ones it uses
    expect(loaded).toContain(CLI);
    expect(loaded.some((f) => GRPC.test(f))).toBe(true);
    expect(loaded.filter((f) => RE2JS.test(f) || REFLECTION.test(f))).toEqual([]);
  });

  it('loads re2js at the first List with a ~= filter, and @grpc/reflection still not', async () => {
    const { running, address } = await daemon();
    await ordinaryCalls(address);
    const content = contentClient(address);
    clients.push(content);
    const listed = await collect<ListContentResponse__Output>(content.List({ filters: ['labels.kind~=^lay'] }, ns()));
    expect(listed.flatMap((r) => r.info)).toHaveLength(1);
    const loaded = await loadedModules(running);
    expect(loaded.some((f) => RE2JS.test(f))).toBe(true);
    expect(loaded.filter((f) => REFLECTION.test(f))).toEqual([]);
  });

  it('loads @grpc/reflection at the first reflection call, and re2js still not', async () => {
    const { running, address } = await daemon();
    await ordinaryCalls(address);
    expect(await listServicesByReflection(address)).toContain('containerd.services.content.v1.Content');
    const loaded = await loadedModules(running);
    expect(loaded.some((f) => REFLECTION.test(f))).toBe(true);
    expect(loaded.filter((f) => RE2JS.test(f))).toEqual([]);
  });
});
