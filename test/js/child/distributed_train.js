// Run under `mpirun -np 2` by test/js/distributed_train.test.ts: the training loops on
// 2 ranks against 1 process with the whole batch. Each case trains on both ranks
// (distributed: 'auto'), then rank 0 trains the same model alone (distributed: false)
// from the same seed, and compares the parameters after 20 AdamW steps. Cases:
//   dit      a text-conditioned DiT through trainDiT, bucketed batches of 2 x 2, frame masks
//   pack     the same DiT, mixed grids packed (NaViT), a global batch of 3 (ranks run 1 and 2)
//   vae      a VideoVAE through trainVAE, global batch 2 x 1, random crops, posterior samples
//   encode   encodeDataset: 2 ranks write the same latent cache as 1 process; then
//            evaluateVAE gathered over the ranks equals 1 process
// Parameters are compared as ||a - b|| / ||b|| over all elements but the attention key
// biases (see functionless()), and by the trained models' outputs on a fixed input;
// the per-tensor max |a - b| / max |b| is printed beside them. Both DiT cases start off
// the adaLN-Zero init (see dit()). Prints "rank R: <case> OK ..." lines; any mismatch
// throws (the job then fails).
const fs = require('fs');
const os = require('os');
const path = require('path');
const ts = require(process.env.TESSERA_LIB);
const dist = ts.distributed;

const { rank: r, worldSize: n } = dist.init();
const STEPS = Number(process.env.STEPS ?? 20);
const cases = (process.argv[2] ?? 'dit,pack,vae,encode').split(',');
ts.setNumThreads(1);
const check = (cond, what) => {
  if (!cond) throw new Error(`rank ${r}: ${what}`);
};
/**
 * Outputs are compared in the max norm, which sees the worst of thousands of elements:
 * rounding alone (the two runs sum the batch's gradients in another order; AdamW then
 * normalizes the residue) moved the VAE's reconstruction by 1.4e-6 on a Xeon (AVX-512)
 * once its conv3d weight gradient summed per tap, while a data or seed mismatch between
 * the runs (the bugs this file is for) moves it by ~0.3 (another crop seed: 0.29). The
 * gradient averaging itself is held to 1e-6 in distributed_ddp.js.
 */
const OUT_TOL = 1e-5;
/**
 * Parameter elements whose gradient is zero in exact arithmetic: the key biases of
 * attention (softmax is unchanged when a query's scores all shift by q.b_k), [k] of
 * [q; k; v] in self-attention and of [k; v] in cross-attention. Their gradients are
 * rounding residue, which AdamW's normalization turns into lr-sized steps of arbitrary
 * sign under any change of summation order (one process with its batch rows permuted
 * moves them as much), and they do not change what the model computes.
 */
function functionless(name, numel) {
  if (/attn\.qkv\.bias$/.test(name)) return [numel / 3, (2 * numel) / 3];
  if (/cross_attn\.kv\.bias$/.test(name)) return [0, numel / 2];
  return null;
}
/** { maxRel: max over tensors of max|a-b| / max|b|, l2: ||a-b|| / ||b|| over the elements that matter, keyBias: max|a-b| there }. */
function compare(named, others) {
  let maxRel = 0, d2 = 0, n2 = 0, keyBias = 0;
  named.forEach(([name, b], k) => {
    const x = others[k].toFloat32Array(), y = b.toFloat32Array();
    const skip = functionless(name, y.length);
    let d = 0, m = 0;
    for (let i = 0; i < y.length; i++) {
      const e = Math.abs(x[i] - y[i]);
      (d = Math.max(d, e)), (m = Math.max(m, Math.abs(y[i])));
      if (skip && i >= skip[0] && i < skip[1]) keyBias = Math.max(keyBias, e);
      else (d2 += e * e), (n2 += y[i] * y[i]);
    }
    maxRel = Math.max(maxRel, m === 0 ? d : d / m);
  });
  return { maxRel, l2: Math.sqrt(d2 / n2), keyBias };
}
/** max |f(a) - f(b)| / max |f(b)|: how differently two models compute. */
function outputRel(f, a, b) {
  const x = f(a).toFloat32Array(), y = f(b).toFloat32Array();
  let d = 0, m = 0;
  for (let i = 0; i < y.length; i++) (d = Math.max(d, Math.abs(x[i] - y[i]))), (m = Math.max(m, Math.abs(y[i])));
  return d / m;
}
/** Whether every rank holds bit-identical parameters. */
function sameOnAllRanks(params) {
  return params.every((p) => {
    const g = dist.allGather(p.contiguous()).dataSync(), k = p.numel;
    for (let i = 0; i < g.length; i++) if (g[i] !== g[i % k]) return false;
    return true;
  });
}

