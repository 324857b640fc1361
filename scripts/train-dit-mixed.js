#!/usr/bin/env node
// One DiT trained on mixed shapes at once, packed (NaViT): 17x64x64 clips, 17x48x80
// clips (another aspect ratio) and single 64x64 images of captioned Moving MNIST, all
// encoded by the demo VAE (scripts/train-vae-demo.js). Reports the loss trend, then
// samples at 80x48 (17 frames) and at one 64x64 frame. Writes
//   <out>/metrics.json, <out>/sample-48x80.gif, <out>/sample-image.png, <out>/log.jsonl
// Uses the compiled library (dist/): run `npx tsc -p .` first.
//   node scripts/train-dit-mixed.js [--minutes 10] [--vae out/vae-demo] [--out out/dit-mixed] [--clips 300]
const fs = require('fs');
const path = require('path');
const ts = require('../dist');
const stage = require('../dist/demo/dit_stage');
const { loadDemoVAE } = require('../dist/demo/vae_stage');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const minutes = Number(opt('minutes', 10));
const vaeDir = path.resolve(opt('vae', 'out/vae-demo'));
const out = path.resolve(opt('out', 'out/dit-mixed'));
const clips = Number(opt('clips', 300));
const hidden = Number(opt('hidden', 128));
const depth = Number(opt('depth', 4));

async function main() {
  ts.setNumThreads(Number(opt('threads', 2)));
  fs.mkdirSync(out, { recursive: true });
  const vae = loadDemoVAE(vaeDir);
  const log = (s) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
  const kinds = [
    { name: 'clips-64x64', frames: 17, size: 64 },
    { name: 'clips-48x80', frames: 17, size: [48, 80] },
    { name: 'images-64x64', frames: 1, size: 64 },
  ];
  const caches = kinds.map((k, i) => {
    const dir = path.join(out, 'latents', k.name);
    fs.rmSync(dir, { recursive: true, force: true });
    const mm = new ts.MovingMNIST({ split: 'train', length: clips, frames: k.frames, size: k.size, seed: 10 + i });
    ts.noGrad(() => ts.encodeDataset(vae, ts.movingMnistDataset(mm), dir, { batchSize: 4 }));
    return ts.loadLatentCache(dir);
  });
  const scale = caches[0].scalingFactor; // one scale for all shapes
  const parts = caches.map((c) => ts.latentDataset(c, { scale }));
  const data = { length: parts.reduce((a, p) => a + p.length, 0), get: (i) => parts[i % 3].get(Math.floor(i / 3) % parts[i % 3].length) };
  log(`latents: ${caches.map((c, i) => `${kinds[i].name} ${c.index.latentShape.join('x')}`).join(', ')}; scale ${scale.toFixed(3)}`);

  const settings = { ...stage.demoDiTSettings.full, dit: { hiddenSize: hidden, depth, numHeads: 4, patchSize: [1, 2, 2] }, text: { hiddenSize: 64, depth: 1, numHeads: 2 } };
  ts.manualSeed(0);
  const dit = stage.createDemoDiT(settings, caches[0].index.latentShape[0]);
  const losses = [];
  const logFile = path.join(out, 'log.jsonl');
  fs.rmSync(logFile, { force: true });
  const started = Date.now();
  let last = 0;
  const r = await ts.trainDiT({
    dit, diffusion: stage.demoFlow(settings), data, steps: 100000, batchSize: 12, lr: 6e-4, warmup: 50, ema: 0.99, mixed: 'pack', seed: 0,
    signal: AbortSignal.timeout(minutes * 60 * 1000),
    onStep: (s) => {
      losses.push(s.loss);
      fs.appendFileSync(logFile, `${JSON.stringify(s)}\n`);
      if (Date.now() - last > 30000) (last = Date.now()), log(`step ${s.step} loss ${s.loss.toFixed(4)} ${s.tokensPerSecond.toFixed(0)} tok/s`);
    },
  });
  const seconds = (Date.now() - started) / 1000;
  const n = Math.max(1, Math.floor(losses.length / 10));
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mean(losses.slice(0, n)), lastTenth = mean(losses.slice(-n));
  log(`${r.steps} packed steps in ${seconds.toFixed(0)} s; loss ${first.toFixed(4)} (first tenth) -> ${lastTenth.toFixed(4)} (last tenth)`);
  r.ema.copyTo(dit);
  dit.eval();
  const info = { scalingFactor: scale, flow: settings.flow, latentChannels: caches[0].index.latentShape[0] };
  const prompts = ['the digit 3 moves right', 'the digit 7 moves down'];
  const wide = stage.sampleVideos({ vae, dit, info, prompts, frames: 17, height: 48, width: 80, steps: 30, cfgScale: 4, seed: 1 });
  const image = stage.sampleVideos({ vae, dit, info, prompts, frames: 1, height: 64, width: 64, steps: 30, cfgScale: 4, seed: 2 });
  ts.saveVideo(wide, path.join(out, 'sample-48x80.gif'), { columns: 2, fps: 8 });
  ts.saveVideo(image, path.join(out, 'sample-image.png'), { columns: 2 });
  const metrics = {
    steps: r.steps, seconds, batchSize: 12, lossFirstTenth: first, lossLastTenth: lastTenth, samples: { wide: wide.shape, image: image.shape },
    wideMean: wide.mean().item(), imageMean: image.mean().item(), ditParameters: dit.numParameters(), clipsPerShape: clips,
    latentShapes: caches.map((c) => c.index.latentShape), date: new Date().toISOString(),
  };
  fs.writeFileSync(path.join(out, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  log(`sampled ${wide.shape.join('x')} and ${image.shape.join('x')}; wrote ${out}`);
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
