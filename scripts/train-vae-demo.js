#!/usr/bin/env node
// Trains the demo VideoVAE preset on Moving MNIST (17x64x64, one digit) for a time
// budget, then reports held-out PSNR/SSIM beside the all-black baseline. A thin wrapper
// over trainDemoVAE (lib/demo/vae_stage.ts, where the method and its measurements are
// described), which writes
//   <out>/metrics.json      numbers, settings and timings
//   <out>/checkpoint/       the training checkpoint (model, optimizer, EMA; resumable)
//   <out>/recon.gif         held-out clips: inputs above, reconstructions below
//   <out>/vae.safetensors   the final weights (VideoVAE.load)
// Uses the compiled library (dist/): run `npx tsc -p .` first.
//   node scripts/train-vae-demo.js [--minutes 20] [--out out/vae-demo] [--batch 2] [--lr 2e-3]
//     [--frames 9] [--size 64] [--mse 1] [--kl 1e-6] [--threads 2] [--seed 0] [--eval 64] [--resume]
// Without --resume an old checkpoint under <out> is replaced; with it, training continues
// from it for another budget.
const path = require('path');
const ts = require('../dist');
const demo = require('../dist/demo'); // the demo's stages live in the tessera/demo subpath

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const minutes = Number(opt('minutes', 20));
const out = path.resolve(opt('out', 'out/vae-demo'));
const full = demo.demoVAESettings.full;
const settings = {
  ...full,
  batchSize: Number(opt('batch', full.batchSize)),
  lr: Number(opt('lr', full.lr)),
  klWeight: Number(opt('kl', full.klWeight)),
  mseWeight: Number(opt('mse', full.mseWeight)),
  crop: { frames: Number(opt('frames', full.crop.frames)), size: Number(opt('size', full.crop.size)) },
  evalClips: Number(opt('eval', full.evalClips)),
};
if (!(minutes > 0)) throw new Error(`--minutes: expected a positive number, got ${opt('minutes')}`);

async function main() {
  ts.setNumThreads(Number(opt('threads', 2)));
  let lastPrint = 0;
  const r = await demo.trainDemoVAE({
    dir: out, settings, minutes, seed: Number(opt('seed', 0)), resume: args.includes('--resume') ? 'extend' : false,
    log: (line) => console.log(line),
    onStep: (i) => {
      if (Date.now() - lastPrint > 15000 || i.step === i.plannedSteps) {
        lastPrint = Date.now();
        console.log(`step ${i.step}/${i.plannedSteps}  l1 ${i.l1.toFixed(4)}  kl ${i.kl.toFixed(0)}  lr ${i.lr.toExponential(2)}  ${i.samplesPerSec.toFixed(1)} clips/s  ${i.elapsed.toFixed(0)} s`);
      }
    },
  });
  const f = demo.demoVAEFiles(out);
  console.log(`wrote ${f.metrics}, ${f.recon}, ${f.weights}, ${f.checkpoint}/`);
  r.vae.dispose();
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
