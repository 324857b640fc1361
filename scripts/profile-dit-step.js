#!/usr/bin/env node
// Where the time of a demo DiT training step goes: every native call is timed (by
// name, and by op for the unary/binary families), and the rest of the step is JS
// (autograd bookkeeping, argument checks, tensor wrappers). A developer's tool.
//   node scripts/profile-dit-step.js [--latents out/dit-demo] [--steps 12] [--settings '{...}'] [--threads 2]
// Without --latents the step runs on random latents of the demo's shape [4, 5, 16, 16].
const ts = require('../dist');
const { native } = require('../dist/native');
const stage = require('../dist/demo/dit_stage');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const steps = Number(opt('steps', 12));
// --shapes binary:add also breaks that call down by operand shapes (beside matmul).
const shapesOf = opt('shapes', null);
const settings = { ...stage.demoDiTSettings.full, ...(opt('settings') ? JSON.parse(opt('settings')) : {}) };
ts.setNumThreads(Number(opt('threads', 2)));

const times = new Map();
const gemms = new Map();
let recording = false;
const meta = native.meta.bind(native), contiguous = native.isContiguous.bind(native);
const shapeKey = (a, b) => {
  const [sa] = meta(a), [sb] = meta(b);
  return `${sa.join('x')}${contiguous(a) ? '' : 'T'} @ ${sb.join('x')}${contiguous(b) ? '' : 'T'}`;
};
const linearFlops = (x, w) => {
  const [sx] = meta(x), [sw] = meta(w);
  return 2 * (sx.reduce((p, q) => p * q, 1) / sx[sx.length - 1]) * sw[0] * sw[1];
};
const flopsOf = (a, b) => {
  const [sa] = meta(a), [sb] = meta(b);
  const batch = sa.slice(0, -2).reduce((x, y) => x * y, 1);
  return 2 * batch * sa[sa.length - 2] * sa[sa.length - 1] * sb[sb.length - 1];
};
for (const name of Object.keys(native)) {
  const f = native[name];
  if (typeof f !== 'function') continue;
  native[name] = function timed(...a) {
    if (!recording) return f.apply(this, a);
    const t0 = process.hrtime.bigint();
    try {
      return f.apply(this, a);
    } finally {
      const key = typeof a[0] === 'string' ? `${name}:${a[0]}` : name;
      const dt = process.hrtime.bigint() - t0;
      const e = times.get(key) ?? { ns: 0n, calls: 0 };
      e.ns += dt;
      e.calls++;
      times.set(key, e);
      if (name === 'matmul' || name === 'linear' || (shapesOf && key === shapesOf)) {
        const k = name === 'matmul' ? shapeKey(a[0], a[1]) : name === 'linear' ? `linear ${shapeKey(a[0], a[1])}` : `${key} ${shapeKey(a[1], a[2])}`;
        const g = gemms.get(k) ?? { ns: 0n, calls: 0, flops: name === 'matmul' ? flopsOf(a[0], a[1]) : name === 'linear' ? linearFlops(a[0], a[1]) : 0 };
        g.ns += dt;
        g.calls++;
        gemms.set(k, g);
      }
    }
  };
}

async function main() {
  let data;
  if (opt('latents')) {
    data = ts.latentDataset(ts.loadLatentCache(require('path').join(opt('latents'), 'latents')));
  } else {
    const prompts = stage.ALL_PROMPTS;
    data = { length: 256, get: (i) => ({ latent: ts.randn([4, 5, 16, 16]), caption: prompts[i % prompts.length] }) };
  }
  ts.manualSeed(0);
  const dit = stage.createDemoDiT(settings, 4);
  const diffusion = stage.demoFlow(settings);
  const warm = 3;
  let t0 = 0n, stepNs = 0n;
  await ts.trainDiT({
    dit, diffusion, data, steps: warm + steps, batchSize: settings.batchSize, lr: settings.lr, warmup: 1, ema: settings.ema,
    cfgDropout: settings.cfgDropout, conditionFrameProb: settings.conditionFrameProb, seed: 0,
    onStep: (i) => {
      const now = process.hrtime.bigint();
      if (i.step > warm) stepNs += now - t0;
      if (i.step === warm) recording = true;
      t0 = now;
    },
  });
  recording = false;
  const total = Number(stepNs) / 1e6 / steps;
  let nativeMs = 0;
  const rows = [...times.entries()].map(([k, e]) => {
    const ms = Number(e.ns) / 1e6 / steps;
    nativeMs += ms;
    return { k, ms, calls: e.calls / steps };
  }).sort((a, b) => b.ms - a.ms);
  console.log(`DiT ${JSON.stringify(settings.dit)} batch ${settings.batchSize}: ${total.toFixed(1)} ms a step, native ${nativeMs.toFixed(1)} ms, ` +
    `rest (JS, between calls) ${(total - nativeMs).toFixed(1)} ms; native calls a step ${rows.reduce((a, r) => a + r.calls, 0).toFixed(0)}`);
  console.log('native call                     ms/step   %step  calls/step');
  for (const r of rows.slice(0, Number(opt('top', 40))))
    console.log(`${r.k.padEnd(30)} ${r.ms.toFixed(2).padStart(8)} ${(100 * r.ms / total).toFixed(1).padStart(6)} ${r.calls.toFixed(0).padStart(8)}`);
  console.log('\nmatmul / linear shape (T: a transposed view)  ms/step  calls/step  GFLOP/s');
  const gr = [...gemms.entries()].map(([k, g]) => ({ k, ms: Number(g.ns) / 1e6 / steps, calls: g.calls / steps, gf: (g.flops * g.calls) / Number(g.ns) }));
  for (const r of gr.sort((a, b) => b.ms - a.ms).slice(0, 30))
    console.log(`${r.k.padEnd(44)} ${r.ms.toFixed(2).padStart(8)} ${r.calls.toFixed(0).padStart(8)} ${r.gf.toFixed(1).padStart(8)}`);
  dit.dispose();
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