// ---- a small text-conditioned DiT ------------------------------------------------------
const captions = ['the digit 1 moves left', 'the digit 7 moves up', 'the digit 3 moves down'];
function latents(grids) {
  ts.manualSeed(42);
  const items = Array.from({ length: 12 }, (_, i) => ts.keep(ts.randn([2, ...grids[i % grids.length]])));
  return { length: items.length, get: (i) => ({ latent: items[i], caption: captions[i % 3] }) };
}
function dit() {
  ts.manualSeed(0);
  const tok = ts.Tokenizer.fromCaptions(captions);
  const m = new ts.DiT({
    hiddenSize: 32, depth: 2, numHeads: 2, patchSize: [1, 2, 2], inChannels: 2, learnSigma: false,
    condition: 'text', text: { tokenizer: tok.state(), hiddenSize: 32, depth: 1, numHeads: 2 },
  });
  // Off the adaLN-Zero init (zero gates and output layer): there, the first gradients of
  // the zero-initialized layers are tiny sums of cancelling terms whose rounding AdamW's
  // normalization turns into visible differences under any change of summation order.
  ts.noGrad(() => m.parameters().forEach((p) => p.requiresGrad && p.copy_(p.add(ts.randn(p.shape).mul(0.05)))));
  return m;
}
async function ditCase(name, opts) {
  const data = latents(opts.grids);
  const run = async (distributed) => {
    const m = dit();
    const comm = [];
    const res = await ts.trainDiT({
      dit: m, diffusion: new ts.RectifiedFlow(), data, steps: STEPS, batchSize: opts.batch, lr: 3e-3, warmup: Math.min(3, STEPS - 1), weightDecay: 0.01,
      ema: null, seed: 5, conditionFrameProb: 0.5, mixed: opts.mixed, distributed, onStep: (s) => comm.push(s.commMs),
    });
    check(res.stopped === 'done' && res.steps === STEPS, `${name}: ${JSON.stringify({ stopped: res.stopped, steps: res.steps })}`);
    return { m, comm, loss: res.lastLoss };
  };
  const multi = await run('auto');
  check(sameOnAllRanks(multi.m.parameters()), `${name}: parameters differ across ranks`);
  check(multi.comm.every((c) => c > 0), `${name}: expected commMs > 0 on every step with 2 ranks, got ${multi.comm}`);
  if (r === 0) {
    const one = await run(false);
    check(one.comm.every((c) => c === 0), `${name}: expected commMs 0 in one process, got ${one.comm}`);
    const c = compare(one.m.namedParameters(), multi.m.parameters());
    const out = outputRel((m) => ts.tidy(() => { ts.manualSeed(9); return m.forward(ts.randn([3, 2, 2, 4, 4]), ts.tensor([0.2, 0.5, 0.9]), { prompts: captions }); }), multi.m, one.m);
    check(c.l2 <= 1e-6, `${name}: parameters after ${STEPS} AdamW steps: relative difference ${c.l2} > 1e-6 (||a - b|| / ||b||, key biases aside)`);
    check(out <= OUT_TOL, `${name}: the trained models' outputs differ by ${out} (max |a - b| / max |b|) > ${OUT_TOL}`);
    check(Math.abs(multi.loss - one.loss) <= 1e-5 * Math.abs(one.loss), `${name}: last loss ${multi.loss} (mean over ranks) vs ${one.loss} (one process)`);
    console.log(`rank 0: ${name} OK l2 ${c.l2.toExponential(2)} out ${out.toExponential(2)} maxRel ${c.maxRel.toExponential(2)} keyBias ${c.keyBias.toExponential(2)} loss ${multi.loss.toPrecision(6)} vs ${one.loss.toPrecision(6)}`);
  } else console.log(`rank ${r}: ${name} OK`);
  dist.barrier();
}

