#!/usr/bin/env node
// Where the time of a demo VAE training step goes: every native call is timed (by name,
// by op for the unary/binary families, and by shape for conv3d), allocations are counted
// (bytes through memory()), and the rest of the step is JS (autograd bookkeeping, argument
// checks, wrappers). The step is trainVAE's: the demo settings' batch of Moving MNIST
// crops, forward, L1 + MSE + KL, backward, clipping, AdamW, EMA. A developer's tool.
//   node scripts/profile-vae-step.js [--steps 12] [--threads 2] [--top 40] [--settings '{...}']
const ts = require('../dist');
const { native } = require('../dist/native');
const stage = require('../dist/demo/vae_stage');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const steps = Number(opt('steps', 12));
const settings = { ...stage.demoVAESettings.full, ...(opt('settings') ? JSON.parse(opt('settings')) : {}) };
ts.setNumThreads(Number(opt('threads', 2)));

const times = new Map();
const convs = new Map();
let recording = false;
let allocCalls = 0;
const meta = native.meta.bind(native);
const dims = (h) => meta(h)[0].join('x');
const convFlops = (x, w, out) => {
  const [so] = meta(out), [sw] = meta(w);
  return 2 * so.reduce((a, b) => a * b, 1) * sw.slice(1).reduce((a, b) => a * b, 1);
};
const memBytes = () => native.memory().bytes.cpu;
for (const name of Object.keys(native)) {
  const f = native[name];
  if (typeof f !== 'function' || name === 'memory') continue;
  native[name] = function timed(...a) {
    if (!recording) return f.apply(this, a);
    const b0 = memBytes();
    const t0 = process.hrtime.bigint();
    let r;
    try {
      r = f.apply(this, a);
      return r;
    } finally {
      const dt = process.hrtime.bigint() - t0;
      if (memBytes() > b0) allocCalls++;
      const key = typeof a[0] === 'string' ? `${name}:${a[0]}` : name;
      const e = times.get(key) ?? { ns: 0n, calls: 0 };
      e.ns += dt;
      e.calls++;
      times.set(key, e);
      if (name === 'conv3d' || name === 'conv3dBackward') {
        // conv3d(x, w, ...) -> out; conv3dBackward(dout, x, w, ...)
        const [x, w] = name === 'conv3d' ? [a[0], a[1]] : [a[1], a[2]];
        const k = `${name === 'conv3d' ? 'fwd' : 'bwd'} x ${dims(x)} w ${dims(w)} s ${a[name === 'conv3d' ? 3 : 3].join('')}`;
        const out = name === 'conv3d' ? r : a[0];
        const g = convs.get(k) ?? { ns: 0n, calls: 0, flops: convFlops(x, w, out) * (name === 'conv3d' ? 1 : 2) };
        g.ns += dt;
        g.calls++;
        convs.set(k, g);
      }
    }
  };
}

async function main() {
  const { frames, size, batchSize, lr, klWeight, mseWeight, crop } = settings;
  const data = ts.movingMnistDataset(new ts.MovingMNIST({ split: 'train', length: 256, frames, size, numDigits: 1, seed: 0 }));
  ts.manualSeed(0);
  const vae = new ts.VideoVAE(settings.vae);
  const warm = 3;
  let t0 = 0n, stepNs = 0n, bytes0 = 0, peak = 0;
  const r = await ts.trainVAE({
    model: vae, data, steps: warm + steps, batchSize, lr, warmup: 1, klWeight, mseWeight, crop, ema: settings.ema,
    onStep: (i) => {
      const now = process.hrtime.bigint();
      if (i.step > warm) stepNs += now - t0;
      if (i.step === warm) {
        recording = true;
        bytes0 = ts.memory().bytes.cpu;
        ts.resetPeakMemory();
      }
      if (i.step === warm + steps) peak = ts.memory().peakBytes;
      t0 = now;
    },
  });
  recording = false;
  r.ema?.dispose();
  const total = Number(stepNs) / 1e6 / steps;
  let nativeMs = 0;
  const rows = [...times.entries()].map(([k, e]) => {
    const ms = Number(e.ns) / 1e6 / steps;
    nativeMs += ms;
    return { k, ms, calls: e.calls / steps };
  }).sort((a, b) => b.ms - a.ms);
  const peakGf = native.measurePeakGflops(0.3);
  console.log(`VAE ${JSON.stringify(settings.vae)}\nbatch ${batchSize} of [1, ${crop.frames}, ${crop.size}, ${crop.size}] on ${ts.getNumThreads()} threads (${ts.info().cpu.gemmKernel}), FMA peak ${peakGf.toFixed(0)} GFLOP/s`);
  console.log(`${total.toFixed(1)} ms a step: native ${nativeMs.toFixed(1)} ms, rest (JS, between calls) ${(total - nativeMs).toFixed(1)} ms; ` +
    `${rows.reduce((a, x) => a + x.calls, 0).toFixed(0)} native calls and ${(allocCalls / steps).toFixed(0)} allocating calls a step; ` +
    `live bytes ${(bytes0 / 2 ** 20).toFixed(0)} MiB at the start, peak ${(peak / 2 ** 20).toFixed(0)} MiB`);
  console.log('native call                     ms/step   %step  calls/step');
  for (const x of rows.slice(0, Number(opt('top', 40))))
    console.log(`${x.k.padEnd(30)} ${x.ms.toFixed(2).padStart(8)} ${x.ms === 0 ? '' : (100 * x.ms / total).toFixed(1).padStart(6)} ${x.calls.toFixed(0).padStart(8)}`);
  console.log('\nconv3d (fwd; bwd = all its gradients)                ms/step  calls/step  GFLOP/s  % peak');
  const cr = [...convs.entries()].map(([k, g]) => ({ k, ms: Number(g.ns) / 1e6 / steps, calls: g.calls / steps, gf: (g.flops * g.calls) / Number(g.ns) }));
  for (const x of cr.sort((a, b) => b.ms - a.ms).slice(0, 30))
    console.log(`${x.k.padEnd(52)} ${x.ms.toFixed(2).padStart(8)} ${x.calls.toFixed(0).padStart(8)} ${x.gf.toFixed(1).padStart(8)} ${((100 * x.gf) / peakGf).toFixed(0).padStart(6)}%`);
  vae.dispose();
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
