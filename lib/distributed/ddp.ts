// DistributedDataParallel: data-parallel training as in PyTorch. Each rank runs the
// same model on its own share of the batch; gradients are averaged over the ranks
// during backward, so every rank's optimizer takes the same step.
//
//   const ddp = new DistributedDataParallel(model);   // rank 0's weights everywhere
//   const loss = lossOf(ddp.forward(x), y);           // forward arms the next backward
//   loss.backward();                                  // returns with averaged gradients
//   opt.step();
//
// - Construction broadcasts every parameter and buffer from rank 0, and checks that
//   every rank wraps a model with as many trainable tensors and elements.
// - Buckets: the trainable parameters in reverse registration order (the order their
//   gradients become final in backward), cut every bucketCapMB (default 25 MB) and
//   wherever dtype or device changes. A bucket is all-reduced (mean) as soon as all
//   its gradients are final and every bucket before it has started (all ranks start
//   buckets in the same order), on the communication thread (MPI) or a side stream
//   (NCCL), while backward goes on (autograd/engine.ts's backward hooks).
// - Synchronization point: the end of backward(). Before backward() returns, every
//   bucket has been started and waited for and each parameter's .grad is the mean
//   over the ranks (a view of its bucket); the optimizer may step right after.
// - noSync(fn): forwards run inside fn do not synchronize their backward; gradients
//   accumulate locally, and the next synchronized backward averages the sum.
// - Parameters a step does not use: a parameter whose gradient is missing on a rank
//   counts as zeros there. By default every parameter then gets a gradient (zeros
//   where no rank used it), so AdamW still decays and moves it; with
//   findUnusedParameters a presence flag per parameter travels with each bucket
//   (one host read per bucket) and a parameter no rank used keeps grad null, exactly
//   as in a single process.
// - The step is armed by forward() (under grad mode, outside noSync); a step that
//   runs the model through other methods (e.g. a VAE's encode and decode) calls
//   prepareForBackward() itself. A forward under noGrad leaves the arming as it is.
// - With one rank nothing is communicated and the model trains exactly as unwrapped
//   (except CUDA parameters with NCCL loaded: their buckets go through a one-rank NCCL
//   communicator, an identity that exercises the GPU path).
import { addBackwardHooks } from '../autograd/engine';
import { isGradEnabled, noGrad } from '../autograd/node';
import { Handle, native } from '../native';
import { Module, Parameter } from '../nn/module';
import { DType, Device, Tensor, typeName } from '../tensor';
import * as group from './group';

export interface DDPOptions {
  /** Bucket size cap in MB of 2^20 bytes (default 25, as PyTorch). */
  bucketCapMB?: number;
  /** Keep grad null for parameters no rank used in a step (default false: they get zeros). */
  findUnusedParameters?: boolean;
  /** Also broadcast buffers from rank 0 at every armed forward (default false: only at construction). */
  broadcastBuffers?: boolean;
}

/** What the last synchronized backward communicated. */
export interface DDPSyncStats {
  buckets: number;
  bytes: number;
  /** Buckets started before backward's end, i.e. overlapping the rest of backward. */
  startedDuringBackward: number;
  /** Milliseconds the end of backward waited for communication. */
  waitMs: number;
}

interface Bucket {
  params: Parameter[];
  numel: number;
  bytes: number;
  dtype: DType;
  device: Device;
}

const ITEM_BYTES: Record<DType, number> = {
  float32: 4, float64: 8, bfloat16: 2, float16: 2, int32: 4, int64: 8, uint8: 1, bool: 1,
};

export class DistributedDataParallel extends Module {
  readonly module: Module;
  /** The last synchronized backward's communication, or null before the first. */
  lastSync: DDPSyncStats | null = null;
  private readonly bucketList: Bucket[] = [];
  private readonly bucketOf = new Map<Tensor, number>();
  private readonly findUnused: boolean;
  private readonly broadcastBuffers: boolean;
  private readonly active: boolean;
  private unhook: (() => void) | null = null;
  private noSyncDepth = 0;
  private armed = false;
  private ready: number[] = [];
  private marked = new Set<Tensor>();
  private next = 0;
  private startedEarly = 0;
  private inFlight: { b: number; work: number; bucket: Handle }[] = [];

