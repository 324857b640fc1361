// trainDiT and sample: the diffusion training loop on latents (from the VAE's latent
// cache) and text-to-video sampling through the DiT and the VAE decoder.
import * as fs from 'fs';
import * as path from 'path';
import { manualSeed, randn, tensor, zeros } from '../creation';
import { GaussianDiffusion } from '../diffusion/gaussian';
import { RectifiedFlow } from '../diffusion/flow';
import { ConditionFrames, randomConditionFrames } from '../diffusion/common';
import { DataRng } from '../data/rng';
import { LatentCache } from '../data/latent_cache';
import { DiT, DiTCondition } from '../models/dit';
import { Module } from '../nn/module';
import { cat, stack } from '../ops/basic';
import { AdamW } from '../optim/adamw';
import { clipGradNorm } from '../optim/clip';
import { EMA } from '../optim/ema';
import { warmupCosine } from '../optim/schedule';
import { keep, noGrad, Tensor, tidy } from '../index';
import { restoreCheckpoint, saveCheckpoint } from './checkpoint';

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

export type Diffusion = GaussianDiffusion | RectifiedFlow;

/**
 * A latent cache (encodeDataset / loadLatentCache) as a training dataset: each latent
 * is the posterior mean times the cache's scaling factor (1 / std, so the DiT sees
 * roughly unit variance); sample() output must be divided by it before decoding.
 */
