import { spawn, type ChildProcess } from 'node:child_process';
import { credentials } from '@grpc/grpc-js';
import { protos } from '../../src/grpc/proto.js';
import type { ContentClient } from '../../src/generated/containerd/services/content/v1/Content.js';
import type { HealthClient } from '../../src/generated/grpc/health/v1/Health.js';
import { afterEach } from 'vitest';

/**
 * The daemons a test file runs as child processes and the clients it opens to them: after each
 * test the clients are closed and the daemons still running killed, so none outlives its test.
 */
export function childrenOfEachTest(): { children: ChildProcess[]; clients: ContentClient[] } {
  const children: ChildProcess[] = [];
  const clients: ContentClient[] = [];
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  });
  return { children, clients };
}

/** The built CLI, as a user runs it (`npm test` builds before testing). */
export const CLI = new URL('../../dist/cli.js', import.meta.url).pathname;

/** This process's environment without the daemon's own settings, so only the test's flags count. */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('S3CS_') || k === 'AWS_BUCKET') delete env[k];
  return env;
}

export interface ServingChild {
  child: ChildProcess;
  /** Every JSON line the daemon logged, as it arrives. */
  lines: Record<string, unknown>[];
  exited: Promise<number | null>;
}

/**
 * Starts `serve` in its own process and resolves once it logs that it is serving; `nodeArgs` go
 * to node itself, before the CLI; `cli` is the CLI of another installation of the package.
 */
export function serve(args: string[], children?: ChildProcess[], nodeArgs: string[] = [], cli = CLI): Promise<ServingChild> {
  const child = spawn(process.execPath, [...nodeArgs, cli, 'serve', ...args], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  children?.push(child);
  const lines: Record<string, unknown>[] = [];
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    let buffered = '';
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdout!.on('data', (b: Buffer) => {
      buffered += b.toString();
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>;
        buffered = buffered.slice(nl + 1);
        lines.push(line);
        if (line.msg === 'serving') resolve({ child, lines, exited });
      }
    });
    void exited.then((code) => reject(new Error(`serve exited ${code} before serving: ${stderr}`)));
  });
}

export function healthClient(address: string): HealthClient {
  return new (protos().health.grpc.health.v1.Health as never as new (a: string, c: unknown) => HealthClient)(address, credentials.createInsecure());
}

export function contentClient(address: string): ContentClient {
  return new (protos().content.containerd.services.content.v1.Content as never as new (a: string, c: unknown, o: object) => ContentClient)(
    address,
    credentials.createInsecure(),
    { 'grpc.max_send_message_length': 16 << 20, 'grpc.max_receive_message_length': 16 << 20 },
  );
}
