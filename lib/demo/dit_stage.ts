// The demo's text-to-video stage on captioned Moving MNIST: encode training clips with
// the trained VAE into a latent cache, train a text encoder + DiT (rectified flow) for a
// time budget, and sample / evaluate prompts the model never saw in training.
//   dir/latents/     latent cache (encodeDataset)
//   dir/dit/         checkpoint/ (resumable), log.jsonl, plan.json, dit.safetensors (EMA)
// Held-out prompts: ten (digit, direction) pairs, one per digit, covering all eight
// directions, are removed from the training clips; the words of each still occur in
// training, in other pairs, so the model must compose them.
// On several ranks (ts.distributed, `distributed`), encoding, training and sampling for
// evaluation are split over them; rank 0 reads and writes the files and sends what it
// decided (a complete cache, the plan, the time spent) to the others.
import * as fs from 'fs';
import * as path from 'path';
import { manualSeed } from '../creation';
import { RectifiedFlow } from '../diffusion/flow';
import { captionFor, DIRECTIONS, MovingMNIST } from '../data/moving_mnist';
import { movingMnistDataset, VideoDataset } from '../data/dataset';
import { LatentCacheIndex, loadLatentCache } from '../data/latent_cache';
import { encodeDataset } from '../train/encode';
import { AdherenceReport, evaluatePromptAdherence } from './adherence';
import { writeFileAtomic, writeAll } from '../io/atomic';
import { readSafetensorsHeader } from '../io/safetensors';
import { DiT, DiTConfig } from '../models/dit';
import { patchTriple, posInt } from '../checks';
import { Tokenizer } from '../models/tokenizer';
import { VideoVAE } from '../models/vae';
import { EMA } from '../optim/ema';
import { noGrad } from '../autograd/node';
import { Device, Tensor, tidy } from '../tensor';
import { device as checkDevice } from '../checks';
import type { Precision } from '../train/precision';
import { dataParallel, DistributedOption } from '../train/distributed';
import { latentDataset, sample, trainDiT, TrainDiTStep, withFirstFrameImages } from '../train/dit';
import { checkpointInfo, configDifferences, disposeCheckpoint, loadCheckpoint } from '../train/checkpoint';
import { RunMismatchError } from './vae_stage';

export interface DemoDiTSettings {
  /** The DiT without its text encoder (added from the captions' tokenizer). */
  dit: Omit<DiTConfig, 'text' | 'condition' | 'inChannels' | 'learnSigma'>;
  text: { hiddenSize: number; depth: number; numHeads: number };
  /** Rectified flow: logit-normal training timesteps. */
  flow: { timestepSampling: 'uniform' | 'logit-normal'; shift: number };
  batchSize: number;
  /**
   * Image-first training and sampling: the first latent frames of the clips join the
   * data as images (a bucket of their own, batches sized to the tokens of a video
   * batch), and sampling draws the first frame as an image, then the video conditioned
   * on it. Off: plain text-to-video.
   */
  imageFirst?: boolean;
  lr: number;
  warmup: number;
  ema: number;
  cfgDropout: number;
  conditionFrameProb: number;
  /** Training clips to encode (held-out pairs excluded). */
  trainClips: number;
  frames: number;
  size: number;
  /** Sampling for evaluation. */
  sampleSteps: number;
  cfgScale: number;
  samplesPerPrompt: number;
}

