/** Parsers of single setting values; each error names the setting (`--<setting>`) it was given for. */

import { ConfigError } from './error.js';

export type Address = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export function parseAddress(address: string): Address {
  if (address.startsWith('unix://')) {
    const path = address.slice('unix://'.length);
    if (!path.startsWith('/')) throw new ConfigError(`--address ${JSON.stringify(address)}: a unix socket needs an absolute path (unix:///path)`);
    return { kind: 'unix', path };
  }
  if (address.startsWith('tcp://')) {
    const m = /^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[^:/[\]]+):(\d{1,5})$/.exec(address);
    const port = m ? Number(m[2]) : NaN;
    if (!m || port > 65535) throw new ConfigError(`--address ${JSON.stringify(address)}: expected tcp://HOST:PORT`);
    return { kind: 'tcp', host: m[1]!, port };
  }
  throw new ConfigError(`--address ${JSON.stringify(address)}: expected unix:///path/to.sock or tcp://HOST:PORT`);
}

/** The address as a flag would give it, for logs. */
export function formatAddress(address: Address): string {
  return address.kind === 'unix' ? `unix://${address.path}` : `tcp://${address.host}:${address.port}`;
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Go's time.ParseDuration syntax ("24h", "1h30m", "500ms"), in milliseconds; no negatives.
 * Our own: BuildKit's touch_refresh and containerd's settings are Go durations, and the npm
 * duration parsers (ms, parse-duration) accept other spellings and reject some of Go's.
 */
export function parseDuration(input: string, setting: string): number {
  const s = input.trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (s === '' || matched !== s.length) {
    throw new ConfigError(`--${setting}: ${JSON.stringify(input)} is not a duration (examples: 24h, 1h30m, 90s, 500ms)`);
  }
  return total;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1000, kb: 1000, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9,
  ki: 1024, kib: 1024, mi: 1024 ** 2, mib: 1024 ** 2, gi: 1024 ** 3, gib: 1024 ** 3,
};

/** Byte sizes: a plain number, or with a unit (8MiB, 16M, 1GiB). */
export function parseSize(input: string, setting: string): number {
  const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(input);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new ConfigError(`--${setting}: ${JSON.stringify(input)} is not a size (examples: 8MiB, 16777216)`);
  return Number(m[1]) * unit;
}

export function parsePositiveInt(input: string, setting: string): number {
  if (!/^\d+$/.test(input.trim()) || Number(input) < 1) throw new ConfigError(`--${setting}: ${JSON.stringify(input)} is not a whole number of at least 1`);
  return Number(input);
}

export function parseBool(input: string, setting: string): boolean {
  const v = input.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new ConfigError(`--${setting}: ${JSON.stringify(input)} is not true or false`);
}
