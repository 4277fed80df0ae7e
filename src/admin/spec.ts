import type { Metadata } from '@grpc/grpc-js';
import type { Connection } from './connection.js';
import type { OptionName, Parsed } from './options.js';

export interface AdminIO {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  /** A WriteStream: whether it is a terminal decides if a progress bar is drawn. */
  stderr: NodeJS.WriteStream;
}

/** What a command runs with: its connection, its parsed command line and where it prints. */
export interface AdminContext {
  connection: Connection;
  /** The call metadata of namespaced services: containerd's namespace header. */
  metadata: Metadata;
  namespace: string;
  json: boolean;
  values: Parsed['values'];
  args: string[];
  io: AdminIO;
}

export interface CommandSpec {
  /** As typed: `content ls`. */
  name: string;
  /** Its positional arguments, for help. */
  usage: string;
  summary: string;
  /** Flags beyond the connection's, --json and --help. */
  options: OptionName[];
  /** At least and at most this many positional arguments. */
  args: [number, number];
  run(ctx: AdminContext): Promise<void>;
}

export function stringValue(ctx: AdminContext, name: OptionName): string | undefined {
  const v = ctx.values[name];
  return typeof v === 'string' ? v : undefined;
}