export const demoDiTSettings: { full: DemoDiTSettings; quick: DemoDiTSettings } = {
  full: {
    // Large patches (1x4x4 latents: 80 tokens a clip) and a narrow DiT take more steps in a
    // time budget, which on two cores matters more than width. The text encoder is a bag
    // of words (depth 0): transformer blocks entangle the digit and direction words, so a
    // held-out pair encodes as something never trained. The runs behind these choices are
    // in docs/demo-runs.md.
    dit: { hiddenSize: 192, depth: 6, numHeads: 3, patchSize: [1, 4, 4] },
    text: { hiddenSize: 128, depth: 0, numHeads: 4 },
    flow: { timestepSampling: 'logit-normal', shift: 1 },
    batchSize: 32, lr: 1e-3, warmup: 100, ema: 0.995, cfgDropout: 0.1, conditionFrameProb: 0.2,
    trainClips: 6000, frames: 17, size: 64, sampleSteps: 30, cfgScale: 4, samplesPerPrompt: 8,
  },
  quick: {
    dit: { hiddenSize: 32, depth: 1, numHeads: 2, patchSize: [1, 2, 2] },
    text: { hiddenSize: 16, depth: 1, numHeads: 2 },
    flow: { timestepSampling: 'logit-normal', shift: 1 },
    batchSize: 2, lr: 1e-3, warmup: 2, ema: 0.9, cfgDropout: 0.1, conditionFrameProb: 0.2,
    trainClips: 16, frames: 17, size: 64, sampleSteps: 4, cfgScale: 2, samplesPerPrompt: 1,
  },
};

/** digit d with direction (3 d) mod 8: one pair per digit, every direction at least once. */
export const HELD_OUT_PAIRS: ReadonlyArray<readonly [number, number]> = Array.from({ length: 10 }, (_, d) => [d, (3 * d) % 8] as const);
export const HELD_OUT_PROMPTS: string[] = HELD_OUT_PAIRS.map(([d, k]) => captionFor([d], [DIRECTIONS[k]]));
/** Every caption of the one-digit dataset (the tokenizer's vocabulary). */
export const ALL_PROMPTS: string[] = Array.from({ length: 80 }, (_, i) => captionFor([i >> 3], [DIRECTIONS[i & 7]]));

const isHeldOut = (digit: number, dir: number): boolean => HELD_OUT_PAIRS.some(([d, k]) => d === digit && k === dir);

function writeJson(file: string, v: unknown): void {
  const buf = Buffer.from(`${JSON.stringify(v, null, 2)}\n`, 'utf8');
  writeFileAtomic(file, (fd) => writeAll(fd, buf));
}

/** The training clips: Moving MNIST train split without the held-out (digit, direction) pairs. */
export function demoTrainClips(settings: DemoDiTSettings, seed = 0): VideoDataset {
  const mm = new MovingMNIST({ split: 'train', length: 4 * settings.trainClips, frames: settings.frames, size: settings.size, numDigits: 1, seed });
  const indices: number[] = [];
  for (let i = 0; i < mm.length && indices.length < settings.trainClips; i++) {
    const m = mm.get(i).meta;
    if (!isHeldOut(m.digits[0], m.directionIndices[0])) indices.push(i);
  }
  const base = movingMnistDataset(mm);
  return { length: indices.length, shape: base.shape, get: (i) => base.get(indices[i]) };
}

/** Encodes the training clips into <dir>/latents (split over the ranks); a complete cache is reused as is. */
export function encodeDemoLatents(o: {
  vae: VideoVAE; dir: string; settings: DemoDiTSettings; seed?: number; onProgress?: (done: number, total: number) => void; device?: Device;
  distributed?: DistributedOption;
}): LatentCacheIndex {
  const dir = path.join(o.dir, 'latents');
  const indexFile = path.join(dir, 'index.json');
  const complete = dataParallel('encodeDemoLatents', o.distributed).fromRank0(() => {
    if (fs.existsSync(indexFile)) {
      const idx = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as LatentCacheIndex;
      if (idx.count === o.settings.trainClips) return idx;
    }
    fs.rmSync(dir, { recursive: true, force: true });
    return null;
  });
  if (complete) return complete;
  return noGrad(() =>
    encodeDataset(o.vae, demoTrainClips(o.settings, o.seed ?? 0), dir, { batchSize: 4, onProgress: o.onProgress, device: o.device, distributed: o.distributed }),
  );
}

/** A fresh text DiT for the settings (the tokenizer knows every caption's words). */
export function createDemoDiT(settings: DemoDiTSettings, latentChannels: number, device: Device = 'cpu'): DiT {
  const tokenizer = Tokenizer.fromCaptions(ALL_PROMPTS);
  const dit = new DiT({
    ...settings.dit, inChannels: latentChannels, learnSigma: false, condition: 'text',
    text: { tokenizer: tokenizer.state(), ...settings.text },
  }); // initialized on the CPU: the same weights on every device
  return device === 'cpu' ? dit : dit.to(device);
}

