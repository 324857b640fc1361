#!/usr/bin/env node
// Trains the demo text encoder + DiT on latents of captioned Moving MNIST (17x64x64, one
// digit) for a time budget, with the VAE trained by scripts/train-vae-demo.js, then
// measures prompt adherence on the ten held-out (digit, direction) prompts, which no
// training clip shows, and image-to-video from held-out first frames. Writes
//   <out>/latents/, <out>/dit/ (checkpoint, log.jsonl, plan.json, dit.safetensors)
//   <out>/metrics.json, <out>/heldout.gif (a row per prompt), <out>/i2v.gif
// Uses the compiled library (dist/): run `npx tsc -p .` first.
//   node scripts/train-dit-demo.js [--minutes 60] [--vae out/vae-demo] [--out out/dit-demo]
//     [--threads 2] [--seed 0] [--eval-only]
const fs = require('fs');
const path = require('path');
const ts = require('../dist');
const demo = require('../dist/demo'); // the demo's stages and motion estimate: tessera/demo
const stage = require('../dist/demo/dit_stage');
const { loadDemoVAE } = require('../dist/demo/vae_stage');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const minutes = Number(opt('minutes', 60));
const vaeDir = path.resolve(opt('vae', 'out/vae-demo'));
const out = path.resolve(opt('out', 'out/dit-demo'));
const threads = Number(opt('threads', 2));
const seed = Number(opt('seed', 0));
const settings = { ...stage.demoDiTSettings[args.includes('--quick') ? 'quick' : 'full'], ...(opt('settings') ? JSON.parse(opt('settings')) : {}) };

