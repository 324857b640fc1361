#!/usr/bin/env node
// CPU-vs-device parity of one DiT and one VAE training step: the same weights and inputs
// on the CPU and on a device (default cuda:0), forward output and every parameter
// gradient compared by relative error ||a - b|| / ||a|| (bounds: 1e-4 in fp32, 3e-2 in
// bf16 autocast). Run by scripts/gpu-check.sh's node phase.
//   node scripts/gpu-parity.js [--device cuda:0] [--precision fp32,bf16]
// Exit status: 0 all within bounds, 1 a case failed, 3 no such device (nothing compared).
// `--device cpu:1` (with TESSERA_HOST_DEVICES=2) dry-runs it on a simulated device, where
// every error is exactly 0.
'use strict';
const path = require('path');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const device = opt('--device', 'cuda:0');
const precisions = opt('--precision', 'fp32,bf16').split(',');
const ts = require(path.join(__dirname, '..'));

function available(dev) {
  const info = ts.info();
  if (dev.startsWith('cuda')) {
    const n = Number(dev.split(':')[1] ?? 0);
    return info.cuda.available && n < info.cuda.devices.length ? null : `no CUDA device ${dev} (${info.cuda.reason ?? 'fewer devices'})`;
  }
  const n = Number(dev.split(':')[1] ?? 0);
  return n < info.hostDevices ? null : `${dev} needs TESSERA_HOST_DEVICES=${n + 1}`;
}

const why = available(device);
if (why) {
  console.log(JSON.stringify({ device, error: why }));
  process.exit(3);
}

const BOUND = { fp32: 1e-4, bf16: 3e-2 };

function relErr(a, b) {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += a[i] * a[i];
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/** One step of `model` on `dev` from a CPU model's weights: { out, grads } read back to the host. */
function step(makeModel, lossOf, inputs, dev, precision) {
  ts.manualSeed(123);
  const model = makeModel();
  if (dev !== 'cpu') model.to(dev);
  model.train();
  const run = () => ts.tidy(() => {
    const xs = inputs.map((x) => (x instanceof ts.Tensor ? (dev === 'cpu' ? x : x.to(dev)) : x));
    const { out, loss } = lossOf(model, xs);
    loss.backward();
    return out.toFloat32Array();
  });
  const out = precision === 'bf16' && dev !== 'cpu' ? ts.autocast('bfloat16', run) : run();
  const grads = model.namedParameters().map(([n, p]) => [n, p.grad ? p.grad.toFloat32Array() : null]);
  model.dispose();
  return { out, grads };
}

function compare(name, makeModel, lossOf, inputs, precision) {
  const ref = step(makeModel, lossOf, inputs, 'cpu', 'fp32');
  const got = step(makeModel, lossOf, inputs, device, precision);
  const bound = BOUND[precision];
  const worst = { name: 'output', err: relErr(ref.out, got.out) };
  let missing = 0;
  ref.grads.forEach(([n, g], i) => {
    const h = got.grads[i][1];
    if (!g || !h) {
      if (g !== h) missing++;
      return;
    }
    const e = relErr(g, h);
    if (!(e <= worst.err)) Object.assign(worst, { name: n, err: e });
  });
  const ok = worst.err <= bound && missing === 0;
  return { case: name, precision, device, ok, worstError: worst.err, worstAt: worst.name, bound, gradients: ref.grads.length, missingGradients: missing };
}

function dit() {
  const tok = ts.Tokenizer.fromCaptions(['the digit 7 moves right', 'the digit 3 moves up']);
  return new ts.DiT({
    hiddenSize: 96, depth: 2, numHeads: 3, patchSize: [1, 2, 2], inChannels: 4, learnSigma: false, condition: 'text',
    text: { tokenizer: tok.state(), hiddenSize: 48, depth: 1, numHeads: 2 },
  });
}
function ditLoss(model, [x0, noise, t]) {
  const tt = t.reshape([2, 1, 1, 1, 1]);
  const xt = x0.mul(tt.mul(-1).add(1)).add(noise.mul(tt));
  const out = model.forward(xt, t.mul(1000), { prompts: ['the digit 7 moves right', 'the digit 3 moves up'] });
  return { out, loss: out.sub(noise.sub(x0)).square().mean() };
}

function vae() {
  return new ts.VideoVAE({
    inChannels: 3, latentChannels: 4, baseChannels: 32, channelMultipliers: [1, 2, 2], numResBlocks: 1, decoderResBlocks: 1,
    temporalCompression: 4, spatialCompression: 4, numGroups: 8,
  });
}
function vaeLoss(model, [x]) {
  const post = model.encode(x);
  const recon = model.decode(post.mode());
  const loss = ts.F.l1Loss(recon, x).add(post.kl().mul(1e-6 / x.numel));
  return { out: recon, loss };
}

ts.manualSeed(7);
const ditInputs = [ts.randn([2, 4, 3, 8, 8]), ts.randn([2, 4, 3, 8, 8]), ts.rand([2])];
const vaeInputs = [ts.rand([1, 3, 9, 32, 32]).mul(2).sub(1)];
const results = [];
for (const p of precisions) {
  if (!(p in BOUND)) {
    console.error(`gpu-parity: unknown precision '${p}' (expected fp32, bf16)`);
    process.exit(2);
  }
  if (p === 'bf16' && !device.startsWith('cuda')) continue; // autocast is a CUDA mode
  ts.setFloat32MatmulPrecision('highest');
  results.push(compare('DiT training step (text, cross-attention)', dit, ditLoss, ditInputs, p));
  results.push(compare('VAE training step (causal conv3d, group norm)', vae, vaeLoss, vaeInputs, p));
}
console.log(JSON.stringify({ device, info: ts.info().cuda.devices, results }, null, 1));
for (const r of results)
  console.error(`${r.ok ? 'OK  ' : 'FAIL'} ${r.case} [${r.precision}] on ${r.device}: worst relative error ${r.worstError.toExponential(2)} at ${r.worstAt} (bound ${r.bound})${r.missingGradients ? `, ${r.missingGradients} gradients missing on one side` : ''}`);
process.exit(results.every((r) => r.ok) ? 0 : 1);
