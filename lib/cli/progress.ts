// Progress for long work: a cli-progress bar with step, loss, it/s and ETA on a
// terminal; plain log lines (every ~5 s and at the end) when not a TTY.
import { SingleBar } from 'cli-progress';
import { memory } from '../runtime';
import { isWritingRank } from '../train/distributed';

export interface Progress {
  /** `total` moves the end (a time budget's steps follow the measured pace). */
  update(step: number, values?: Record<string, number>, total?: number): void;
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
      update: (step, values = {}, to) => {
        if (to !== undefined && to !== total) bar.setTotal((total = to));
        bar.update(step, { values: fmt(values), rate: rate(step).toFixed(2) });
      },
      stop: () => bar.stop(),
    };
  }
  let last = 0;
  let lastStep = 0;
  let lastValues: Record<string, number> = {};
  let printed = ''; // the last line written: stop() does not repeat it
  const line = (step: number, values: Record<string, number>): void => {
    const r = rate(step);
    const v = fmt(values);
    const text = `${label} ${step}/${total}${v ? ` ${v}` : ''}`;
    if (text === printed) return;
    printed = text;
    const eta = step >= total ? '0 s' : r > 0 ? `${Math.round((total - step) / r)} s` : '?';
    stream.write(`${text} ${r.toFixed(2)} it/s ETA ${eta}\n`);
  };
  return {
    update: (step, values = {}, to) => {
      lastStep = step;
      lastValues = values;
      if (to !== undefined) total = to;
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
      if (!stopped) (p ??= make(label, total)).update(step, values, total);
    },
    /** Stops a started display (once; later updates are ignored). */
    stop: () => {
      if (p && !stopped) (p.stop(), (stopped = true));
    },
  };
}

/**
 * TESSERA_LOG_MEMORY=N (steps): every N steps a line on stderr with the process's resident
 * memory and the live tensors (scripts/long-run-dit.js reads them); unset: nothing.
 */
export function memoryLogger(label: string, stream: ProgressStream = process.stderr): (step: number) => void {
  const v = process.env.TESSERA_LOG_MEMORY;
  if (v === undefined || v === '') return () => {};
  const every = Number(v);
  if (!Number.isSafeInteger(every) || every < 1) throw new Error(`TESSERA_LOG_MEMORY expects a positive integer (steps between memory lines), got '${v}'`);
  return (step) => {
    if (step % every) return;
    (globalThis as { gc?: () => void }).gc?.(); // (node --expose-gc: the live heap, not garbage waiting for a collection)
    const m = memory(), u = process.memoryUsage();
    stream.write(`memory ${label} step ${step}: rss ${u.rss} tensors ${m.tensors} storages ${m.storages} bytes ${m.bytes.cpu + m.bytes.cuda} heap ${u.heapUsed} external ${u.external}\n`);
  };
}
