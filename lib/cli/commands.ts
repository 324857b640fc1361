// The CLI's long commands: demo (the whole pipeline), train-vae, train-dit, sample,
// eval. Each shows progress, turns Ctrl-C into a checkpoint and exit code 130
// (Interrupted), and reports bad input as one line (CliError).
import * as fs from 'fs';
import * as path from 'path';
import { Command, Option } from 'commander';
import { copyFileAtomic, writeJsonAtomic } from '../io/atomic';
import { saveVideo } from '../io/video';
import { VideoVAE } from '../models/vae';
import { checkDemoDiTCheckpoint, demoDiTSettings, evaluateDemo, HELD_OUT_PROMPTS, sampleVideos, trainDemoDiT } from '../demo/dit_stage';
import { demoFiles, encodeLatentsUntil, loadDemoModels, modelFileKind, runDemo } from '../demo/pipeline';
import { PRETRAINED_DIR } from '../demo/pretrained';
import { demoVAEFiles, demoVAESettings, RunMismatchError, trainDemoVAE } from '../demo/vae_stage';
import { parsePrompt } from '../demo/adherence';
import { DIRECTIONS } from '../data/moving_mnist';
import { tidy } from '../tensor';
import { onInterrupt } from './interrupt';
import {
  addCommon, applyRuntime, boundedInt, CliError, collect, CommonOptions, frameCount, frameSize, guidanceScale, Interrupted, minutesBudget,
  positiveInt, positiveNumber, precisionName, sampleSteps, trainSteps, withConfig,
} from './options';
import { lazyProgress, memoryLogger } from './progress';
import { isWritingRank } from '../train/distributed';
import { checkpointInfo, describeDifferences } from '../train/checkpoint';
import { NonFiniteLossError } from '../train/vae';
import { checkMemory, checkOutputVideo, checkPrompts, checkWritableDir, sampleBytes, vaeTrainBytes } from './checks';
import { folderSettings, trainFolderDiT, trainFolderVAE } from './folder';

/** Runs fn with a Ctrl-C signal; the timer is stopped afterwards. */
async function withInterrupt<T>(fn: (i: ReturnType<typeof onInterrupt>) => Promise<T>): Promise<T> {
  const i = onInterrupt();
  try {
    return await fn(i);
  } finally {
    i.dispose();
  }
}

const interrupted = (what: string, checkpoint: string | null | undefined): Interrupted =>
  new Interrupted(`interrupted during ${what}; ${checkpoint ? `checkpoint saved in ${checkpoint}` : 'nothing to save yet'}; rerun the same command to resume`);

/** Where the models come from, and how the user named it (for messages): --checkpoint, TESSERA_PRETRAINED, or the shipped model. */
interface ModelSource {
  dir: string;
  label: string;
}

/** The model directory of --checkpoint, or the shipped pretrained one (TESSERA_PRETRAINED overrides; a clear line when absent). */
function modelSource(checkpoint: string | undefined): ModelSource {
  if (checkpoint) {
    if (!fs.existsSync(checkpoint)) throw new CliError(`--checkpoint ${checkpoint}: no such directory`);
    return { dir: checkpoint, label: `--checkpoint ${checkpoint}` };
  }
  const env = process.env.TESSERA_PRETRAINED;
  if (env) {
    if (!fs.existsSync(env)) throw new CliError(`TESSERA_PRETRAINED=${env}: no such directory`);
    return { dir: env, label: `TESSERA_PRETRAINED=${env}` };
  }
  if (!fs.existsSync(path.join(PRETRAINED_DIR, 'dit.safetensors')))
    throw new CliError(`no pretrained model in ${PRETRAINED_DIR} (not shipped in this copy); train one with 'tessera demo' and pass --checkpoint out/`);
  return { dir: PRETRAINED_DIR, label: `the shipped model in ${PRETRAINED_DIR}` };
}

function loadModels(src: ModelSource, device: CommonOptions['device']): ReturnType<typeof loadDemoModels> {
  try {
    return loadDemoModels(src.dir, { device });
  } catch (e) {
    throw new CliError(`${src.label}: ${(e as Error).message}`);
  }
}

