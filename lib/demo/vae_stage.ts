// The demo's VAE stage: trains a VideoVAE on Moving MNIST for a time budget, then
// reports held-out PSNR/SSIM beside the all-black baseline. Layout of `dir`:
//   plan.json         the planned steps, the seconds per step and the budget (each checkpoint keeps them
//                     too, with the training seconds so far: a rerun keeps the plan, or moves it with
//                     a changed budget; a finished run is extended by a larger one)
//   checkpoint/       trainVAE's checkpoints (model, optimizer, EMA; resumable) and log.jsonl
//   vae.safetensors   the final weights (EMA or raw, whichever evaluates better), VideoVAE.load
//   recon.gif         4 held-out clips in a row, their reconstructions below
//   metrics.json      numbers, settings and timings; written last: the stage is complete with it
// The steps the budget allows come from the timing of a few steps of a throwaway copy;
// the lr follows warmup + cosine over them, and the budget also stops training outright.
// Training takes random windows of whole frames (per-frame GroupNorm then sees the same
// statistics as in evaluation; spatial crops would change them). The loss adds MSE to
// L1 with weight 1: on these mostly black frames L1 alone sits for hundreds of steps at
// "all black" (its per-pixel optimum is the median), while MSE pulls the digits out at
// once (8 held-out clips after 300 steps of batch 2 with channel multipliers [1, 2, 2]:
// 17.2 dB with L1 alone, 20.5 dB with L1 + MSE; the preset's [1, 2, 4] reached 21.1 dB,
// at 0.38 s/step against 0.33 s/step on 2 idle cores).
// On several ranks (ts.distributed, `distributed`), training and evaluation run on all
// of them; rank 0 reads and writes the files and sends what it decided (the plan, the
// metrics) to the others.
import * as fs from 'fs';
import * as path from 'path';
import { manualSeed, tensor, zerosLike } from '../creation';
import { movingMnistDataset, VideoDataset } from '../data/dataset';
import { MovingMNIST } from '../data/moving_mnist';
import { psnr, ssim } from '../eval/metrics';
import { writeJsonAtomic } from '../io/atomic';
import { saveVideo } from '../io/video';
import { fromModelRange, toModelRange, VideoVAE, VideoVAEConfig, vaePresets } from '../models/vae';
import { cat, stack } from '../ops/basic';
import { noGrad } from '../autograd/node';
import { getNumThreads } from '../runtime';
import { Device, keep, Tensor, tidy } from '../tensor';
import { device as checkDevice } from '../checks';
import type { Precision } from '../train/precision';
import { dataParallel, DistributedOption } from '../train/distributed';
import { evaluateVAE, trainVAE, VAEStepInfo } from '../train/vae';
import {
  checkpointInfo, ConfigDifference, configDifferences, describeDifferences, latestCheckpoint, restoreCheckpoint,
} from '../train/checkpoint';
import { posInt } from '../checks';
import { EMA } from '../optim/ema';

export interface DemoVAESettings {
  vae: VideoVAEConfig;
  /** Moving MNIST clips: frames x size x size, one digit. */
  frames: number;
  size: number;
  /** Training clips (drawn from MNIST's train split) and held-out ones (test split). */
  trainClips: number;
  evalClips: number;
  batchSize: number;
  lr: number;
  klWeight: number;
  mseWeight: number;
  /** Training windows: frames (1 + k * temporal compression) x size x size. */
  crop: { frames: number; size: number };
  ema: number;
  checkpointEvery: number;
}

/** full: the demo preset as trained for docs/vae-demo-metrics.json; quick: a smoke run in seconds. */
export const demoVAESettings: { full: DemoVAESettings; quick: DemoVAESettings } = {
  full: {
    vae: vaePresets.demo, frames: 17, size: 64, trainClips: 10000, evalClips: 64, batchSize: 2, lr: 2e-3, klWeight: 1e-6,
    mseWeight: 1, crop: { frames: 9, size: 64 }, ema: 0.998, checkpointEvery: 500,
  },
  quick: {
    vae: {
      inChannels: 1, latentChannels: 4, baseChannels: 8, channelMultipliers: [1, 1, 2], numResBlocks: 1, decoderResBlocks: 1,
      temporalCompression: 4, spatialCompression: 4, numGroups: 4,
    },
    frames: 17, size: 64, trainClips: 256, evalClips: 8, batchSize: 2, lr: 3e-3, klWeight: 1e-6, mseWeight: 1,
    crop: { frames: 5, size: 64 }, ema: 0.9, checkpointEvery: 10,
  },
};

