// The demo, end to end (`tessera demo`): Moving MNIST data -> VAE -> latents -> text
// encoder + DiT -> samples for held-out prompts -> prompt adherence -> report. Layout
// of the output directory:
//   state.json        the run's mode, seed and plan, and each completed stage (a rerun skips those)
//   data.gif          training clips as the models see them (captions in state.json)
//   vae/              the VAE stage (vae_stage.ts): plan, checkpoint/ + log.jsonl, recon.gif, metrics.json
//   latents/          the latent cache of the training clips (dit_stage.ts)
//   dit/              the DiT's checkpoints and log.jsonl (dit_stage.ts)
//   vae.safetensors   the trained models, loadable by `tessera sample --checkpoint <dir>`
//   dit.safetensors     (the layout of assets/pretrained/)
//   samples.gif       one sample per held-out prompt; grid.png the same grid, every 4th frame
//   eval.json         the prompt-adherence report
//   metrics.json      the numbers of every stage, the settings and the machine
//   report.html       one self-contained page of all of it
// A stage interrupted mid-way (Ctrl-C, a kill) resumes from its checkpoint on a rerun.
// Under mpirun (ts.distributed initialized with several ranks) every stage runs on all
// ranks, splitting its work; rank 0 alone prints, reads the state and writes the files,
// and the ranks agree at each stage's start whether to go on (a Ctrl-C on any stops all).
import * as fs from 'fs';
import * as path from 'path';
import { lazyProgress, Progress, progress as defaultProgress } from '../cli/progress';
import { movingMnistDataset } from '../data/dataset';
import { MovingMNIST } from '../data/moving_mnist';
import type { AdherenceReport } from './adherence';
import type { LatentCacheIndex } from '../data/latent_cache';
import { copyFileAtomic, writeJsonAtomic } from '../io/atomic';
import { readSafetensorsHeader } from '../io/safetensors';
import { loadVideo, saveVideo } from '../io/video';
import { DiT } from '../models/dit';
import { VideoVAE } from '../models/vae';
import { info, version } from '../runtime';
import { Device, tidy } from '../tensor';
import { device as checkDevice } from '../checks';
import type { Precision } from '../train/precision';
import { dataParallel, DistributedOption } from '../train/distributed';
import { demoDiTSettings, DemoDiTSettings, encodeDemoLatents, evaluateDemo, HELD_OUT_PROMPTS, loadDemoDiT, SamplingInfo, trainDemoDiT } from './dit_stage';
import { loadPretrained } from './pretrained';
import { writeReport } from './report';
import { DemoVAEMetrics, demoVAEFiles, demoVAESettings, DemoVAESettings, stackClips, trainDemoVAE } from './vae_stage';

/** Training budgets in minutes: the full demo (about 80 min on 2 cores) and the smoke run. */
export const DEMO_BUDGETS = { full: { vae: 20, dit: 60 }, quick: { vae: 0.3, dit: 0.6 } };
/**
 * Rough minutes of the stages without a budget, for the ETA. Full: encoding 6000 clips
 * at ~0.06-0.1 s each (6-10 min), sampling 80 clips x 30 steps in batches of 8 at ~1.3 s
 * per step (~5 min), the VAE's evaluation (~1 min); measured on 2 busy cores.
 */
const OVERHEAD_MINUTES = { full: 12, quick: 0.8 };

export const DEMO_STAGES = ['data', 'vae', 'latents', 'dit', 'eval', 'report'] as const;
export type DemoStage = (typeof DEMO_STAGES)[number];

export interface DemoPlan {
  mode: 'full' | 'quick';
  vaeMinutes: number;
  ditMinutes: number;
  /** Training budgets plus the estimated rest. */
  totalMinutes: number;
}

