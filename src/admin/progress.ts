import cliProgress from 'cli-progress';
import { humanSize } from './output.js';

/** A transfer's progress: a bar with rate and ETA on a terminal, nothing elsewhere. */
export interface Progress {
  update(bytes: number): void;
  /** Draws the final state and moves past the bar's line. */
  done(): void;
}

const SILENT: Progress = { update() {}, done() {} };

/** The rate is measured over the last few seconds, so it follows the transfer as it changes. */
const RATE_WINDOW_MS = 3_000;
const MAX_SAMPLES = 64;

export class RateMeter {
  private readonly samples: { at: number; bytes: number }[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  /** Bytes per second over the window; 0 until two samples are apart in time. */
  record(bytes: number): number {
    const at = this.now();
    this.samples.push({ at, bytes });
    while (this.samples.length > MAX_SAMPLES || (this.samples.length > 2 && at - this.samples[1]!.at >= RATE_WINDOW_MS)) {
      this.samples.shift();
    }
    const first = this.samples[0]!;
    const ms = at - first.at;
    return ms > 0 ? ((bytes - first.bytes) * 1000) / ms : 0;
  }
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** One line of progress; `total` undefined when the input's size is not known. */
export function describeProgress(label: string, value: number, total: number | undefined, rate: number, barWidth = 20): string {
  const speed = `${humanSize(Math.round(rate))}/s`;
  if (total === undefined) return `${label} ${humanSize(value)} ${speed}`;
  const fraction = total === 0 ? 1 : Math.min(1, value / total);
  const filled = Math.round(fraction * barWidth);
  const bar = `${'█'.repeat(filled)}${'░'.repeat(barWidth - filled)}`;
  const eta = value >= total ? 0 : rate > 0 ? (total - value) / rate : Infinity;
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  return `${label} ${bar} ${percent} ${humanSize(value)} / ${humanSize(total)} ${speed} ETA ${formatDuration(eta)}`;
}

export function progressFor(stream: NodeJS.WriteStream, label: string, total: number | undefined): Progress {
  if (!stream.isTTY) return SILENT;
  const meter = new RateMeter();
  let rate = 0;
  const bar = new cliProgress.SingleBar({
    stream,
    fps: 10,
    hideCursor: true,
    clearOnComplete: false,
    format: (_options, params) => describeProgress(label, params.value, total, rate),
  });
  bar.start(total ?? 0, 0);
  return {
    update(bytes) {
      rate = meter.record(bytes);
      bar.update(bytes);
    },
    done() {
      bar.stop();
    },
  };
}
