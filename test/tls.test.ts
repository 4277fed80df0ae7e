import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig } from '../src/config.js';
import { protos } from '../src/grpc/proto.js';
import { readListenerFiles } from '../src/listeners.js';
import { Daemon } from '../src/server.js';
import type { HealthClient } from '../src/generated/grpc/health/v1/Health.js';
import { CLI, cleanEnv } from './support/child.js';
import { call, failure, quietLogger, tempDir } from './support/harness.js';
import { makePki } from './support/pki.js';

function health(address: string, creds: ChannelCredentials): HealthClient {
  const Health = protos().health.grpc.health.v1.Health as never as new (a: string, c: ChannelCredentials) => HealthClient;
  return new Health(address, creds);
}

describe('unix sockets', () => {
  it('take the configured group and mode', async () => {
    const dir = tempDir('s3cs-sock-');
    const socket = join(dir, 'content.sock');
    const config = resolveConfig({ address: [`unix://${socket}`], root: join(dir, 'data'), socketGroup: 'daemon', socketMode: '0640' }, {});
    const daemon = await Daemon.start(config, quietLogger());
    const st = statSync(socket);
    expect(st.gid).toBe(readListenerFiles(config).socketGroup);
    expect(st.mode & 0o777).toBe(0o640);
    await daemon.stop(5_000);
  });

  it('refuse an unknown group at start', async () => {
    const dir = tempDir('s3cs-sock-');
    const config = resolveConfig({ address: [`unix://${join(dir, 'content.sock')}`], root: join(dir, 'data'), socketGroup: 'no-such-group-s3cs' }, {});
    await expect(Daemon.start(config, quietLogger())).rejects.toThrow('no group "no-such-group-s3cs"');
  });
});

describe('TCP listeners', () => {
  const dir = tempDir('s3cs-tls-');
  let pki: ReturnType<typeof makePki>;
  beforeAll(() => {
    pki = makePki(dir);
  });

  it('refuse plaintext tcp:// without --insecure', () => {
    expect(() => resolveConfig({ address: ['tcp://127.0.0.1:7000'], root: dir }, {})).toThrow(ConfigError);
    expect(() => resolveConfig({ address: ['tcp://127.0.0.1:7000'], root: dir }, {})).toThrow('needs --tls-cert and --tls-key');
  });

  it('warn loudly when TLS without client certificates listens beyond loopback, and not on loopback', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
    for (const host of ['0.0.0.0', '127.0.0.1']) {
      const config = resolveConfig({ address: [`tcp://${host}:0`], root: join(dir, 'warn'), tlsCert: pki.cert, tlsKey: pki.key }, {});
      const daemon = await Daemon.start(config, logger);
      await daemon.stop(5_000);
    }
    const warnings = lines.filter((l) => l.includes('TLS WITHOUT CLIENT CERTIFICATES'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('tcp://0.0.0.0:0');
  });

  // `check` validates what `serve` would read, so both refuse the same files, before anything is bound
  it.each(['check', 'serve'])('%s refuses a TLS file that is not PEM of its kind, or a key not the certificate\'s, naming the setting', (command) => {
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'not PEM at all\n');
    const cases: [flags: Record<string, string>, named: string][] = [
      [{ 'tls-cert': junk }, `--tls-cert ${junk}: `],
      [{ 'tls-key': junk }, `--tls-key ${junk}: `],
      [{ 'tls-client-ca': junk }, `--tls-client-ca ${junk}: `],
      [{ 'tls-key': pki.clientKey }, `--tls-key ${pki.clientKey}: not the private key of --tls-cert ${pki.cert}`],
    ];
    for (const [flags, named] of cases) {
      const all = { 'tls-cert': pki.cert, 'tls-key': pki.key, 'tls-client-ca': pki.ca, ...flags };
      const args = [command, '--address', 'tcp://127.0.0.1:0', '--root', join(dir, 'refused'), ...Object.entries(all).flatMap(([f, v]) => [`--${f}`, v])];
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: cleanEnv(), timeout: 15_000 });
      expect({ flags, status: r.status }).toEqual({ flags, status: 2 });
      expect(r.stderr).toContain(named);
      expect(r.stderr).not.toContain('\n    at ');
      expect(r.stdout).not.toContain('settings: ok');
    }
  });

  it('allow --insecure only on a loopback address', () => {
    expect(resolveConfig({ address: ['tcp://127.0.0.1:7000'], root: dir, insecure: true }, {}).insecure).toBe(true);
    expect(() => resolveConfig({ address: ['tcp://0.0.0.0:7000'], root: dir, insecure: true }, {})).toThrow('only on a loopback address');
  });

  describe('with TLS', () => {
    let daemon: Daemon;
    let address: string;
    beforeAll(async () => {
      const config = resolveConfig({ address: ['tcp://127.0.0.1:0'], root: join(dir, 'data'), tlsCert: pki.cert, tlsKey: pki.key }, {});
      daemon = await Daemon.start(config, quietLogger());
      address = daemon.addresses[0]!.slice('tcp://'.length);
    });
    afterAll(async () => daemon.stop(5_000));

    it('serves a client that trusts its CA', async () => {
      const client = health(address, credentials.createSsl(readFileSync(pki.ca)));
      expect(await call(client, 'Check', { service: '' })).toEqual({ status: 'SERVING' });
      client.close();
    });

    it('does not speak plaintext', async () => {
      const client = health(address, credentials.createInsecure());
      const err = await failure(call(client, 'Check', { service: '' }));
      expect(err.code).toBe(14); // UNAVAILABLE: the handshake never completes
      client.close();
    });
  });

  describe('with TLS and required client certificates', () => {
    let daemon: Daemon;
    let address: string;
    beforeAll(async () => {
      const config = resolveConfig(
        { address: ['tcp://127.0.0.1:0'], root: join(dir, 'data2'), tlsCert: pki.cert, tlsKey: pki.key, tlsClientCa: pki.ca },
        {},
      );
      daemon = await Daemon.start(config, quietLogger());
      address = daemon.addresses[0]!.slice('tcp://'.length);
    });
    afterAll(async () => daemon.stop(5_000));

    it('serves a client with a certificate from the client CA', async () => {
      const creds = credentials.createSsl(readFileSync(pki.ca), readFileSync(pki.clientKey), readFileSync(pki.clientCert));
      const client = health(address, creds);
      expect(await call(client, 'Check', { service: '' })).toEqual({ status: 'SERVING' });
      client.close();
    });

    it('refuses a client without a certificate', async () => {
      const client = health(address, credentials.createSsl(readFileSync(pki.ca)));
      const err = await failure(call(client, 'Check', { service: '' }));
      expect(err.code).toBe(14);
      client.close();
    });
  });
});
