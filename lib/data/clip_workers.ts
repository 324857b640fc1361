// Decoding ahead of the training step. A pool of worker threads runs ffmpeg, one
// window at a time per worker, and streams its stdout into a SharedArrayBuffer made
// for that window. Workers keep their own queues and report through the buffer's
// header (Atomics), so decoding goes on while the main thread is busy in a
// synchronous training step, and the main thread can wait for a window either
// synchronously (Atomics.wait: the VideoDataset view's get(i)) or asynchronously
// (Atomics.waitAsync: the batch iterator).
//
// Layout of a job's buffer: Int32 header [state, bytes written, exit code, error
// length], then ERROR_BYTES of UTF-8 error text, then the frames (RGB24 [T, H, W, 3]).
import { Worker } from 'worker_threads';

const QUEUED = 0, RUNNING = 1, DONE = 2, FAILED = 3, CANCELLED = 4;
const HEADER_BYTES = 16, ERROR_BYTES = 1024;

/**
 * The worker's code, run from its source text (eval) so the pool works from the
 * TypeScript sources and from dist/ alike; it must not reference anything outside.
 */
function clipWorkerMain(): void {
  const { parentPort } = require('worker_threads');
  const { spawn } = require('child_process');
  const os = require('os');
  const RUNNING_ = 1, DONE_ = 2, FAILED_ = 3, HEADER = 16, ERRB = 1024;
  interface Job { sab: SharedArrayBuffer; bytes: number; bin: string; args: string[]; nice: number }
  const queue: Job[] = [];
  let busy = false;
  let child: { kill(sig: string): void } | null = null;
  const finish = (job: Job, state: number, got: number, message: string): void => {
    const h = new Int32Array(job.sab, 0, 4);
    const text = Buffer.from(message, 'utf8').subarray(0, ERRB);
    new Uint8Array(job.sab, HEADER, ERRB).set(text);
    h[1] = got;
    h[3] = text.length;
    Atomics.store(h, 0, state);
    Atomics.notify(h, 0);
    parentPort.postMessage({ type: 'done' });
    busy = false;
    child = null;
    next();
  };
  const next = (): void => {
    while (!busy && queue.length) {
      const job = queue.shift()!;
      const h = new Int32Array(job.sab, 0, 4);
      if (Atomics.compareExchange(h, 0, 0, RUNNING_) !== 0) continue; // cancelled while queued
      busy = true;
      const out = new Uint8Array(job.sab, HEADER + ERRB, job.bytes);
      let got = 0, err = '', ended = false;
      const p = spawn(job.bin, job.args, { stdio: ['ignore', 'pipe', 'pipe'] });
      child = p;
      if (job.nice && p.pid) {
        try {
          os.setPriority(p.pid, job.nice);
        } catch {} // a priority the system refuses leaves the default
      }
      p.stdout.on('data', (c: Buffer) => {
        const n = Math.min(c.length, job.bytes - got);
        out.set(c.subarray(0, n), got);
        got += n;
      });
      p.stderr.on('data', (c: Buffer) => {
        if (err.length < 4096) err += c.toString('utf8');
      });
      const end = (state: number, message: string): void => {
        if (ended) return;
        ended = true;
        finish(job, state, got, message);
      };
      p.on('error', (e: Error) => end(FAILED_, `${job.bin}: ${e.message}`));
      p.on('close', (code: number | null, signal: string | null) => {
        h[2] = code ?? -1;
        const why = err.trim().split('\n').filter((l) => l.trim()).pop() ?? '';
        if (code === 0) end(DONE_, '');
        else end(FAILED_, why || `ffmpeg exited with ${code ?? signal}`);
      });
    }
  };
  parentPort.on('message', (m: { type: string; job?: Job }) => {
    if (m.type === 'job') {
      queue.push(m.job!);
      next();
    } else if (m.type === 'close') {
      queue.length = 0;
      child?.kill('SIGKILL');
      parentPort.close();
    }
  });
}

// Atomics.waitAsync (Node >= 16) is ES2024, past the lib this project compiles against.
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, i: number, v: number, ms: number): { async: boolean; value: Promise<string> | string };
}).waitAsync;