/** The stage budgets: the mode's defaults, all scaled so that they add up to `budget` minutes when given. */
export function planDemo(o: { quick?: boolean; budget?: number } = {}): DemoPlan {
  const mode = o.quick ? 'quick' : 'full';
  const b = DEMO_BUDGETS[mode];
  if (o.budget !== undefined && !(o.budget > 0 && Number.isFinite(o.budget))) throw new RangeError(`planDemo: expected budget > 0 minutes, got ${String(o.budget)}`);
  const scale = o.budget === undefined ? 1 : o.budget / (b.vae + b.dit);
  const vaeMinutes = b.vae * scale, ditMinutes = b.dit * scale;
  return { mode, vaeMinutes, ditMinutes, totalMinutes: vaeMinutes + ditMinutes + OVERHEAD_MINUTES[mode] };
}

export interface StageRecord {
  seconds: number;
  finishedAt: string;
  summary?: unknown;
}

export interface DemoState {
  format: 'tessera-demo';
  version: 1;
  mode: 'full' | 'quick';
  seed: number;
  plan: DemoPlan;
  stages: Partial<Record<DemoStage, StageRecord>>;
}

export interface RunDemoOptions {
  /** The output directory (created). */
  out: string;
  quick?: boolean;
  /** Total training minutes, split between the VAE and the DiT in the default ratio. */
  budget?: number;
  seed?: number; // default 0
  /** Aborting stops the stage at its next step; a training stage saves a checkpoint first. */
  signal?: AbortSignal;
  /**
   * Called between steps of every stage, also inside synchronous work (where timers and
   * signal listeners cannot run): the CLI polls its Ctrl-C flag here and aborts `signal`.
   */
  poll?: () => void;
  /** Status lines (default: stdout). */
  log?: (line: string) => void;
  /** A progress display (default: cli/progress on stderr). */
  progress?: (label: string, total: number) => Progress;
  /** The device every stage runs on (default 'cpu'). */
  device?: Device;
  /** Training precision (default: bf16 on CUDA, fp32 elsewhere). */
  precision?: Precision;
  /** Minutes between the training stages' checkpoints (default 2; they also save every so many steps). */
  checkpointMinutes?: number;
  /** Spread every stage over the ranks of ts.distributed (default 'auto'; see the file header). */
  distributed?: DistributedOption;
}

export interface RunDemoResult {
  stopped: 'done' | 'aborted';
  /** The stage that was running when aborted, and the checkpoint it saved (if it trains). */
  stage?: DemoStage;
  checkpoint?: string | null;
  out: string;
}

const settingsOf = (mode: 'full' | 'quick'): { vae: DemoVAESettings; dit: DemoDiTSettings } => ({ vae: demoVAESettings[mode], dit: demoDiTSettings[mode] });

/** The files of a demo output directory. */
export const demoFiles = (out: string) => ({
  state: path.join(out, 'state.json'),
  data: path.join(out, 'data.gif'),
  vaeDir: path.join(out, 'vae'),
  vae: path.join(out, 'vae.safetensors'),
  dit: path.join(out, 'dit.safetensors'),
  ditTrained: path.join(out, 'dit', 'dit.safetensors'),
  ditLog: path.join(out, 'dit', 'checkpoint', 'log.jsonl'),
  samples: path.join(out, 'samples.gif'),
  grid: path.join(out, 'grid.png'),
  eval: path.join(out, 'eval.json'),
  metrics: path.join(out, 'metrics.json'),
  report: path.join(out, 'report.html'),
});

function readState(file: string): DemoState | null {
  if (!fs.existsSync(file)) return null;
  const s = JSON.parse(fs.readFileSync(file, 'utf8')) as DemoState;
  if (s.format !== 'tessera-demo') throw new Error(`runDemo: ${file} is not a tessera demo state file`);
  return s;
}

const clock = (minutes: number): string => new Date(Date.now() + minutes * 60000).toTimeString().slice(0, 5);

