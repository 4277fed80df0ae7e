import { Metadata } from '@grpc/grpc-js';
import { Connection, inNamespace } from './connection.js';
import { ACTIVE_COMMANDS, CONTENT_COMMANDS } from './content.js';
import { exitStatusFor } from '../interrupts.js';
import { Interrupted, reasonOf, UsageError } from './failure.js';
import { HEALTH_COMMANDS } from './health.js';
import { LEASE_COMMANDS } from './leases.js';
import { NAMESPACE_COMMANDS } from './namespaces.js';
import { ADMIN_OPTIONS, CONNECTION_OPTIONS, optionsHelp, parseCommand, type OptionName } from './options.js';
import { RECORD_COMMANDS } from './records.js';
import type { AdminIO, CommandSpec } from './spec.js';
import { TRANSFER_COMMANDS } from './transfer.js';

/**
 * The admin commands: a client of a running daemon over its gRPC API. Each prints a table for
 * people or JSON for scripts, and on a failure exits 1 (2 for a wrong command line) with one line
 * on stderr naming what went wrong.
 */

const ADMIN_COMMANDS: CommandSpec[] = [
  ...CONTENT_COMMANDS,
  ...TRANSFER_COMMANDS,
  ...ACTIVE_COMMANDS,
  ...RECORD_COMMANDS,
  ...NAMESPACE_COMMANDS,
  ...LEASE_COMMANDS,
  ...HEALTH_COMMANDS,
];

const GROUPS = new Set(ADMIN_COMMANDS.map((c) => c.name.split(' ')[0]!));

export function isAdminCommand(word: string): boolean {
  return GROUPS.has(word);
}

/** The admin commands by group, one line each, for the CLI's main help. */
export function adminSummary(prefix: string): string {
  const groups = new Map<string, string[]>();
  for (const c of ADMIN_COMMANDS) {
    const [group, sub] = c.name.split(' ') as [string, string | undefined];
    groups.set(group, [...(groups.get(group) ?? []), ...(sub ? [sub] : [])]);
  }
  return [...groups].map(([group, subs]) => `  ${prefix} ${group}${subs.length ? ` ${subs.join('|')}` : ''}`).join('\n');
}

function optionsOf(spec: CommandSpec): OptionName[] {
  return [...spec.options, 'json', ...CONNECTION_OPTIONS, 'help'];
}

function commandHelp(prefix: string, spec: CommandSpec): string {
  return `Usage: ${prefix} ${spec.name} ${spec.usage} [options]\n\n${spec.summary}\n\nOptions:\n${optionsHelp(optionsOf(spec))}\n`;
}

function groupHelp(prefix: string, group: string): string {
  const lines = ADMIN_COMMANDS.filter((c) => c.name === group || c.name.startsWith(`${group} `)).map(
    (c) => `  ${prefix} ${c.name} ${c.usage}\n      ${c.summary}`,
  );
  return `Usage:\n${lines.join('\n')}\n\n${prefix} ${group} <command> --help lists a command's options.\n`;
}

/** Runs `argv` (starting at the group word); resolves with the exit status. */
export async function runAdmin(prefix: string, argv: string[], io: AdminIO, env: NodeJS.ProcessEnv): Promise<number> {
  const [group, sub] = argv;
  const spec =
    ADMIN_COMMANDS.find((c) => c.name === group) ?? ADMIN_COMMANDS.find((c) => sub !== undefined && c.name === `${group} ${sub}`);
  if (!spec) {
    const asked = sub === '--help' || sub === '-h';
    const line = asked || sub === undefined ? '' : `${prefix} ${group}: unknown command ${JSON.stringify(sub)}\n\n`;
    (asked ? io.stdout : io.stderr).write(`${line}${groupHelp(prefix, group!)}`);
    return asked ? 0 : 2;
  }
  const rest = argv.slice(spec.name.split(' ').length);
  let connection: Connection | undefined;
  let address = ADMIN_OPTIONS.address.default;
  try {
    const { values, positionals } = parseCommand(rest, optionsOf(spec), env);
    if (values.help) {
      io.stdout.write(commandHelp(prefix, spec));
      return 0;
    }
    const [min, max] = spec.args;
    if (positionals.length < min || positionals.length > max) {
      throw new UsageError(`expected ${spec.usage || 'no arguments'}, got ${positionals.length === 0 ? 'none' : positionals.map((p) => JSON.stringify(p)).join(' ')}`);
    }
    address = values.address as string;
    connection = Connection.open({
      address,
      tlsCa: values.tlsCa as string | undefined,
      tlsCert: values.tlsCert as string | undefined,
      tlsKey: values.tlsKey as string | undefined,
      insecure: values.insecure === true,
    });
    const namespace = typeof values.namespace === 'string' ? values.namespace : '';
    await spec.run({
      connection,
      // Records and namespaces are not namespaced: their calls carry no namespace header.
      metadata: namespace === '' ? new Metadata() : inNamespace(namespace),
      namespace,
      json: values.json === true,
      values,
      args: positionals,
      io,
    });
    return 0;
  } catch (err) {
    io.stderr.write(`${prefix} ${spec.name}: ${reasonOf(err, address)}\n`);
    if (err instanceof Interrupted) return exitStatusFor(err.signal);
    return err instanceof UsageError ? 2 : 1;
  } finally {
    connection?.close();
  }
}
