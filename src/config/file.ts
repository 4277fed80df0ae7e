import { readFileSync } from 'node:fs';
import { ConfigError } from './error.js';
import { SETTINGS, type SettingSpec } from './settings.js';

/** Static keys, accepted only from the config file (a flag would show them in `ps`). */
export const FILE_ONLY_KEYS = ['access-key-id', 'secret-access-key', 'session-token'] as const;

/** Reads the JSON config file: keys are flag names, values strings, numbers, booleans or lists. */
export function readConfigFile(path: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`--config ${path}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`--config ${path}: not valid JSON${whereInvalid(text, err)}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new ConfigError(`--config ${path}: expected a JSON object`);
  const known = new Set<string>([...Object.values(SETTINGS).map((s: SettingSpec) => s.flag), ...FILE_ONLY_KEYS]);
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(doc)) {
    if (key === 'config' || !known.has(key)) throw new ConfigError(`--config ${path}: unknown setting ${JSON.stringify(key)}`);
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) out[key] = value.join(',');
    else if (['string', 'number', 'boolean'].includes(typeof value)) out[key] = String(value);
    else throw new ConfigError(`--config ${path}: setting ${JSON.stringify(key)} must be a string, number, boolean or list of strings`);
  }
  return out;
}

/**
 * Where JSON.parse stopped, as a line and column when its message gives the position. Never its
 * message itself: V8 quotes the text around a bad token, and this file holds secret keys (a
 * secret whose quotes were forgotten was printed in part).
 */
function whereInvalid(text: string, err: unknown): string {
  const position = /at position (\d+)/.exec(String((err as Error)?.message ?? ''))?.[1];
  if (position === undefined) return ' (its text is not shown: the file may hold keys)';
  const before = text.slice(0, Number(position)).split('\n');
  return ` at line ${before.length}, column ${before[before.length - 1]!.length + 1}`;
}
