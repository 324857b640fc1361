// trainDiT and sample: the diffusion training loop on latents (from the VAE's latent
// cache) and text-to-video sampling through the DiT and the VAE decoder. Both run on
// one device (the model's, or `device`): batches, noise, timesteps and masks are made
// there, and a training step reads one thing back, the loss (with the gradient norm)
// at the logging cadence. On several ranks (ts.distributed; the `distributed` option)
// each rank runs its slice of the global batch and DDP averages the gradients; see
// train/distributed.ts for how that equals one process with the whole batch.
import * as fs from 'fs';
import * as path from 'path';
import { getRngState, manualSeed, randn, setRngState, tensor } from '../creation';
import { noGrad } from '../autograd/node';
import { ConditionFrames, keepFrames, randomFrameMask } from '../diffusion/common';
import { Diffusion } from '../diffusion/diffusion';
import { GaussianDiffusion } from '../diffusion/gaussian';
import { RectifiedFlow } from '../diffusion/flow';
import { DataRng } from '../data/rng';
import { LatentCache } from '../data/latent_cache';
import { DiT, DiTCondition } from '../models/dit';
import { Module } from '../nn/module';
import { cat, stack } from '../ops/basic';
import { AdamW } from '../optim/adamw';
import { clipGradNorm } from '../optim/clip';
import { EMA } from '../optim/ema';
import { warmupCosine } from '../optim/schedule';
import { Device, keep, Tensor, tidy } from '../tensor';
import { device as checkDevice, posInt } from '../checks';
import { Precision, resolvePrecision, withPrecision } from './precision';
import { CheckpointMismatchError, checkpointInfo, checkpointInterval, configDifferences, restoreCheckpoint, saveCheckpoint } from './checkpoint';
import { dataParallel, DistributedOption } from './distributed';

/** One latent sample: latent [C, T, H, W] and its caption (text models) or label (class models). */
export interface LatentSample {
  latent: Tensor;
  caption?: string;
  label?: number;
}
export interface LatentDataset {
  readonly length: number;
  get(index: number): LatentSample;
}

export type { Diffusion };

/**
 * A latent cache (encodeDataset / loadLatentCache) as a training dataset: each latent
 * is the posterior mean times the cache's scaling factor (1 / std, so the DiT sees
 * roughly unit variance); sample() output must be divided by it before decoding.
 */
export function latentDataset(cache: LatentCache, opts: { scale?: number; device?: Device } = {}): LatentDataset {
  const scale = opts.scale ?? cache.index.scalingFactor;
  const shape = cache.index.latentShape;
  const device = opts.device === undefined ? cache.device : checkDevice('latentDataset', 'device', opts.device);
  return {
    length: cache.length,
    get: (i) => {
      const s = cache.get(i);
      const m = s.mean;
      const v = new Float32Array(m.length);
      for (let k = 0; k < m.length; k++) v[k] = m[k] * scale;
      return { latent: tensor(v, { shape: [...shape], device }), caption: s.caption ?? '' }; // read straight to the device
    },
  };
}

/**
 * A video latent dataset plus, as further samples, the first latent frame of each video
 * as an image [C, 1, H, W] with the same caption: samples 0..N-1 are the videos, N..2N-1
 * their first frames. With a causal video VAE the first latent frame encodes the first
 * video frame alone, so it is exactly the latent of that frame as an image: a text-to-
 * image task at a fraction of the tokens, for a model that is then sampled in two
 * stages (image first, then the video conditioned on it; see sample's conditionFrames).
 */
export function withFirstFrameImages(data: LatentDataset): LatentDataset {
  const N = data.length;
  return {
    length: 2 * N,
    get: (i) => {
      if (i < N) return data.get(i);
      const s = data.get(i - N);
      if (s.latent.rank !== 4) throw new Error(`withFirstFrameImages: sample ${i - N}: expected a latent [C, T, H, W], got [${s.latent.shape.join(', ')}]`);
      return { ...s, latent: s.latent.slice(1, 0, 1).contiguous() }; // [C, 1, H, W]
    },
  };
}

