// The CLI's long commands: demo (the whole pipeline), train-vae, train-dit, sample,
// eval. Each shows progress, turns Ctrl-C into a checkpoint and exit code 130
// (Interrupted), and reports bad input as one line (CliError).
import * as fs from 'fs';
import * as path from 'path';
import { Command, Option } from 'commander';
import { copyFileAtomic, writeJsonAtomic } from '../io/atomic';
import { saveVideo } from '../io/video';
import { VideoVAE } from '../models/vae';
import { demoDiTSettings, evaluateDemo, HELD_OUT_PROMPTS, sampleVideos, trainDemoDiT } from '../demo/dit_stage';
import { demoFiles, encodeLatentsUntil, loadDemoModels, runDemo } from '../demo/pipeline';
import { PRETRAINED_DIR } from '../demo/pretrained';
import { demoVAEFiles, demoVAESettings, trainDemoVAE } from '../demo/vae_stage';
import { tidy } from '../tensor';
import { onInterrupt } from './interrupt';
import {
  addCommon, applyRuntime, CliError, collect, CommonOptions, frameCount, frameSize, Interrupted, positiveInt, positiveNumber, precisionName,
  withConfig,
} from './options';
import { lazyProgress } from './progress';
import { isWritingRank } from '../train/distributed';
import { trainFolderDiT, trainFolderVAE } from './folder';

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

/** The model directory of --checkpoint, or the shipped pretrained one (TESSERA_PRETRAINED overrides; a clear line when absent). */
function modelDir(checkpoint: string | undefined): string {
  if (checkpoint) {
    if (!fs.existsSync(checkpoint)) throw new CliError(`--checkpoint ${checkpoint}: no such directory`);
    return checkpoint;
  }
  const dir = process.env.TESSERA_PRETRAINED || PRETRAINED_DIR;
  if (!fs.existsSync(path.join(dir, 'dit.safetensors')))
    throw new CliError(`no pretrained model in ${dir} (not shipped in this copy); train one with 'tessera demo' and pass --checkpoint out/`);
  return dir;
}

function loadModels(dir: string, device: CommonOptions['device']): ReturnType<typeof loadDemoModels> {
  try {
    return loadDemoModels(dir, { device });
  } catch (e) {
    throw new CliError(`--checkpoint ${dir}: ${(e as Error).message}`);
  }
}

interface DemoOptions extends CommonOptions {
  quick?: boolean;
  budget?: number;
  precision?: 'fp32' | 'bf16';
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
  minutes: number;
  batch?: number;
  lr?: number;
  eval?: number;
  fresh?: boolean;
}
interface TrainDiTOptions extends CommonOptions, DataOptions {
  precision?: 'fp32' | 'bf16';
  quick?: boolean;
  minutes: number;
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

  const demo = addCommon(
    precisionOpt(settingsOpts(program.command('demo')))
      .description('the whole path on Moving MNIST: data, VAE, latents, text encoder + DiT, samples, evaluation, report.html (resumable)')
      .option('--budget <minutes>', 'total training minutes (default 80; --quick 0.9), split VAE:DiT 1:3', positiveNumber('budget')),
  );
  demo.action(async (o: DemoOptions, cmd: Command) => {
    const opts = withConfig(cmd, o);
    applyRuntime(opts);
    const r = await withInterrupt((i) =>
      runDemo({
        out: opts.out ?? 'out', quick: opts.quick, budget: opts.budget, seed: opts.seed, signal: i.signal, poll: i.poll, device: opts.device,
        precision: opts.precision,
      }),
    );
    if (r.stopped === 'aborted') throw interrupted(`the ${r.stage} stage`, r.checkpoint);
    console.log(`open ${path.join(path.resolve(r.out), 'report.html')}`);
  });

