// The VideoVAE training loop and its evaluation.
//   loss = L1(recon, x) + mseWeight * MSE(recon, x) + klWeight * KL / (C*T*H*W)
// with x the batch in [-1, 1] and KL the posterior's KL per sample (summed over
// latent elements): dividing by the elements of one input sample makes klWeight mean
// what LDM's kl_weight means (LDM sums its reconstruction loss over the pixels).
// AdamW, linear warmup then constant or cosine lr, global-norm gradient clipping,
// optional EMA, a JSONL log, and crash-safe checkpoints with exact resume: batches and
// crops are a pure function of (seed, step), and the tensor RNG (posterior samples) is
// saved with each checkpoint. On several ranks (ts.distributed; the `distributed`
// option) batchSize is the global batch: each rank runs its slice and DDP averages the
// gradients, as train/distributed.ts describes.
import * as fs from 'fs';
import * as path from 'path';
import { noGrad } from '../autograd/node';
import { getRngState, randn, setRngState, tensor } from '../creation';
import { checkDataset, getChecked, VideoDataset } from '../data/dataset';
import { DataRng } from '../data/rng';
import { mseValues, psnrValues, ssimValues } from '../eval/metrics';
import { fromModelRange, VideoVAE } from '../models/vae';
import { l1Loss, mseLoss } from '../ops/functional';
import { AdamW } from '../optim/adamw';
import { clipGradNorm } from '../optim/clip';
import { EMA } from '../optim/ema';
import { linearWarmup, Schedule, warmupCosine } from '../optim/schedule';
import { Device, keep, Tensor, tidy, typeName } from '../tensor';
import { cat, stack } from '../ops/basic';
import { device as checkDevice, finiteNumber, posInt } from '../checks';
import { Precision, resolvePrecision, withPrecision } from './precision';
import {
  CheckpointMismatchError, checkpointInfo, checkpointInterval, configDifferences, latestCheckpoint, removeOtherCheckpoints, restoreCheckpoint, saveCheckpoint,
} from './checkpoint';
import { writeAll, writeFileAtomic } from '../io/atomic';
import { dataParallel, DistributedOption } from './distributed';
import { allReduceNumbers } from '../distributed/objects';

export interface VAECrop {
  /** Frames per crop: 1 + k * temporalCompression (default: the whole clip). */
  frames?: number;
  /** Crop height and width (multiples of spatialCompression; default the whole frame). */
  size?: number | [number, number];
}

export interface VAEStepInfo {
  step: number;
  /** The step the loss terms and gradient norm are from (the last logged step: logEvery). */
  loggedStep: number;
  loss: number;
  l1: number;
  mse: number;
  kl: number;
  lr: number;
  gradNorm: number;
  /** Samples of the global batch (all ranks) per second. */
  samplesPerSec: number;
  /** Seconds since this call started. */
  elapsed: number;
  /**
   * Milliseconds this step spent communicating: waiting for DDP's gradient all-reduce at
   * the end of backward, plus the step's control and logging collectives (0 on one rank).
   */
  commMs: number;
}

