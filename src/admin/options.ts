import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './failure.js';

/** One flag of the admin commands; README's admin options table is written from this list. */
export interface AdminOption {
  flag: string;
  short?: string;
  /** Read when the flag is not given. */
  env?: string;
  default?: string;
  help: string;
  boolean?: boolean;
  multiple?: boolean;
}

export const ADMIN_OPTIONS = {
  address: {
    flag: 'address',
    env: 'S3CS_ADDRESS',
    default: 'unix:///run/s3-content-store/content.sock',
    help: 'the daemon: unix:///path (or /path) or tcp://HOST:PORT; of a list in S3CS_ADDRESS, the first',
  },
  tlsCa: { flag: 'tls-ca', help: 'PEM CA bundle that signed the daemon\'s certificate (tcp://; default: the system\'s roots)' },
  tlsCert: { flag: 'tls-cert', help: 'PEM client certificate, for a daemon that asks for one (its --tls-client-ca)' },
  tlsKey: { flag: 'tls-key', help: 'PEM private key of --tls-cert' },
  insecure: { flag: 'insecure', boolean: true, help: 'plaintext tcp:// (to a daemon serving --insecure on loopback)' },
  namespace: { flag: 'namespace', short: 'n', env: 'CONTAINERD_NAMESPACE', default: 'default', help: 'the containerd namespace to work in' },
  json: { flag: 'json', boolean: true, help: 'print JSON for scripts instead of a table' },
  output: { flag: 'output', short: 'o', help: 'write the bytes to FILE instead of stdout (all of them or, on a failure, none)' },
  expected: { flag: 'expected', help: 'the digest the input must have: checked before commit, and if it is stored already nothing is sent' },
  size: { flag: 'size', help: 'the bytes the input must have, declared to the daemon up front (from stdin it also gives the progress bar an end)' },
  ref: { flag: 'ref', help: 'the ingest ref to write under (default: a new one for each put)' },
  label: { flag: 'label', multiple: true, help: 'KEY=VALUE label given at commit; repeatable' },
  input: { flag: 'input', short: 'i', help: 'read the record from FILE instead of stdin' },
  help: { flag: 'help', short: 'h', boolean: true, help: 'show this help' },
} satisfies Record<string, AdminOption>;

export type OptionName = keyof typeof ADMIN_OPTIONS;

/** Every command takes these. */
export const CONNECTION_OPTIONS: OptionName[] = ['address', 'tlsCa', 'tlsCert', 'tlsKey', 'insecure'];

export interface Parsed {
  values: Partial<Record<OptionName, string | string[] | boolean>>;
  positionals: string[];
}

export function parseCommand(args: string[], names: OptionName[], env: NodeJS.ProcessEnv): Parsed {
  const config: NonNullable<ParseArgsConfig['options']> = {};
  for (const name of names) {
    const o: AdminOption = ADMIN_OPTIONS[name];
    config[o.flag] = { type: o.boolean ? 'boolean' : 'string', ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) };
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options: config, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const values: Parsed['values'] = {};
  for (const name of names) {
    const o: AdminOption = ADMIN_OPTIONS[name];
    const given = parsed.values[o.flag] as string | string[] | boolean | undefined;
    const fromEnv = o.env ? env[o.env] || undefined : undefined;
    const value = given ?? fromEnv ?? o.default;
    if (value !== undefined) values[name] = value;
  }
  return { values, positionals: parsed.positionals };
}

export function optionsHelp(names: OptionName[]): string {
  return names
    .map((name) => {
      const o: AdminOption = ADMIN_OPTIONS[name];
      const flag = `${o.short ? `-${o.short}, ` : '    '}--${o.flag}${o.boolean ? '' : ' VALUE'}`;
      const extra = [o.env ? `env ${o.env}` : '', o.default ? `default ${o.default}` : ''].filter(Boolean).join('; ');
      return `  ${flag.padEnd(26)} ${o.help}${extra ? ` (${extra})` : ''}`;
    })
    .join('\n');
}