export interface TrainDiTStep {
  step: number;
  /** The loss and gradient norm of step `loggedStep` (the last logged step: logEvery). */
  loss: number;
  gradNorm: number;
  loggedStep: number;
  lr: number;
  tokensPerSecond: number;
  seconds: number;
  /** Samples and tokens in this step's batch (the global batch, over all ranks). */
  samples: number;
  tokens: number;
  /**
   * Milliseconds this step spent communicating: waiting for DDP's gradient all-reduce at
   * the end of backward, plus the step's control and logging collectives (0 on one rank).
   */
  commMs: number;
}

export interface TrainDiTOptions {
  dit: DiT;
  diffusion: Diffusion;
  data: LatentDataset;
  steps: number;
  batchSize: number;
  lr?: number; // default 3e-4
  warmup?: number; // steps, default min(500, steps / 10)
  weightDecay?: number; // default 0
  /** EMA decay (null: no EMA); default 0.999. */
  ema?: number | null;
  /** Probability of replacing a caption by '' (or a label by the null class) for guidance; default 0.1. */
  cfgDropout?: number;
  /**
   * Probability that a video sample keeps its first latent frames clean as conditioning
   * frames (timestep 0, left out of the loss): half of those the first frame alone
   * (image-to-video), the rest a random prefix (video extension). Default 0.
   */
  conditionFrameProb?: number;
  /**
   * How batches of mixed grids are formed: 'bucket' draws every batch from one grid;
   * 'pack' draws samples of any grids and runs them as one packed sequence (NaViT):
   * attention stays within each sample, every sample weighs the same in the loss.
   */
  mixed?: 'bucket' | 'pack';
  /**
   * 'bucket' only: size each batch by tokens instead of samples, floor(batchTokens /
   * tokens per sample) samples of the drawn grid (at least 1), so a batch of images
   * holds as many tokens as a batch of videos (batchSize is then unused for buckets).
   */
  batchTokens?: number;
  /**
   * Training progress in [0, 1] for the learning-rate decay, read before each step (for
   * example elapsed time / time budget). After warmup the cosine follows it instead of
   * step / steps, so a run that a deadline stops has decayed fully however fast its steps
   * were; `steps` is then only an upper bound.
   */
  progress?: () => number;
  maxGradNorm?: number; // default 1
  checkpointDir?: string;
  checkpointEvery?: number; // default 500
  /**
   * Minutes between checkpoints besides checkpointEvery (default 2; Infinity: by steps
   * only): a kill loses at most this much training however slow the steps are.
   */
  checkpointMinutes?: number;
  /** Checkpoints to keep, the newest (default 0: all). */
  keepCheckpoints?: number;
  onStep?: (s: TrainDiTStep) => void;
  signal?: AbortSignal;
  seed?: number;
  /** The device to train on (default: the model's); the model is moved there. */
  device?: Device;
  /** 'bf16' (default on CUDA: autocast matmul/attention/conv, float32 master weights) or 'fp32' (default elsewhere). */
  precision?: Precision;
  /**
   * Steps between reads of the loss and gradient norm (default 1): the only values a step
   * reads back from its device. A NaN loss is noticed at these steps.
   */
  logEvery?: number;
  /**
   * Data-parallel training over the ranks of ts.distributed (train/distributed.ts): 'auto'
   * (default: on when it is initialized with several ranks), true, false, or DDP options.
   * batchSize (and batchTokens) is then the global batch, split over the ranks; only
   * rank 0 writes the log and checkpoints (checkpointDir on a filesystem all ranks share).
   */
  distributed?: DistributedOption;
}

export interface TrainDiTResult {
  steps: number;
  stopped: 'done' | 'aborted' | 'nan';
  lastLoss: number;
  ema: EMA | null;
  /** The last checkpoint written (rank 0; null on the other ranks). */
  checkpoint: string | null;
}

