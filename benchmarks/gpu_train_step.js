#!/usr/bin/env node
// tessera's training steps on one device, the twins of benchmarks/gpu_torch_step.py:
//   dit  DiT-S/1x2x2 (hidden 384, depth 12, heads 6), text-conditioned (pooled text in
//        adaLN, cross-attention to text tokens [8, 32, 384]), latents [8, 4, 8, 32, 32],
//        rectified-flow loss;
//   vae  the 'sora' VAE preset at width 128 on video [1, 3, 17, 128, 128], L1 + 1e-6 KL.
// Each step: forward, loss, backward, gradient clipping to norm 1, AdamW, zero grad; the
// loss is read at the end of each step (the device sync that brackets the timing). fp32
// and bf16 (autocast) cases. Prints one JSON object on stdout:
//   {"device", "cases": [{"name", "model", "precision", "ms", "ms_all", "config"}]}
// or {"error": "..."} with exit status 3 when the device is missing.
//   node benchmarks/gpu_train_step.js [--device cuda:0] [--steps 10] [--warmup 3] [--only dit|vae]
'use strict';
const path = require('path');
const ts = require(path.join(__dirname, '..'));

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const device = opt('--device', 'cuda:0');
const steps = Number(opt('--steps', '10')), warmup = Number(opt('--warmup', '3'));
const only = opt('--only', null);
const info = ts.info();
if (device.startsWith('cuda') && !(info.cuda.available && Number(device.split(':')[1] ?? 0) < info.cuda.devices.length)) {
  console.log(JSON.stringify({ error: `no CUDA device ${device} (${info.cuda.reason ?? 'fewer devices'})` }));
  process.exit(3);
}

const DIT = { hidden: 384, depth: 12, heads: 6, patch: [1, 2, 2], latentShape: [8, 4, 8, 32, 32], textLen: 32, textDim: 384 };
const VAE = { ...ts.vaePresets.sora, baseChannels: 128, videoShape: [1, 3, 17, 128, 128], klWeight: 1e-6 };

function ditCase() {
  const dit = new ts.DiT({
    hiddenSize: DIT.hidden, depth: DIT.depth, numHeads: DIT.heads, patchSize: DIT.patch, inChannels: 4, learnSigma: false,
    condition: 'text', textDim: DIT.textDim,
  }).to(device);
  const [B] = DIT.latentShape;
  const x0 = ts.keep(ts.randn(DIT.latentShape, { device }));
  const noise = ts.keep(ts.randn(DIT.latentShape, { device }));
  const text = ts.keep(ts.randn([B, DIT.textLen, DIT.textDim], { device }));
  const t = ts.keep(ts.rand([B], { device }));
  const loss = () => {
    const tt = t.reshape([B, 1, 1, 1, 1]);
    const xt = x0.mul(tt.mul(-1).add(1)).add(noise.mul(tt));
    const v = dit.forward(xt, t.mul(1000), { textEmbeddings: text });
    return v.sub(noise.sub(x0)).square().mean();
  };
  return { model: dit, loss, free: () => [x0, noise, text, t].forEach((x) => x.dispose()), config: DIT };
}

function vaeCase() {
  const { videoShape, klWeight, ...config } = VAE;
  const vae = new ts.VideoVAE(config, { device });
  const x = ts.keep(ts.rand(videoShape, { device }).mul(2).sub(1));
  const n = videoShape.slice(1).reduce((a, b) => a * b, 1);
  const loss = () => {
    const { recon, posterior } = vae.forward(x);
    return ts.F.l1Loss(recon, x).add(posterior.kl().mul(klWeight / n));
  };
  return { model: vae, loss, free: () => x.dispose(), config: VAE };
}

function timeCase(name, model, make, precision) {
  ts.manualSeed(0);
  const c = make();
  const opt = new ts.optim.AdamW(c.model.parameters(), { lr: 1e-4 });
  const step = () => {
    const l = ts.tidy(() => {
      const run = () => {
        const loss = c.loss();
        loss.backward();
        return loss.detach();
      };
      const loss = precision === 'bf16' ? ts.autocast('bfloat16', run) : run();
      ts.optim.clipGradNorm(c.model, 1);
      opt.step();
      opt.zeroGrad();
      return loss;
    });
    const v = l.item(); // the sync
    l.dispose();
    return v;
  };
  try {
    for (let i = 0; i < warmup; i++) step();
    const ms = [];
    let last = NaN;
    for (let i = 0; i < steps; i++) {
      const t0 = process.hrtime.bigint();
      last = step();
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const sorted = [...ms].sort((a, b) => a - b);
    return { name, model, precision, ms: sorted[Math.floor(sorted.length / 2)], ms_all: ms, loss: last, config: c.config };
  } catch (e) {
    return { name, model, precision, error: e instanceof Error ? e.message : String(e), config: c.config };
  } finally {
    opt.dispose();
    c.free();
    c.model.dispose();
  }
}

const cases = [];
for (const [model, make] of [['dit', ditCase], ['vae', vaeCase]]) {
  if (only && only !== model) continue;
  for (const precision of device.startsWith('cuda') ? ['fp32', 'bf16'] : ['fp32']) {
    cases.push(timeCase(`${model} ${precision}`, model, make, precision));
    process.stderr.write(`${cases[cases.length - 1].name}: ${cases[cases.length - 1].ms?.toFixed(1) ?? cases[cases.length - 1].error} ms\n`);
  }
}
console.log(JSON.stringify({ device, gpu: info.cuda.devices[0]?.name ?? null, steps, warmup, cases }, null, 1));
process.exit(cases.some((c) => c.error) ? 1 : 0);