/** The plan as lines: stages, budgets, what is done already, and the ETA. */
export function describePlan(plan: DemoPlan, done: DemoStage[] = []): string[] {
  const m = (v: number): string => (v >= 1 ? `${v.toFixed(0)} min` : `${Math.round(v * 60)} s`);
  const mark = (s: DemoStage): string => (done.includes(s) ? ' (done)' : '');
  return [
    `plan (${plan.mode === 'quick' ? 'quick smoke run: tiny models and data, not quality' : 'full demo'}):`,
    `  1. data: Moving MNIST clips from the mnist package${mark('data')}`,
    `  2. VAE: train ${m(plan.vaeMinutes)}, then held-out PSNR/SSIM${mark('vae')}`,
    `  3. latents: encode the training clips${mark('latents')}`,
    `  4. DiT + text encoder: train ${m(plan.ditMinutes)}${mark('dit')}`,
    `  5. eval: sample held-out prompts, judge digit and direction${mark('eval')}`,
    `  6. report: metrics.json, report.html${mark('report')}`,
    `about ${m(plan.totalMinutes)} in all from the start; ETA ${clock(plan.totalMinutes * (1 - done.length / DEMO_STAGES.length))} if starting now`,
  ];
}

class Stopped extends Error {}

/**
 * encodeDemoLatents that stops after the shard in progress once `stop()` says so
 * (null then: the cache has no index, and the next run encodes it again).
 */
export function encodeLatentsUntil(o: Parameters<typeof encodeDemoLatents>[0] & { stop: () => boolean }): LatentCacheIndex | null {
  const dp = dataParallel('encodeLatentsUntil', o.distributed);
  try {
    return encodeDemoLatents({
      ...o,
      onProgress: (done, total) => {
        o.onProgress?.(done, total);
        if (done < total && dp.control(o.stop()).stop) throw new Stopped(); // every rank stops after the same shard
      },
    });
  } catch (e) {
    if (e instanceof Stopped) return null;
    throw e;
  }
}

/** Which model a safetensors file written by tessera holds (its config metadata), or null when it says neither. */
export function modelFileKind(file: string): 'vae' | 'dit' | null {
  let meta: Record<string, string>;
  try {
    meta = readSafetensorsHeader(file).metadata;
  } catch {
    return null; // (loading it reports what is wrong)
  }
  if ('tessera.vae.config' in meta) return 'vae';
  if ('tessera.dit.config' in meta) return 'dit';
  try {
    const c = JSON.parse(meta['tessera.pretrained.config'] ?? 'null') as Record<string, unknown> | null;
    return c && 'latentChannels' in c ? 'vae' : c && 'hiddenSize' in c ? 'dit' : null;
  } catch {
    return null;
  }
}

/** Whether a dit.safetensors is a savePretrained bundle (8-bit rows) rather than a demo's own file. */
function isPretrainedBundle(file: string): boolean {
  return 'tessera.pretrained.config' in readSafetensorsHeader(file).metadata;
}

/**
 * Loads vae.safetensors and dit.safetensors (with its sampling info) from a demo output
 * or a pretrained bundle (savePretrained: 8-bit rows, as in assets/pretrained/).
 */
export function loadDemoModels(dir: string, opts: { device?: Device } = {}): { vae: VideoVAE; dit: DiT; info: SamplingInfo } {
  const f = demoFiles(dir);
  for (const file of [f.vae, f.dit]) if (!fs.existsSync(file)) throw new Error(`no ${path.basename(file)} in ${dir} (expected a 'tessera demo' output or assets/pretrained/)`);
  // A model in the other's file (the two swapped, or one copied over the other) is named as such.
  const kinds = [modelFileKind(f.vae), modelFileKind(f.dit)];
  if (kinds[0] === 'dit' && kinds[1] === 'vae') throw new Error(`vae.safetensors in ${dir} holds a DiT and dit.safetensors a VAE: the two files are swapped`);
  if (kinds[0] === 'dit') throw new Error(`vae.safetensors in ${dir} holds a DiT, not a VAE`);
  if (kinds[1] === 'vae') throw new Error(`dit.safetensors in ${dir} holds a VAE, not a DiT`);
  if (isPretrainedBundle(f.dit)) {
    const { vae, dit, info } = loadPretrained(dir);
    if (opts.device !== undefined && opts.device !== 'cpu') (vae.to(opts.device), dit.to(opts.device));
    return { vae, dit, info };
  }
  const vae = VideoVAE.load(f.vae, { device: opts.device });
  try {
    return { vae, ...loadDemoDiT(f.dit, { device: opts.device }) };
  } catch (e) {
    vae.dispose();
    throw e;
  }
}


