// `tessera train-vae --data DIR` and `tessera train-dit --data DIR`: the two stages on
// a folder of the user's videos and images (openVideoDataset) instead of Moving MNIST.
// Layout of --out (default out/):
//   vae.safetensors        the VAE (train-vae), read by train-dit and sample
//   vae-checkpoint/        trainVAE's checkpoints and log.jsonl (a rerun continues for another budget)
//   vae-recon.gif          4 clips (top) and their reconstructions (bottom)
//   vae-metrics.json       PSNR/SSIM of those clips, steps, data summary
//   latents-data/          encodeBuckets: one latent cache per bucket (kept when complete)
//   dit-data/checkpoint/   trainDiT's checkpoints (a rerun continues for another budget)
//   dit.safetensors        the DiT with its sampling info (EMA weights), for `tessera sample --checkpoint out`
//   samples.gif            clips sampled for captions of the data, one bucket's shape
// The VAE trains on one clip shape (every long enough file's windows scaled to cover it,
// center-cropped); the DiT trains on every bucket (batches of one latent grid each).
import * as fs from 'fs';
import * as path from 'path';
import { manualSeed } from '../creation';
import { openVideoDataset, VideoClipDataset, VideoDatasetOptions } from '../data/video_dataset';
import { isInitialized, worldSize } from '../distributed/group';
import { writeJsonAtomic } from '../io/atomic';
import { requireFfmpeg, saveVideo } from '../io/video';
import { DiT } from '../models/dit';
import { Tokenizer } from '../models/tokenizer';
import { VideoVAE, VideoVAEConfig, vaePresets } from '../models/vae';
import { demoDiTSettings, demoFlow, DemoDiTSettings, sampleVideos, saveDemoDiT, SamplingInfo } from '../demo/dit_stage';
import { writeReconGif } from '../demo/vae_stage';
import { evaluateVAE, trainVAE, VAEStepInfo } from '../train/vae';
import { encodeBuckets, latentBucketsDataset } from '../train/encode_buckets';
import { trainDiT, TrainDiTStep } from '../train/dit';
import { CheckpointMismatchError, checkpointInfo, describeDifferences } from '../train/checkpoint';
import type { Precision } from '../train/precision';
import { Device, tidy } from '../tensor';
import { CliError } from './options';

export interface FolderSettings {
  /** The VAE without its input channels (3, or 1 for gray data). */
  vae: Omit<VideoVAEConfig, 'inChannels'>;
  /** The VAE's training clips: frames x size x size. */
  vaeClip: { frames: number; size: number };
  vaeBatch: number;
  vaeLr: number;
  /** The DiT's buckets (frame sizes and counts). */
  buckets: { sizes: [number, number][]; frames: number[] };
  dit: DemoDiTSettings;
}

/** quick: a smoke run in seconds on two cores; full: the sora VAE preset and the demo DiT on 256-pixel buckets. */
export const folderSettings: { quick: FolderSettings; full: FolderSettings } = {
  quick: {
    vae: {
      latentChannels: 4, baseChannels: 8, channelMultipliers: [1, 1, 2], numResBlocks: 1, decoderResBlocks: 1,
      temporalCompression: 4, spatialCompression: 4, numGroups: 4,
    },
    vaeClip: { frames: 9, size: 64 }, vaeBatch: 2, vaeLr: 3e-3,
    buckets: { sizes: [[64, 64], [48, 80], [80, 48]], frames: [1, 9] },
    dit: { ...demoDiTSettings.quick, sampleSteps: 8 },
  },
  full: {
    vae: (({ inChannels: _, ...rest }) => rest)(vaePresets.sora),
    vaeClip: { frames: 17, size: 256 }, vaeBatch: 2, vaeLr: 5e-4,
    buckets: { sizes: [[256, 256], [192, 320], [320, 192]], frames: [1, 17] },
    dit: { ...demoDiTSettings.full, batchSize: 8 },
  },
};

