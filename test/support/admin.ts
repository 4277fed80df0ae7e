import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { CLI, cleanEnv } from './child.js';

export interface CliResult {
  status: number | null;
  stdout: string;
  stdoutBytes: Buffer;
  stderr: string;
}

/** This process's environment without what would choose the admin commands' daemon or namespace for them. */
function adminEnv(): NodeJS.ProcessEnv {
  const env = cleanEnv();
  delete env.CONTAINERD_NAMESPACE;
  return env;
}

/**
 * Runs the built CLI in its own process, without blocking this one (the daemon under test may be
 * serving from it). `input` is written to stdin, which is then closed; `holdStdin` keeps it open;
 * `env` is added to an environment cleared of the daemon's settings and CONTAINERD_NAMESPACE.
 */
export function runCli(
  args: string[],
  options: { input?: Buffer | string; holdStdin?: boolean; timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<CliResult> {
  return startCli(args, options).result;
}

/** As runCli, with the process itself, for a test that feeds its stdin or signals it while it runs. */
export function startCli(
  args: string[],
  options: { input?: Buffer | string; holdStdin?: boolean; timeoutMs?: number; env?: Record<string, string> } = {},
): { child: ChildProcessWithoutNullStreams; result: Promise<CliResult> } {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...adminEnv(), ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  child.stdin.on('error', () => {}); // a command that never reads its stdin may exit before we finish writing
  if (options.input !== undefined) child.stdin.write(options.input);
  if (!options.holdStdin) child.stdin.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  const result = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      child.stdin.destroy();
      const stdoutBytes = Buffer.concat(out);
      resolve({ status, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr: Buffer.concat(err).toString('utf8') });
    });
  });
  return { child, result };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs the built CLI on a pseudo-terminal (util-linux `script`), so stdout and stderr are a
 * terminal as a person would have them; resolves with all it printed, escape sequences included.
 */
export function runCliInPty(args: string[]): Promise<{ status: number | null; output: string }> {
  const command = [process.execPath, CLI, ...args].map(shellQuote).join(' ');
  const child = spawn('script', ['-qfec', command, '/dev/null'], { env: { ...adminEnv(), COLUMNS: '120', LINES: '40' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => out.push(b));
  return new Promise((resolve, reject) => {
    child.on('error', (err) =>
      reject(new Error(`cannot run \`script\` for a pseudo-terminal (Debian package bsdutils; scripts/test-deps.sh installs it): ${err.message}`)),
    );
    child.on('close', (status) => resolve({ status, output: Buffer.concat(out).toString('utf8') }));
  });
}

/** The lines a terminal would have shown: carriage returns and cursor movements as line breaks. */
export function screenLines(output: string): string[] {
  return output
    .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '\n')
    .split(/[\r\n]+/)
    .map((l) => l.trim())
    .filter(Boolean);
}