export function demoFlow(settings: DemoDiTSettings): RectifiedFlow {
  return new RectifiedFlow({ timestepSampling: settings.flow.timestepSampling, shift: settings.flow.shift });
}

const SAMPLING_KEY = 'tessera.sampling';

/** What sampling needs beside the weights: the latent scale and the flow settings. */
export interface SamplingInfo {
  scalingFactor: number;
  flow: DemoDiTSettings['flow'];
  latentChannels: number;
  /** Trained image-first: sample the first frame as an image, then the video from it. */
  imageFirst?: boolean;
}

/** Writes a DiT with its sampling info (EMA weights when given). */
export function saveDemoDiT(file: string, dit: DiT, info: SamplingInfo, ema?: EMA | null): void {
  tidy(() => {
    if (!ema) return dit.save(file, { [SAMPLING_KEY]: JSON.stringify(info) });
    const backup = dit.stateDict();
    const saved = Object.fromEntries(Object.entries(backup).map(([k, v]) => [k, v.clone()]));
    ema.copyTo(dit);
    try {
      dit.save(file, { [SAMPLING_KEY]: JSON.stringify(info) });
    } finally {
      dit.loadStateDict(saved);
    }
  });
}

/** A DiT written by saveDemoDiT, with its sampling info. */
export function loadDemoDiT(file: string, opts: { device?: Device } = {}): { dit: DiT; info: SamplingInfo } {
  const dit = DiT.load(file, { device: opts.device });
  const json = readSafetensorsHeader(file).metadata[SAMPLING_KEY];
  if (!json) {
    dit.dispose();
    throw new Error(`loadDemoDiT: ${file} has no '${SAMPLING_KEY}' metadata (was it written by saveDemoDiT?)`);
  }
  return { dit, info: JSON.parse(json) as SamplingInfo };
}

export interface TrainDemoDiTResult {
  /** Steps of the whole run (the earlier runs in dir included). */
  steps: number;
  /** The timing probe's estimate (plan.json), or the steps asked; a run by time goes to the deadline, so steps may differ. */
  plannedSteps: number;
  stopped: 'done' | 'aborted' | 'nan';
  /** Training seconds of the whole run (the earlier runs in dir included). */
  seconds: number;
  /** The step this call started from (0: a fresh run) and its own seconds. */
  resumedFrom: number;
  sessionSeconds: number;
  /** dir already held a run that meets the request (its budget spent, or the steps asked done): nothing was trained. */
  upToDate: boolean;
  checkpoint: string | null;
  /** <dir>/dit/dit.safetensors (EMA weights), written when training finished. */
  model: string | null;
}

/** What kind of demo DiT a config is: 'quick', 'full' or 'custom' (neither preset). */
export function demoDiTKind(config: unknown): 'quick' | 'full' | 'custom' {
  for (const kind of ['quick', 'full'] as const) if (!configDifferences(config, demoDiTSettings[kind].dit).length) return kind;
  return 'custom';
}

/**
 * The checkpoint of <dir>/dit (its step), or null when there is none; a RunMismatchError
 * when it holds another model or batch than `settings` on latents of `latentChannels`
 * with this seed (trainDiT's config: older checkpoints hold no batch or seed).
 */
export function checkDemoDiTCheckpoint(dir: string, settings: DemoDiTSettings, latentChannels: number, seed = 0): { step: number; path: string } | null {
  const ckDir = path.join(dir, 'dit', 'checkpoint');
  const ck = checkpointInfo(ckDir);
  if (!ck) return null;
  const wanted = { dit: { ...settings.dit, inChannels: latentChannels, text: { ...settings.text } }, train: { batchSize: settings.batchSize, seed } };
  const saved = ck.config as { dit?: unknown; train?: unknown } | null;
  const differences = configDifferences({ dit: saved?.dit, train: saved?.train ?? wanted.train }, wanted);
  if (differences.length) throw new RunMismatchError(ckDir, ck.step, demoDiTKind(saved?.dit), demoDiTKind(settings.dit), differences, 'DiT');
  return { step: ck.step, path: ck.path };
}

