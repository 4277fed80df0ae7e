import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { childrenOfEachTest, contentClient, serve } from './support/child.js';
import { randomBlob, tempDir, until, writeBlob } from './support/harness.js';

/*
 * A daemon hands the memory glibc keeps of freed buffers back to the system once it goes quiet:
 * after its start-up, and after calls, never more often than every 5 s. It runs as `serve` in its
 * own process, as users start it, and says so at debug level.
 */

const { children, clients } = childrenOfEachTest();

describe('a quiet daemon', () => {
  it('hands freed memory back once its start-up is done, and again once calls that moved bytes are over', async () => {
    const dir = tempDir('s3cs-trim-');
    const address = `unix://${join(dir, 'content.sock')}`;
    const { lines } = await serve(['--address', address, '--root', join(dir, 'root'), '--log-level', 'debug'], children);
    const trims = () => lines.filter((l) => l.msg === 'handed freed memory back').length;
    await until(() => trims() === 1, 10_000);
    // quiet past the 5 s between trims: nothing more to hand back, so no trim
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    expect(trims()).toBe(1);
    const client = contentClient(address);
    clients.push(client);
    // work enough to be worth a trim: 32 MiB through a Write
    await writeBlob(client, 'trim', randomBlob(32 * 1024 * 1024));
    await until(() => trims() === 2, 15_000);
    expect(lines.some((l) => l.msg === 'memory freed is not handed back when the daemon is quiet')).toBe(false);
  }, 40_000);
});
