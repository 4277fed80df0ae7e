import { copyFileSync, cpSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { serve } from './child.js';
import { tempDir } from './harness.js';

const ROOT = new URL('../..', import.meta.url).pathname;

/**
 * The package as installed where its native modules could not be built (no C compiler at
 * install): the built CLI and what it reads beside it, without native/. Answers the CLI's path;
 * the directory two levels up is the caller's to remove.
 */
export function installedWithoutNativeModules(): string {
  const dir = tempDir('s3cs-no-native-');
  cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true });
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(ROOT, 'proto'), join(dir, 'proto'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return join(dir, 'dist', 'cli.js');
}

/** The lines a daemon of `cli` started with `flags` (on a local directory) logged before it served, whose message begins with `prefix`. */
export async function linesAtStart(cli: string, prefix: string, children: ChildProcess[], flags: string[] = []): Promise<Record<string, unknown>[]> {
  const dir = tempDir('s3cs-start-lines-');
  const { lines } = await serve(['--address', `unix://${join(dir, 'content.sock')}`, '--root', join(dir, 'root'), ...flags], children, [], cli);
  return lines.filter((l) => String(l.msg).startsWith(prefix));
}

/** For the enclosing suite, such a package (see installedWithoutNativeModules): its CLI, once set up. */
export function withoutNativeModules(): () => string {
  let cli: string | undefined;
  beforeAll(() => {
    cli = installedWithoutNativeModules();
  });
  afterAll(() => {
    if (cli) rmSync(dirname(dirname(cli)), { recursive: true, force: true });
  });
  return () => cli!;
}