  addCommon(
    dataOpts(precisionOpt(settingsOpts(program.command('train-vae'))))
      .description('train the demo video VAE on Moving MNIST for a time budget; held-out PSNR/SSIM, recon.gif (a rerun resumes)')
      .option('--minutes <m>', 'training budget', positiveNumber('minutes'), 20)
      .option('--batch <n>', 'clips per step', positiveInt('batch'))
      .option('--lr <x>', 'peak learning rate', positiveNumber('lr'))
      .option('--eval <n>', 'held-out clips to evaluate', positiveInt('eval'))
      .option('--fresh', 'replace an existing checkpoint instead of resuming it'),
  ).action(async (o: TrainVAEOptions, cmd: Command) => {
    const opts = withConfig(cmd, o);
    applyRuntime(opts);
    if (opts.data) return trainVAEOnData(opts);
    const base = demoVAESettings[opts.quick ? 'quick' : 'full'];
    const settings = { ...base, batchSize: opts.batch ?? base.batchSize, lr: opts.lr ?? base.lr, evalClips: opts.eval ?? base.evalClips };
    const dir = opts.out ?? path.join('out', 'vae');
    const bar = lazyProgress('VAE');
    const r = await withInterrupt((i) =>
      trainDemoVAE({
        dir, settings, minutes: opts.minutes, seed: opts.seed, resume: opts.fresh ? false : 'plan', signal: i.signal, log: (l) => (bar.stop(), console.log(l)),
        device: opts.device, precision: opts.precision,
        onStep: (s) => bar.update(s.step, s.plannedSteps, { loss: s.loss }),
      }),
    );
    bar.stop();
    r.vae.dispose();
    if (r.stopped === 'aborted') throw interrupted('VAE training', r.checkpoint);
    const f = demoVAEFiles(dir);
    console.log(`wrote ${f.weights}, ${f.metrics}, ${f.recon}`);
  });

  addCommon(
    dataOpts(precisionOpt(settingsOpts(program.command('train-dit'))))
      .description('encode Moving MNIST with a trained VAE, then train the text encoder + DiT for a time budget (a rerun resumes)')
      .option('--vae <file>', 'the VAE (vae.safetensors; default <out>/vae.safetensors)')
      .option('--minutes <m>', 'training budget', positiveNumber('minutes'), 60),
  ).action(async (o: TrainDiTOptions, cmd: Command) => {
    const opts = withConfig(cmd, o);
    applyRuntime(opts);
    if (opts.data) return trainDiTOnData(opts);
    const out = opts.out ?? 'out';
    const files = demoFiles(out);
    const vaeFile = opts.vae ?? files.vae;
    if (!fs.existsSync(vaeFile)) throw new CliError(`--vae ${vaeFile}: no such file (train one with 'tessera train-vae' or 'tessera demo')`);
    let vae: VideoVAE;
    try {
      vae = VideoVAE.load(vaeFile, { device: opts.device });
    } catch (e) {
      throw new CliError(`--vae ${vaeFile}: ${(e as Error).message}`);
    }
    const settings = demoDiTSettings[opts.quick ? 'quick' : 'full'];
    const r = await withInterrupt(async (i) => {
      try {
        const enc = lazyProgress('latents');
        const index = encodeLatentsUntil({ vae, dir: out, settings, seed: opts.seed, device: opts.device, onProgress: (d, t) => enc.update(d, t), stop: () => i.interrupted });
        enc.stop();
        if (!index || i.interrupted) return null;
        const bar = lazyProgress('DiT');
        const res = await trainDemoDiT({
          dir: out, settings, minutes: opts.minutes, seed: opts.seed, signal: i.signal, device: opts.device, precision: opts.precision,
          onStep: (s) => (i.poll(), bar.update(s.step, s.plannedSteps, { loss: s.loss })),
        });
        bar.stop();
        return res;
      } finally {
        vae.dispose();
      }
    });
    if (!r) throw new Interrupted('interrupted during latent encoding; nothing to save (the encoding starts again on the next run)');
    if (r.stopped === 'aborted') throw interrupted('DiT training', r.checkpoint);
    if (r.stopped === 'nan') throw new CliError(`the DiT's loss became NaN at step ${r.steps}${r.checkpoint ? `; the last good checkpoint is ${r.checkpoint}` : ''}`);
    if (isWritingRank()) {
      copyFileAtomic(r.model ?? files.ditTrained, files.dit);
      if (path.resolve(vaeFile) !== path.resolve(files.vae)) copyFileAtomic(vaeFile, files.vae);
    }
    console.log(`trained ${r.steps} steps in ${r.seconds.toFixed(0)} s; wrote ${files.dit} (sample with --checkpoint ${out})`);
  });