async function main() {
  ts.setNumThreads(threads);
  fs.mkdirSync(out, { recursive: true });
  const vae = loadDemoVAE(vaeDir);
  const log = (s) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
  let t = Date.now();
  let last = 0;
  const idx = stage.encodeDemoLatents({
    vae, dir: out, settings, seed,
    onProgress: (d, n) => {
      if (Date.now() - last > 20000 || d === n) (last = Date.now()), log(`encoded ${d}/${n} clips`);
    },
  });
  const encodeSeconds = (Date.now() - t) / 1000;
  log(`latent cache: ${idx.count} clips of ${idx.latentShape.join('x')}, scaling ${idx.scalingFactor.toFixed(3)} (${encodeSeconds.toFixed(0)} s)`);

  let train = null;
  if (!args.includes('--eval-only')) {
    last = 0;
    train = await stage.trainDemoDiT({
      dir: out, settings, minutes, seed,
      onStep: (i) => {
        if (Date.now() - last > 30000 || i.step === i.plannedSteps) {
          last = Date.now();
          log(`step ${i.step}/${i.plannedSteps} loss ${i.loss.toFixed(4)} grad ${i.gradNorm.toFixed(2)} lr ${i.lr.toExponential(2)} ${i.tokensPerSecond.toFixed(0)} tok/s`);
        }
      },
    });
    log(`trained ${train.steps} steps in ${train.seconds.toFixed(0)} s (${train.stopped})`);
  }
  const modelFile = path.join(out, 'dit', 'dit.safetensors');
  const { dit, info } = stage.loadDemoDiT(modelFile);
  dit.eval();

  t = Date.now();
  const heldOut = await stage.evaluateDemo({ vae, dit, info, settings, gifPath: path.join(out, 'heldout.gif'), seed: 1000 });
  const evalSeconds = (Date.now() - t) / 1000;
  log(`held-out prompts: digit ${(100 * heldOut.digitAccuracy).toFixed(1)}%, direction ${(100 * heldOut.directionAccuracy).toFixed(1)}%, both ${(100 * heldOut.jointAccuracy).toFixed(1)}% of ${heldOut.samples} (${evalSeconds.toFixed(0)} s)`);
  for (const p of heldOut.perPrompt) log(`  ${p.prompt}: digit ${(100 * p.digitAccuracy).toFixed(0)}%, direction ${(100 * p.directionAccuracy).toFixed(0)}%`);
  // Seen pairs, for comparison: one other direction per digit.
  const seenPrompts = Array.from({ length: 10 }, (_, d) => ts.captionFor([d], [ts.DIRECTIONS[(3 * d + 4) % 8]]));
  const seen = await stage.evaluateDemo({ vae, dit, info, settings, prompts: seenPrompts, samplesPerPrompt: 4, seed: 2000 });
  log(`seen prompts: digit ${(100 * seen.digitAccuracy).toFixed(1)}%, direction ${(100 * seen.directionAccuracy).toFixed(1)}% of ${seen.samples}`);

  // Image-to-video: first frames of held-out test clips; the first decoded frame should
  // match the VAE's own reconstruction of that frame, and the digit should then move.
  const test = new ts.MovingMNIST({ split: 'test', length: 8, frames: settings.frames, size: settings.size, seed: seed + 7 });
  const i2v = ts.tidy(() => {
    const clips = Array.from({ length: 8 }, (_, i) => test.get(i));
    const first = ts.stack(clips.map((c) => ts.tensor(c.video.subarray(0, settings.size * settings.size), { shape: [1, settings.size, settings.size] }))); // [8, 1, H, W]
    const videos = stage.sampleVideos({ vae, dit, info, prompts: clips.map((c) => c.caption), frames: settings.frames, height: settings.size, width: settings.size, steps: settings.sampleSteps, cfgScale: settings.cfgScale, seed: 3000, firstFrame: first });
    const recon = ts.noGrad(() => vae.decode(vae.encode(first.unsqueeze(2).mul(2).sub(1)).mode()).add(1).mul(0.5).clamp(0, 1)); // [8, 1, 1, H, W]
    const psnrs = clips.map((_, i) => ts.psnr(videos.slice(0, i, i + 1).slice(2, 0, 1), recon.slice(0, i, i + 1)));
    const dirs = demo.estimateDirections(videos);
    const moved = dirs.map((d) => d.speed);
    const dirAcc = dirs.filter((d, i) => d.directionIndex === clips[i].meta.directionIndices[0]).length / clips.length;
    ts.saveVideo(videos, path.join(out, 'i2v.gif'), { columns: 8, fps: 8 });
    return { firstFramePsnr: psnrs, meanFirstFramePsnr: psnrs.reduce((a, b) => a + b, 0) / psnrs.length, directionAccuracy: dirAcc, captions: clips.map((c) => c.caption), speedPixelsPerFrame: moved };
  });
  log(`image-to-video: first-frame PSNR vs the VAE reconstruction ${i2v.meanFirstFramePsnr.toFixed(2)} dB (min ${Math.min(...i2v.firstFramePsnr).toFixed(2)}), direction ${(100 * i2v.directionAccuracy).toFixed(0)}%`);

  const strip = (r) => ({ digitAccuracy: r.digitAccuracy, directionAccuracy: r.directionAccuracy, jointAccuracy: r.jointAccuracy, samples: r.samples,
    perPrompt: r.perPrompt.map((p) => ({ prompt: p.prompt, digitAccuracy: p.digitAccuracy, directionAccuracy: p.directionAccuracy, judged: p.samples.map((s) => [s.digit, s.direction]) })) });
  const plan = JSON.parse(fs.readFileSync(path.join(out, 'dit', 'plan.json'), 'utf8'));
  const metrics = {
    heldOut: strip(heldOut), seen: strip(seen), imageToVideo: i2v,
    train: train ?? undefined, plan, encodeSeconds, evalSeconds,
    ditParameters: dit.numParameters(), textEncoderParameters: dit.textEncoder.numParameters(), vaeParameters: vae.numParameters(),
    settings, threads, machine: ts.info().cpu, date: new Date().toISOString(),
  };
  fs.writeFileSync(path.join(out, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  log(`wrote ${path.join(out, 'metrics.json')}`);
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