export const folderFiles = (out: string) => ({
  vae: path.join(out, 'vae.safetensors'),
  vaeCheckpoint: path.join(out, 'vae-checkpoint'),
  vaeRecon: path.join(out, 'vae-recon.gif'),
  vaeMetrics: path.join(out, 'vae-metrics.json'),
  latents: path.join(out, 'latents-data'),
  ditCheckpoint: path.join(out, 'dit-data', 'checkpoint'),
  dit: path.join(out, 'dit.safetensors'),
  samples: path.join(out, 'samples.gif'),
});

export interface FolderRunOptions {
  data: string;
  out: string;
  quick?: boolean;
  /** Another budget of minutes (a rerun continues the checkpoint for it); exclusive with steps. */
  minutes?: number;
  /** Steps in all (a rerun continues the checkpoint up to them); exclusive with minutes. */
  steps?: number;
  /** Minutes between checkpoints besides every 200 steps (default 2). */
  checkpointMinutes?: number;
  seed?: number;
  device?: Device;
  precision?: Precision;
  /** Target frames per second of the clips (default 8). */
  fps?: number;
  strict?: boolean;
  signal: AbortSignal;
  log: (line: string) => void;
}

/** Opens --data with one clear line for the user when it cannot be. */
async function openData(o: FolderRunOptions, opts: VideoDatasetOptions): Promise<VideoClipDataset> {
  if (isInitialized() && worldSize() > 1)
    throw new CliError(`--data trains in one process for now (this job has ${worldSize()} ranks): run it without mpirun/srun`);
  try {
    requireFfmpeg('--data');
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  try {
    const ds = await openVideoDataset(o.data, {
      fps: o.fps ?? 8, strict: o.strict, seed: o.seed ?? 0, onWarning: (m) => o.log(`warning: ${m}`), ...opts,
    });
    o.log(`data: ${ds.summary()}`);
    return ds;
  } catch (e) {
    throw new CliError(`--data ${o.data}: ${(e as Error).message}`);
  }
}

export interface FolderVAEResult {
  stopped: 'completed' | 'aborted';
  steps: number;
  checkpoint: string | null;
  psnr: number | null;
}

/** train-vae --data: trains a VAE for the budget (continuing a checkpoint in --out), then writes weights, recon GIF and metrics. */
export async function trainFolderVAE(o: FolderRunOptions & { batch?: number; lr?: number; fresh?: boolean; onStep?: (s: VAEStepInfo) => void }): Promise<FolderVAEResult> {
  const s = folderSettings[o.quick ? 'quick' : 'full'];
  const f = folderFiles(o.out);
  const ds = await openData(o, { buckets: s.buckets, clipsPerVideo: 4 });
  try {
    let train, evalClips;
    try {
      train = ds.fixedDataset({ frames: s.vaeClip.frames, size: s.vaeClip.size });
      evalClips = ds.fixedDataset({ frames: s.vaeClip.frames, size: s.vaeClip.size, epoch: 1, clipsPerVideo: 1 });
    } catch (e) {
      throw new CliError(`--data ${o.data}: ${(e as Error).message}`);
    }
    fs.mkdirSync(o.out, { recursive: true });
    const ck = o.fresh ? null : checkpointInfo(f.vaeCheckpoint);
    if (ck && o.steps !== undefined && ck.step > o.steps)
      throw new CliError(`--steps ${o.steps}: ${f.vaeCheckpoint} holds ${ck.step} steps already; pass a larger --steps, or --fresh to start over`);
    manualSeed(o.seed ?? 0);
    const vae = new VideoVAE({ ...s.vae, inChannels: ds.channels }, { device: o.device });
    try {
      o.log(`VAE: ${vae.numParameters()} parameters; training on ${train.length} windows of ${train.shape.join('x')} ${o.steps !== undefined ? `to step ${o.steps}` : `for ${o.minutes} min`}`);
      const budget = o.minutes !== undefined ? AbortSignal.timeout(Math.max(1, Math.round(o.minutes * 60_000))) : null;
      const t0 = Date.now();
      let r;
      try {
        r = await trainVAE({
          model: vae, data: train, steps: o.steps ?? 1e9, batchSize: o.batch ?? s.vaeBatch, lr: o.lr ?? s.vaeLr, schedule: 'constant', warmup: 20,
          mseWeight: 0.5, checkpointDir: f.vaeCheckpoint, checkpointEvery: 200, checkpointMinutes: o.checkpointMinutes, resume: !o.fresh, seed: o.seed ?? 0,
          signal: budget ? AbortSignal.any([o.signal, budget]) : o.signal, device: o.device, precision: o.precision, onStep: o.onStep,
        });
      } catch (e) {
        if (e instanceof CheckpointMismatchError)
          throw new CliError(`--out ${o.out} holds a VAE checkpoint of another model or run (${describeDifferences(e.differences)}; this run is ${o.quick ? '--quick' : 'the full VAE'}): pass --fresh to replace it, or another --out`);
        throw e;
      }
      if (o.signal.aborted) return { stopped: 'aborted', steps: r.step, checkpoint: r.checkpoint, psnr: null };
      const seconds = (Date.now() - t0) / 1000;
      vae.save(f.vae);
      const n = Math.min(4, evalClips.length);
      const q = evaluateVAE(vae, evalClips, { samples: n });
      writeReconGif(vae, evalClips, f.vaeRecon);
      writeJsonAtomic(f.vaeMetrics, {
        psnr: q.psnr, ssim: q.ssim, mse: q.mse, evaluatedClips: n, evaluated: 'windows of the training files (epoch 1 starts), not held-out files',
        steps: r.step, resumedFrom: r.resumedFrom, seconds, minutes: o.minutes ?? null, data: ds.summary(), skipped: ds.skipped, clip: train.shape, config: vae.config,
      });
      o.log(`VAE: ${r.step} steps (${r.step - r.resumedFrom} in ${seconds.toFixed(0)} s); PSNR ${q.psnr.toFixed(2)} dB, SSIM ${q.ssim.toFixed(3)} on ${n} windows`);
      return { stopped: 'completed', steps: r.step, checkpoint: r.checkpoint, psnr: q.psnr };
    } finally {
      vae.dispose();
    }
  } finally {
    await ds.close();
  }
}

export interface FolderDiTResult {
  stopped: 'done' | 'aborted' | 'nan';
  steps: number;
  seconds: number;
  checkpoint: string | null;
}

class Stopped extends Error {}

/**
 * train-dit --data: encodes the folder's buckets with the VAE (kept when complete), trains
 * a text DiT on every bucket for the budget, writes dit.safetensors and samples.gif.
 */
export async function trainFolderDiT(o: FolderRunOptions & {
  /** The VAE, and what identifies its weights (its file and mtime): latents of another VAE are encoded again. */
  vae: VideoVAE; vaeId: string; poll: () => void; onEncode?: (done: number, total: number) => void; onStep?: (s: TrainDiTStep) => void;
}): Promise<FolderDiTResult> {
  const s = folderSettings[o.quick ? 'quick' : 'full'];
  const f = folderFiles(o.out);
  const vae = o.vae;
  const channels = vae.config.inChannels;
  if (channels !== 1 && channels !== 3) throw new CliError(`--vae: a VAE of ${channels} input channels cannot read videos (expected 1 or 3)`);
  const ds = await openData(o, { buckets: s.buckets, color: channels === 1 ? 'gray' : 'rgb' });
  const captions = ds.captions();
  const prompts = [...new Set(captions.filter((c) => c.trim()))];
  const shapes = ds.buckets;
  try {
    fs.mkdirSync(o.out, { recursive: true });
    try {
      encodeBuckets(vae, ds, f.latents, {
        batchSize: 2, device: o.device, id: o.vaeId,
        onProgress: (d, t) => {
          o.onEncode?.(d, t);
          o.poll();
          if (d < t && o.signal.aborted) throw new Stopped();
        },
      });
    } catch (e) {
      if (e instanceof Stopped) return { stopped: 'aborted', steps: 0, seconds: 0, checkpoint: null };
      throw new CliError(`encoding --data ${o.data} with the VAE: ${(e as Error).message}`);
    }
  } finally {
    await ds.close();
  }
  const data = latentBucketsDataset(f.latents, { device: o.device });
  const C = data.index.buckets[0].latentShape[0];
  o.log(`DiT: ${data.length} latents in ${data.index.buckets.length} buckets (${data.index.buckets.map((b) => `${b.key}: ${b.count}`).join(', ')}); ${prompts.length} distinct captions`);
  const tokenizer = Tokenizer.fromCaptions(captions);
  manualSeed(o.seed ?? 0);
  const dit = new DiT({
    ...s.dit.dit, inChannels: C, learnSigma: false, condition: 'text', text: { tokenizer: tokenizer.state(), ...s.dit.text },
  });
  if (o.device && o.device !== 'cpu') dit.to(o.device);
  try {
    const byTime = o.minutes !== undefined;
    const budgetMs = byTime ? o.minutes! * 60_000 : Infinity;
    const started = Date.now();
    const budget = new AbortController();
    const ck = checkpointInfo(f.ditCheckpoint);
    if (ck && o.steps !== undefined && ck.step > o.steps)
      throw new CliError(`--steps ${o.steps}: ${f.ditCheckpoint} holds ${ck.step} steps already; pass a larger --steps, or another --out`);
    let r;
    try {
      r = await trainDiT({
        dit, diffusion: demoFlow(s.dit), data, steps: o.steps ?? 1e9, batchSize: s.dit.batchSize, lr: s.dit.lr, warmup: s.dit.warmup, ema: s.dit.ema,
        cfgDropout: s.dit.cfgDropout, checkpointDir: f.ditCheckpoint, checkpointEvery: 200, checkpointMinutes: o.checkpointMinutes, keepCheckpoints: 3, seed: o.seed ?? 0,
        device: o.device, precision: o.precision, signal: AbortSignal.any([o.signal, budget.signal]),
        progress: byTime ? () => (Date.now() - started) / budgetMs : undefined,
        onStep: (i) => {
          o.poll();
          if (Date.now() - started >= budgetMs) budget.abort();
          o.onStep?.(i);
        },
      });
    } catch (e) {
      if (e instanceof CheckpointMismatchError)
        throw new CliError(`--out ${o.out} holds a DiT checkpoint of another model or run (${describeDifferences(e.differences)}; the captions or --quick changed?): use another --out, or remove ${path.dirname(f.ditCheckpoint)}`);
      throw e;
    }
    const seconds = (Date.now() - started) / 1000;
    if (r.stopped === 'nan' || o.signal.aborted) {
      r.ema?.dispose();
      return { stopped: o.signal.aborted ? 'aborted' : 'nan', steps: r.steps, seconds, checkpoint: r.checkpoint };
    }
    const info: SamplingInfo = { scalingFactor: data.scalingFactor, flow: s.dit.flow, latentChannels: C };
    saveDemoDiT(f.dit, dit, info, r.ema);
    // Samples: the most common bucket of clips (videos before images), up to 4 of the data's captions.
    const shape = (shapes.find((b) => b.shape[1] > 1) ?? shapes[0]).shape;
    const use = prompts.length ? prompts.slice(0, 4) : [''];
    if (r.ema) r.ema.copyTo(dit);
    r.ema?.dispose();
    tidy(() => {
      const video = sampleVideos({
        vae, dit, info, prompts: use, frames: shape[1], height: shape[2], width: shape[3], steps: s.dit.sampleSteps, cfgScale: s.dit.cfgScale, seed: o.seed ?? 0,
      });
      saveVideo(video, f.samples, { fps: 8 });
    });
    const from = ck?.step ?? 0;
    o.log(`DiT: ${r.steps - from} steps in ${seconds.toFixed(0)} s${from ? ` (from step ${from}: ${r.steps} in all)` : ''}; wrote ${f.dit} and ${f.samples} (${use.length} clip${use.length > 1 ? 's' : ''} of ${shape.slice(1).join('x')})`);
    return { stopped: 'done', steps: r.steps, seconds, checkpoint: r.checkpoint };
  } finally {
    dit.dispose();
  }
}