/**
 * Trains the text encoder + DiT on <dir>/latents for a time budget or a number of steps.
 * By time, the steps come from timing a few steps (plan.json) and the budget counts the
 * time of earlier runs in dir (spent.json): a rerun with the same budget resumes, or finds
 * the run done; a larger one extends it. By steps, exactly that many in all (no probe, the
 * lr over the steps): a seed and a step count give the same model. A checkpoint of another
 * model or batch is refused (RunMismatchError).
 */
export async function trainDemoDiT(o: {
  dir: string; settings: DemoDiTSettings;
  /** The run's budget in minutes (exclusive with steps). */
  minutes?: number;
  /** Exactly this many steps in all (exclusive with minutes). */
  steps?: number;
  seed?: number; signal?: AbortSignal;
  onStep?: (s: TrainDiTStep & { plannedSteps: number }) => void;
  /** The device to train on (default 'cpu'); precision: bf16 on CUDA by default, fp32 elsewhere. */
  device?: Device; precision?: Precision;
  /** Minutes between checkpoints besides every 200 steps (default 2). */
  checkpointMinutes?: number;
  /** Status lines (default: none). */
  log?: (line: string) => void;
  /** Data-parallel over the ranks of ts.distributed (default 'auto'; see train/distributed.ts); settings.batchSize is the global batch. */
  distributed?: DistributedOption;
}): Promise<TrainDemoDiTResult> {
  const op = 'trainDemoDiT';
  const device = o.device === undefined ? 'cpu' : checkDevice(op, 'device', o.device);
  const dp = dataParallel(op, o.distributed);
  const log = (dp.isMain && o.log) || (() => {});
  const byTime = o.minutes !== undefined;
  if (byTime === (o.steps !== undefined)) throw new TypeError(`${op}: expected minutes or steps (one of them), got ${byTime ? 'both' : 'neither'}`);
  if (byTime && !(typeof o.minutes === 'number' && o.minutes > 0 && Number.isFinite(o.minutes)))
    throw new RangeError(`${op}: expected a positive budget in minutes, got ${String(o.minutes)}`);
  if (!byTime) posInt(op, 'steps', o.steps);
  const s = o.settings, seed = o.seed ?? 0;
  const cache = loadLatentCache(path.join(o.dir, 'latents'), { device });
  const data = s.imageFirst ? withFirstFrameImages(latentDataset(cache)) : latentDataset(cache);
  const patch = patchTriple(op, s.dit.patchSize ?? 2);
  const tokensPerClip = cache.index.latentShape.slice(1).reduce((a, n, i) => a * Math.floor(n / patch[i]), 1);
  // Image-first: every batch holds the tokens of batchSize clips (images: 1/T' of a clip each).
  const batchTokens = s.imageFirst ? s.batchSize * tokensPerClip : undefined;
  const C = cache.index.latentShape[0];
  const out = path.join(o.dir, 'dit');
  const ckDir = path.join(out, 'checkpoint');
  const planFile = path.join(out, 'plan.json');
  const spentFile = path.join(out, 'spent.json');
  const diffusion = demoFlow(s);
  const started = Date.now();
  // Rank 0 reads the checkpoint, the plan and the time spent before a resume; every rank goes by them.
  const kept = dp.fromRank0(() => {
    fs.mkdirSync(out, { recursive: true });
    const read = <T>(f: string): T | null => (fs.existsSync(f) ? (JSON.parse(fs.readFileSync(f, 'utf8')) as T) : null);
    let ck = null, mismatch = null;
    try {
      ck = checkDemoDiTCheckpoint(o.dir, s, C, seed);
    } catch (e) {
      if (!(e instanceof RunMismatchError)) throw e;
      mismatch = { differences: e.differences, kind: e.savedKind, step: e.step };
    }
    const plan = read<{ steps: number; secondsPerStep?: number; settings?: unknown }>(planFile);
    return {
      done: ck?.step ?? 0, mismatch,
      // A plan of other settings (a run that never reached its first checkpoint) is made again.
      plan: plan && !configDifferences(plan.settings ?? s, s).length ? plan : null,
      spent: ck ? (read<{ seconds: number }>(spentFile)?.seconds ?? 0) : 0,
    };
  });
  if (kept.mismatch) throw new RunMismatchError(ckDir, kept.mismatch.step, kept.mismatch.kind, demoDiTKind(s.dit), kept.mismatch.differences, 'DiT');
  const done = kept.done, spent = kept.spent;
  if (!byTime && done > o.steps!) throw new RangeError(`${op}: ${ckDir} holds ${done} steps, more than the ${o.steps} asked`);
  const budgetSeconds = byTime ? o.minutes! * 60 : Infinity;
  // Done already: its budget spent, or the steps asked trained (the model is written again from the checkpoint).
  const upToDate = done > 0 && (byTime ? spent >= budgetSeconds : done === o.steps);
  let plannedSteps: number;
  let perStep: number | null = kept.plan?.secondsPerStep ?? null;
  if (!byTime) {
    plannedSteps = o.steps!;
    if (dp.isMain) writeJson(planFile, { steps: plannedSteps, minutes: null, settings: s, ranks: dp.world });
  } else if (kept.plan !== null || upToDate) {
    plannedSteps = kept.plan?.steps ?? done;
  } else {
    // Steps the budget allows, from the time of steps 2-5 (2-9 when batches alternate
    // between images and videos) of a throwaway model.
    manualSeed(seed + 1);
    const probe = createDemoDiT(s, C, device);
    const times: number[] = [];
    await trainDiT({
      dit: probe, diffusion, data, steps: s.imageFirst ? 9 : 5, batchSize: s.batchSize, batchTokens, lr: s.lr, ema: null, seed, precision: o.precision,
      distributed: o.distributed, onStep: (i) => times.push(i.seconds),
    });
    probe.dispose();
    // Rank 0's timing makes the plan of every rank.
    [plannedSteps, perStep] = dp.fromRank0((): [number, number] => {
      const per = times.slice(1).reduce((a, b) => a + b, 0) / (times.length - 1);
      const left = budgetSeconds - spent - (Date.now() - started) / 1000;
      const steps = done + Math.max(10, Math.floor((0.97 * left) / per));
      writeJson(planFile, { steps, secondsPerStep: per, minutes: o.minutes, settings: s, ranks: dp.world });
      return [steps, per];
    });
  }
  if (upToDate) log(`DiT: ${byTime ? `the ${o.minutes} min budget was spent` : `the ${o.steps} steps were trained`} (${done} steps in ${spent.toFixed(0)} s); writing the model of the last checkpoint`);
  else if (done) log(`DiT: resuming at step ${done}${byTime ? ` with ${(budgetSeconds - spent).toFixed(0)} s of the ${o.minutes} min budget left` : ` of ${o.steps}`}`);
  manualSeed(seed);
  const dit = createDemoDiT(s, C, device);
  // By time, the budget is a deadline checked after every step (a timer could not fire while
  // the synchronous steps hold the event loop); the time spent before a resume counts.
  // Each rank has its own deadline; trainDiT stops them all at the step the first one hits it.
  const deadline = byTime ? started + (budgetSeconds - spent) * 1000 : Infinity;
  const budget = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, budget.signal]) : budget.signal;
  const t0 = Date.now();
  // By time, the learning rate decays with the time spent (not with the planned steps), and
  // the deadline ends the run: a probe timed on a busy machine (or a machine that gets busy)
  // then costs steps, never the end of the schedule or part of the budget. The step bound
  // is only a guard (4x the steps the time left allows at the probe's pace); the steps
  // reported as planned follow the measured pace.
  const elapsed = (): number => spent + (Date.now() - started) / 1000;
  const bound = upToDate ? done : byTime ? done + 4 * Math.max(plannedSteps - done, Math.ceil((budgetSeconds - spent) / (perStep ?? Infinity)) || 0) + 10 : o.steps!;
  let firstStep = -1;
  const r = await trainDiT({
    dit, diffusion, data, steps: bound, batchSize: s.batchSize, batchTokens, lr: s.lr, warmup: s.warmup, ema: s.ema,
    cfgDropout: s.cfgDropout, conditionFrameProb: s.conditionFrameProb, checkpointDir: ckDir, checkpointEvery: 200, checkpointMinutes: o.checkpointMinutes, keepCheckpoints: 3,
    seed, signal, precision: o.precision, distributed: o.distributed, progress: byTime ? () => elapsed() / budgetSeconds : undefined,
    onStep: (i) => {
      if (i.step % 20 === 0 && dp.isMain) writeJson(spentFile, { seconds: elapsed() });
      if (Date.now() >= deadline) budget.abort();
      if (firstStep < 0) firstStep = i.step - 1;
      const n = i.step - firstStep, secs = (Date.now() - t0) / 1000;
      // By time: the steps the budget will allow at this run's pace.
      const pace = byTime ? Math.round(i.step + (n > 0 ? (Math.max(0, deadline - Date.now()) / 1000) * (n / secs) : 0)) : o.steps!;
      o.onStep?.({ ...i, plannedSteps: Math.max(i.step, pace) });
    },
  });
  if (dp.isMain && !upToDate) writeJson(spentFile, { seconds: elapsed() });
  const sessionSeconds = upToDate ? 0 : (Date.now() - t0) / 1000;
  let model: string | null = null;
  const callerAborted = dp.control(!!o.signal?.aborted).stop; // (the same answer on every rank)
  // A run cut by the budget (not by the caller) is finished too.
  if (r.stopped === 'done' || (r.stopped === 'aborted' && !callerAborted)) {
    model = path.join(out, 'dit.safetensors');
    if (dp.isMain) saveDemoDiT(model, dit, { scalingFactor: cache.index.scalingFactor, flow: s.flow, latentChannels: C, imageFirst: !!s.imageFirst }, r.ema);
  }
  r.ema?.dispose();
  dit.dispose();
  return {
    steps: r.steps, plannedSteps, stopped: r.stopped === 'aborted' && !callerAborted ? 'done' : r.stopped, seconds: upToDate ? spent : elapsed(),
    resumedFrom: done, sessionSeconds, upToDate, checkpoint: r.checkpoint, model,
  };
}