function gridKey(t: Tensor): string {
  return t.shape.join('x');
}

/** The dataset indices of a batch of one grid: one random anchor, the rest drawn among equal grids. */
function drawIndices(B: number | ((key: string) => number), rng: DataRng, byGrid: Map<string, number[]>, keys: string[]): number[] {
  const key = keys[rng.int(keys.length)];
  const pool = byGrid.get(key)!;
  const n = typeof B === 'number' ? B : B(key);
  return Array.from({ length: n }, () => pool[rng.int(pool.length)]);
}

/**
 * The conditioning of `samples`, which sit at `positions` of a batch of n: the guidance
 * dropout is drawn for all n samples (as one process with the whole batch draws it), and
 * each sample takes the draw of its position.
 */
function condition(dit: DiT, samples: LatentSample[], positions: number[], n: number, drop: number, rng: DataRng): DiTCondition {
  const kind = dit.config.condition;
  if (kind !== 'text' && kind !== 'class') return null;
  const dropped = Array.from({ length: n }, () => rng.next() < drop);
  if (kind === 'text') return { prompts: samples.map((s, k) => (dropped[positions[k]] ? '' : s.caption ?? '')) };
  return {
    labels: samples.map((s, k) => {
      if (s.label === undefined) throw new Error('trainDiT: class-conditional DiT needs a label on every sample');
      return dropped[positions[k]] ? dit.config.numClasses : s.label;
    }),
  };
}

function tokensOf(dit: DiT, latent: readonly number[]): number {
  const [, T, H, W] = latent, p = dit.config.patchSize;
  return (T / p[0]) * (H / p[1]) * (W / p[2]);
}

/** The part of a packed batch one rank runs (see packedTrainingStep). */
export interface PackedPart {
  /** The latent shape [C, T, H, W] of every sample of the global batch. */
  shapes: number[][];
  /** This rank's samples are [start, end) of the global batch; `batch` holds exactly these. */
  start: number;
  end: number;
  /** Ranks sharing the batch: the loss is weighted so that their mean is the global batch's. */
  world: number;
}

/**
 * One packed training step (gradients accumulated, loss returned as a tensor, not read).
 * Per group of equal grids: the frame mask (conditioning frames), noise and timesteps are
 * drawn and x_t formed; one packed forward of all samples gives every output; each
 * group's loss comes from its outputs. Every sample weighs the same. With `part`, batch
 * holds one rank's samples of a global batch: the random draws are made for the whole
 * batch (the one-process sequence) and sliced, and the loss is that rank's share.
 * Returns the loss and the tokens of the samples run.
 */