export interface TrainDemoVAEOptions {
  dir: string;
  /** Default demoVAESettings.full. */
  settings?: DemoVAESettings;
  /**
   * The run's time budget in minutes (the probe included; evaluation comes on top),
   * counting the earlier runs in dir: a rerun with the same budget resumes (or finds the
   * run finished), a larger one extends it. Exclusive with steps.
   */
  minutes?: number;
  /**
   * Train exactly this many steps in all (no timing probe, no deadline, the lr schedule
   * over these steps): a seed and a step count give the same model. Exclusive with minutes.
   */
  steps?: number;
  seed?: number; // default 0
  /**
   * 'plan' (default): a checkpoint under dir is resumed up to the planned steps (a plan
   * moved by a changed budget); 'extend': a checkpoint is continued for another budget of
   * minutes; false: start over (the previous run's checkpoints and files stay until this
   * run's first checkpoint is written).
   */
  resume?: 'plan' | 'extend' | false;
  /** Minutes between checkpoints besides settings.checkpointEvery (default 2). */
  checkpointMinutes?: number;
  /** Aborting stops after the current step, saving a checkpoint (no evaluation then). */
  signal?: AbortSignal;
  onStep?: (info: VAEStepInfo & { plannedSteps: number }) => void;
  /** Status lines (default: none). */
  log?: (line: string) => void;
  /** The device to train and evaluate on (default 'cpu'). */
  device?: Device;
  /** Compute precision (default: bf16 on CUDA, fp32 elsewhere). */
  precision?: Precision;
  /** Data-parallel over the ranks of ts.distributed (default 'auto'; see train/distributed.ts); settings.batchSize is the global batch. */
  distributed?: DistributedOption;
}

export interface DemoVAEMetrics {
  psnr: number;
  ssim: number;
  mse: number;
  weights: 'ema' | 'raw';
  raw: { psnr: number; ssim: number };
  ema: { psnr: number; ssim: number };
  blackBaseline: { psnr: number; ssim: number };
  heldOutClips: number;
  steps: number;
  trainSeconds: number;
  secondsPerStep: number;
  resumedFrom: number;
  stopReason: 'completed' | 'aborted';
  /** The time budget (null: trained by steps). */
  minutes: number | null;
  threads: number;
  settings: Omit<DemoVAESettings, 'vae'> & { seed: number; plannedSteps: number };
  config: VideoVAEConfig;
  /** The step directory of the checkpoint these weights come from (a finished run is the one whose latest it is). */
  checkpoint?: string | null;
}

export interface DemoVAEResult {
  /** The trained model (the weights of vae.safetensors) or, when aborted, the last trained weights. */
  vae: VideoVAE;
  /** null when aborted. */
  metrics: DemoVAEMetrics | null;
  stopped: 'completed' | 'aborted';
  /** The last checkpoint written (step directory), if any. */
  checkpoint: string | null;
  /** dir already held a finished run that meets the request: nothing was trained. */
  upToDate: boolean;
}

/** The steps a run trains to in all; secondsPerStep (null until measured) and minutes (null: by steps) come with it. */
interface Plan {
  steps: number;
  secondsPerStep: number | null;
  minutes: number | null;
}

export const demoVAEFiles = (dir: string) => ({
  plan: path.join(dir, 'plan.json'),
  checkpoint: path.join(dir, 'checkpoint'),
  log: path.join(dir, 'checkpoint', 'log.jsonl'),
  weights: path.join(dir, 'vae.safetensors'),
  recon: path.join(dir, 'recon.gif'),
  metrics: path.join(dir, 'metrics.json'),
});

/** The held-out clips of the demo (test split, seed + 1). */
export function demoHeldOut(settings: DemoVAESettings, seed = 0): VideoDataset {
  const { frames, size, evalClips } = settings;
  return movingMnistDataset(new MovingMNIST({ split: 'test', length: evalClips, frames, size, numDigits: 1, seed: seed + 1 }));
}

function readJson<T>(file: string): T | null {
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as T) : null;
}