export interface TrainVAEOptions {
  model: VideoVAE;
  data: VideoDataset;
  /** Total optimizer steps (a resumed run continues up to this). */
  steps: number;
  batchSize?: number; // default 4
  lr?: number; // default 1e-3
  /** Linear warmup steps (default 100, or steps / 10 when shorter). */
  warmup?: number;
  /** After warmup: 'cosine' down to 0.1x at `steps` (default) or 'constant'. */
  schedule?: 'cosine' | 'constant';
  /** Weight of the KL term in LDM units (see the header); default 1e-6. */
  klWeight?: number;
  /** Weight of an extra MSE term (default 0). */
  mseWeight?: number;
  weightDecay?: number; // default 0
  /** Clip the global gradient norm to this (default 1). */
  maxGradNorm?: number;
  /** EMA decay of the weights (e.g. 0.999), or an EMA of this model; none by default. */
  ema?: number | EMA;
  /** Random crops of each clip in time and space (training only). */
  crop?: VAECrop;
  /** Seed of the batch order and crops (default 0). */
  seed?: number;
  /** Where checkpoints and log.jsonl go; a checkpoint there is resumed (unless resume is false). */
  checkpointDir?: string;
  checkpointEvery?: number; // default 500
  /**
   * Minutes between checkpoints besides checkpointEvery (default 2; Infinity: by steps
   * only): a kill loses at most this much training however slow the steps are.
   */
  checkpointMinutes?: number;
  /** Checkpoints to keep (default 2). */
  keepCheckpoints?: number;
  /**
   * false: start over even when checkpointDir holds a checkpoint. The checkpoints there
   * (and log.jsonl) are kept until this run's first checkpoint is written, then removed:
   * a run killed before that leaves the previous one as it was. Default: resume.
   */
  resume?: boolean;
  /** Called on rank 0 after each checkpoint is written (its step directory and step). */
  onCheckpoint?: (checkpoint: string, step: number) => void;
  /** JSON the caller keeps with each checkpoint (config.meta of checkpoint.json), read at every save. */
  checkpointMeta?: () => unknown;
  /**
   * On a fresh start, set the decoder's output bias to the per-channel mean of the first
   * batch, so training starts from the mean frame rather than mid-gray (default true).
   */
  initOutputBias?: boolean;
  onStep?: (info: VAEStepInfo) => void;
  /** Aborting stops training after the current step, saving a checkpoint first. */
  signal?: AbortSignal;
  /** The device to train on (default: the model's); the model is moved there. */
  device?: Device;
  /** 'bf16' (default on CUDA: autocast conv/matmul/attention, float32 master weights) or 'fp32' (default elsewhere). */
  precision?: Precision;
  /**
   * Steps between reads of the loss terms and gradient norm (default 1): the only values a
   * step reads back from its device. A NaN is noticed at these steps.
   */
  logEvery?: number;
  /**
   * Data-parallel training over the ranks of ts.distributed (train/distributed.ts): 'auto'
   * (default: on when it is initialized with several ranks), true, false, or DDP options.
   * batchSize is then the global batch, split over the ranks; only rank 0 writes the log
   * and checkpoints (checkpointDir on a filesystem all ranks share).
   */
  distributed?: DistributedOption;
}

/**
 * trainVAE stopped because the loss or the gradient norm became NaN or infinite: nothing
 * was updated or saved at that step. `checkpoint`: the last good one, if any.
 */
export class NonFiniteLossError extends Error {
  constructor(message: string, readonly step: number, readonly checkpoint: string | null, readonly what: string) {
    super(message);
  }
}

export interface TrainVAEResult {
  /** Steps done in total (including resumed ones). */
  step: number;
  stopReason: 'completed' | 'aborted';
  /** The step the run resumed from (0 for a fresh run). */
  resumedFrom: number;
  last: VAEStepInfo | null;
  ema: EMA | null;
  /** The last checkpoint written (step directory), if any (rank 0; null on the other ranks). */
  checkpoint: string | null;
}


interface CropPlan {
  frames: number;
  h: number;
  w: number;
}

function cropPlan(model: VideoVAE, data: VideoDataset, crop: VAECrop | undefined): CropPlan {
  const [, T, H, W] = data.shape;
  const { temporalCompression: ft, spatialCompression: fs } = model.config;
  const frames = crop?.frames ?? T;
  const size = crop?.size ?? [H, W];
  const [h, w] = typeof size === 'number' ? [size, size] : size;
  if (!Number.isInteger(frames) || frames < 1 || frames > T || (frames - 1) % ft)
    throw new RangeError(
      `trainVAE: expected crop frames to be 1 + k*${ft} and at most the clip's ${T} frames (${model.allowedFrames(T).join(', ')}), got ${String(frames)}`,
    );
  for (const [v, n, full] of [[h, 'height', H], [w, 'width', W]] as const)
    if (!Number.isInteger(v) || v < fs || v % fs || v > full)
      throw new RangeError(`trainVAE: expected the crop ${n} to be a multiple of ${fs} and at most ${full}, got ${String(v)}`);
  return { frames, h, w };
}

/** The samples and crop offsets of the batch of `step` (all B rows): a pure function of (seed, step). */
function batchDraws(data: VideoDataset, B: number, cp: CropPlan, seed: number, step: number): { i: number; t0: number; y0: number; x0: number }[] {
  const [, T, H, W] = data.shape;
  const rng = new DataRng(seed, step);
  return Array.from({ length: B }, () => ({ i: rng.int(data.length), t0: rng.int(T - cp.frames + 1), y0: rng.int(H - cp.h + 1), x0: rng.int(W - cp.w + 1) }));
}