/** One window being decoded (or queued): wait for its frames synchronously or asynchronously. */
export class ClipJob {
  private readonly header: Int32Array;
  private released = false;
  /** Why the pool gave up on the job (its worker exited, or the pool closed); null while it is the worker's. */
  private abandonedWhy: string | null = null;
  constructor(
    private readonly sab: SharedArrayBuffer,
    readonly bytes: number,
    readonly what: string,
    private readonly timeoutMs: number,
    private readonly recycle: (sab: SharedArrayBuffer) => void,
  ) {
    this.header = new Int32Array(sab, 0, 4);
  }

  get state(): 'queued' | 'running' | 'done' | 'failed' | 'cancelled' {
    return (['queued', 'running', 'done', 'failed', 'cancelled'] as const)[Atomics.load(this.header, 0)];
  }

  /** True once the worker has finished (either way) or the job was cancelled. */
  get settled(): boolean {
    return Atomics.load(this.header, 0) >= DONE;
  }

  private result(): Uint8Array {
    if (this.released) throw new Error(`${this.what}: the frames were already released`);
    if (this.abandonedWhy !== null) throw new Error(`${this.what}: ${this.abandonedWhy}`);
    const s = Atomics.load(this.header, 0);
    if (s === CANCELLED) throw new Error(`${this.what}: cancelled`);
    if (s === FAILED) {
      const n = this.header[3];
      const msg = Buffer.from(new Uint8Array(this.sab, HEADER_BYTES, n)).toString('utf8');
      throw new Error(`${this.what}: ${msg || 'ffmpeg failed'}`);
    }
    const got = this.header[1];
    return new Uint8Array(this.sab, HEADER_BYTES + ERROR_BYTES, got);
  }

  /** Blocks until the worker is done; returns the bytes written (a view into the shared buffer). */
  waitSync(): Uint8Array {
    const t0 = Date.now();
    for (;;) {
      const s = Atomics.load(this.header, 0);
      if (s >= DONE) return this.result();
      Atomics.wait(this.header, 0, s, 1000);
      if (Date.now() - t0 > this.timeoutMs) throw new Error(`${this.what}: no result after ${Math.round(this.timeoutMs / 1000)} s (decodeTimeout)`);
    }
  }

  /** Resolves when the worker is done. */
  async wait(): Promise<Uint8Array> {
    const t0 = Date.now();
    for (;;) {
      const s = Atomics.load(this.header, 0);
      if (s >= DONE) return this.result();
      const r = waitAsync(this.header, 0, s, 1000);
      if (r.async) await r.value;
      if (Date.now() - t0 > this.timeoutMs) throw new Error(`${this.what}: no result after ${Math.round(this.timeoutMs / 1000)} s (decodeTimeout)`);
    }
  }

  /**
   * Gives the buffer back to the pool for a later job (the bytes returned by wait() are
   * invalid from then on). Only a finished job's buffer is reused: no worker writes it.
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    const s = Atomics.load(this.header, 0);
    if ((s === DONE || s === FAILED) && this.abandonedWhy === null) this.recycle(this.sab);
  }

  /** Gives up on an unfinished job (its worker exited, or the pool is closing): waiters get `why`. */
  abandon(why: string): void {
    if (this.settled) return;
    this.abandonedWhy = why;
    Atomics.store(this.header, 0, CANCELLED);
    Atomics.notify(this.header, 0);
  }

  /** Cancels a job no worker has started (a running one finishes); true when cancelled. */
  cancel(): boolean {
    return Atomics.compareExchange(this.header, 0, QUEUED, CANCELLED) === QUEUED;
  }
}

export interface ClipPoolOptions {
  /** Worker threads (each runs one ffmpeg at a time). */
  workers: number;
  /** Milliseconds a wait gives up after (default 120 000). */
  timeoutMs?: number;
  /** Released buffers kept for reuse (default 32): buffers are not left to the garbage collector, which lets them pile up. */
  keepBuffers?: number;
  /**
   * Niceness of the ffmpeg processes (default 10): below the training step's threads, so
   * decoding takes the cores' idle time rather than preempting a compute thread that its
   * siblings then wait for at the next barrier.
   */
  nice?: number;
}