/** --minutes and --steps: one of them (neither: `minutes` of the default). */
function budgetOf(o: { minutes?: number; steps?: number }, defaultMinutes: number): { minutes?: number; steps?: number } {
  if (o.minutes !== undefined && o.steps !== undefined)
    throw new CliError(`--minutes ${o.minutes} and --steps ${o.steps} are exclusive: train for a time budget or for a number of steps`);
  return o.steps !== undefined ? { steps: o.steps } : { minutes: o.minutes ?? defaultMinutes };
}

/** A stage's checkpoint of other settings, as one line naming the flags that differ. */
function mismatchLine(e: RunMismatchError, out: string, remedy: string): CliError {
  const name = (k: string): string => (k === 'quick' ? `--quick ${e.what}` : k === 'full' ? `full ${e.what}` : `${e.what} of other settings`);
  const flags: Record<string, string> = { 'train.batchSize': '--batch', 'train.lr': '--lr', 'train.seed': '--seed' };
  const diffs = describeDifferences(e.differences.map((d) => ({ ...d, key: flags[d.key] ?? d.key.replace(/^(vae|dit|train)\./, '') })));
  const held = e.savedKind === e.wantedKind ? `a ${name(e.savedKind)} run (step ${e.step}) of other settings` : `a ${name(e.savedKind)} run (step ${e.step}); this run asks for a ${name(e.wantedKind)}`;
  return new CliError(`--out ${out} holds ${held}: ${diffs}; ${remedy}`);
}

/** A NaN in VAE training as the flag that likely caused it (`defaultLr` null: --lr was not given); other errors as they are. */
function nanLine(e: unknown, lr: number, defaultLr: number | null): unknown {
  if (!(e instanceof NonFiniteLossError)) return e;
  return new CliError(`train-vae: ${e.what} at step ${e.step} with --lr ${lr}${defaultLr === null ? ' (the default)' : ` (the default is ${defaultLr})`}: lower --lr${e.checkpoint ? `; the last good checkpoint ${e.checkpoint} is kept` : ''}`);
}

/** --steps N against the steps a checkpoint already holds. */
function checkStepsAhead(steps: number | undefined, checkpointDir: string, out: string, remedy: string): void {
  const ck = steps === undefined ? null : checkpointInfo(checkpointDir);
  if (ck && ck.step > steps!) throw new CliError(`--steps ${steps}: --out ${out} holds a run of ${ck.step} steps already; ${remedy}`);
}

/** Whether every value of a tensor is a number (one read). */
const allFinite = (t: ReturnType<typeof sampleVideos>): boolean => tidy(() => Number.isFinite(t.sum().item()));

interface DemoOptions extends CommonOptions {
  quick?: boolean;
  budget?: number;
  precision?: 'fp32' | 'bf16';
  checkpointMinutes?: number;
}
/** --data DIR (a folder of the user's videos; ./folder.ts), --fps, --strict. */
interface DataOptions {
  data?: string;
  fps?: number;
  strict?: boolean;
}
interface TrainVAEOptions extends CommonOptions, DataOptions {
  precision?: 'fp32' | 'bf16';
  quick?: boolean;
  minutes?: number;
  steps?: number;
  checkpointMinutes?: number;
  batch?: number;
  lr?: number;
  eval?: number;
  fresh?: boolean;
}
interface TrainDiTOptions extends CommonOptions, DataOptions {
  precision?: 'fp32' | 'bf16';
  quick?: boolean;
  minutes?: number;
  steps?: number;
  checkpointMinutes?: number;
  vae?: string;
}
interface SampleOptions extends CommonOptions {
  checkpoint?: string;
  prompt: string[];
  frames: number;
  size: [number, number];
  steps: number;
  cfg: number;
}
interface EvalOptions extends CommonOptions {
  checkpoint?: string;
  quick?: boolean;
  prompt: string[];
  samplesPerPrompt: number;
  steps?: number;
  cfg?: number;
}