export function packedTrainingStep(
  dit: DiT, diffusion: Diffusion, batch: LatentSample[], drop: number, condProb: number, rng: DataRng, part?: PackedPart,
): { loss: Tensor; tokens: number } {
  const shapes = part ? part.shapes : batch.map((s) => s.latent.shape as number[]);
  const start = part?.start ?? 0, end = part?.end ?? batch.length, world = part?.world ?? 1;
  const N = shapes.length;
  if (end - start !== batch.length || start < 0 || end > N || start >= end)
    throw new RangeError(`packedTrainingStep: expected the samples [${start}, ${end}) of a batch of ${N}, got ${batch.length} samples`);
  const groups = new Map<string, number[]>();
  shapes.forEach((sh, i) => {
    const k = sh.join('x');
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(i);
  });
  const mine = (i: number): boolean => i >= start && i < end;
  const grouped = [...groups.values()].flat(); // the samples grouped by grid: the order of the forward
  const at = grouped.map((_, p) => p).filter((p) => mine(grouped[p])); // this rank's positions in it
  const order = at.map((p) => grouped[p]);
  const cond = condition(dit, order.map((i) => batch[i - start]), at, N, drop, rng);
  const device = dit.device;
  const plans: { x0: Tensor; noise: Tensor; xt: Tensor; t: Tensor; mask: Tensor | null; mt: Tensor }[] = [];
  for (const idx of groups.values()) {
    const shape = shapes[idx[0]]; // [C, T, H, W]
    const Bg = idx.length, T = shape[1];
    // Drawn for the whole group; this rank's members are a contiguous run of it.
    const maskAll = condProb > 0 && T > 1 ? randomFrameMask(Bg, T, { prob: condProb, device }) : null; // [B_g, 1, T, 1, 1]
    const noiseAll = randn([Bg, ...shape], { device });
    const tAll = diffusion.sampleTimesteps(Bg, { device, numTokens: shape.slice(1).reduce((a, b) => a * b, 1) }); // [B_g]
    const lo = idx.findIndex(mine), n = idx.filter(mine).length;
    if (n === 0) continue;
    const rows = (x: Tensor): Tensor => (n === Bg ? x : x.slice(0, lo, lo + n).contiguous());
    const x0 = stack(idx.slice(lo, lo + n).map((i) => batch[i - start].latent)); // [b_g, C, T, H, W]
    const mask = maskAll && rows(maskAll), noise = rows(noiseAll), t = rows(tAll);
    let xt = diffusion.addNoise(x0, noise, t);
    if (mask) xt = keepFrames(xt, x0, mask);
    plans.push({ x0, noise, xt, t, mask, mt: diffusion.modelTimesteps(t, mask) }); // mt [b_g] | [b_g, T]
  }
  const perFrame = plans.some((p) => p.mask);
  const xts: Tensor[] = [], tms: Tensor[] = [];
  for (const p of plans) {
    const [Bg, , T] = p.x0.shape;
    const mt = perFrame && !p.mask ? p.mt.reshape([Bg, 1]).expand([Bg, T]) : p.mt; // [b_g] | [b_g, T]
    for (let b = 0; b < Bg; b++) {
      xts.push(p.xt.slice(0, b, b + 1).detach()); // [1, C, T, H, W]
      tms.push(perFrame ? mt.slice(0, b, b + 1).reshape([T]) : mt.slice(0, b, b + 1)); // [T] | [1]
    }
  }
  const ys = dit.forward(xts, perFrame ? tms : cat(tms, 0), cond); // one [1, Cout, T, H, W] per sample
  let k = 0, total: Tensor | null = null;
  for (const p of plans) {
    const Bg = p.x0.shape[0];
    const y = cat(ys.slice(k, k + Bg), 0); // [b_g, Cout, T, H, W]
    k += Bg;
    const l = diffusion.loss(y, { x0: p.x0, noise: p.noise, xt: p.xt, t: p.t, frameMask: p.mask }).loss.mul((Bg * world) / N);
    total = total ? total.add(l) : l;
  }
  total!.backward();
  return { loss: total!.detach(), tokens: order.reduce((a, i) => a + tokensOf(dit, shapes[i]), 0) };
}

function isDiffusion(d: unknown): d is Diffusion {
  if (d instanceof GaussianDiffusion || d instanceof RectifiedFlow) return true;
  const o = d as Record<string, unknown> | null;
  return !!o && ['sampleTimesteps', 'addNoise', 'modelTimesteps', 'loss', 'trainingLoss', 'sample', 'outputChannels'].every((k) => typeof o[k] === 'function');
}

/**
 * Trains a DiT on a latent dataset. Async: it yields to the event loop after every step,
 * so timers and signal handlers (Ctrl-C -> AbortController) run during training.
 */