  addCommon(
    program
      .command('sample')
      .description('text to video: sample clips for prompts with a trained (or the shipped pretrained) model')
      .option('--checkpoint <dir>', "a directory with vae.safetensors and dit.safetensors (a 'tessera demo' output); default the shipped pretrained model")
      .option('--prompt <text>', "a prompt, e.g. 'the digit 7 moves right' (repeat for several)", collect, [])
      .option('--frames <n>', 'frames per clip (1 + 4k)', frameCount, 17)
      .option('--size <HxW>', 'frame size', frameSize, [64, 64] as [number, number])
      .option('--steps <n>', 'sampling steps', positiveInt('steps'), 50)
      .option('--cfg <scale>', 'classifier-free guidance scale', positiveNumber('cfg'), 4),
    'output file: .gif, .png, .mp4 or .webm (default sample.gif)',
  ).action((o: SampleOptions, cmd: Command) => {
    const opts = withConfig(cmd, o);
    applyRuntime(opts);
    if (!opts.prompt.length) throw new CliError(`sample: give at least one --prompt, e.g. --prompt "the digit 7 moves right"`);
    const file = opts.out ?? 'sample.gif';
    if (!/\.(gif|png|mp4|webm)$/i.test(file)) throw new CliError(`--out ${file}: expected a .gif, .png, .mp4 or .webm file`);
    if (!isWritingRank()) return; // under mpirun: rank 0 samples and writes; the others have nothing to do
    const { vae, dit, info } = loadModels(modelDir(opts.checkpoint), opts.device);
    try {
      const [height, width] = opts.size;
      console.log(`sampling ${opts.prompt.length} clip${opts.prompt.length > 1 ? 's' : ''} of ${opts.frames}x${height}x${width}, ${opts.steps} steps, cfg ${opts.cfg}`);
      tidy(() => {
        const video = sampleVideos({ vae, dit, info, prompts: opts.prompt, frames: opts.frames, height, width, steps: opts.steps, cfgScale: opts.cfg, seed: opts.seed });
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
      .option('--steps <n>', 'sampling steps', positiveInt('steps'))
      .option('--cfg <scale>', 'classifier-free guidance scale', positiveNumber('cfg')),
  ).action(async (o: EvalOptions, cmd: Command) => {
    const opts = withConfig(cmd, o);
    applyRuntime(opts);
    const out = opts.out ?? path.join('out', 'eval');
    const { vae, dit, info } = loadModels(modelDir(opts.checkpoint), opts.device);
    try {
      fs.mkdirSync(out, { recursive: true });
      const gifPath = path.join(out, 'samples.gif');
      const prompts = opts.prompt.length ? opts.prompt : HELD_OUT_PROMPTS;
      const report = await evaluateDemo({
        vae, dit, info, settings: demoDiTSettings[opts.quick ? 'quick' : 'full'], prompts, samplesPerPrompt: opts.samplesPerPrompt,
        steps: opts.steps, cfgScale: opts.cfg, seed: opts.seed, gifPath,
      });
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

/** The steps a time budget will take at the pace so far (for a progress bar's total). */
function budgetPace(minutes: number): (step: number) => number {
  let first = -1, t0 = 0;
  return (step) => {
    if (first < 0) (first = step - 1), (t0 = Date.now());
    const secs = Math.max(1e-3, (Date.now() - t0) / 1000);
    return Math.max(step, Math.round(first + ((step - first) * minutes * 60) / secs));
  };
}

/** train-vae --data DIR (see ./folder.ts). */
async function trainVAEOnData(opts: TrainVAEOptions): Promise<void> {
  const out = opts.out ?? 'out';
  const bar = lazyProgress('VAE');
  const pace = budgetPace(opts.minutes);
  const r = await withInterrupt((i) =>
    trainFolderVAE({
      data: opts.data!, out, quick: opts.quick, minutes: opts.minutes, seed: opts.seed, device: opts.device, precision: opts.precision, fps: opts.fps,
      strict: opts.strict, batch: opts.batch, lr: opts.lr, fresh: opts.fresh, signal: i.signal, log: (l) => (bar.stop(), console.log(l)),
      onStep: (s) => (i.poll(), bar.update(s.step, pace(s.step), { loss: s.loss })),
    }),
  );
  bar.stop();
  if (r.stopped === 'aborted') throw interrupted('VAE training', r.checkpoint);
}

/** train-dit --data DIR (see ./folder.ts). */
async function trainDiTOnData(opts: TrainDiTOptions): Promise<void> {
  const out = opts.out ?? 'out';
  const vaeFile = opts.vae ?? path.join(out, 'vae.safetensors');
  if (!fs.existsSync(vaeFile)) throw new CliError(`--vae ${vaeFile}: no such file (train one with 'tessera train-vae --data ${opts.data} --out ${out}')`);
  let vae: VideoVAE;
  try {
    vae = VideoVAE.load(vaeFile, { device: opts.device });
  } catch (e) {
    throw new CliError(`--vae ${vaeFile}: ${(e as Error).message}`);
  }
  try {
    const enc = lazyProgress('latents');
    const bar = lazyProgress('DiT');
    const pace = budgetPace(opts.minutes);
    const r = await withInterrupt((i) =>
      trainFolderDiT({
        data: opts.data!, out, quick: opts.quick, minutes: opts.minutes, seed: opts.seed, device: opts.device, precision: opts.precision, fps: opts.fps,
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