/** Steps after the current one whose samples a dataset with prefetch() hears of. */
const PREFETCH_STEPS = 2;

/**
 * Samples [a, b) of the batch of `step` on the host: indices and crop offsets are drawn
 * for all B samples from (seed, step), only [a, b) are loaded; values mapped to [-1, 1].
 */
function makeBatchHost(data: VideoDataset, B: number, cp: CropPlan, seed: number, step: number, a = 0, b = B): Float32Array {
  const [C, T, H, W] = data.shape;
  const out = new Float32Array((b - a) * C * cp.frames * cp.h * cp.w);
  let o = 0;
  for (const { i, t0, y0, x0 } of batchDraws(data, B, cp, seed, step).slice(a, b)) {
    const v = getChecked(data, i, 'trainVAE').video;
    for (let c = 0; c < C; c++)
      for (let t = 0; t < cp.frames; t++)
        for (let y = 0; y < cp.h; y++) {
          const src = ((c * T + t0 + t) * H + y0 + y) * W + x0;
          for (let x = 0; x < cp.w; x++) out[o++] = v[src + x] * 2 - 1;
        }
  }
  return out;
}

/** Samples [a, b) of the batch of `step` as a tensor [b - a, C, T, H, W] on `device`. */
function makeBatch(data: VideoDataset, B: number, cp: CropPlan, seed: number, step: number, device: Device, a: number, b: number): Tensor {
  return tensor(makeBatchHost(data, B, cp, seed, step, a, b), { shape: [b - a, data.shape[0], cp.frames, cp.h, cp.w], device });
}

/** Sets the decoder's output bias to the per-channel mean of a host batch v [B, C, ...]. */
function initOutputBias(model: VideoVAE, v: Float32Array, B: number, C: number): void {
  const per = v.length / (B * C);
  const means = new Float32Array(C);
  for (let i = 0; i < v.length; i++) means[Math.floor(i / per) % C] += v[i];
  for (let c = 0; c < C; c++) means[c] /= per * B;
  const bias = model.decoder.convOut.bias;
  if (bias) tidy(() => bias.copy_(tensor(means, { device: bias.device })));
}

/** Whether every weight is finite: one read of the largest magnitude. */
function allFinite(model: VideoVAE): boolean {
  return noGrad(() => tidy(() => Number.isFinite(stack(model.parameters().map((p) => p.abs().max())).max().item())));
}

/**
 * Trains a VideoVAE; see TrainVAEOptions. Each step runs synchronously; between steps
 * the loop yields to the event loop, so timers, signal handlers and AbortSignal.timeout
 * can stop it. Rejects (keeping the last good checkpoint) if the loss turns NaN.
 */