// ---- a small VideoVAE --------------------------------------------------------------------
const tinyVAE = {
  inChannels: 1, latentChannels: 4, baseChannels: 4, channelMultipliers: [1, 2, 2], numResBlocks: 1, decoderResBlocks: 1,
  temporalCompression: 4, spatialCompression: 4, numGroups: 2,
};
const clips = ts.movingMnistDataset(new ts.MovingMNIST({ length: 16, frames: 5, size: 32 }));
async function vaeCase() {
  const run = async (distributed) => {
    ts.manualSeed(1);
    const m = new ts.VideoVAE(tinyVAE);
    const res = await ts.trainVAE({
      model: m, data: clips, steps: STEPS, batchSize: 2, lr: 2e-3, warmup: 2, klWeight: 1e-3, mseWeight: 1, weightDecay: 0.01,
      crop: { frames: 5, size: 16 }, seed: 3, distributed,
    });
    check(res.step === STEPS, `vae: ${res.step} steps`);
    return { m, loss: res.last.loss, comm: res.last.commMs };
  };
  const multi = await run('auto');
  check(sameOnAllRanks(multi.m.parameters()), 'vae: parameters differ across ranks');
  check(multi.comm > 0, `vae: expected commMs > 0 with 2 ranks, got ${multi.comm}`);
  if (r === 0) {
    const one = await run(false);
    const c = compare(one.m.namedParameters(), multi.m.parameters());
    const out = outputRel((m) => ts.tidy(() => ts.noGrad(() => m.decode(m.encode(ts.tensor(clips.get(0).video, { shape: [1, 1, 5, 32, 32] }).mul(2).sub(1)).mode()))), multi.m, one.m);
    check(c.l2 <= 1e-6, `vae: parameters after ${STEPS} AdamW steps: relative difference ${c.l2} > 1e-6 (||a - b|| / ||b||)`);
    check(out <= OUT_TOL, `vae: the trained models' reconstructions differ by ${out} (max |a - b| / max |b|) > ${OUT_TOL} (l2 ${c.l2})`);
    check(Math.abs(multi.loss - one.loss) <= 1e-5 * Math.abs(one.loss), `vae: last loss ${multi.loss} vs ${one.loss}`);
    console.log(`rank 0: vae OK l2 ${c.l2.toExponential(2)} out ${out.toExponential(2)} maxRel ${c.maxRel.toExponential(2)} loss ${multi.loss.toPrecision(6)} vs ${one.loss.toPrecision(6)}`);
  } else console.log(`rank ${r}: vae OK`);
  dist.barrier();
}

// ---- encodeDataset and evaluateVAE --------------------------------------------------------
function encodeCase() {
  ts.manualSeed(2);
  const vae = new ts.VideoVAE(tinyVAE);
  // 13 clips in shards of 5: parts of 3/2 and 2/1 samples, a last shard of 3.
  const root = r === 0 ? fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-dist-encode-')) : null;
  const dir = dist.broadcastObject(root);
  const multi = ts.encodeDataset(vae, clips, path.join(dir, 'multi'), { batchSize: 2, shardSize: 5, count: 13, logvar: true });
  check(multi.count === 13 && multi.shards.length === 3, `encode: index ${JSON.stringify(multi)}`);
  if (r === 0) {
    const one = ts.encodeDataset(vae, clips, path.join(dir, 'one'), { batchSize: 2, shardSize: 5, count: 13, logvar: true, distributed: false });
    const a = ts.loadLatentCache(path.join(dir, 'multi')), b = ts.loadLatentCache(path.join(dir, 'one'));
    let worst = 0;
    for (let i = 0; i < 13; i++) {
      const x = a.get(i), y = b.get(i);
      check(x.caption === y.caption, `encode: sample ${i} caption '${x.caption}' vs '${y.caption}'`);
      for (const k of ['mean', 'logvar']) for (let j = 0; j < x[k].length; j++) worst = Math.max(worst, Math.abs(x[k][j] - y[k][j]));
    }
    check(worst <= 1e-5, `encode: latents differ by ${worst}`);
    check(Math.abs(multi.scalingFactor - one.scalingFactor) <= 1e-5 * one.scalingFactor, `encode: scaling factor ${multi.scalingFactor} vs ${one.scalingFactor}`);
    console.log(`rank 0: encode OK max diff ${worst.toExponential(2)}`);
  } else console.log(`rank ${r}: encode OK`);
  const e = ts.evaluateVAE(vae, clips, { samples: 7, batchSize: 2 });
  const all = dist.allGatherObject(e);
  check(JSON.stringify(all[0]) === JSON.stringify(all[1]), `evalvae: ranks disagree ${JSON.stringify(all)}`);
  if (r === 0) {
    const one = ts.evaluateVAE(vae, clips, { samples: 7, batchSize: 2, distributed: false });
    for (const k of ['psnr', 'ssim', 'mse']) check(Math.abs(e[k] - one[k]) <= 1e-9 * Math.max(1, Math.abs(one[k])), `evalvae: ${k} ${e[k]} vs ${one[k]}`);
    console.log(`rank 0: evalvae OK psnr ${e.psnr.toFixed(4)}`);
    fs.rmSync(dir, { recursive: true, force: true });
  } else console.log(`rank ${r}: evalvae OK`);
  dist.barrier();
}

(async () => {
  for (const c of cases) {
    if (c === 'dit') await ditCase('dit', { batch: 4, grids: [[2, 4, 4]] });
    else if (c === 'pack') await ditCase('pack', { batch: 3, grids: [[2, 4, 4], [1, 4, 6], [2, 2, 4]], mixed: 'pack' });
    else if (c === 'vae') await vaeCase();
    else if (c === 'encode') encodeCase();
    else throw new Error(`unknown case ${c}`);
  }
  dist.destroy();
})();
