// Data parallelism in the training loops (trainDiT, trainVAE, encodeDataset, evaluateVAE
// and the demo stages), over the ranks of ts.distributed. Their `distributed` option:
//   'auto' (default)  on when ts.distributed is initialized with more than one rank
//                     (the CLI initializes it when mpirun/srun started it), else off;
//   true              on: initializes ts.distributed from the launcher if needed;
//   false             off: this process trains alone even under a launcher;
//   { bucketCapMB, findUnusedParameters }   on, with these DDP options.
// With one rank the loops run exactly as without it (nothing is wrapped or sent).
//
// What a step does on N ranks, and why it equals one process with the whole batch:
// - The global batch: batchSize is the batch of the whole job. Every rank draws the
//   global batch's sample indices, crops and caption dropout from the DataRng (a pure
//   function of seed and step), exactly as one process would, and loads and runs only
//   its own contiguous slice (part()): disjoint slices that together cover the batch.
// - Tensor randomness (noise, timesteps, frame masks, posterior samples) is drawn for
//   the global batch on every rank from the shared generator and sliced: the draws of
//   a step are a small fraction of its work, and the generator's state then stays the
//   same on every rank, so the checkpointed state (rank 0's) is everyone's.
// - Randomness inside the model (dropout) must differ per rank: the model call runs on a
//   generator forked per rank (perRank), and the shared stream continues afterwards as
//   if nothing had been drawn.
// - Each rank's loss is the mean over its samples times (its samples * N / global
//   batch), so the mean over the ranks that DDP takes of the gradients is the gradient
//   of the global batch's mean loss, for any split.
// - Parameters are rank 0's at the start (DDP broadcasts them, after a checkpoint is
//   restored on every rank) and gradients are averaged during backward, so every rank
//   takes the same optimizer step.
// - Decisions that must agree: whether to stop (a signal, a deadline) and the learning-
//   rate progress travel in one small all-reduce per step (max); the logged values are
//   averaged over the ranks at the logging cadence, so a NaN on one rank is a NaN on all
//   and every rank stops at the same step; rank 0 decides whether to resume and from
//   which checkpoint. Only rank 0 writes logs and checkpoints; every rank reads the
//   checkpoint, so checkpointDir must be on a filesystem all ranks share (as with any
//   multi-machine training). A checkpoint holds the whole model and optimizer state, so
//   it resumes at any world size.
import { getRngState, setRngState } from '../creation';
import { DataRng } from '../data/rng';
import { DistributedDataParallel } from '../distributed/ddp';
import * as group from '../distributed/group';
import { allReduceNumbers, broadcastObject } from '../distributed/objects';
import { Module } from '../nn/module';
import { Tensor, typeName } from '../tensor';

export interface DataParallelOptions {
  /** DDP gradient bucket size in MB (default 25). */
  bucketCapMB?: number;
  /** Keep grad null for parameters no rank used in a step (default false: zeros). */
  findUnusedParameters?: boolean;
}

/** The loops' `distributed` option; see the top of lib/train/distributed.ts. */
export type DistributedOption = 'auto' | boolean | DataParallelOptions;

/** A loop's place among the ranks, and the collectives it needs. */
export class DataParallel {
  /** The DDP wrapper of the trained model (null with one rank, or before wrap()). */
  ddp: DistributedDataParallel | null = null;
  /** Milliseconds this step spent in collectives (gradient wait, control, logging); reset by takeCommMs(). */
  private commMs = 0;

  constructor(readonly rank: number, readonly world: number, private readonly opts: DataParallelOptions) {}

  /** Wraps the trained model in DDP (many ranks): its weights become rank 0's. */
  wrap(model: Module): void {
    if (this.world > 1 && !this.ddp) this.ddp = new DistributedDataParallel(model, this.opts);
  }

  get active(): boolean {
    return this.world > 1;
  }
  get isMain(): boolean {
    return this.rank === 0;
  }

  /** This rank's contiguous part [start, end) of n items (sizes differ by at most 1). */
  part(n: number): [number, number] {
    return [Math.floor((this.rank * n) / this.world), Math.floor(((this.rank + 1) * n) / this.world)];
  }

  /** The factor of this rank's mean loss over its `local` of `global` samples (1 with an even split). */
  lossWeight(local: number, global: number): number {
    return (local * this.world) / global;
  }

  /** Arms the DDP gradient synchronization of the next backward (call in grad mode, before the forward). */
  prepareForBackward(): void {
    this.ddp?.prepareForBackward();
  }

  /** Runs fn (a model call) on this rank's own generator stream (many ranks), then resumes the shared one. */
  perRank<T>(fn: () => T): T {
    if (!this.active) return fn();
    const shared = getRngState();
    // Another seed per rank, at the shared offset (which the step's own draws move on).
    setRngState({ seed: Math.floor(new DataRng(shared.seed, 0x7a11, this.rank).next() * 2 ** 32), offset: shared.offset });
    try {
      return fn();
    } finally {
      setRngState(shared);
    }
  }

  /** Whether any rank asks to stop, and the largest progress value (a step's one control collective). */
  control(stop: boolean, progress = 0): { stop: boolean; progress: number } {
    if (!this.active) return { stop, progress };
    const [s, p] = this.timed(() => allReduceNumbers([stop ? 1 : 0, progress], 'max'));
    return { stop: s > 0, progress: p };
  }

  /** Averages t over the ranks in place (the logged loss terms), returns t. */
  mean(t: Tensor): Tensor {
    if (this.active) this.timed(() => group.allReduce(t, 'mean'));
    return t;
  }

  /** fn's value on rank 0, sent to every rank (fn runs only there): file reads that decide what all ranks do. */
  fromRank0<T>(fn: () => T): T {
    if (!this.active) return fn();
    return broadcastObject(this.isMain ? fn() : (null as T), 0);
  }

  /** Milliseconds this step communicated (the gradient wait of the last backward included), then resets the count. */
  takeCommMs(): number {
    const ms = this.commMs + (this.ddp?.lastSync?.waitMs ?? 0);
    this.commMs = 0;
    return ms;
  }

  private timed<T>(fn: () => T): T {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      this.commMs += performance.now() - t0;
    }
  }

  /** Stops synchronizing the model (it stays usable and keeps its weights). */
  close(): void {
    this.ddp?.unwrap();
  }
}

/** Resolves a loop's `distributed` option (see the file header); model: the trained one, wrapped in DDP (or later, wrap()). */
export function dataParallel(op: string, opt: unknown, model: Module | null = null): DataParallel {
  if (opt !== undefined && opt !== 'auto' && typeof opt !== 'boolean' && (opt === null || typeof opt !== 'object'))
    throw new TypeError(`${op}: expected distributed to be 'auto', true, false or { bucketCapMB, findUnusedParameters }, got ${typeName(opt)}`);
  if (opt === false || ((opt === undefined || opt === 'auto') && !group.isInitialized())) return new DataParallel(0, 1, {});
  if (!group.isInitialized()) group.init();
  const dp = new DataParallel(group.rank(), group.worldSize(), typeof opt === 'object' ? (opt as DataParallelOptions) : {});
  if (model) dp.wrap(model);
  return dp;
}

/** Whether this process is rank 0 of an initialized group with several ranks, or alone: the one that writes. */
export function isWritingRank(): boolean {
  return !group.isInitialized() || group.rank() === 0;
}