export async function trainVAE(opts: TrainVAEOptions): Promise<TrainVAEResult> {
  if (opts === null || typeof opts !== 'object') throw new TypeError(`trainVAE: expected an options object, got ${typeName(opts)}`);
  const model = opts.model;
  if (!(model instanceof VideoVAE)) throw new TypeError(`trainVAE: expected model to be a VideoVAE, got ${typeName(model)}`);
  const data = checkDataset(opts.data, 'trainVAE');
  if (data.shape[0] !== model.config.inChannels)
    throw new Error(`trainVAE: the dataset has ${data.shape[0]} channels but the model expects ${model.config.inChannels}`);
  const steps = posInt('trainVAE', 'steps', opts.steps);
  const B = posInt('trainVAE', 'batchSize', opts.batchSize ?? 4);
  const lr = finiteNumber('trainVAE', 'lr', opts.lr ?? 1e-3, 0);
  const warmup = posInt('trainVAE', 'warmup', opts.warmup ?? Math.min(100, Math.ceil(steps / 10)), 0);
  const klWeight = finiteNumber('trainVAE', 'klWeight', opts.klWeight ?? 1e-6, 0);
  const mseWeight = finiteNumber('trainVAE', 'mseWeight', opts.mseWeight ?? 0, 0);
  const maxGradNorm = finiteNumber('trainVAE', 'maxGradNorm', opts.maxGradNorm ?? 1, 0);
  const seed = posInt('trainVAE', 'seed', opts.seed ?? 0, 0);
  const every = posInt('trainVAE', 'checkpointEvery', opts.checkpointEvery ?? 500);
  const everyMs = checkpointInterval('trainVAE', opts.checkpointMinutes);
  const keepN = posInt('trainVAE', 'keepCheckpoints', opts.keepCheckpoints ?? 2);
  const scheduleKind = opts.schedule ?? 'cosine';
  if (scheduleKind !== 'cosine' && scheduleKind !== 'constant')
    throw new TypeError(`trainVAE: expected schedule 'cosine' or 'constant', got ${String(scheduleKind)}`);
  const device = opts.device === undefined ? model.device : checkDevice('trainVAE', 'device', opts.device);
  const precision = resolvePrecision('trainVAE', device, opts.precision);
  const logEvery = posInt('trainVAE', 'logEvery', opts.logEvery ?? 1);
  if (model.device !== device) model.to(device);
  const cp = cropPlan(model, data, opts.crop);
  model.checkShape([B, ...data.shape.slice(0, 1), cp.frames, cp.h, cp.w], 'train');
  const schedule: Schedule =
    scheduleKind === 'cosine' && warmup < steps ? warmupCosine(warmup, steps, { minFactor: 0.1 }) : linearWarmup(warmup);

  const optimizer = new AdamW(model, { lr, weightDecay: finiteNumber('trainVAE', 'weightDecay', opts.weightDecay ?? 0, 0), betas: [0.9, 0.99] });
  const dp = dataParallel('trainVAE', opts.distributed);
  if (dp.world > B) throw new RangeError(`trainVAE: batchSize ${B} is the global batch and cannot be split over ${dp.world} ranks; use batchSize >= ${dp.world}`);
  const dir = opts.checkpointDir ? path.resolve(opts.checkpointDir) : null;
  const logFile = dir && dp.isMain ? path.join(dir, 'log.jsonl') : null;
  const config = { vae: model.config, train: { steps, batchSize: B, lr, warmup, klWeight, mseWeight, seed, crop: cp, schedule: scheduleKind } };

  // Rank 0 says whether and from where to resume; every rank reads that checkpoint.
  const found = dir && opts.resume !== false ? dp.fromRank0(() => {
    const info = checkpointInfo(dir);
    if (!info) return null;
    // The same model and training settings (the steps may grow: a rerun extends a run).
    const pick = (c: typeof config | null) => c && { vae: c.vae, train: { ...c.train, steps: undefined, warmup: undefined } };
    const diff = configDifferences(pick(info.config as typeof config | null), pick(config));
    return { path: info.path, mismatch: diff.length ? diff : null };
  }) : null;
  if (found?.mismatch) throw new CheckpointMismatchError('trainVAE', found.path, found.mismatch); // (resume: false starts over)
  const resumeFrom = found?.path ?? null;
  const resuming = resumeFrom !== null;
  // Starting over beside an earlier run (resume: false): its checkpoints and log stay until this run's first checkpoint.
  const replacing = !!dir && opts.resume === false && dp.isMain && latestCheckpoint(dir) !== null;
  if (!resuming && opts.initOutputBias !== false && dp.isMain) initOutputBias(model, makeBatchHost(data, B, cp, seed, 0), B, data.shape[0]);
  try {
    dp.wrap(model); // rank 0's weights everywhere, before the EMA copies them
    // The EMA starts from the weights training starts from (a given EMA is reset to them).
    let ema: EMA | null = null;
    if (opts.ema instanceof EMA) {
      ema = opts.ema;
      if (!resuming) ema.loadStateDict({ decay: ema.decay, numUpdates: 0, shadow: model.stateDict() });
    } else if (opts.ema !== undefined) ema = new EMA(model, opts.ema);
    let step = 0;
    if (resuming) step = restoreCheckpoint(resumeFrom, { model, optimizer, ema: ema ?? undefined }).step;
    if (dp.active) setRngState(dp.fromRank0(() => getRngState())); // one shared stream (see train/distributed.ts)
    const resumedFrom = step;
    if (logFile) fs.mkdirSync(dir!, { recursive: true });
    let pendingLog: string[] | null = replacing ? [] : null; // this run's log lines while the previous run's log stays
    const log = (rec: Record<string, unknown>): void => {
      if (!logFile) return;
      if (pendingLog) pendingLog.push(`${JSON.stringify(rec)}\n`);
      else fs.appendFileSync(logFile, `${JSON.stringify(rec)}\n`);
    };
    let checkpoint: string | null = null;
    let savedStep = step; // nothing to save before a step is trained
    let savedAt = Date.now();
    const save = (): void => {
      if (!dir || !dp.isMain || step === savedStep) return;
      if (!allFinite(model)) throw new Error(`trainVAE: the weights hold NaN/Inf at step ${step}; not saving over the last good checkpoint`);
      const meta = opts.checkpointMeta?.();
      checkpoint = saveCheckpoint(dir, { model, optimizer, ema: ema ?? undefined, step, config: meta === undefined ? config : { ...config, meta } }, { keep: keepN });
      savedStep = step;
      savedAt = Date.now();
      opts.onCheckpoint?.(checkpoint, step);
      if (pendingLog) {
        // This run's first checkpoint is the latest now: the previous run goes.
        removeOtherCheckpoints(dir);
        if (logFile) writeFileAtomic(logFile, (fd) => writeAll(fd, Buffer.from(pendingLog!.join(''), 'utf8')));
        pendingLog = null;
      }
    };

    const start = process.hrtime.bigint();
    const perSample = data.shape[0] * cp.frames * cp.h * cp.w;
    const [a, b] = dp.part(B);
    const w = dp.lossWeight(b - a, B);
    const latent = model.latentShape([B, data.shape[0], cp.frames, cp.h, cp.w]); // [B, Z, T', H', W']
    let last: VAEStepInfo | null = null;
    let loss = NaN, l1 = NaN, mse = NaN, kl = NaN, gradNorm = NaN, loggedStep = 0;
    let stopReason: TrainVAEResult['stopReason'] = 'completed';
    model.train();
    while (step < steps) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (dp.control(!!opts.signal?.aborted).stop) {
        stopReason = 'aborted'; // every rank at the same step
        break;
      }
      const t0 = process.hrtime.bigint();
      // A streaming dataset decodes this rank's samples of this step and the next ones meanwhile.
      if (typeof data.prefetch === 'function')
        data.prefetch(Array.from({ length: Math.min(PREFETCH_STEPS + 1, steps - step) }, (_, k) => batchDraws(data, B, cp, seed, step + k).slice(a, b).map((d) => d.i)).flat());
      const scale = schedule(step);
      optimizer.setLRScale(scale);
      // The loss terms and gradient norm stay on the device; read together (one read) when logged.
      const stats = tidy(() => {
        const terms = withPrecision(precision, () => {
          dp.prepareForBackward();
          const x = makeBatch(data, B, cp, seed, step, device, a, b); // [b, C, T, H, W] in [-1, 1]: this rank's rows of the batch
          // The posterior's noise, drawn for the whole batch (this rank's rows kept): model.forward with the batch's eps.
          const eps = randn(latent, { device });
          const { recon, posterior } = dp.perRank(() => {
            const posterior = model.encode(x); // [b, Z, T', H', W']
            const z = posterior.mean.add(posterior.logvar.mul(0.5).exp().mul(b - a === B ? eps : eps.slice(0, a, b).contiguous()));
            return { recon: model.decode(z), posterior }; // recon [b, C, T, H, W]
          });
          const rl1 = l1Loss(recon, x);
          const rmse = mseLoss(recon, x);
          const rkl = posterior.kl();
          let total = rl1.add(rkl.mul(klWeight / perSample));
          if (mseWeight > 0) total = total.add(rmse.mul(mseWeight));
          // This rank's share of the global batch's mean (1 with an even split).
          const terms = w === 1 ? [total, rl1, rmse, rkl] : [total, rl1, rmse, rkl].map((v) => v.mul(w));
          terms[0].backward();
          posterior.dispose();
          return terms.map((v) => v.detach().reshape([1]));
        });
        const gradNorm = clipGradNorm(model, maxGradNorm).reshape([1]); // on the device; leaves non-finite gradients alone
        return keep(cat([...terms, gradNorm], 0)); // [5]
      });
      const logged = (step + 1) % logEvery === 0 || step + 1 === steps;
      if (logged) {
        // The mean over the ranks: the global batch's terms; a NaN on any rank is a NaN on every rank.
        [loss, l1, mse, kl, gradNorm] = Array.from(dp.mean(stats).toFloat32Array()); // the step's one read
        loggedStep = step + 1;
      }
      stats.dispose();
      if (logged && (!Number.isFinite(loss) || !Number.isFinite(gradNorm))) {
        optimizer.zeroGrad();
        const what = !Number.isFinite(loss) ? `the loss became ${loss}` : `the gradient norm became ${gradNorm}`;
        log({ step: step + 1, event: 'nan', loss, l1, kl, gradNorm });
        const kept = checkpoint ?? resumeFrom ?? (dir && !replacing ? latestCheckpoint(dir) : null);
        throw new NonFiniteLossError(
          `trainVAE: ${what} at step ${step + 1}${dp.active ? ` (mean over ${dp.world} ranks)` : ''} (l1 ${l1}, kl ${kl}); stopped without updating or saving. ` +
            (kept
              ? `The last good checkpoint in ${dir} is kept; resume from it with a lower lr.`
              : dir ? 'No checkpoint was written yet.' : 'No checkpoint was written (set checkpointDir to keep one).'),
          step + 1, kept, what,
        );
      }
      optimizer.step();
      optimizer.zeroGrad();
      ema?.update();
      step++;
      const now = process.hrtime.bigint();
      const dt = Number(now - t0) / 1e9;
      last = {
        step, loggedStep, loss, l1, mse, kl, lr: lr * scale, gradNorm, samplesPerSec: B / dt, elapsed: Number(now - start) / 1e9, commMs: dp.takeCommMs(),
      };
      if (logged) log({ ...last });
      opts.onStep?.(last);
      if ((step % every === 0 || Date.now() - savedAt >= everyMs) && step < steps) save();
    }
    save();
    log({ step, event: stopReason });
    return { step, stopReason, resumedFrom, last, ema, checkpoint };
  } finally {
    dp.close();
  }
}

