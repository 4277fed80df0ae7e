#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { pino } from 'pino';
import { ConfigError, resolveConfig, SETTINGS, type Flags, type SettingName, type SettingSpec } from './config.js';
import { Daemon } from './server.js';

const NAME = 's3-content-store';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

const MAIN_HELP = `${NAME}: containerd's content API over gRPC, with every blob in an S3 bucket
in BuildKit's s3 cache layout.

Usage:
  ${NAME} serve [options]     run the daemon
  ${NAME} --version           print the version
  ${NAME} <command> --help    help on a command

AWS credentials come only from this process's environment (the AWS SDK default chain),
never from clients.
`;

function serveHelp(): string {
  const lines = Object.values(SETTINGS).map((s: SettingSpec) => {
    const flag = `--${s.flag}${s.boolean ? '' : ' VALUE'}`;
    const dflt = s.default === undefined ? '' : ` (default ${JSON.stringify(s.default)})`;
    return `  ${flag.padEnd(28)} ${s.help}${dflt}\n  ${''.padEnd(28)} env: ${s.env.join(', ')}`;
  });
  return `Usage: ${NAME} serve [options]

Serves containerd.services.content.v1.Content, containerd.services.leases.v1.Leases and
grpc.health.v1.Health. Without --bucket, content is kept in the local --root directory.

Options (flag, else environment, else default):
${lines.join('\n')}
  --help                       show this help
`;
}

function serveOptions(): ParseArgsConfig['options'] {
  const options: NonNullable<ParseArgsConfig['options']> = { help: { type: 'boolean' } };
  for (const spec of Object.values(SETTINGS) as SettingSpec[]) {
    options[spec.flag] = spec.boolean ? { type: 'boolean' } : { type: 'string', multiple: Boolean(spec.multiple) };
  }
  return options;
}

async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: serveOptions(), allowPositionals: false, strict: true }) as {
    values: Record<string, string | string[] | boolean | undefined>;
  };
  if (values.help) {
    process.stdout.write(serveHelp());
    return 0;
  }
  const flags: Flags = {};
  for (const [name, spec] of Object.entries(SETTINGS) as [SettingName, SettingSpec][]) {
    const value = values[spec.flag];
    if (value !== undefined) flags[name] = value as string | string[] | boolean;
  }
  const config = resolveConfig(flags, process.env);
  const logger = pino({ level: config.logLevel, base: { service: NAME } });
  const daemon = await Daemon.start(config, logger);
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
  await daemon.stop(config.shutdownTimeoutMs);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(MAIN_HELP);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === '-v' || command === 'version') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  if (command === 'serve') return serve(rest);
  process.stderr.write(`${NAME}: unknown command ${JSON.stringify(command)}\n\n${MAIN_HELP}`);
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