/** Runs (or resumes) the demo in o.out; see the file header. */
export async function runDemo(o: RunDemoOptions): Promise<RunDemoResult> {
  const out = path.resolve(o.out);
  const device = o.device === undefined ? 'cpu' : checkDevice('runDemo', 'device', o.device);
  const files = demoFiles(out);
  const seed = o.seed ?? 0;
  const dp = dataParallel('runDemo', o.distributed);
  const main = dp.isMain; // the rank that prints and writes
  const log = main ? (o.log ?? ((line: string) => console.log(line))) : () => {};
  const quiet = { update: () => {}, stop: () => {} };
  const bar = !main ? () => quiet : (o.progress ?? ((label: string, total: number) => defaultProgress(label, total)));
  const poll = o.poll ?? (() => {});
  const aborted = (): boolean => (poll(), dp.control(!!o.signal?.aborted).stop); // the same answer on every rank
  const plan = planDemo({ quick: o.quick, budget: o.budget });
  const settings = settingsOf(plan.mode);
  const distributed = o.distributed;

  let state = dp.fromRank0(() => {
    fs.mkdirSync(out, { recursive: true });
    return readState(files.state);
  });
  if (state && (state.mode !== plan.mode || state.seed !== seed))
    throw new Error(`${out} holds a ${state.mode} demo run with seed ${state.seed}; use another --out or remove it to start a ${plan.mode} run with seed ${seed}`);
  if (!state) state = { format: 'tessera-demo', version: 1, mode: plan.mode, seed, plan, stages: {} };
  state.plan = plan;
  if (main) writeJsonAtomic(files.state, state);
  const done = DEMO_STAGES.filter((s) => state!.stages[s]);
  for (const line of describePlan(plan, done)) log(line);
  if (done.length === DEMO_STAGES.length) {
    log(`all stages are complete; results in ${out} (remove it to run again)`);
    return { stopped: 'done', out };
  }
  if (done.length) log(`resuming after: ${done.join(', ')}`);

  const finish = (stage: DemoStage, t0: number, summary?: unknown): void => {
    state!.stages[stage] = { seconds: (Date.now() - t0) / 1000, finishedAt: new Date().toISOString(), summary };
    if (main) writeJsonAtomic(files.state, state);
  };
  const abort = (stage: DemoStage, checkpoint: string | null = null): RunDemoResult => ({ stopped: 'aborted', stage, checkpoint, out });

  // 1. data: a look at what the models train on (rank 0).
  if (!state.stages.data && main) {
    const t0 = Date.now();
    const { frames, size } = settings.vae;
    const data = movingMnistDataset(new MovingMNIST({ split: 'train', length: 8, frames, size, numDigits: 1, seed }));
    const captions = Array.from({ length: data.length }, (_, i) => data.get(i).caption ?? '');
    tidy(() => saveVideo(stackClips(data, data.length), files.data, { columns: 4 }));
    log(`data: Moving MNIST ${frames}x${size}x${size} clips, e.g. '${captions[0]}'; ${files.data}`);
    finish('data', t0, { captions });
  }

  // 2. VAE.
  let vae: VideoVAE | null = null;
  try {
    if (!state.stages.vae) {
      if (aborted()) return abort('vae');
      const t0 = Date.now();
      const p = lazyProgress('VAE', bar);
      const r = await trainDemoVAE({
        dir: files.vaeDir, settings: settings.vae, minutes: plan.vaeMinutes, seed, signal: o.signal, log: (l) => (p.stop(), log(l)), device, precision: o.precision, distributed,
        checkpointMinutes: o.checkpointMinutes,
        onStep: (i) => {
          poll();
          p.update(i.step, i.plannedSteps, { loss: i.loss });
        },
      });
      p.stop();
      if (r.stopped === 'aborted') {
        r.vae.dispose();
        return abort('vae', r.checkpoint);
      }
      vae = r.vae;
      if (main) vae.save(files.vae);
      const m = r.metrics!;
      finish('vae', t0, { psnr: m.psnr, ssim: m.ssim, blackBaseline: m.blackBaseline, steps: m.steps, trainSeconds: m.trainSeconds });
    }
    vae ??= VideoVAE.load(files.vae, { device });

    // 3. latents.
    if (!state.stages.latents) {
      if (aborted()) return abort('latents');
      const t0 = Date.now();
      const p = lazyProgress('latents', bar);
      const index = encodeLatentsUntil({ vae, dir: out, settings: settings.dit, seed, device, distributed, onProgress: (d, total) => p.update(d, total), stop: aborted });
      p.stop();
      if (!index || aborted()) return abort('latents');
      log(`latents: ${index.count} clips -> [${index.latentShape.join(', ')}] each, scaling factor ${index.scalingFactor.toFixed(3)}`);
      finish('latents', t0, { count: index.count, latentShape: index.latentShape, scalingFactor: index.scalingFactor });
    }

    // 4. DiT.
    if (!state.stages.dit) {
      if (aborted()) return abort('dit');
      const t0 = Date.now();
      const p = lazyProgress('DiT', bar);
      const r = await trainDemoDiT({
        dir: out, settings: settings.dit, minutes: plan.ditMinutes, seed, signal: o.signal, device, precision: o.precision, distributed,
        checkpointMinutes: o.checkpointMinutes, log: (l) => (p.stop(), log(l)),
        onStep: (s) => {
          poll();
          p.update(s.step, s.plannedSteps, { loss: s.loss });
        },
      });
      p.stop();
      if (r.stopped === 'aborted') return abort('dit', r.checkpoint);
      if (r.stopped === 'nan')
        throw new Error(`the DiT's loss became NaN at step ${r.steps}${r.checkpoint ? `; the last good checkpoint is ${r.checkpoint}` : ''}`);
      if (main) copyFileAtomic(r.model ?? files.ditTrained, files.dit); // the other ranks read it after the next aborted()
      log(`DiT: trained ${r.steps} steps in ${r.seconds.toFixed(0)} s (the timing probe estimated ${r.plannedSteps})`);
      finish('dit', t0, { steps: r.steps, plannedSteps: r.plannedSteps, seconds: r.seconds });
    }

    // 5. eval.
    if (!state.stages.eval) {
      if (aborted()) return abort('eval');
      const t0 = Date.now();
      log(`eval: sampling ${HELD_OUT_PROMPTS.length} held-out prompts`);
      const { dit, info: sampling } = loadDemoDiT(files.dit, { device });
      let report: AdherenceReport;
      const p = lazyProgress('eval', bar);
      try {
        report = await evaluateDemo({ vae, dit, info: sampling, settings: settings.dit, seed, gifPath: files.samples, distributed, onProgress: (d, t) => (poll(), p.update(d, t)) });
      } finally {
        p.stop();
        dit.dispose();
      }
      if (main) writeJsonAtomic(files.eval, report);
      if (main) writeGridPng(files.samples, files.grid);
      log(`eval: digit right ${pctText(report.digitAccuracy)} (chance 10%), direction right ${pctText(report.directionAccuracy)} (chance 12.5%), both ${pctText(report.jointAccuracy)}`);
      finish('eval', t0, { digitAccuracy: report.digitAccuracy, directionAccuracy: report.directionAccuracy, jointAccuracy: report.jointAccuracy });
    }
  } finally {
    vae?.dispose();
  }

  // 6. report (rank 0).
  if (!main) return { stopped: 'done', out };
  const t0 = Date.now();
  const metrics = demoMetrics(out, state);
  writeJsonAtomic(files.metrics, metrics);
  writeDemoReport(out, metrics);
  finish('report', t0);
  log(`wrote ${files.report}, ${files.metrics}, ${files.samples}, ${files.grid}, ${files.vae}, ${files.dit}`);
  return { stopped: 'done', out };
}

