// Progress for long work: a cli-progress bar with step, loss, it/s and ETA on a
// terminal; plain log lines (every ~5 s and at the end) when not a TTY.
import { SingleBar } from 'cli-progress';
import { isWritingRank } from '../train/distributed';

export interface Progress {
  update(step: number, values?: Record<string, number>): void;
  stop(): void;
}

function fmt(values: Record<string, number>): string {
  return Object.entries(values)
    .map(([k, v]) => `${k} ${Math.abs(v) >= 100 || v === 0 ? v.toFixed(1) : v.toPrecision(4)}`)
    .join(', ');
}

/** Where progress goes (process.stderr by default); typed structurally so the declarations need no @types/node. */
export interface ProgressStream {
  isTTY?: boolean;
  write(chunk: string): boolean;
}

export function progress(label: string, total: number, stream: ProgressStream = process.stderr): Progress {
  if (!isWritingRank()) return { update: () => {}, stop: () => {} }; // under mpirun, rank 0 alone shows progress
  // The rate counts from the first update (a resumed run starts at its checkpoint's step).
  let start = Date.now();
  let first: number | null = null;
  const rate = (step: number): number => {
    if (first === null) (first = step), (start = Date.now());
    return (step - first) / Math.max(1e-3, (Date.now() - start) / 1000);
  };
  if (stream.isTTY) {
    const bar = new SingleBar({
      format: `${label} [{bar}] {value}/{total} | {values} | {rate} it/s | ETA {eta_formatted}`,
      barsize: 24,
      hideCursor: true,
      stream: stream as NodeJS.WritableStream,
    });
    bar.start(total, 0, { values: '', rate: '0.00' });
    return {
      update: (step, values = {}) => bar.update(step, { values: fmt(values), rate: rate(step).toFixed(2) }),
      stop: () => bar.stop(),
    };
  }
  let last = 0;
  let lastStep = 0;
  let lastValues: Record<string, number> = {};
  const line = (step: number, values: Record<string, number>): void => {
    const r = rate(step);
    const eta = r > 0 ? Math.max(0, (total - step) / r) : 0;
    stream.write(`${label} ${step}/${total} ${fmt(values)} ${r.toFixed(2)} it/s ETA ${Math.round(eta)} s\n`);
  };
  return {
    update: (step, values = {}) => {
      lastStep = step;
      lastValues = values;
      if (Date.now() - last >= 5000) {
        last = Date.now();
        line(step, values);
      }
    },
    stop: () => line(lastStep, lastValues),
  };
}

export interface LazyProgress {
  update(step: number, total: number, values?: Record<string, number>): void;
  stop(): void;
}

/** A progress display started at the first update (when the total becomes known). */
export function lazyProgress(label: string, make: (label: string, total: number) => Progress = progress): LazyProgress {
  let p: Progress | null = null;
  let stopped = false;
  return {
    update: (step, total, values) => {
      if (!stopped) (p ??= make(label, total)).update(step, values);
    },
    /** Stops a started display (once; later updates are ignored). */
    stop: () => {
      if (p && !stopped) (p.stop(), (stopped = true));
    },
  };
}