/** Loads the EMA weights of the latest checkpoint of <dir>/dit into a DiT (for a stage cut short). */
export function loadDemoCheckpoint(dir: string, settings: DemoDiTSettings, latentChannels: number, device: Device = 'cpu'): DiT {
  const ck = loadCheckpoint(path.join(dir, 'dit', 'checkpoint'));
  try {
    const dit = createDemoDiT(settings, latentChannels, device);
    dit.loadStateDict(ck.ema ? ck.ema.shadow : ck.model);
    return dit;
  } finally {
    disposeCheckpoint(ck);
  }
}

export interface SampleVideosOptions {
  vae: VideoVAE;
  dit: DiT;
  info: SamplingInfo;
  prompts: string[];
  frames?: number; // default 17
  height?: number; // default 64
  width?: number; // default 64
  steps?: number; // default 30
  cfgScale?: number; // default 4
  seed?: number;
  /** Image-to-video: the first frame of every video [B or 1, 1, H, W] (or [B, 1, 1, H, W]) in [0, 1]. */
  firstFrame?: Tensor;
  /** Progress: sampler steps done of all (an image-first model samples the image first: twice the steps). */
  onStep?: (done: number, total: number) => void;
}

/** Text-to-video (or image-to-video): videos [B, 1, T, H, W] in [0, 1]. */
export function sampleVideos(o: SampleVideosOptions): Tensor {
  const op = 'sampleVideos';
  const T = o.frames ?? 17, H = o.height ?? 64, W = o.width ?? 64;
  const B = o.prompts.length;
  let lat: number[];
  try {
    lat = o.vae.latentShape([B, o.vae.config.inChannels, T, H, W]);
  } catch (e) {
    throw new Error(`${op}: ${(e as Error).message}`);
  }
  const grid: [number, number, number] = [lat[2], lat[3], lat[4]];
  const diffusion = new RectifiedFlow({ timestepSampling: o.info.flow.timestepSampling, shift: o.info.flow.shift });
  return tidy(() => {
    let conditionFrames;
    if (o.firstFrame) {
      const f0 = o.firstFrame.rank === 4 ? o.firstFrame.unsqueeze(2) : o.firstFrame; // [B|1, 1, 1, H, W]
      const f = f0.device === o.vae.device ? f0 : f0.to(o.vae.device);
      if (f.rank !== 5 || f.shape[2] !== 1 || f.shape[3] !== H || f.shape[4] !== W)
        throw new Error(`${op}: expected firstFrame [B, 1, ${H}, ${W}] in [0, 1], got [${o.firstFrame.shape.join(', ')}]`);
      const z = noGrad(() => o.vae.encode(f.mul(2).sub(1)).mode().mul(o.info.scalingFactor)); // [B|1, C, 1, H', W']
      conditionFrames = { latents: z, indices: [0] };
    }
    const steps = o.steps ?? 30, cfgScale = o.cfgScale ?? 4;
    const twoStage = !conditionFrames && !!o.info.imageFirst && grid[0] > 1;
    const progress = (before: number) => (o.onStep ? (k: number) => o.onStep!(before + k, (twoStage ? 2 : 1) * steps) : undefined);
    if (twoStage) {
      // Image-first model: the first latent frame as an image, then the video from it.
      const first = sample({ dit: o.dit, diffusion, prompts: o.prompts, latentGrid: [1, grid[1], grid[2]], steps, cfgScale, seed: o.seed, onStep: progress(0) }); // [B, C, 1, H', W']
      conditionFrames = { latents: first, indices: [0] };
    }
    // The video's noise is drawn from another seed than the image's (same seed = same noise).
    const latents = sample({
      dit: o.dit, diffusion, prompts: o.prompts, latentGrid: grid, steps, cfgScale,
      seed: o.seed === undefined ? undefined : o.seed + (o.info.imageFirst ? 7919 : 0), conditionFrames, onStep: progress(twoStage ? steps : 0),
    }); // [B, C, T', H', W']
    return noGrad(() => o.vae.decode(latents.div(o.info.scalingFactor)).add(1).mul(0.5).clamp(0, 1)); // [B, 1, T, H, W]
  });
}