export function addTrainingCommands(program: Command): void {
  const settingsOpts = (cmd: Command): Command => cmd.option('--quick', 'tiny models and data: a smoke run, not quality');
  const dataOpts = (cmd: Command): Command =>
    cmd
      .option('--data <dir>', "train on a folder of your videos and images (needs ffmpeg; captions from .txt beside each file or captions.jsonl) instead of Moving MNIST; --out defaults to 'out'")
      .option('--fps <n>', 'with --data: frames per second of the training clips', positiveNumber('fps'), 8)
      .option('--strict', 'with --data: fail on an unreadable file instead of skipping it');
  const precisionOpt = (cmd: Command): Command =>
    cmd.option('--precision <p>', 'fp32, or bf16 (CUDA: autocast on tensor cores, the default there)', precisionName);
  const checkpointOpt = (cmd: Command): Command =>
    cmd.option('--checkpoint-minutes <m>', 'minutes between checkpoints (default 2; also every so many steps): a kill loses at most this much', minutesBudget('checkpoint-minutes'));
  // A training run's length: a time budget (total: a rerun with a larger one extends the run) or a step count.
  const budgetOpts = (cmd: Command, minutes: number): Command =>
    cmd
      .option('--minutes <m>', `training minutes of the run in all (default ${minutes}; a rerun with more extends it; with --data a rerun trains this much more)`, minutesBudget('minutes', 'about 3 weeks; a rerun with a larger budget extends the run'))
      .option('--steps <n>', 'train exactly N steps in all instead (no timing; a seed and N give the same model); exclusive with --minutes', trainSteps);

  const demo = addCommon(
    checkpointOpt(precisionOpt(settingsOpts(program.command('demo'))))
      .description('the whole path on Moving MNIST: data, VAE, latents, text encoder + DiT, samples, evaluation, report.html (resumable)')
      .option('--budget <minutes>', 'total training minutes (default 80; --quick 0.9), split VAE:DiT 1:3', minutesBudget('budget')),
  );
  demo.action(async (o: DemoOptions, cmd: Command) => {
    const opts = withConfig(cmd, o);
    applyRuntime(opts);
    checkWritableDir(opts.out ?? 'out');
    const r = await withInterrupt((i) =>
      runDemo({
        out: opts.out ?? 'out', quick: opts.quick, budget: opts.budget, seed: opts.seed, signal: i.signal, poll: i.poll, device: opts.device,
        precision: opts.precision, checkpointMinutes: opts.checkpointMinutes,
      }),
    );
    if (r.stopped === 'aborted') throw interrupted(`the ${r.stage} stage`, r.checkpoint);
    console.log(`open ${path.join(path.resolve(r.out), 'report.html')}`);
  });

  addCommon(
    checkpointOpt(budgetOpts(dataOpts(precisionOpt(settingsOpts(program.command('train-vae')))), 20))
      .description('train the demo video VAE on Moving MNIST for a time budget or a number of steps; held-out PSNR/SSIM, recon.gif (a rerun resumes, or extends a finished run)')
      .option('--batch <n>', 'clips per step', positiveInt('batch'))
      .option('--lr <x>', 'peak learning rate', positiveNumber('lr'))
      .option('--eval <n>', 'held-out clips to evaluate', boundedInt('eval', 10000, 'the held-out clips move the 1,005 MNIST test digits: 10,000 show each about 10 times'))
      .option('--fresh', 'start over instead of resuming (the previous run stays until the new one has a checkpoint)'),
  ).action(async (o: TrainVAEOptions, cmd: Command) => {
    const opts = withConfig(cmd, o);
    applyRuntime(opts);
    const budget = budgetOf(opts, 20);
    if (opts.data) return trainVAEOnData(opts, budget);
    const base = demoVAESettings[opts.quick ? 'quick' : 'full'];
    const settings = { ...base, batchSize: opts.batch ?? base.batchSize, lr: opts.lr ?? base.lr, evalClips: opts.eval ?? base.evalClips };
    const { crop, batchSize } = settings;
    checkMemory(vaeTrainBytes(settings.vae, batchSize, crop.frames, crop.size, crop.size),
      `--batch ${batchSize}: a training step of the ${opts.quick ? 'quick' : 'full'} VAE on ${batchSize} clips of ${crop.frames}x${crop.size}x${crop.size}`, opts.device);
    const dir = opts.out ?? path.join('out', 'vae');
    checkWritableDir(dir);
    const files = demoVAEFiles(dir);
    if (!opts.fresh) checkStepsAhead(budget.steps, files.checkpoint, dir, 'pass a larger --steps to extend it, or --fresh to start over');
    const bar = lazyProgress('VAE');
    const mem = memoryLogger('VAE');
    let r;
    try {
      r = await withInterrupt((i) =>
        trainDemoVAE({
          dir, settings, ...budget, checkpointMinutes: opts.checkpointMinutes, seed: opts.seed, resume: opts.fresh ? false : 'plan', signal: i.signal,
          log: (l) => (bar.stop(), console.log(l)), device: opts.device, precision: opts.precision,
          onStep: (s) => (bar.update(s.step, s.plannedSteps, { loss: s.loss }), mem(s.step)),
        }),
      );
    } catch (e) {
      bar.stop();
      if (e instanceof RunMismatchError) throw mismatchLine(e, dir, 'pass --fresh to replace it, or another --out');
      throw nanLine(e, settings.lr, opts.lr === undefined ? null : base.lr);
    }
    bar.stop();
    r.vae.dispose();
    if (r.stopped === 'aborted') throw interrupted('VAE training', r.checkpoint);
    if (r.upToDate) {
      const m = r.metrics!;
      console.log(`${dir} holds a finished run: ${m.steps} steps in ${m.trainSeconds.toFixed(0)} s${m.minutes !== null ? ` (a ${m.minutes} min budget)` : ''}, held-out PSNR ${m.psnr.toFixed(2)} dB; nothing to train: a larger ${budget.steps !== undefined ? '--steps' : '--minutes'} extends it, --fresh starts over`);
      return;
    }
    console.log(`wrote ${files.weights}, ${files.metrics}, ${files.recon}`);
  });

  addCommon(
    checkpointOpt(budgetOpts(dataOpts(precisionOpt(settingsOpts(program.command('train-dit')))), 60))
      .description('encode Moving MNIST with a trained VAE, then train the text encoder + DiT for a time budget or a number of steps (a rerun resumes, or extends a finished run)')
      .option('--vae <file>', 'the VAE (vae.safetensors; default <out>/vae.safetensors)'),
  ).action(async (o: TrainDiTOptions, cmd: Command) => {
    const opts = withConfig(cmd, o);
    applyRuntime(opts);
    const budget = budgetOf(opts, 60);
    if (opts.data) return trainDiTOnData(opts, budget);
    const out = opts.out ?? 'out';
    const files = demoFiles(out);
    const vaeFile = opts.vae ?? files.vae;
    const mem = memoryLogger('DiT');
    const vae = loadVAEFile(vaeFile, opts.device, `no such file (train one with 'tessera train-vae' or 'tessera demo')`);
    const settings = demoDiTSettings[opts.quick ? 'quick' : 'full'];
    const ckDir = path.join(out, 'dit', 'checkpoint');
    let r;
    try {
      checkWritableDir(out);
      checkDemoDiTCheckpoint(out, settings, vae.config.latentChannels, opts.seed ?? 0); // (before encoding the latents)
      checkStepsAhead(budget.steps, ckDir, out, `pass a larger --steps to extend it, or another --out`);
      r = await withInterrupt(async (i) => {
        const enc = lazyProgress('latents');
        const index = encodeLatentsUntil({ vae, dir: out, settings, seed: opts.seed, device: opts.device, onProgress: (d, t) => enc.update(d, t), stop: () => i.interrupted });
        enc.stop();
        if (!index || i.interrupted) return null;
        const bar = lazyProgress('DiT');
        try {
          return await trainDemoDiT({
            dir: out, settings, ...budget, checkpointMinutes: opts.checkpointMinutes, seed: opts.seed, signal: i.signal, device: opts.device, precision: opts.precision,
            log: (l) => (bar.stop(), console.log(l)), onStep: (s) => (i.poll(), bar.update(s.step, s.plannedSteps, { loss: s.loss }), mem(s.step)),
          });
        } finally {
          bar.stop();
        }
      });
    } catch (e) {
      if (e instanceof RunMismatchError) throw mismatchLine(e, out, `use another --out, or remove ${path.join(out, 'dit')} to start over`);
      throw e;
    } finally {
      vae.dispose();
    }
    if (!r) throw new Interrupted('interrupted during latent encoding; nothing to save (the encoding starts again on the next run)');
    if (r.stopped === 'aborted') throw interrupted('DiT training', r.checkpoint);
    if (r.stopped === 'nan') throw new CliError(`the DiT's loss became NaN at step ${r.steps}${r.checkpoint ? `; the last good checkpoint is ${r.checkpoint}` : ''}`);
    if (isWritingRank()) {
      copyFileAtomic(r.model ?? files.ditTrained, files.dit);
      if (path.resolve(vaeFile) !== path.resolve(files.vae)) copyFileAtomic(vaeFile, files.vae);
    }
    const took = `${r.steps} steps in ${r.seconds.toFixed(0)} s`;
    if (r.upToDate) console.log(`${out} holds a finished DiT run: ${took}; nothing to train (a larger --minutes or --steps extends it); wrote ${files.dit}`);
    else console.log(`trained ${took}${r.resumedFrom ? ` (this run: ${r.steps - r.resumedFrom} steps in ${r.sessionSeconds.toFixed(0)} s, from step ${r.resumedFrom})` : ''}; wrote ${files.dit} (sample with --checkpoint ${out})`);
  });

  addCommon(
    program
      .command('sample')
      .description('text to video: sample clips for prompts with a trained (or the shipped pretrained) model')
      .option('--checkpoint <dir>', "a directory with vae.safetensors and dit.safetensors (a 'tessera demo' output); default the shipped pretrained model")
      .option('--prompt <text>', "a prompt, e.g. 'the digit 7 moves right' (repeat for several)", collect, [])
      .option('--frames <n>', 'frames per clip (1 + 4k)', frameCount, 17)
      .option('--size <HxW>', 'frame size', frameSize, [64, 64] as [number, number])
      .option('--steps <n>', 'sampling steps', sampleSteps, 50)
      .option('--cfg <scale>', 'classifier-free guidance scale', guidanceScale, 4),
    'output file: .gif, .png, .mp4 or .webm (.mp4 and .webm need ffmpeg; default sample.gif)',
    '--out <file>',
  ).action((o: SampleOptions, cmd: Command) => {
    const opts = withConfig(cmd, o);
    applyRuntime(opts);
    if (!opts.prompt.length) throw new CliError(`sample: give at least one --prompt, e.g. --prompt "the digit 7 moves right"`);
    const file = opts.out ?? 'sample.gif';
    checkOutputVideo(file); // before any work: a folder we cannot write, or .mp4 without ffmpeg
    if (!isWritingRank()) return; // under mpirun: rank 0 samples and writes; the others have nothing to do
    const { vae, dit, info } = loadModels(modelSource(opts.checkpoint), opts.device);
    try {
      checkPrompts(dit, opts.prompt);
      const [height, width] = opts.size;
      const B = opts.prompt.length;
      checkClip(vae, opts.frames, height, width);
      checkMemory(sampleBytes(vae.config, dit.config, B, opts.frames, height, width),
        `sampling ${B} clip${B > 1 ? 's' : ''} of ${opts.frames}x${height}x${width} (--frames ${opts.frames}, --size ${height}x${width}${B > 1 ? `, ${B} prompts` : ''})`, opts.device);
      console.log(`sampling ${B} clip${B > 1 ? 's' : ''} of ${opts.frames}x${height}x${width}, ${opts.steps} steps, cfg ${opts.cfg}`);
      const bar = lazyProgress('sampling');
      tidy(() => {
        const video = sampleVideos({
          vae, dit, info, prompts: opts.prompt, frames: opts.frames, height, width, steps: opts.steps, cfgScale: opts.cfg, seed: opts.seed,
          onStep: (k, total) => bar.update(k, total),
        });
        bar.stop();
        if (!allFinite(video)) throw new CliError(`sampling gave NaN values with --cfg ${opts.cfg} and --steps ${opts.steps}; nothing written (guidance scales of 1 to 10 are usual)`);
        saveVideo(video, file, { fps: 8 });
      });
      console.log(`wrote ${file}`);
    } finally {
      vae.dispose();
      dit.dispose();
    }
  });

  addCommon(
    settingsOpts(program.command('eval'))
      .description('prompt adherence: sample prompts (default the held-out ones), judge digit and direction, write eval.json and samples.gif')
      .option('--checkpoint <dir>', 'a directory with vae.safetensors and dit.safetensors; default the shipped pretrained model')
      .option('--prompt <text>', 'a prompt (repeat for several; default the held-out prompts)', collect, [])
      .addOption(new Option('--samples-per-prompt <n>', 'samples per prompt').argParser(positiveInt('samples-per-prompt')).default(1))
      .option('--steps <n>', 'sampling steps (default 30; --quick 4)', sampleSteps)
      .option('--cfg <scale>', 'classifier-free guidance scale (default 4; --quick 2)', guidanceScale),
  ).action(async (o: EvalOptions, cmd: Command) => {
    const opts = withConfig(cmd, o);
    applyRuntime(opts);
    const out = opts.out ?? path.join('out', 'eval');
    checkWritableDir(out);
    const { vae, dit, info } = loadModels(modelSource(opts.checkpoint), opts.device);
    try {
      const gifPath = path.join(out, 'samples.gif');
      const prompts = opts.prompt.length ? opts.prompt : HELD_OUT_PROMPTS;
      // One rule with sample: every word known to the model; then a caption eval can judge.
      checkPrompts(dit, prompts);
      for (const p of prompts) {
        try {
          parsePrompt(p);
        } catch {
          throw new CliError(`--prompt '${p}': eval judges captions 'the digit <0-9> moves <direction>' (directions: ${DIRECTIONS.join(', ')}); sample any prompt with 'tessera sample'`);
        }
      }
      const settings = demoDiTSettings[opts.quick ? 'quick' : 'full'];
      const n = prompts.length * opts.samplesPerPrompt;
      const { frames, size } = settings;
      // Every sample is kept for samples.gif (float32 clips, then their concatenation), beside a batch of 8 being sampled.
      checkMemory(2 * n * frames * size * size * 4 + sampleBytes(vae.config, dit.config, Math.min(8, n), frames, size, size),
        `--samples-per-prompt ${opts.samplesPerPrompt}: ${n} samples of ${frames}x${size}x${size} for samples.gif`, opts.device);
      const bar = lazyProgress('eval');
      let report;
      try {
        report = await evaluateDemo({
          vae, dit, info, settings, prompts, samplesPerPrompt: opts.samplesPerPrompt,
          steps: opts.steps, cfgScale: opts.cfg, seed: opts.seed, gifPath, onProgress: (d, t) => bar.update(d, t),
        });
      } finally {
        bar.stop();
      }
      if (isWritingRank()) writeJsonAtomic(path.join(out, 'eval.json'), report); // (the batches were spread over the ranks)
      const pct = (v: number): string => `${(100 * v).toFixed(1)}%`;
      for (const p of report.perPrompt) console.log(`${p.prompt.padEnd(48)} digit ${pct(p.digitAccuracy).padStart(6)}  direction ${pct(p.directionAccuracy).padStart(6)}`);
      console.log(`${report.samples} samples: digit ${pct(report.digitAccuracy)} (chance 10%), direction ${pct(report.directionAccuracy)} (chance 12.5%), both ${pct(report.jointAccuracy)}`);
      console.log(`wrote ${path.join(out, 'eval.json')}, ${gifPath}`);
    } finally {
      vae.dispose();
      dit.dispose();
    }
  });
}