/** A pool of decoding workers; jobs go to the worker with the fewest unfinished ones. */
export class ClipWorkerPool {
  private readonly workers: Worker[] = [];
  private readonly pending: ClipJob[][] = [];
  /** Why each worker is gone (null while it runs). */
  private readonly dead: (string | null)[] = [];
  /** Jobs posted to each worker and not yet reported done: a worker with some keeps the process alive. */
  private readonly outstanding: number[] = [];
  private readonly timeoutMs: number;
  private closed = false;
  /** Finished jobs' buffers by size, for reuse (at most `keep` in all). */
  private readonly free = new Map<number, SharedArrayBuffer[]>();
  private freeCount = 0;
  private readonly keep: number;
  private readonly nice: number;

  constructor(opts: ClipPoolOptions) {
    this.timeoutMs = opts.timeoutMs ?? 120_000;
    this.keep = opts.keepBuffers ?? 32;
    this.nice = opts.nice ?? 10;
    const src = `(${clipWorkerMain.toString()})();`;
    for (let i = 0; i < opts.workers; i++) {
      const w = new Worker(src, { eval: true });
      w.unref(); // an idle pool never keeps the process alive
      w.on('message', (m: { type: string }) => {
        if (m.type === 'done' && --this.outstanding[i] === 0 && !this.closed) w.unref();
      });
      // A worker that dies takes its queue with it: its jobs fail instead of waiting out the timeout.
      const fail = (why: string): void => {
        this.dead[i] = why;
        for (const j of this.pending[i]) j.abandon(why);
        this.pending[i] = [];
        this.outstanding[i] = 0;
      };
      w.on('error', (e: Error) => fail(`the decoding worker failed (${e.message})`));
      w.on('exit', (code: number) => fail(this.closed ? 'the dataset was closed' : `the decoding worker exited (code ${code})`));
      this.workers.push(w);
      this.pending.push([]);
      this.outstanding.push(0);
      this.dead.push(null);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  /** Queues `bin args` (ffmpeg writing at most `bytes` to stdout) on the least busy worker. */
  submit(bin: string, args: string[], bytes: number, what: string): ClipJob {
    if (this.closed) throw new Error(`${what}: the decoding pool is closed`);
    let best = -1;
    for (let i = 0; i < this.pending.length; i++) {
      if (this.dead[i] !== null) continue;
      this.pending[i] = this.pending[i].filter((j) => !j.settled);
      if (best < 0 || this.pending[i].length < this.pending[best].length) best = i;
    }
    if (best < 0) throw new Error(`${what}: no decoding worker is left (${this.dead[0]})`);
    const size = HEADER_BYTES + ERROR_BYTES + bytes;
    let sab = this.free.get(size)?.pop();
    if (sab) {
      this.freeCount--;
      new Int32Array(sab, 0, 4).fill(0); // QUEUED, nothing written
    } else sab = new SharedArrayBuffer(size);
    const job = new ClipJob(sab, bytes, what, this.timeoutMs, (b) => this.recycle(b));
    this.pending[best].push(job);
    if (this.outstanding[best]++ === 0) this.workers[best].ref();
    this.workers[best].postMessage({ type: 'job', job: { sab, bytes, bin, args, nice: this.nice } });
    return job;
  }

  private recycle(sab: SharedArrayBuffer): void {
    if (this.closed || this.freeCount >= this.keep) return;
    if (!this.free.has(sab.byteLength)) this.free.set(sab.byteLength, []);
    this.free.get(sab.byteLength)!.push(sab);
    this.freeCount++;
  }

  /** Stops the workers (a running ffmpeg is killed); unfinished jobs never complete. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.free.clear();
    for (const jobs of this.pending) for (const j of jobs) j.abandon('the dataset was closed');
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => void w.terminate(), 2000); // a worker that does not stop in time
            w.once('exit', () => (clearTimeout(timer), resolve()));
            w.ref(); // until it has exited
            w.postMessage({ type: 'close' }); // it kills its running ffmpeg and exits
          }),
      ),
    );
  }
}