export async function trainDiT(o: TrainDiTOptions): Promise<TrainDiTResult> {
  const op = 'trainDiT';
  if (!(o.dit instanceof DiT)) throw new TypeError(`${op}: expected dit to be a DiT`);
  if (!isDiffusion(o.diffusion)) throw new TypeError(`${op}: expected diffusion to be a Diffusion (GaussianDiffusion, RectifiedFlow or your own)`);
  for (const [k, v] of [['steps', o.steps], ['batchSize', o.batchSize]] as const)
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${op}: expected ${k} to be a positive integer, got ${String(v)}`);
  if (!o.data || !Number.isInteger(o.data.length) || o.data.length < 1) throw new TypeError(`${op}: expected a non-empty latent dataset`);
  if (o.mixed !== undefined && o.mixed !== 'bucket' && o.mixed !== 'pack') throw new TypeError(`${op}: mixed must be 'bucket' or 'pack', got '${String(o.mixed)}'`);
  const pack = o.mixed === 'pack';
  if (o.batchTokens !== undefined && (!Number.isInteger(o.batchTokens) || o.batchTokens < 1))
    throw new RangeError(`${op}: expected batchTokens to be a positive integer, got ${String(o.batchTokens)}`);
  if (o.batchTokens !== undefined && pack) throw new TypeError(`${op}: batchTokens sizes bucketed batches; it does not apply with mixed: 'pack'`);
  const cfgDropout = o.cfgDropout ?? 0.1;
  if (!(cfgDropout >= 0 && cfgDropout < 1)) throw new RangeError(`${op}: expected 0 <= cfgDropout < 1, got ${cfgDropout}`);
  const condProb = o.conditionFrameProb ?? 0;
  if (!(condProb >= 0 && condProb <= 1)) throw new RangeError(`${op}: expected 0 <= conditionFrameProb <= 1, got ${condProb}`);
  const dit = o.dit;
  const device = o.device === undefined ? dit.device : checkDevice(op, 'device', o.device);
  const precision = resolvePrecision(op, device, o.precision);
  const logEvery = posInt(op, 'logEvery', o.logEvery ?? 1);
  if (dit.device !== device) dit.to(device);
  const lr = o.lr ?? 3e-4;
  const warm = o.warmup ?? Math.min(500, Math.floor(o.steps / 10));
  const schedule = warmupCosine(warm, o.steps, { minFactor: 0.1 });
  if (o.progress !== undefined && typeof o.progress !== 'function') throw new TypeError(`${op}: expected progress to be a function returning 0..1, got ${typeof o.progress}`);
  const progressAt = (step: number): number => {
    if (!o.progress || step < warm) return 0;
    const p = o.progress();
    if (!Number.isFinite(p)) throw new RangeError(`${op}: progress() returned ${p}; expected a number in [0, 1]`);
    return p;
  };
  const lrScale = (step: number, p: number): number =>
    !o.progress || step < warm ? schedule(step) : 0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, Math.max(0, p))));
  // Before the EMA copies the weights: DDP makes them rank 0's.
  const dp = dataParallel(op, o.distributed, dit);
  try {
    if (dp.world > o.batchSize && o.batchTokens === undefined)
      throw new RangeError(`${op}: batchSize ${o.batchSize} is the global batch and cannot be split over ${dp.world} ranks; use batchSize >= ${dp.world}`);
    const opt = new AdamW(dit.parameters(), { lr, weightDecay: o.weightDecay ?? 0 });
    const ema = o.ema === null ? null : new EMA(dit, o.ema ?? 0.999);
    const every = o.checkpointEvery ?? 500;
    const everyMs = checkpointInterval(op, o.checkpointMinutes);

    // Index the data by grid once (bucketing).
    const byGrid = new Map<string, number[]>();
    const shapeOf: number[][] = [];
    for (let i = 0; i < o.data.length; i++) {
      tidy(() => {
        const s = o.data.get(i);
        const k = gridKey(s.latent);
        if (s.latent.rank !== 4) throw new Error(`${op}: sample ${i}: expected a latent [C, T, H, W], got [${s.latent.shape.join(', ')}]`);
        if (!byGrid.has(k)) byGrid.set(k, []);
        byGrid.get(k)!.push(i);
        shapeOf.push(s.latent.shape as number[]);
      });
    }
    const keys = [...byGrid.keys()];
    const bt = o.batchTokens;
    const batchOf = bt === undefined ? o.batchSize : (key: string): number => Math.max(1, Math.floor(bt / tokensOf(dit, key.split('x').map(Number))));

    let start = 0;
    let lastGood: string | null = null;
    // What a checkpoint records of the run: a resume must be of the same model and batch.
    const config = { dit: dit.config, train: { batchSize: o.batchSize, batchTokens: o.batchTokens ?? null, mixed: o.mixed ?? 'bucket', seed: o.seed ?? null } };
    // Rank 0 says whether and from where to resume; every rank reads that checkpoint.
    const found = o.checkpointDir ? dp.fromRank0(() => {
      const info = checkpointInfo(o.checkpointDir!);
      if (!info) return null;
      const saved = info.config as Partial<typeof config> | null;
      const diff = configDifferences({ dit: saved?.dit, train: saved?.train ?? config.train }, config); // (older checkpoints hold no train settings)
      return { path: info.path, mismatch: diff.length ? diff : null };
    }) : null;
    if (found?.mismatch) throw new CheckpointMismatchError(op, found.path, found.mismatch);
    const resumeFrom = found?.path ?? null;
    if (resumeFrom) {
      const r = restoreCheckpoint(resumeFrom, { model: dit, optimizer: opt, ema: ema ?? undefined });
      start = r.step;
      if (dp.isMain) lastGood = r.path;
    } else if (o.seed !== undefined) {
      manualSeed(o.seed);
    }
    if (dp.active) setRngState(dp.fromRank0(() => getRngState())); // one shared stream (see train/distributed.ts)
    const logFile = o.checkpointDir && dp.isMain ? path.join(o.checkpointDir, 'log.jsonl') : null;
    if (logFile) fs.mkdirSync(o.checkpointDir!, { recursive: true });
    let savedAt = Date.now();
    const save = (step: number): string | null => {
      savedAt = Date.now();
      return dp.isMain ? saveCheckpoint(o.checkpointDir!, { model: dit, optimizer: opt, ema: ema ?? undefined, step, config }, { keep: o.keepCheckpoints ?? 0 }) : null;
    };

    let lastLoss = NaN, lastNorm = NaN, loggedStep = 0;
    let step = start;
    let stopped: TrainDiTResult['stopped'] = 'done';
    dit.train();
    const model = (xt: Tensor, t: Tensor, cond: DiTCondition): Tensor => dp.perRank(() => dit.forward(xt, t, cond));
    while (step < o.steps) {
      // Every rank stops at the same step, and decays the lr by the same progress.
      const ctl = dp.control(!!o.signal?.aborted, progressAt(step));
      if (ctl.stop) {
        stopped = 'aborted';
        break;
      }
      const t0 = Date.now();
      const rng = new DataRng(o.seed ?? 0, 7, step);
      const scale = lrScale(step, ctl.progress);
      opt.setLRScale(scale);
      let tokens = 0, samples = o.batchSize;
      // The step's loss and gradient norm stay on the device; read together (one read) when logged.
      const stats = tidy(() => {
        const loss = withPrecision(precision, () => {
          dp.prepareForBackward();
          if (pack) {
            // The global batch's indices; this rank loads and runs its part.
            const idx = Array.from({ length: o.batchSize }, () => rng.int(o.data.length));
            const [a, b] = dp.part(idx.length);
            const part = dp.active ? { shapes: idx.map((i) => shapeOf[i]), start: a, end: b, world: dp.world } : undefined;
            const r = packedTrainingStep(dit, o.diffusion, idx.slice(a, b).map((i) => o.data.get(i)), cfgDropout, condProb, rng, part);
            tokens = idx.reduce((n, i) => n + tokensOf(dit, shapeOf[i]), 0);
            return r.loss;
          }
          const idx = drawIndices(batchOf, rng, byGrid, keys);
          const B = (samples = idx.length);
          const [a, b] = dp.part(B);
          if (a === b) throw new RangeError(`${op}: a batch of ${B} samples cannot be split over ${dp.world} ranks; raise batchTokens`);
          const batch = idx.slice(a, b).map((i) => o.data.get(i));
          const x0 = stack(batch.map((s) => s.latent)); // [b, C, T, H, W]: this rank's rows of the batch
          if (x0.device !== device) throw new Error(`${op}: the dataset gives latents on ${x0.device}, the model is on ${device} (latentDataset(cache, { device }))`);
          const [, C, T, H, W] = x0.shape;
          tokens = B * tokensOf(dit, [C, T, H, W]);
          const cond = condition(dit, batch, batch.map((_, k) => a + k), B, cfgDropout, rng);
          // Drawn for the whole batch, in the order trainingLoss draws them (mask, t, noise); this rank's rows kept.
          const rows = (x: Tensor): Tensor => (b - a === B ? x : x.slice(0, a, b).contiguous());
          const mask = condProb > 0 && T > 1 ? randomFrameMask(B, T, { prob: condProb, device }) : undefined; // [B, 1, T, 1, 1]
          const t = o.diffusion.sampleTimesteps(B, { device, numTokens: T * H * W }); // [B]
          const noise = randn([B, C, T, H, W], { device });
          let l = o.diffusion.trainingLoss(model, x0, { cond, conditionFrames: mask && rows(mask), t: rows(t), noise: rows(noise) }).loss;
          const w = dp.lossWeight(b - a, B);
          if (w !== 1) l = l.mul(w);
          l.backward();
          return l.detach();
        });
        const gradNorm = clipGradNorm(dit, o.maxGradNorm ?? 1); // on the device
        return keep(cat([loss.reshape([1]), gradNorm.reshape([1])], 0)); // [2]
      });
      const log = (step + 1) % logEvery === 0 || step + 1 === o.steps;
      if (log) {
        // The mean over the ranks: the global batch's loss, and a NaN on any rank is a NaN on every rank.
        const [l, g] = dp.mean(stats).toFloat32Array(); // the step's one read
        lastLoss = l;
        lastNorm = g;
        loggedStep = step + 1;
      }
      stats.dispose();
      if (log && !Number.isFinite(lastLoss)) {
        opt.zeroGrad();
        stopped = 'nan';
        const where = lastGood ? `; the last good checkpoint is ${lastGood}` : '';
        if (dp.isMain) process.stderr.write(`trainDiT: the loss became ${lastLoss} at step ${step + 1}${dp.active ? ` (mean over ${dp.world} ranks)` : ''}; stopping${where}\n`);
        break;
      }
      opt.step();
      opt.zeroGrad();
      ema?.update();
      step++;
      const seconds = (Date.now() - t0) / 1000;
      const info: TrainDiTStep = {
        step, loss: lastLoss, gradNorm: lastNorm, loggedStep, lr: lr * scale, tokensPerSecond: tokens / Math.max(seconds, 1e-6), seconds, samples, tokens,
        commMs: dp.takeCommMs(),
      };
      if (logFile && log) fs.appendFileSync(logFile, JSON.stringify(info) + '\n');
      o.onStep?.(info);
      if (o.checkpointDir && (step % every === 0 || step === o.steps || Date.now() - savedAt >= everyMs)) lastGood = save(step);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (stopped === 'aborted' && o.checkpointDir) lastGood = save(step);
    dit.eval();
    return { steps: step, stopped, lastLoss, ema, checkpoint: lastGood };
  } finally {
    dp.close();
  }
}

/** A decoder from latents to video in [-1, 1] (VideoVAE fits). */
export interface LatentDecoder {
  decode(latent: Tensor): Tensor;
}

export interface SampleOptions {
  dit: DiT;
  diffusion: Diffusion;
  /** Decodes latents to video; without one, sample() returns the latents. */
  vae?: LatentDecoder | null;
  prompts?: string[];
  labels?: number[];
  /** Latent grid [T', H', W'] to sample (the video size follows from the VAE's compression). */
  latentGrid: [number, number, number];
  steps?: number;
  /** One of diffusion.samplers (default: 'ddim' for GaussianDiffusion, the process's default otherwise). */
  sampler?: string;
  cfgScale?: number;
  seed?: number;
  /** Sample with these EMA weights (the model's own are restored afterwards). */
  ema?: EMA | null;
  /** Given latent frames (scaled like the training latents) kept clean: image-to-video, extension. */
  conditionFrames?: ConditionFrames;
  /** Called after each sampler step with the steps done (1..steps), for progress. */
  onStep?: (done: number) => void;
}

/** Samples latents for prompts (or labels) and decodes them: video [B, C, T, H, W] in [0, 1]. */
export function sample(o: SampleOptions): Tensor {
  const op = 'sample';
  const dit = o.dit;
  const grid = o.latentGrid;
  if (!Array.isArray(grid) || grid.length !== 3 || grid.some((v) => !Number.isInteger(v) || v < 1))
    throw new RangeError(`${op}: expected latentGrid [T, H, W] of positive integers, got ${JSON.stringify(grid)}`);
  const kind = dit.config.condition;
  let cond: DiTCondition, uncond: DiTCondition, B: number;
  if (kind === 'text') {
    if (!Array.isArray(o.prompts) || !o.prompts.length) throw new TypeError(`${op}: a text-conditioned DiT needs prompts`);
    B = o.prompts.length;
    cond = { prompts: o.prompts };
    uncond = { prompts: o.prompts.map(() => '') };
  } else if (kind === 'class') {
    if (!Array.isArray(o.labels) || !o.labels.length) throw new TypeError(`${op}: a class-conditional DiT needs labels`);
    B = o.labels.length;
    cond = { labels: o.labels };
    uncond = { labels: o.labels.map(() => dit.config.numClasses) };
  } else {
    B = o.prompts?.length ?? o.labels?.length ?? 1;
    cond = null;
    uncond = null;
  }
  const shape = [B, dit.config.inChannels, ...grid];
  const device = dit.device;
  const model = (xt: Tensor, t: Tensor, c: DiTCondition): Tensor => dit.forward(xt, t, c);
  // DDPM's default of all timesteps is too slow for a preview: Gaussian processes sample with DDIM unless asked.
  const sampler = o.sampler ?? (o.diffusion.samplers.includes('ddim') ? 'ddim' : o.diffusion.defaultSampler);
  if (!o.diffusion.samplers.includes(sampler)) throw new TypeError(`${op}: expected sampler ${o.diffusion.samplers.map((x) => `'${x}'`).join(', ')}, got '${sampler}'`);
  let stepsDone = 0;
  const run = (): Tensor =>
    noGrad(() => {
      const latents = o.diffusion.sample(model, {
        shape, cond, uncond, cfgScale: o.cfgScale ?? 1, steps: o.steps ?? 50, seed: o.seed, conditionFrames: o.conditionFrames, device, sampler,
        onStep: o.onStep ? () => o.onStep!(++stepsDone) : undefined,
      });
      if (!o.vae) return latents;
      return tidy(() => o.vae!.decode(latents).add(1).mul(0.5).clamp(0, 1)); // [B, C, T, H, W] in [0, 1]
    });
  const wasTraining = dit.training;
  dit.eval();
  try {
    if (!o.ema) return run();
    const backup = new Map(dit.namedParameters().map(([n, p]) => [n, keep(p.clone())]));
    o.ema.copyTo(dit);
    try {
      return run();
    } finally {
      for (const [n, p] of dit.namedParameters()) p.copy_(backup.get(n)!);
      for (const b of backup.values()) b.dispose();
    }
  } finally {
    if (wasTraining) dit.train();
  }
}

export type { Module };
export { tensor };
