import { constants } from 'node:os';

/** What a command interrupted by SIGINT or SIGTERM is told, and how it ends. */
export interface Interrupts {
  /** Aborts at the first SIGINT or SIGTERM. */
  readonly signal: AbortSignal;
  /** The signal that came, if one did. */
  received(): NodeJS.Signals | undefined;
  /** Gives SIGINT and SIGTERM back their default (the process ends at once). */
  release(): void;
}

/** The exit status of a command a signal stopped, as a shell reports one: 130 for SIGINT, 143 for SIGTERM. */
export function exitStatusFor(signal: NodeJS.Signals): number {
  return 128 + constants.signals[signal];
}

/**
 * While a command does work that would leave something behind if cut short (the bucket's
 * collector lock, an ingest and its multipart upload, a partial file), the first SIGINT or
 * SIGTERM aborts `signal` so that the work can end tidily, and a second ends the process at once
 * (the user asked twice), with the status a shell expects of that signal.
 */
export function interruptible(): Interrupts {
  const controller = new AbortController();
  let first: NodeJS.Signals | undefined;
  const on = (signal: NodeJS.Signals) => {
    if (first !== undefined) process.exit(exitStatusFor(signal));
    first = signal;
    controller.abort();
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  return {
    signal: controller.signal,
    received: () => first,
    release() {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    },
  };
}
