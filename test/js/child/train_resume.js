// Child process for the exact-resume test. Trains a small MLP with AdamW, a
// warmup+cosine schedule, gradient clipping and EMA on data drawn from the global
// generator. Modes:
//   straight          steps 0..20, print losses and final weights
//   first DIR         steps 0..10, save a checkpoint in DIR, print losses
//   resume DIR        build everything from another seed, restore DIR, steps 10..20
// Output: one JSON line { losses, weights: {name: base64 of the float32 bytes} }.
const ts = require(process.env.TESSERA_LIB);
const { nn, optim } = ts;
const { native } = require(require('path').join(require('path').dirname(process.env.TESSERA_LIB), 'native.js'));

const [mode, dir] = process.argv.slice(2);
const TOTAL = 20;
ts.setNumThreads(2);
ts.manualSeed(mode === 'resume' ? 999 : 1234);
const model = new nn.MLP(8, { hiddenFeatures: 32, outFeatures: 4 });
const opt = new optim.AdamW(model, { lr: 3e-3, weightDecay: 0.05 });
const ema = new optim.EMA(model, 0.9);
const schedule = optim.warmupCosine(3, TOTAL, { minFactor: 0.1 });

function trainStep(step) {
  return ts.tidy(() => {
    const x = ts.randn([16, 8]), y = ts.randn([16, 4]);
    opt.zeroGrad();
    const loss = model.forward(x).sub(y).square().mean();
    loss.backward();
    optim.clipGradNorm(model, 0.5);
    opt.setLRScale(schedule(step));
    opt.step();
    ema.update();
    return loss.item();
  });
}

let start = 0, end = TOTAL;
if (mode === 'first') end = 10;
if (mode === 'resume') start = ts.restoreCheckpoint(dir, { model, optimizer: opt, ema }).step;
const losses = [];
for (let s = start; s < end; s++) losses.push(trainStep(s));
if (mode === 'first') ts.saveCheckpoint(dir, { model, optimizer: opt, ema, step: end, config: { total: TOTAL } });
const weights = {};
for (const [k, t] of Object.entries(model.stateDict())) weights[k] = Buffer.from(native.readRaw(t.h)).toString('base64');
for (const [k, t] of Object.entries(ema.stateDict().shadow)) weights[`ema.${k}`] = Buffer.from(native.readRaw(t.h)).toString('base64');
process.stdout.write(JSON.stringify({ losses, weights }) + '\n');