/**
 * The total of a progress bar: by steps, those asked; by time, the steps the budget will
 * take at the pace so far (so the total follows the budget, and ETA is the time left).
 */
function budgetPace(budget: { minutes?: number; steps?: number }): (step: number) => number {
  if (budget.steps !== undefined) return () => budget.steps!;
  let first = -1, t0 = 0;
  return (step) => {
    if (first < 0) (first = step - 1), (t0 = Date.now());
    const secs = Math.max(1e-3, (Date.now() - t0) / 1000);
    return Math.max(step, Math.round(first + ((step - first) * budget.minutes! * 60) / secs));
  };
}

/** A clip of frames x height x width the VAE can encode and decode, or a CliError naming --frames and --size. */
function checkClip(vae: VideoVAE, frames: number, height: number, width: number): void {
  try {
    vae.latentShape([1, vae.config.inChannels, frames, height, width]);
  } catch {
    const { temporalCompression: ft, spatialCompression: fs_ } = vae.config;
    throw new CliError(`--frames ${frames} --size ${height}x${width}: the model's VAE takes 1 + ${ft}k frames and sizes that are multiples of ${fs_}`);
  }
}

/** The VAE of --vae (or <out>/vae.safetensors), with one line when it is missing, not a VAE, or unreadable. */
function loadVAEFile(file: string, device: CommonOptions['device'], missing: string): VideoVAE {
  if (!fs.existsSync(file)) throw new CliError(`--vae ${file}: ${missing}`);
  if (modelFileKind(file) === 'dit') throw new CliError(`--vae ${file}: holds a DiT, not a VAE`);
  try {
    return VideoVAE.load(file, { device });
  } catch (e) {
    throw new CliError(`--vae ${file}: ${(e as Error).message}`);
  }
}