  constructor(module: Module, opts: DDPOptions = {}) {
    super();
    const op = 'DistributedDataParallel';
    if (!(module instanceof Module)) throw new TypeError(`${op}: expected a Module to wrap, got ${typeName(module)}`);
    if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: expected an options object, got ${typeName(opts)}`);
    const capMB = opts.bucketCapMB ?? 25;
    if (typeof capMB !== 'number' || !Number.isFinite(capMB) || capMB <= 0)
      throw new RangeError(`${op}: expected bucketCapMB to be a number > 0, got ${String(opts.bucketCapMB)}`);
    if (!group.isInitialized()) throw new Error(`${op}: the process group is not initialized; call distributed.init() first`);
    this.module = this.registerModule('module', module);
    this.findUnused = opts.findUnusedParameters ?? false;
    this.broadcastBuffers = opts.broadcastBuffers ?? false;
    // One rank has nothing to average; but CUDA parameters with NCCL loaded still go
    // through it (a world of one GPU), so that the NCCL path runs wherever a GPU does.
    const onCuda = module.parameters().some((p) => p.device.startsWith('cuda'));
    this.active = group.worldSize() > 1 || (onCuda && native.distInfo().ncclLoaded);

    const params = module.parameters().filter((p) => p.requiresGrad).reverse();
    const cap = capMB * 2 ** 20;
    let cur: Bucket | null = null;
    for (const p of params) {
      const bytes = p.numel * ITEM_BYTES[p.dtype];
      if (!cur || cur.dtype !== p.dtype || cur.device !== p.device || (cur.bytes > 0 && cur.bytes + bytes > cap)) {
        cur = { params: [], numel: 0, bytes: 0, dtype: p.dtype, device: p.device };
        this.bucketList.push(cur);
      }
      cur.params.push(p);
      cur.numel += p.numel;
      cur.bytes += bytes;
      this.bucketOf.set(p, this.bucketList.length - 1);
    }
    if (!this.active) return;
    this.checkSameModel(params);
    noGrad(() => {
      for (const t of new Set<Tensor>([...module.parameters(), ...module.buffers()])) group.broadcast(t, 0);
    });
    this.unhook = addBackwardHooks({ leafReady: (t) => this.onLeafReady(t), end: () => this.onBackwardEnd() });
  }

  /** The buckets' parameters, in the order they are all-reduced. */
  get buckets(): Parameter[][] {
    return this.bucketList.map((b) => [...b.params]);
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  forward(...args: any[]): any {
    this.prepareForBackward();
    return this.module.forward(...args);
  }

  /**
   * Arms gradient synchronization for the next backward (forward() calls it): under
   * grad mode outside noSync it arms, inside noSync it disarms, under noGrad it does
   * nothing.
   */
  prepareForBackward(): void {
    if (!this.active || !isGradEnabled()) return;
    this.drain();
    this.armed = this.noSyncDepth === 0;
    if (!this.armed) return;
    this.ready = this.bucketList.map(() => 0);
    this.marked.clear();
    this.next = 0;
    this.startedEarly = 0;
    if (this.broadcastBuffers) noGrad(() => this.module.buffers().forEach((t) => group.broadcast(t, 0)));
  }

  /** Runs fn with gradient synchronization off: its backward passes accumulate locally. */
  noSync<T>(fn: () => T): T {
    if (typeof fn !== 'function') throw new TypeError(`DistributedDataParallel.noSync: expected a function, got ${typeName(fn)}`);
    this.noSyncDepth++;
    try {
      return fn();
    } finally {
      this.noSyncDepth--;
    }
  }

  /** Stops synchronizing and returns the wrapped module (which stays usable). */
  unwrap(): Module {
    this.drain();
    this.unhook?.();
    this.unhook = null;
    this.armed = false;
    return this.module;
  }

  /** Unhooks from autograd, then frees the wrapped module's tensors (as Module.dispose). */
  dispose(): void {
    this.unwrap();
    super.dispose();
  }

  // ---- backward hooks ------------------------------------------------------------------

  private onLeafReady(t: Tensor): void {
    if (!this.armed) return;
    const b = this.bucketOf.get(t);
    if (b === undefined || this.marked.has(t)) return;
    this.marked.add(t);
    this.ready[b]++;
    while (this.next < this.bucketList.length && this.ready[this.next] === this.bucketList[this.next].params.length) {
      this.start(this.next++);
      this.startedEarly++;
    }
  }

  private onBackwardEnd(): void {
    if (!this.armed) return;
    this.armed = false;
    while (this.next < this.bucketList.length) this.start(this.next++);
    const t0 = performance.now();
    for (const f of this.inFlight) native.distWait(f.work);
    const waitMs = performance.now() - t0;
    const done = this.inFlight;
    this.inFlight = [];
    for (const f of done) this.install(f.b, f.bucket);
    this.lastSync = {
      buckets: this.bucketList.length,
      bytes: this.bucketList.reduce((n, b) => n + b.bytes, 0),
      startedDuringBackward: this.startedEarly,
      waitMs,
    };
  }

  /** Starts bucket b's all-reduce: its gradients (zeros where missing), then presence flags. */
  private start(b: number): void {
    const bk = this.bucketList[b];
    const parts: Handle[] = [];
    const temps: Handle[] = [];
    const present = new Float32Array(bk.params.length);
    bk.params.forEach((p, i) => {
      const g = p.grad;
      if (g && !g.isDisposed) {
        if (g.dtype !== bk.dtype || g.device !== bk.device)
          throw new Error(
            `DistributedDataParallel: a gradient is ${g.dtype} on ${g.device} but its parameter is ${bk.dtype} on ${bk.device}`,
          );
        parts.push(g.h);
        present[i] = 1;
      } else {
        const z = native.full(p.shape as number[], 0, bk.dtype, bk.device);
        temps.push(z);
        parts.push(z);
      }
    });
    if (this.findUnused) {
      const f = native.fromData(present, [present.length], bk.dtype, bk.device);
      temps.push(f);
      parts.push(f);
    }
    // The collective holds its own references: the temporaries can go now.
    const [work, bucket] = group._allReduceCoalescedStart(parts, 'mean');
    for (const h of temps) native.dispose(h);
    this.inFlight.push({ b, work, bucket });
  }

  /** Makes each parameter's .grad a view of the reduced bucket (or null when no rank used it). */
  private install(b: number, bucket: Handle): void {
    const bk = this.bucketList[b];
    let flags: Float32Array | null = null;
    if (this.findUnused) {
      const fh = native.slice(bucket, 0, bk.numel, bk.numel + bk.params.length, 1);
      flags = native.read(fh, 'float32') as Float32Array;
      native.dispose(fh);
    }
    let off = 0;
    bk.params.forEach((p, i) => {
      const old = p.grad;
      if (flags && flags[i] === 0) {
        p.grad = null;
      } else {
        const sl = native.slice(bucket, 0, off, off + p.numel, 1);
        p.grad = new Tensor(native.view(sl, p.shape as number[]), true);
        native.dispose(sl);
      }
      if (old && !old.isDisposed) old.dispose();
      off += p.numel;
    });
    native.dispose(bucket);
  }

  /** Waits for and drops collectives a failed backward left running. */
  private drain(): void {
    const left = this.inFlight;
    this.inFlight = [];
    for (const f of left) {
      native.distWait(f.work);
      native.dispose(f.bucket);
    }
  }

  /** Every rank must wrap the same model: compares counts over the ranks (max of x and of -x). */
  private checkSameModel(params: Parameter[]): void {
    const n = params.length;
    const numel = params.reduce((s, p) => s + p.numel, 0);
    const t = new Tensor(native.fromData(new Float64Array([n, numel, -n, -numel]), [4], 'float64', 'cpu'), true);
    try {
      group.allReduce(t, 'max');
      const [maxN, maxE, negMinN, negMinE] = Array.from(t.dataSync() as Float64Array);
      if (maxN !== -negMinN || maxE !== -negMinE)
        throw new Error(
          `DistributedDataParallel: the ranks wrap different models: rank ${group.rank()} has ${n} trainable tensors ` +
            `(${numel} elements), the ranks range over ${-negMinN}..${maxN} tensors and ${-negMinE}..${maxE} elements; ` +
            'every rank must wrap the same model',
        );
    } finally {
      t.dispose();
    }
  }
}
