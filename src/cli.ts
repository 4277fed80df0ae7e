#!/usr/bin/env -S MALLOC_ARENA_MAX=1 node --max-semi-space-size=2
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { pino } from 'pino';
import { ConfigError, describeConfig, resolveConfig, SETTINGS, type Config, type Flags } from './config.js';
import type { SettingName, SettingSpec } from './config/settings.js';
import { ProbeError } from './blobstore/probe-error.js';
import { readListenerFiles } from './listeners.js';
import { trimWhenQuiet } from './memory-trim.js';
import { Daemon, openBlobStore } from './server.js';
import { exitStatusFor, interruptible } from './interrupts.js';

const NAME = 's3-content-store';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

// The admin commands and the gc command are loaded only when asked for: `serve` never needs
// them, and every module loaded stays in the daemon's memory for good.
const admin = () => import('./admin/command.js');

const mainHelp = (adminSummary: string) => `${NAME}: containerd's content API over gRPC, with every blob in an S3 bucket
in BuildKit's s3 cache layout.

Usage:
  ${NAME} serve [options]     run the daemon
  ${NAME} check [options]     validate the settings, resolve credentials, probe the bucket
  ${NAME} gc [--delete] [options]  collect garbage: blobs nothing references (dry run unless --delete)
  ${NAME} --version           print the version
  ${NAME} <command> --help    help on a command

Admin commands, against a running daemon (--address, --tls-ca, --tls-cert, --tls-key; a
table, or JSON with --json); ${NAME} <group> --help lists a group's commands:
${adminSummary}

AWS credentials come from this process's environment (the AWS SDK default chain) or, as
static keys, from the daemon's own --config file (access-key-id, secret-access-key,
session-token); never from clients.
`;

function optionsHelp(): string {
  return (Object.values(SETTINGS) as SettingSpec[])
    .map((s) => {
      const flag = `--${s.flag}${s.boolean ? '' : ' VALUE'}`;
      const dflt = s.default === undefined ? '' : ` (default ${JSON.stringify(s.default)})`;
      return `  ${flag.padEnd(28)} ${s.help}${dflt}\n  ${''.padEnd(28)} env: ${s.env.join(', ')}`;
    })
    .join('\n');
}

const CHECK_HELP = () => `Usage: ${NAME} check [options]

Validates the settings (the same as serve takes), resolves AWS credentials the way the daemon
does and prints where they came from (never the secret), then probes the bucket with a put,
head, get and delete of an object under the metadata prefix. Exits 0 when all is well, 1 with
one plain message when something is wrong, 2 for invalid settings.

Options:
${optionsHelp()}
  --help                       show this help
`;

function serveHelp(): string {
  return `Usage: ${NAME} serve [options]

Serves containerd.services.content.v1.Content, containerd.services.leases.v1.Leases,
s3cs.records.v1.CacheRecords and grpc.health.v1.Health. Without --bucket, content is kept in
the local --root directory.

Options (flag, else environment, else config file, else default):
${optionsHelp()}
  --help                       show this help
`;
}

const GC_HELP = () => `Usage: ${NAME} gc [--delete] [--json] [options]

Marks every blob that cache records (under the manifests prefix), namespaces' holds and their
containerd.io/gc.ref.content labels, unexpired leases and ingests need; notes each blob nothing
needs, and deletes one only once it has been noted for --gc-grace, is older than
--touch-refresh, and a last check finds nothing new that needs it. Safe beside running daemons
and other collectors. Without --delete nothing is written or deleted: it reports what a
collection would reclaim. Ctrl-C (SIGINT) or SIGTERM stops the run between its requests to S3,
deleting nothing more and removing the bucket's collector lock, and exits 130 (143); a second one
exits at once, leaving the lock to lapse (10 minutes).

  --delete                     delete (and note unreferenced blobs, starting their grace)
  --json                       print the report as JSON
Options (the same as serve takes):
${optionsHelp()}
  --help                       show this help
`;

function serveOptions(extra: string[] = []): ParseArgsConfig['options'] {
  const options: NonNullable<ParseArgsConfig['options']> = { help: { type: 'boolean' } };
  for (const name of extra) options[name] = { type: 'boolean' };
  for (const spec of Object.values(SETTINGS) as SettingSpec[]) {
    options[spec.flag] = spec.boolean ? { type: 'boolean' } : { type: 'string', multiple: Boolean(spec.multiple) };
  }
  return options;
}

/** Parses a command's flags; undefined when --help was asked for (and printed). */
function parseConfig(args: string[], help: string, extra: Record<string, boolean> = {}): Config | undefined {
  const { values } = parseArgs({ args, options: serveOptions(Object.keys(extra)), allowPositionals: false, strict: true }) as {
    values: Record<string, string | string[] | boolean | undefined>;
  };
  if (values.help) {
    process.stdout.write(help);
    return undefined;
  }
  for (const name of Object.keys(extra)) extra[name] = values[name] === true;
  const flags: Flags = {};
  for (const [name, spec] of Object.entries(SETTINGS) as [SettingName, SettingSpec][]) {
    const value = values[spec.flag];
    if (value !== undefined) flags[name] = value as string | string[] | boolean;
  }
  return resolveConfig(flags, process.env);
}