/** train-vae --data DIR (see ./folder.ts). */
async function trainVAEOnData(opts: TrainVAEOptions, budget: { minutes?: number; steps?: number }): Promise<void> {
  const out = opts.out ?? 'out';
  const s = folderSettings[opts.quick ? 'quick' : 'full'];
  const batch = opts.batch ?? s.vaeBatch, clip = s.vaeClip;
  checkMemory(vaeTrainBytes({ ...s.vae, inChannels: 3 }, batch, clip.frames, clip.size, clip.size),
    `--batch ${batch}: a training step of the ${opts.quick ? 'quick' : 'full'} VAE on ${batch} clips of ${clip.frames}x${clip.size}x${clip.size}`, opts.device);
  checkWritableDir(out);
  const bar = lazyProgress('VAE');
  const pace = budgetPace(budget);
  const r = await withInterrupt((i) =>
    trainFolderVAE({
      data: opts.data!, out, quick: opts.quick, ...budget, checkpointMinutes: opts.checkpointMinutes, seed: opts.seed, device: opts.device, precision: opts.precision, fps: opts.fps,
      strict: opts.strict, batch: opts.batch, lr: opts.lr, fresh: opts.fresh, signal: i.signal, log: (l) => (bar.stop(), console.log(l)),
      onStep: (s) => (i.poll(), bar.update(s.step, pace(s.step), { loss: s.loss })),
    }),
  ).catch((e) => {
    throw nanLine(e, opts.lr ?? s.vaeLr, opts.lr === undefined ? null : s.vaeLr);
  });
  bar.stop();
  if (r.stopped === 'aborted') throw interrupted('VAE training', r.checkpoint);
}