export interface EvaluateVAEOptions {
  /** Clips to evaluate: the first `samples` of the dataset (default 16, at most its length). */
  samples?: number;
  batchSize?: number; // default 4
  /** Decode the posterior mean (default) or a sample. */
  sample?: boolean;
  /**
   * Over the ranks of ts.distributed ('auto': when it is initialized with several ranks):
   * batch k runs on rank k mod N and the sums are all-reduced, so every rank returns
   * the numbers of all the clips.
   */
  distributed?: DistributedOption;
}

/** Reconstruction quality on whole clips in [0, 1]: mean PSNR (dB), SSIM and MSE over the clips. */
export function evaluateVAE(model: VideoVAE, data: VideoDataset, opts: EvaluateVAEOptions = {}): { psnr: number; ssim: number; mse: number; samples: number } {
  if (!(model instanceof VideoVAE)) throw new TypeError(`evaluateVAE: expected a VideoVAE, got ${typeName(model)}`);
  checkDataset(data, 'evaluateVAE');
  const n = Math.min(opts.samples ?? 16, data.length);
  const B = opts.batchSize ?? 4;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`evaluateVAE: expected samples >= 1, got ${String(opts.samples)}`);
  const [C, T, H, W] = data.shape;
  const per = C * T * H * W;
  const acc = { psnr: 0, ssim: 0, mse: 0 };
  const dp = dataParallel('evaluateVAE', opts.distributed);
  const wasTraining = model.training;
  model.eval();
  try {
    for (let i = 0; i < n; i += B) {
      if ((i / B) % dp.world !== dp.rank) continue; // another rank's batch
      const b = Math.min(B, n - i);
      const x01 = new Float32Array(b * per);
      for (let k = 0; k < b; k++) x01.set(getChecked(data, i + k, 'evaluateVAE').video, k * per);
      tidy(() =>
        noGrad(() => {
          const x = tensor(x01, { shape: [b, C, T, H, W], device: model.device });
          const post = model.encode(x.mul(2).sub(1));
          const recon = fromModelRange(model.decode(opts.sample ? post.sample() : post.mode())); // [b, C, T, H, W] in [0, 1]
          post.dispose();
          for (const v of psnrValues(recon, x)) acc.psnr += v;
          for (const v of ssimValues(recon, x)) acc.ssim += v;
          for (const v of mseValues(recon, x)) acc.mse += v;
        }),
      );
    }
  } finally {
    model.train(wasTraining);
  }
  if (dp.active) [acc.psnr, acc.ssim, acc.mse] = allReduceNumbers([acc.psnr, acc.ssim, acc.mse], 'sum');
  return { psnr: acc.psnr / n, ssim: acc.ssim / n, mse: acc.mse / n, samples: n };
}