/**
 * Samples prompts (default: the held-out ones) and measures digit and direction adherence.
 * Batch k is sampled with seed + k, so the report is the same however many ranks share it.
 */
export async function evaluateDemo(o: {
  vae: VideoVAE; dit: DiT; info: SamplingInfo; settings: DemoDiTSettings; prompts?: string[]; samplesPerPrompt?: number;
  steps?: number; cfgScale?: number; seed?: number; gifPath?: string; batchSize?: number;
  /** Spread the batches over the ranks of ts.distributed (default 'auto'); rank 0 writes the GIF. */
  distributed?: DistributedOption;
  /** Progress: samples done (this rank's share) of all. */
  onProgress?: (done: number, total: number) => void;
}): Promise<AdherenceReport> {
  const seed = o.seed ?? 1234;
  const prompts = o.prompts ?? HELD_OUT_PROMPTS;
  const total = prompts.length * (o.samplesPerPrompt ?? o.settings.samplesPerPrompt);
  let done = 0;
  return evaluatePromptAdherence({
    device: o.dit.device,
    prompts,
    samplesPerPrompt: o.samplesPerPrompt ?? o.settings.samplesPerPrompt,
    batchSize: o.batchSize ?? 8,
    gifPath: o.gifPath,
    distributed: o.distributed,
    sampleFn: (captions, batch) => {
      const v = sampleVideos({
        vae: o.vae, dit: o.dit, info: o.info, prompts: captions, frames: o.settings.frames, height: o.settings.size, width: o.settings.size,
        steps: o.steps ?? o.settings.sampleSteps, cfgScale: o.cfgScale ?? o.settings.cfgScale, seed: seed + batch,
        // (within a batch: its share of the samples by sampler steps)
        onStep: o.onProgress ? (k, all) => o.onProgress!(done + Math.floor((captions.length * k) / all), total) : undefined,
      });
      done += captions.length;
      return v;
    },
  });
}