const pctText = (v: number): string => `${(100 * v).toFixed(1)}%`;

/** grid.png: the sample grid GIF's frames 0, 4, 8, ... left to right. */
function writeGridPng(gif: string, png: string): void {
  tidy(() => {
    const v = loadVideo(gif, { color: 'gray' }); // [1, T, H, W]
    const T = v.shape[1];
    saveVideo(v.slice(1, 0, T, 4), png);
  });
}

export interface DemoMetrics {
  version: string;
  mode: 'full' | 'quick';
  seed: number;
  plan: DemoPlan;
  stageSeconds: Partial<Record<DemoStage, number>>;
  vae: DemoVAEMetrics | null;
  dit: unknown;
  eval: Omit<AdherenceReport, 'gifPath'> | null;
  settings: { vae: DemoVAESettings; dit: DemoDiTSettings };
  machine: ReturnType<typeof info>;
}

function readJsonIf<T>(file: string): T | null {
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as T) : null;
}

function demoMetrics(out: string, state: DemoState): DemoMetrics {
  const files = demoFiles(out);
  const evaluation = readJsonIf<AdherenceReport>(files.eval);
  if (evaluation) delete evaluation.gifPath;
  return {
    version, mode: state.mode, seed: state.seed, plan: state.plan,
    stageSeconds: Object.fromEntries(Object.entries(state.stages).map(([k, v]) => [k, v!.seconds])),
    vae: readJsonIf<DemoVAEMetrics>(demoVAEFiles(files.vaeDir).metrics),
    dit: state.stages.dit?.summary ?? null,
    eval: evaluation,
    settings: settingsOf(state.mode),
    machine: info(),
  };
}