/** Seconds per step of `settings`, from steps 2-5 of a throwaway model (step 1 warms caches). */
async function probeSecondsPerStep(settings: DemoVAESettings, data: VideoDataset, device: Device, precision?: Precision, distributed?: DistributedOption): Promise<number> {
  const probe = new VideoVAE(settings.vae, { device });
  const at: number[] = [];
  try {
    const { batchSize, lr, crop, mseWeight } = settings;
    await trainVAE({ model: probe, data, steps: 6, batchSize, lr, crop, warmup: 1, mseWeight, precision, distributed, onStep: (i) => at.push(i.elapsed) });
  } finally {
    probe.dispose();
  }
  return (at[5] - at[1]) / 4;
}

/** Mean PSNR/SSIM of an all-black video against the held-out clips. */
function blackBaseline(heldOut: VideoDataset, device: Device): { psnr: number; ssim: number } {
  const n = heldOut.length;
  return tidy(() => {
    let p = 0, s = 0;
    for (let i = 0; i < n; i++) {
      const x = tensor(heldOut.get(i).video, { shape: [1, ...heldOut.shape], device });
      p += psnr(zerosLike(x), x);
      s += ssim(zerosLike(x), x);
    }
    return { psnr: p / n, ssim: s / n };
  });
}

/** The first n clips of a dataset as one batch [n, C, T, H, W] in [0, 1]. */
export function stackClips(data: VideoDataset, n: number, device: Device = 'cpu'): Tensor {
  return stack(Array.from({ length: n }, (_, i) => tensor(data.get(i).video, { shape: [...data.shape], device })));
}

/** Held-out clips 0-3 in a row, their reconstructions below (a GIF). */
export function writeReconGif(vae: VideoVAE, heldOut: VideoDataset, file: string): void {
  const n = Math.min(4, heldOut.length);
  tidy(() =>
    noGrad(() => {
      const x = stackClips(heldOut, n, vae.device); // [n, 1, T, H, W]
      const recon = fromModelRange(vae.decode(vae.encode(toModelRange(x)).mode())); // [n, 1, T, H, W]
      saveVideo(cat([x, recon], 0), file, { columns: n, fps: 8 });
    }),
  );
}

/**
 * The trained VAE of a stage directory: vae.safetensors when written, else the latest
 * checkpoint with the weights metrics.json chose (EMA or raw); in eval mode.
 */
export function loadDemoVAE(dir: string, opts: { device?: Device } = {}): VideoVAE {
  const files = demoVAEFiles(dir);
  if (fs.existsSync(files.weights)) return VideoVAE.load(files.weights, { device: opts.device }).eval();
  if (!fs.existsSync(files.metrics)) throw new Error(`loadDemoVAE: ${dir} holds neither vae.safetensors nor metrics.json of a finished VAE stage`);
  const m = JSON.parse(fs.readFileSync(files.metrics, 'utf8')) as { config: VideoVAEConfig; weights: 'ema' | 'raw' };
  const vae = new VideoVAE(m.config as Required<VideoVAEConfig>);
  const ema = new EMA(vae, 0.998);
  try {
    restoreCheckpoint(files.checkpoint, { model: vae, ema, restoreRng: false });
    if (m.weights === 'ema') ema.copyTo(vae);
  } finally {
    ema.dispose();
  }
  vae.eval();
  if (opts.device !== undefined && vae.device !== opts.device) vae.to(opts.device);
  return vae;
}

/** What kind of demo VAE a config is: 'quick', 'full' or 'custom' (neither preset). */
export function demoVAEKind(config: unknown): 'quick' | 'full' | 'custom' {
  for (const kind of ['quick', 'full'] as const) if (!configDifferences(config, demoVAESettings[kind].vae).length) return kind;
  return 'custom';
}

/**
 * A stage directory holds a checkpoint of another model or run than the one asked for:
 * its kind and the kind asked ('quick', 'full', 'custom'), and the settings that differ.
 */
export class RunMismatchError extends Error {
  constructor(
    readonly checkpointDir: string, readonly step: number, readonly savedKind: string, readonly wantedKind: string, readonly differences: ConfigDifference[],
    readonly what: 'VAE' | 'DiT' = 'VAE',
  ) {
    super(`${checkpointDir} holds a checkpoint of a ${savedKind} ${what} (step ${step}); these settings ask for a ${wantedKind} one: ${describeDifferences(differences)}`);
  }
}

/** What a stage keeps with each checkpoint: the plan it trains to and the training seconds of the whole run so far. */
interface RunMeta {
  plan: Plan;
  seconds: number;
}

