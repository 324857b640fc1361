// Faults in the training loops, run by test/js/distributed_train.test.ts (under
// `mpirun -np 2`, or alone for the world-size-1 resume). Modes:
//   kill DIR     trainDiT with checkpoints in DIR every 2 steps; rank 1 SIGKILLs itself
//                after step 7 (rank 0 must then be ended by the machinery, not by us)
//   resume DIR   trainDiT from DIR's checkpoint up to step 12 (any world size); prints
//                "rank R resumed at S", then "rank R done 12"
//   nan          rank 1's data (trainDiT) or one of its weights (trainVAE) turns NaN after
//                step 3: both loops must stop on both ranks at the same step; prints
//                "rank R: <loop> stopped <how> at S"
// Every rank prints "rank R step S" after each step.
const fs = require('fs');
const ts = require(process.env.TESSERA_LIB);
const dist = ts.distributed;

const [mode, dir] = process.argv.slice(2);
const { rank: r } = dist.init();
ts.setNumThreads(1);

const captions = ['the digit 1 moves left', 'the digit 7 moves up'];
function model() {
  ts.manualSeed(0);
  const tok = ts.Tokenizer.fromCaptions(captions);
  return new ts.DiT({
    hiddenSize: 32, depth: 2, numHeads: 2, patchSize: [1, 2, 2], inChannels: 2, learnSigma: false,
    condition: 'text', text: { tokenizer: tok.state(), hiddenSize: 32, depth: 1, numHeads: 2 },
  });
}
ts.manualSeed(1);
const items = Array.from({ length: 8 }, () => ts.keep(ts.randn([2, 2, 4, 4])));
let poisoned = false; // rank 1 only: from then on its samples are NaN
const nanLatent = ts.keep(ts.full([2, 2, 4, 4], NaN));
const data = { length: items.length, get: (i) => ({ latent: poisoned ? nanLatent : items[i], caption: captions[i % 2] }) };

function train(steps, onStep) {
  return ts.trainDiT({
    dit: model(), diffusion: new ts.RectifiedFlow(), data, steps, batchSize: 4, lr: 1e-3, warmup: 2, ema: 0.9, seed: 3,
    checkpointDir: dir, checkpointEvery: 2,
    onStep: (s) => {
      process.stdout.write(`rank ${r} step ${s.step}\n`);
      onStep?.(s);
    },
  });
}

(async () => {
  if (mode === 'kill') {
    await train(1000, (s) => {
      if (r === 1 && s.step === 7) process.kill(process.pid, 'SIGKILL');
    });
    throw new Error(`rank ${r}: training ended although rank 1 was killed`);
  } else if (mode === 'resume') {
    const from = JSON.parse(fs.readFileSync(`${dir}/latest`, 'utf8')).step;
    console.log(`rank ${r} resumed at ${from}`);
    const res = await train(12);
    if (res.stopped !== 'done') throw new Error(`rank ${r}: resume stopped ${res.stopped}`);
    console.log(`rank ${r} done ${res.steps}`);
  } else if (mode === 'nan') {
    const dit = await ts.trainDiT({
      dit: model(), diffusion: new ts.RectifiedFlow(), data, steps: 50, batchSize: 4, ema: null, seed: 3,
      onStep: (s) => {
        process.stdout.write(`rank ${r} step ${s.step}\n`);
        if (r === 1 && s.step === 3) poisoned = true;
      },
    });
    console.log(`rank ${r}: trainDiT stopped ${dit.stopped} at ${dit.steps}`);
    const clips = ts.movingMnistDataset(new ts.MovingMNIST({ length: 8, frames: 5, size: 32 }));
    ts.manualSeed(1);
    const vae = new ts.VideoVAE({
      inChannels: 1, latentChannels: 4, baseChannels: 4, channelMultipliers: [1, 2, 2], numResBlocks: 1, decoderResBlocks: 1,
      temporalCompression: 4, spatialCompression: 4, numGroups: 2,
    });
    try {
      await ts.trainVAE({
        model: vae, data: clips, steps: 50, batchSize: 2, crop: { frames: 5, size: 16 }, warmup: 1,
        onStep: (i) => {
          // (the loop checks its data, so here a weight of rank 1 alone turns NaN, as a fault would)
          if (r === 1 && i.step === 3) ts.noGrad(() => vae.decoder.convOut.bias.copy_(ts.full(vae.decoder.convOut.bias.shape, NaN)));
        },
      });
      console.log(`rank ${r}: trainVAE stopped done`);
    } catch (e) {
      const m = /at step (\d+)/.exec(e.message);
      console.log(`rank ${r}: trainVAE stopped by an error at ${m ? m[1] : '?'}: ${e.message}`);
    }
  } else throw new Error(`unknown mode ${mode}`);
  dist.destroy();
})();
