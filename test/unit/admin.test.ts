import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { Metadata, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { parseLabels } from '../../src/admin/content.js';
import { reasonOf, UsageError } from '../../src/admin/failure.js';
import { rechunk } from '../../src/admin/files.js';
import { ADMIN_OPTIONS, parseCommand, type AdminOption } from '../../src/admin/options.js';
import { Listing } from '../../src/admin/output.js';
import { describeProgress, RateMeter } from '../../src/admin/progress.js';

const MiB = 1 << 20;

function serviceError(code: status, details: string) {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata: new Metadata() });
}

async function printed(run: (out: PassThrough) => Promise<void>): Promise<string> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (b: Buffer) => (text += b.toString()));
  await run(out);
  return text;
}

describe('progress line', () => {
  it('shows bar, percentage, bytes of total, rate and the time left at that rate', () => {
    const line = describeProgress('put', 16 * MiB, 64 * MiB, 8 * MiB, 20);
    expect(line).toBe(`put ${'█'.repeat(5)}${'░'.repeat(15)}  25% 16.0 MiB / 64.0 MiB 8.0 MiB/s ETA 6s`);
  });

  it('shows bytes and rate only when the total is not known', () => {
    expect(describeProgress('put', 3 * MiB, undefined, MiB)).toBe('put 3.0 MiB 1.0 MiB/s');
  });

  it('has no ETA before a rate is known, and none left at the end', () => {
    expect(describeProgress('get', 0, MiB, 0)).toMatch(/ETA --$/);
    expect(describeProgress('get', MiB, MiB, 0)).toMatch(/100% .* ETA 0s$/);
  });
});

describe('RateMeter', () => {
  it('measures bytes per second over the last few seconds, not since the start', () => {
    let now = 0;
    const meter = new RateMeter(() => now);
    meter.record(0);
    for (let s = 1; s <= 10; s++) {
      now = s * 1000;
      meter.record(s * MiB); // 1 MiB/s for 10 s
    }
    for (let s = 11; s <= 20; s++) {
      now = s * 1000;
      meter.record(10 * MiB + (s - 10) * 4 * MiB); // then 4 MiB/s
    }
    expect(meter.record(50 * MiB)).toBe(4 * MiB);
  });
});

describe('rechunk', () => {
  it('regroups a stream into chunks of the given size, the last one shorter, bytes unchanged', async () => {
    const input = [Buffer.from('abc'), Buffer.from('defgh'), Buffer.from('i'), Buffer.from('jklmnopq')];
    const chunks: string[] = [];
    for await (const c of rechunk(input, 4)) chunks.push(c.toString());
    expect(chunks).toEqual(['abcd', 'efgh', 'ijkl', 'mnop', 'q']);
  });
});

describe('labels given on the command line', () => {
  it('are KEY=VALUE, an empty value removing the label, and a value may hold =', () => {
    expect(parseLabels(['a=1', 'b=', 'c=x=y'])).toEqual({ a: '1', b: '', c: 'x=y' });
  });

  it('refuse a pair without a key or without =', () => {
    expect(() => parseLabels(['novalue'])).toThrow(UsageError);
    expect(() => parseLabels(['=v'])).toThrow('expected KEY=VALUE');
  });

  it('keep a key such as __proto__ as an ordinary label', () => {
    const labels = parseLabels(['__proto__=x', 'constructor=y']);
    expect(Object.keys(labels).sort()).toEqual(['__proto__', 'constructor']);
    expect(Object.getOwnPropertyDescriptor(labels, '__proto__')?.value).toBe('x');
  });
});

describe('one-line reasons', () => {
  it('keep the daemon\'s message after the code in containerd\'s spelling', () => {
    expect(reasonOf(serviceError(status.NOT_FOUND, 'content sha256:ab: not found'), 'unix:///s')).toBe('NotFound: content sha256:ab: not found');
  });

  it('name the address when grpc-js could not connect, with the socket\'s own error', () => {
    const details = 'No connection established. Last error: Error: connect ENOENT /x.sock. Resolution note: ';
    expect(reasonOf(serviceError(status.UNAVAILABLE, details), '/x.sock')).toBe('cannot reach the daemon at /x.sock: connect ENOENT /x.sock');
  });

  it('reduce an OpenSSL error to its reason', () => {
    const details =
      'No connection established. Last error: 80:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../deps/openssl/ssl/rec_layer_s3.c:1601:SSL alert number 116 (2026-11-30T08:10:52.687Z)';
    expect(reasonOf(serviceError(status.UNAVAILABLE, details), 'tcp://h:1')).toBe(
      'cannot reach the daemon at tcp://h:1: TLS handshake failed: tlsv13 alert certificate required',
    );
  });

  it('are one line whatever the message holds', () => {
    expect(reasonOf(new Error('first\nsecond\r\n third'), 'a')).toBe('first second third');
  });
});

describe('Listing', () => {
  const columns = [
    { title: 'NAME', cell: (r: { name: string; n: number }) => r.name },
    { title: 'N', cell: (r: { name: string; n: number }) => String(r.n), right: true },
    { title: 'LAST', cell: () => 'x' },
  ];

  it('prints a table whose columns fit the widest cell', async () => {
    const text = await printed(async (out) => {
      const l = new Listing(out, false, columns, (r) => r);
      await l.add([{ name: 'a', n: 1 }]);
      await l.add([{ name: 'longer', n: 100 }]);
      await l.end();
    });
    expect(text).toBe('NAME      N  LAST\na         1  x\nlonger  100  x\n');
  });

  it('prints a JSON array, empty or not, that parses', async () => {
    const rows = [{ name: 'a', n: 1 }, { name: 'b', n: 2 }];
    const json = (input: typeof rows) =>
      printed(async (out) => {
        const l = new Listing(out, true, columns, (r) => r);
        await l.add(input);
        await l.end();
      });
    expect(JSON.parse(await json(rows))).toEqual(rows);
    expect(JSON.parse(await json([]))).toEqual([]);
  });
});

describe('admin options', () => {
  it('take the flag, else the environment variable, else the default', () => {
    const env = { CONTAINERD_NAMESPACE: 'from-env' };
    expect(parseCommand([], ['namespace'], env).values.namespace).toBe('from-env');
    expect(parseCommand(['-n', 'flag'], ['namespace'], env).values.namespace).toBe('flag');
    expect(parseCommand([], ['namespace'], {}).values.namespace).toBe('default');
  });

  it('refuse an unknown flag as a usage error', () => {
    expect(() => parseCommand(['--nope'], ['json'], {})).toThrow(UsageError);
  });

  it('each have a row in README\'s admin options table, with their variable', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.split("### Admin commands' options")[1]!.split('\n## ')[0]!;
    for (const o of Object.values(ADMIN_OPTIONS) as AdminOption[]) {
      if (o.flag === 'help') continue;
      const row = section.split('\n').find((line) => line.startsWith(`| \`--${o.flag}\``));
      expect(row, `README row for --${o.flag}`).toBeDefined();
      if (o.env) expect(row).toContain(`\`${o.env}\``);
    }
  });
});