/** Writes <out>/report.html from the files of a demo run. */
export function writeDemoReport(out: string, metrics: DemoMetrics): void {
  const files = demoFiles(out);
  const v = metrics.vae;
  const numbers: [string, string][] = [];
  if (v) {
    numbers.push(['VAE held-out PSNR / SSIM', `${v.psnr.toFixed(2)} dB / ${v.ssim.toFixed(3)} (${v.heldOutClips} clips, ${v.weights} weights)`]);
    numbers.push(['all-black baseline PSNR / SSIM', `${v.blackBaseline.psnr.toFixed(2)} dB / ${v.blackBaseline.ssim.toFixed(3)}`]);
    numbers.push(['VAE training', `${v.steps} steps in ${v.trainSeconds.toFixed(0)} s`]);
  }
  const d = metrics.dit as { steps?: number; seconds?: number } | null;
  if (d?.steps !== undefined) numbers.push(['DiT training', `${d.steps} steps in ${(d.seconds ?? 0).toFixed(0)} s`]);
  for (const [k, s] of Object.entries(metrics.stageSeconds)) numbers.push([`stage ${k}`, `${s.toFixed(0)} s`]);
  writeReport(files.report, {
    title: `tessera ${metrics.version} demo (${metrics.mode})`,
    vaeLog: demoVAEFiles(files.vaeDir).log,
    ditLog: files.ditLog,
    reconGif: demoVAEFiles(files.vaeDir).recon,
    samplesGif: files.samples,
    prompts: metrics.eval?.perPrompt.map((p) => p.prompt) ?? HELD_OUT_PROMPTS,
    evaluation: metrics.eval as AdherenceReport | null,
    numbers,
    config: { mode: metrics.mode, seed: metrics.seed, plan: metrics.plan, settings: metrics.settings },
    machine: metrics.machine,
  });
}