async function check(args: string[]): Promise<number> {
  const config = parseConfig(args, CHECK_HELP());
  if (!config) return 0;
  readListenerFiles(config); // the TLS files and socket group serve would read: a bad one is a bad setting
  process.stdout.write(`settings: ok${config.configFile ? ` (config file ${config.configFile})` : ''}\n`);
  process.stdout.write(`${JSON.stringify(describeConfig(config), null, 2)}\n`);
  const store = await openBlobStore(config, pino({ level: 'silent' }));
  try {
    const result = await store.check();
    if (result.credentials) process.stdout.write(`credentials: ${result.credentials}\n`);
    process.stdout.write(`${result.summary}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof ProbeError)) throw err;
    process.stderr.write(`check failed: ${err.message}\n`);
    return 1;
  } finally {
    await store.close();
  }
}

async function gc(args: string[]): Promise<number> {
  const switches = { delete: false, json: false };
  const config = parseConfig(args, GC_HELP(), switches);
  if (!config) return 0;
  const logger = pino({ level: config.logLevel, base: { service: NAME } }, pino.destination(2));
  const { collectOnce, stoppedLine } = await import('./gc/command.js');
  // cut short, a deleting run would leave the bucket's lock to lapse in 10 minutes
  const interrupts = interruptible();
  const store = await openBlobStore(config, logger);
  try {
    const report = await collectOnce(
      store,
      { ...switches, graceMs: config.gcGraceMs, touchRefreshMs: config.touchRefreshMs, logger, signal: interrupts.signal },
      process.stdout,
      process.stderr,
    );
    const signal = interrupts.received();
    if (signal === undefined) return 0;
    process.stderr.write(`${NAME} gc: ${stoppedLine(report, signal)}\n`);
    return exitStatusFor(signal);
  } finally {
    await store.close();
    interrupts.release();
  }
}

/**
 * V8 counts the bytes of Buffers towards the heap's limit for a full collection, and sizes that
 * limit from the live heap, which is small here (about 15 MB): every 1 MiB gRPC message then
 * brought a full collection closer, and a 256 MiB ingest ran about 30 of them. Letting the limit
 * grow to three times the live heap (within V8's own range) took a quarter of the daemon's CPU
 * off an ingest in the bench; the peak RSS it adds stayed within the bench's run-to-run noise.
 * A --heap-growing-percent given to node itself wins.
 */
function tuneGarbageCollection(): void {
  if (process.execArgv.some((a) => a.startsWith('--heap-growing-percent'))) return;
  setFlagsFromString('--heap-growing-percent=200');
}

async function serve(args: string[]): Promise<number> {
  const config = parseConfig(args, serveHelp());
  if (!config) return 0;
  // Read before the bucket is probed, so a bad TLS path or group stops serve as any bad setting does.
  const listenerFiles = readListenerFiles(config);
  tuneGarbageCollection();
  const logger = pino({ level: config.logLevel, base: { service: NAME } });
  logger.info({ config: describeConfig(config) }, 'configuration');
  const store = await openBlobStore(config, logger);
  if (!config.skipCheck) {
    try {
      const result = await store.check();
      logger.info({ credentials: result.credentials, ms: result.ms }, result.summary);
    } catch (err) {
      if (!(err instanceof ProbeError)) throw err;
      logger.fatal({ reason: err.reason }, `bucket probe failed, not serving (--skip-check serves anyway): ${err.message}`);
      await store.close();
      return 1;
    }
  }
  const daemon = await Daemon.start(config, logger, store, listenerFiles);
  const stopTrimming = trimWhenQuiet(logger);
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      logger.info({ signal }, 'shutting down');
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  stopTrimming();
  // every step of the stop runs, and each that failed was logged: the exit status tells of them
  return daemon.stop(config.shutdownTimeoutMs).then(
    () => 0,
    () => 1,
  );
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(mainHelp((await admin()).adminSummary(NAME)));
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === '-v' || command === 'version') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  if (command === 'serve') return serve(rest);
  if (command === 'check') return check(rest);
  if (command === 'gc') return gc(rest);
  const { adminSummary, isAdminCommand, runAdmin } = await admin();
  if (isAdminCommand(command)) return runAdmin(NAME, argv, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }, process.env);
  process.stderr.write(`${NAME}: unknown command ${JSON.stringify(command)}\n\n${mainHelp(adminSummary(NAME))}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const known = err instanceof ConfigError || (err as { code?: string })?.code?.startsWith('ERR_PARSE_ARGS');
    process.stderr.write(`${NAME}: ${known ? (err as Error).message : String((err as Error)?.stack ?? err)}\n`);
    process.exitCode = known ? 2 : 1;
  },
);