/**
 * Trains the demo VAE in `dir` (see the file header); resumable. A rerun goes on from the
 * checkpoint in dir: to the same plan, or to a new one when the budget (minutes or steps)
 * changed; a finished run is extended by a larger budget and otherwise returned as it is
 * (upToDate). A checkpoint of another model or run is refused (RunMismatchError).
 */
export async function trainDemoVAE(o: TrainDemoVAEOptions): Promise<DemoVAEResult> {
  const op = 'trainDemoVAE';
  const settings = o.settings ?? demoVAESettings.full;
  const seed = o.seed ?? 0;
  const resume = o.resume ?? 'plan';
  const device = o.device === undefined ? 'cpu' : checkDevice(op, 'device', o.device);
  const dp = dataParallel(op, o.distributed);
  const log = (dp.isMain && o.log) || (() => {});
  const byTime = o.minutes !== undefined;
  if (byTime === (o.steps !== undefined)) throw new TypeError(`${op}: expected minutes or steps (one of them), got ${byTime ? 'both' : 'neither'}`);
  if (byTime && !(typeof o.minutes === 'number' && o.minutes > 0 && Number.isFinite(o.minutes))) throw new RangeError(`${op}: expected minutes > 0, got ${String(o.minutes)}`);
  if (!byTime) posInt(op, 'steps', o.steps);
  if (resume === 'extend' && !byTime) throw new TypeError(`${op}: resume 'extend' continues for another budget of minutes; with steps, a larger count extends the run`);
  const files = demoVAEFiles(o.dir);
  const { frames, size, trainClips, batchSize, lr, klWeight, mseWeight, crop } = settings;
  // What a resumed checkpoint must have been trained with (trainVAE's config).
  const wanted = { vae: settings.vae, train: { batchSize, lr, klWeight, mseWeight, seed, crop: { frames: crop.frames, h: crop.size, w: crop.size } } };

  // Rank 0 looks at the directory; every rank goes by what it saw.
  const seen = dp.fromRank0(() => {
    fs.mkdirSync(o.dir, { recursive: true });
    const previous = latestCheckpoint(files.checkpoint) !== null; // (resume false: kept until the new run's first checkpoint)
    const ck = resume === false ? null : checkpointInfo(files.checkpoint);
    if (!ck) return { done: 0, meta: null, complete: null, previous, mismatch: null };
    const saved = ck.config as { vae?: unknown; train?: unknown; meta?: RunMeta } | null;
    const differences = configDifferences({ vae: saved?.vae, train: saved?.train }, wanted);
    if (differences.length) return { done: ck.step, meta: null, complete: null, previous, mismatch: { differences, kind: demoVAEKind(saved?.vae) } };
    const metrics = readJson<DemoVAEMetrics>(files.metrics);
    const complete = metrics && fs.existsSync(files.weights) && (metrics.checkpoint ? metrics.checkpoint === path.basename(ck.path) : metrics.steps === ck.step) ? metrics : null;
    // Checkpoints before the plan was kept with them: plan.json.
    const legacy = readJson<Plan>(files.plan);
    const meta: RunMeta | null = saved?.meta ?? (legacy ? { plan: legacy, seconds: complete?.trainSeconds ?? 0 } : null);
    return { done: ck.step, meta, complete, previous, mismatch: null };
  });
  if (seen.mismatch) throw new RunMismatchError(files.checkpoint, seen.done, seen.mismatch.kind, demoVAEKind(settings.vae), seen.mismatch.differences);
  const done = seen.done;
  const meta = seen.meta;
  const prevSeconds = meta?.seconds ?? 0;
  const upToDate = (): DemoVAEResult => ({ vae: VideoVAE.load(files.weights, { device }), metrics: seen.complete, stopped: 'completed', checkpoint: null, upToDate: true });
  if (!byTime && done > o.steps!)
    throw new RangeError(`${op}: ${files.checkpoint} holds ${done} steps, more than the ${o.steps} asked (resume: false starts over)`);
  // A finished run is extended by a larger budget, else returned as it is. By time, the
  // minutes beyond its own: its budget's, or (trained by steps) the seconds it took.
  const more = byTime && meta ? o.minutes! - (meta.plan.minutes ?? prevSeconds / 60) : null;
  const trained = !!seen.complete && resume === 'plan' && (byTime ? more === null || more <= 0.05 * o.minutes! : o.steps === done);
  // (asked to evaluate another number of held-out clips: evaluated again, nothing trained)
  if (trained && seen.complete!.heldOutClips === settings.evalClips) return upToDate();

  manualSeed(seed);
  const model = new VideoVAE(settings.vae, { device });
  const train = movingMnistDataset(new MovingMNIST({ split: 'train', length: trainClips, frames, size, numDigits: 1, seed }));
  const heldOut = demoHeldOut(settings, seed);
  const threads = getNumThreads();
  log(`VAE: ${model.numParameters()} parameters; 1x${frames}x${size}x${size} -> ${model.latentShape([1, 1, frames, size, size]).slice(1).join('x')}`);
  log(`VAE: ${byTime ? `${o.minutes!.toFixed(1)} min` : `${o.steps} steps`} on ${threads} threads: batch ${batchSize} of ${crop.frames}x${crop.size}x${crop.size} windows, lr ${lr}, mse ${mseWeight}, kl ${klWeight}`);

  // The plan: the steps to train in all. By steps: those asked. By time: kept from the
  // run in dir (scaled by a changed budget at its pace), else from a timing probe.
  const t0 = Date.now();
  let plan: Plan;
  let budget: number | null = null; // seconds this call may train (by time)
  const sps = meta?.plan.secondsPerStep ?? null;
  if (trained) {
    plan = { steps: done, secondsPerStep: sps, minutes: meta?.plan.minutes ?? null };
    log(`VAE: the run is finished (${done} steps); evaluating ${settings.evalClips} held-out clips (it had ${seen.complete!.heldOutClips})`);
  } else if (!byTime) {
    plan = { steps: o.steps!, secondsPerStep: sps, minutes: null };
    if (done) log(`VAE: resuming at step ${done} of ${plan.steps}`);
  } else if (resume === 'plan' && meta && sps && more !== null) {
    const m = meta.plan.minutes;
    // Finished, or trained by steps: the minutes beyond it at its pace; else its plan, moved by a changed budget.
    const steps = seen.complete || m === null
      ? done + Math.max(0, Math.floor((0.95 * more * 60) / sps))
      : Math.max(done, meta.plan.steps + Math.round((0.95 * more * 60) / sps));
    plan = { steps, secondsPerStep: sps, minutes: o.minutes! };
    budget = Math.max(30, 1.1 * (steps - done) * sps);
    log(seen.complete
      ? `VAE: extending the finished run of ${m} min (${done} steps) to ${o.minutes} min: ${steps - done} more steps`
      : `VAE: resuming at step ${done} of the ${steps} planned${m !== null && m !== o.minutes ? ` (the budget went from ${m} to ${o.minutes} min)` : ''}`);
  } else {
    const perStep = await probeSecondsPerStep(settings, train, device, o.precision, o.distributed);
    // Rank 0's timing makes the plan of every rank.
    [budget, plan] = dp.fromRank0((): [number, Plan] => {
      const left = o.minutes! * 60 - (Date.now() - t0) / 1000;
      const minutes = resume === 'extend' ? (meta?.plan.minutes ?? 0) + o.minutes! : o.minutes!;
      return [left, { steps: done + Math.max(20, Math.floor((0.95 * left) / perStep)), secondsPerStep: perStep, minutes }];
    });
    log(`VAE: about ${perStep.toFixed(2)} s/step -> planning ${plan.steps - done} steps${done ? ` after the ${done} done` : ''}`);
  }
  const steps = plan.steps;
  // A run started over beside a previous one leaves that one's files until its first checkpoint.
  const replacing = resume === false && seen.previous;
  let replaced = !replacing;
  if (dp.isMain && !replacing) writeJsonAtomic(files.plan, plan);

  const started = Date.now();
  const deadline = budget === null ? Infinity : started + budget * 1000;
  const budgetSignal = budget === null ? null : AbortSignal.timeout(Math.round(Math.max(1, budget) * 1000));
  const signals = [o.signal, budgetSignal].filter((x): x is AbortSignal => !!x);
  let paceFrom: { step: number; at: number } | null = null;
  let measured: number | null = null; // seconds per step this call
  const result = await trainVAE({
    model, data: train, steps, batchSize, lr, warmup: Math.min(200, Math.ceil(steps / 20)), schedule: 'cosine', klWeight, mseWeight,
    crop, ema: settings.ema, seed, checkpointDir: files.checkpoint, checkpointEvery: settings.checkpointEvery, checkpointMinutes: o.checkpointMinutes,
    resume: resume !== false, signal: signals.length > 1 ? AbortSignal.any(signals) : signals[0], device, precision: o.precision, distributed: o.distributed,
    checkpointMeta: (): RunMeta => ({ plan: { ...plan, secondsPerStep: plan.secondsPerStep ?? measured }, seconds: prevSeconds + (Date.now() - started) / 1000 }),
    onCheckpoint: () => {
      if (replaced) return;
      replaced = true;
      // This run's first checkpoint: the previous run's results go, its plan is replaced.
      for (const f of [files.metrics, files.weights, files.recon]) fs.rmSync(f, { force: true });
      writeJsonAtomic(files.plan, plan);
    },
    onStep: (i) => {
      const now = Date.now();
      if (!paceFrom) paceFrom = { step: i.step, at: now };
      else measured = (now - paceFrom.at) / 1000 / (i.step - paceFrom.step);
      // The steps the budget will allow at this call's pace (the plan, when it ends first).
      const pace = measured && Number.isFinite(deadline) ? Math.round(i.step + Math.max(0, deadline - now) / 1000 / measured) : steps;
      o.onStep?.({ ...i, plannedSteps: Math.max(i.step, Math.min(steps, pace)) });
    },
  });
  const sessionSeconds = (Date.now() - started) / 1000;
  const trainSeconds = prevSeconds + sessionSeconds;
  if (dp.control(!!o.signal?.aborted).stop) {
    result.ema?.dispose();
    return { vae: model, metrics: null, stopped: 'aborted', checkpoint: result.checkpoint, upToDate: false };
  }
  const stepsNow = result.step - result.resumedFrom;
  log(`VAE: trained ${result.step} steps in ${trainSeconds.toFixed(0)} s${result.resumedFrom ? ` (this run: ${stepsNow} steps in ${sessionSeconds.toFixed(0)} s, from step ${result.resumedFrom})` : ''} (${result.stopReason === 'aborted' ? 'budget reached' : 'completed'})`);

  // Held-out quality with the raw and the EMA weights; the better one is kept.
  // (on every rank, each its share of the clips; the numbers are everyone's)
  const raw = evaluateVAE(model, heldOut, { samples: heldOut.length, distributed: o.distributed });
  const rawWeights = Object.fromEntries(Object.entries(model.stateDict()).map(([k, v]) => [k, keep(v.clone())]));
  result.ema!.copyTo(model);
  result.ema!.dispose();
  const ema = evaluateVAE(model, heldOut, { samples: heldOut.length, distributed: o.distributed });
  const useEma = ema.psnr >= raw.psnr;
  if (!useEma) model.loadStateDict(rawWeights);
  Object.values(rawWeights).forEach((t) => t.dispose());
  const best = useEma ? ema : raw;
  const { vae: config, ...rest } = settings;
  // Rank 0 writes the files and sends the metrics.
  const metrics = dp.fromRank0((): DemoVAEMetrics => {
    const black = blackBaseline(heldOut, device);
    writeReconGif(model, heldOut, files.recon);
    model.save(files.weights);
    const latest = latestCheckpoint(files.checkpoint);
    const m: DemoVAEMetrics = {
      psnr: best.psnr, ssim: best.ssim, mse: best.mse, weights: useEma ? 'ema' : 'raw',
      raw: { psnr: raw.psnr, ssim: raw.ssim }, ema: { psnr: ema.psnr, ssim: ema.ssim },
      blackBaseline: black, heldOutClips: heldOut.length,
      steps: result.step, trainSeconds: trained ? seen.complete!.trainSeconds : trainSeconds, secondsPerStep: trained ? seen.complete!.secondsPerStep : sessionSeconds / Math.max(1, stepsNow),
      resumedFrom: result.resumedFrom, stopReason: result.stopReason, minutes: byTime ? o.minutes! : null, threads,
      settings: { ...rest, seed, plannedSteps: steps }, config: model.config, checkpoint: latest ? path.basename(latest) : null,
    };
    writeJsonAtomic(files.metrics, m);
    return m;
  });
  log(`VAE: held-out PSNR ${best.psnr.toFixed(2)} dB, SSIM ${best.ssim.toFixed(3)} (${metrics.weights} weights); ` +
    `all-black baseline PSNR ${metrics.blackBaseline.psnr.toFixed(2)} dB, SSIM ${metrics.blackBaseline.ssim.toFixed(3)}`);
  return { vae: model, metrics, stopped: 'completed', checkpoint: result.checkpoint, upToDate: false };
}