/** train-dit --data DIR (see ./folder.ts). */
async function trainDiTOnData(opts: TrainDiTOptions, budget: { minutes?: number; steps?: number }): Promise<void> {
  const out = opts.out ?? 'out';
  const vaeFile = opts.vae ?? path.join(out, 'vae.safetensors');
  const vae = loadVAEFile(vaeFile, opts.device, `no such file (train one with 'tessera train-vae --data ${opts.data} --out ${out}')`);
  try {
    checkWritableDir(out);
    const enc = lazyProgress('latents');
    const bar = lazyProgress('DiT');
    const pace = budgetPace(budget);
    const r = await withInterrupt((i) =>
      trainFolderDiT({
        data: opts.data!, out, quick: opts.quick, ...budget, checkpointMinutes: opts.checkpointMinutes, seed: opts.seed, device: opts.device, precision: opts.precision, fps: opts.fps,
        strict: opts.strict, vae, vaeId: `${path.resolve(vaeFile)} ${fs.statSync(vaeFile).size} ${fs.statSync(vaeFile).mtimeMs}`, signal: i.signal, poll: i.poll,
        log: (l) => (enc.stop(), bar.stop(), console.log(l)),
        onEncode: (d, t) => enc.update(d, t), onStep: (s) => bar.update(s.step, pace(s.step), { loss: s.loss }),
      }),
    );
    enc.stop();
    bar.stop();
    if (r.stopped === 'aborted') throw interrupted(r.steps ? 'DiT training' : 'latent encoding', r.checkpoint);
    if (r.stopped === 'nan') throw new CliError(`the DiT's loss became NaN at step ${r.steps}${r.checkpoint ? `; the last good checkpoint is ${r.checkpoint}` : ''}`);
    if (path.resolve(vaeFile) !== path.resolve(path.join(out, 'vae.safetensors'))) copyFileAtomic(vaeFile, path.join(out, 'vae.safetensors'));
    console.log(`sample with: tessera sample --checkpoint ${out} --prompt "..."`);
  } finally {
    vae.dispose();
  }
}