export function latentDataset(cache: LatentCache, opts: { scale?: number } = {}): LatentDataset {
  const scale = opts.scale ?? cache.index.scalingFactor;
  const shape = cache.index.latentShape;
  return {
    length: cache.length,
    get: (i) => {
      const s = cache.get(i);
      const m = s.mean;
      const v = new Float32Array(m.length);
      for (let k = 0; k < m.length; k++) v[k] = m[k] * scale;
      return { latent: tensor(v, { shape: [...shape] }), caption: s.caption ?? '' };
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
  loss: number;
  gradNorm: number;
  lr: number;
  tokensPerSecond: number;
  seconds: number;
  /** Samples and tokens in this step's batch. */
  samples: number;
  tokens: number;
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
  onStep?: (s: TrainDiTStep) => void;
  signal?: AbortSignal;
  seed?: number;
}

export interface TrainDiTResult {
  steps: number;
  stopped: 'done' | 'aborted' | 'nan';
  lastLoss: number;
  ema: EMA | null;
  checkpoint: string | null;
}

function gridKey(t: Tensor): string {
  return t.shape.join('x');
}

/** A batch of samples of one grid: one random anchor, the rest drawn among equal grids. */
function drawBatch(data: LatentDataset, B: number | ((key: string) => number), rng: DataRng, byGrid: Map<string, number[]>, keys: string[]): LatentSample[] {
  const key = keys[rng.int(keys.length)];
  const pool = byGrid.get(key)!;
  const n = typeof B === 'number' ? B : B(key);
  return Array.from({ length: n }, () => data.get(pool[rng.int(pool.length)]));
}

function condition(dit: DiT, batch: LatentSample[], drop: number, rng: DataRng): DiTCondition {
  const kind = dit.config.condition;
  if (kind === 'text') return { prompts: batch.map((s) => (rng.next() < drop ? '' : s.caption ?? '')) };
  if (kind === 'class') {
    return {
      labels: batch.map((s) => {
        if (s.label === undefined) throw new Error('trainDiT: class-conditional DiT needs a label on every sample');
        return rng.next() < drop ? dit.config.numClasses : s.label;
      }),
    };
  }
  return null;
}

function tokensOf(dit: DiT, latent: readonly number[]): number {
  const [, T, H, W] = latent, p = dit.config.patchSize;
  return (T / p[0]) * (H / p[1]) * (W / p[2]);
}

/**
 * One packed training step (gradients accumulated, loss returned). Per group of equal
 * grids, a first pass of the diffusion loss with a stand-in model records the noisy
 * inputs x_t and the timesteps it draws; one packed forward of all samples then gives
 * the outputs, and a second pass with the same t and noise computes each group's loss
 * from them. Every sample weighs the same.
 */
export function packedTrainingStep(dit: DiT, diffusion: Diffusion, batch: LatentSample[], drop: number, condProb: number, rng: DataRng): { loss: number; tokens: number } {
  const groups = new Map<string, number[]>();
  batch.forEach((s, i) => {
    const k = gridKey(s.latent);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(i);
  });
  const order = [...groups.values()].flat(); // samples grouped by grid
  const cond = condition(dit, order.map((i) => batch[i]), drop, rng);
  const xts: Tensor[] = [], times: number[][] = [];
  const plans: { x0: Tensor; noise: Tensor; t: number[]; conditionFrames?: number[][]; cond: DiTCondition }[] = [];
  let perFrame = false, at = 0;
  try {
    for (const idx of groups.values()) {
      const x0 = stack(idx.map((i) => batch[i].latent)); // [B_g, C, T, H, W]
      const Bg = idx.length, T = x0.shape[2];
      const conditionFrames = condProb > 0 && T > 1 ? randomConditionFrames(Bg, T, { prob: condProb }) : undefined;
      const noise = randn([...x0.shape]);
      const part = sliceCondition(cond, at, (at += Bg));
      const record = (xt: Tensor, t: Tensor): Tensor => {
        const tv = t.toFloat32Array();
        for (let b = 0; b < Bg; b++) {
          xts.push(keep(xt.slice(0, b, b + 1).detach())); // [1, C, T, H, W], outlives the loss's tidy
          times.push(t.rank === 2 ? Array.from(tv.subarray(b * T, (b + 1) * T)) : [tv[b]]);
        }
        perFrame ||= t.rank === 2;
        return zeros([Bg, dit.outChannels, ...xt.shape.slice(2)]); // stands in for the model output
      };
      const t = noGrad(() => diffusion.trainingLoss(record, x0, { cond: part, noise, conditionFrames }).t);
      plans.push({ x0, noise, t, conditionFrames, cond: part });
    }
    const tm = perFrame ? times.map((r, i) => (r.length === 1 ? new Array<number>(xts[i].shape[2]).fill(r[0]) : r)) : times.map((r) => r[0]);
    const ys = dit.forward(xts, tm, cond); // one [1, Cout, T, H, W] per sample
    let k = 0, total: Tensor | null = null;
    for (const p of plans) {
      const Bg = p.x0.shape[0];
      const y = cat(ys.slice(k, k + Bg), 0); // [B_g, Cout, T, H, W]
      k += Bg;
      const l = diffusion.trainingLoss(() => y, p.x0, { cond: p.cond, t: p.t, noise: p.noise, conditionFrames: p.conditionFrames }).loss.mul(Bg / batch.length);
      total = total ? total.add(l) : l;
    }
    total!.backward();
    return { loss: total!.item(), tokens: order.reduce((a, i) => a + tokensOf(dit, batch[i].latent.shape), 0) };
  } finally {
    for (const x of xts) x.dispose();
  }
}

function sliceCondition(c: DiTCondition, a: number, b: number): DiTCondition {
  if (c && typeof c === 'object' && 'prompts' in c) return { prompts: c.prompts.slice(a, b) };
  if (c && typeof c === 'object' && 'labels' in c && Array.isArray(c.labels)) return { labels: c.labels.slice(a, b) };
  return c;
}

/**
 * Trains a DiT on a latent dataset. Async: it yields to the event loop after every step,
 * so timers and signal handlers (Ctrl-C -> AbortController) run during training.
 */
export async function trainDiT(o: TrainDiTOptions): Promise<TrainDiTResult> {
  const op = 'trainDiT';
  if (!(o.dit instanceof DiT)) throw new TypeError(`${op}: expected dit to be a DiT`);
  if (!(o.diffusion instanceof GaussianDiffusion || o.diffusion instanceof RectifiedFlow))
    throw new TypeError(`${op}: expected diffusion to be a GaussianDiffusion or RectifiedFlow`);
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
  const lr = o.lr ?? 3e-4;
  const warm = o.warmup ?? Math.min(500, Math.floor(o.steps / 10));
  const schedule = warmupCosine(warm, o.steps, { minFactor: 0.1 });
  if (o.progress !== undefined && typeof o.progress !== 'function') throw new TypeError(`${op}: expected progress to be a function returning 0..1, got ${typeof o.progress}`);
  const lrScale = (step: number): number => {
    if (!o.progress || step < warm) return schedule(step);
    const p = o.progress();
    if (!Number.isFinite(p)) throw new RangeError(`${op}: progress() returned ${p}; expected a number in [0, 1]`);
    return 0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, Math.max(0, p))));
  };
  const opt = new AdamW(dit.parameters(), { lr, weightDecay: o.weightDecay ?? 0 });
  const ema = o.ema === null ? null : new EMA(dit, o.ema ?? 0.999);
  const every = o.checkpointEvery ?? 500;

  // Index the data by grid once (bucketing).
  const byGrid = new Map<string, number[]>();
  for (let i = 0; i < o.data.length; i++) {
    tidy(() => {
      const s = o.data.get(i);
      const k = gridKey(s.latent);
      if (s.latent.rank !== 4) throw new Error(`${op}: sample ${i}: expected a latent [C, T, H, W], got [${s.latent.shape.join(', ')}]`);
      if (!byGrid.has(k)) byGrid.set(k, []);
      byGrid.get(k)!.push(i);
    });
  }
  const keys = [...byGrid.keys()];
  const bt = o.batchTokens;
  const batchOf = bt === undefined ? o.batchSize : (key: string): number => Math.max(1, Math.floor(bt / tokensOf(dit, key.split('x').map(Number))));

  let start = 0;
  let lastGood: string | null = null;
  if (o.checkpointDir && fs.existsSync(path.join(o.checkpointDir, 'latest'))) {
    const r = restoreCheckpoint(o.checkpointDir, { model: dit, optimizer: opt, ema: ema ?? undefined });
    start = r.step;
    lastGood = r.path;
  } else if (o.seed !== undefined) {
    manualSeed(o.seed);
  }
  const log = o.checkpointDir ? path.join(o.checkpointDir, 'log.jsonl') : null;
  if (log) fs.mkdirSync(o.checkpointDir!, { recursive: true });
  const save = (step: number): string =>
    saveCheckpoint(o.checkpointDir!, { model: dit, optimizer: opt, ema: ema ?? undefined, step, config: { dit: dit.config } });

  let lastLoss = NaN;
  let step = start;
  let stopped: TrainDiTResult['stopped'] = 'done';
  dit.train();
  const model = (xt: Tensor, t: Tensor, cond: DiTCondition): Tensor => dit.forward(xt, t, cond);
  while (step < o.steps) {
    if (o.signal?.aborted) {
      stopped = 'aborted';
      break;
    }
    const t0 = Date.now();
    const rng = new DataRng(o.seed ?? 0, 7, step);
    const scale = lrScale(step);
    opt.setLRScale(scale);
    let tokens = 0, samples = o.batchSize;
    const loss = tidy(() => {
      if (pack) {
        const r = packedTrainingStep(dit, o.diffusion, Array.from({ length: o.batchSize }, () => o.data.get(rng.int(o.data.length))), cfgDropout, condProb, rng);
        tokens = r.tokens;
        return r.loss;
      }
      const batch = drawBatch(o.data, batchOf, rng, byGrid, keys);
      const B = (samples = batch.length);
      const x0 = stack(batch.map((s) => s.latent)); // [B, C, T, H, W]
      tokens = B * tokensOf(dit, x0.shape.slice(1));
      const T = x0.shape[2];
      const cond = condition(dit, batch, cfgDropout, rng);
      const conditionFrames = condProb > 0 && T > 1 ? randomConditionFrames(B, T, { prob: condProb }) : undefined;
      const l = o.diffusion.trainingLoss(model, x0, { cond, conditionFrames }).loss;
      l.backward();
      return l.item();
    });
    if (!Number.isFinite(loss)) {
      opt.zeroGrad();
      stopped = 'nan';
      const where = lastGood ? `; the last good checkpoint is ${lastGood}` : '';
      process.stderr.write(`trainDiT: the loss became ${loss} at step ${step + 1}; stopping${where}\n`);
      break;
    }
    const gradNorm = clipGradNorm(dit, o.maxGradNorm ?? 1);
    opt.step();
    opt.zeroGrad();
    ema?.update();
    step++;
    lastLoss = loss;
    const seconds = (Date.now() - t0) / 1000;
    const info: TrainDiTStep = { step, loss, gradNorm, lr: lr * scale, tokensPerSecond: tokens / Math.max(seconds, 1e-6), seconds, samples, tokens };
    if (log) fs.appendFileSync(log, JSON.stringify(info) + '\n');
    o.onStep?.(info);
    if (o.checkpointDir && (step % every === 0 || step === o.steps)) lastGood = save(step);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  if (stopped === 'aborted' && o.checkpointDir) lastGood = save(step);
  dit.eval();
  return { steps: step, stopped, lastLoss, ema, checkpoint: lastGood };
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
  sampler?: 'ddpm' | 'ddim' | 'dpm++2m' | 'euler';
  cfgScale?: number;
  seed?: number;
  /** Sample with these EMA weights (the model's own are restored afterwards). */
  ema?: EMA | null;
  /** Given latent frames (scaled like the training latents) kept clean: image-to-video, extension. */
  conditionFrames?: ConditionFrames;
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
  const model = (xt: Tensor, t: Tensor, c: DiTCondition): Tensor => dit.forward(xt, t, c);
  const run = (): Tensor =>
    noGrad(() => {
      const common = { shape, cond, uncond, cfgScale: o.cfgScale ?? 1, steps: o.steps ?? 50, seed: o.seed, conditionFrames: o.conditionFrames };
      const latents =
        o.diffusion instanceof RectifiedFlow
          ? o.diffusion.sample(model, { ...common, sampler: 'euler' })
          : o.diffusion.sample(model, { ...common, sampler: (o.sampler as 'ddpm' | 'ddim' | 'dpm++2m') ?? 'ddim' });
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
