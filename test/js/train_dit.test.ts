// trainDiT and sample on a tiny synthetic latent dataset: two captions, two distinct
// latent patterns. The loss falls, guided samples follow the prompt, checkpoints resume.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../../lib';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-traindit-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const captions = ['the digit 1 moves left', 'the digit 7 moves up'];
function dataset(): ts.LatentDataset {
  // latent [2, 2, 4, 4]: +1 everywhere for caption 0, a -1/+1 checkerboard for caption 1
  const pats = [0, 1].map((k) =>
    ts.keep(ts.tensor(Float32Array.from({ length: 64 }, (_, i) => (k === 0 ? 1 : ((i + (i >> 2)) % 2 ? 1 : -1))), { shape: [2, 2, 4, 4] })),
  );
  return { length: 8, get: (i) => ({ latent: pats[i % 2], caption: captions[i % 2] }) };
}
function model(): ts.DiT {
  ts.manualSeed(0);
  const tok = ts.Tokenizer.fromCaptions(captions);
  return new ts.DiT({
    hiddenSize: 32, depth: 2, numHeads: 2, patchSize: [1, 2, 2], inChannels: 2, learnSigma: false,
    condition: 'text', text: { tokenizer: tok.state(), hiddenSize: 32, depth: 1, numHeads: 2 },
  });
}

test('the loss falls, guided samples follow their prompt, and training resumes from a checkpoint', async () => {
  const dit = model();
  const flow = new ts.RectifiedFlow();
  const losses: number[] = [];
  const r = await trainOnce(dit, flow, 120, losses);
  expect(r.stopped).toBe('done');
  const head = losses.slice(0, 10).reduce((a, b) => a + b) / 10, tail = losses.slice(-10).reduce((a, b) => a + b) / 10;
  expect(tail).toBeLessThan(head * 0.6);
  const out = ts.sample({ dit, diffusion: flow, prompts: captions, latentGrid: [2, 4, 4], steps: 20, cfgScale: 3, seed: 1, ema: r.ema });
  expect(out.shape).toEqual([2, 2, 2, 4, 4]);
  const again = ts.sample({ dit, diffusion: flow, prompts: captions, latentGrid: [2, 4, 4], steps: 20, cfgScale: 3, seed: 1, ema: r.ema });
  expect(Array.from(again.toFloat32Array())).toEqual(Array.from(out.toFloat32Array()));
  const d = dataset();
  const err = (s: number, k: number): number => out.slice(0, s, s + 1).squeeze(0).sub(d.get(k).latent).abs().mean().item();
  expect(err(0, 0)).toBeLessThan(err(0, 1)); // sample 0 is closer to pattern 0
  expect(err(1, 1)).toBeLessThan(err(1, 0));
  // a new sampling grid (never seen in training) works too
  expect(ts.sample({ dit, diffusion: flow, prompts: [captions[0]], latentGrid: [1, 6, 8], steps: 2, seed: 2 }).shape).toEqual([1, 2, 1, 6, 8]);
});

function trainOnce(dit: ts.DiT, diffusion: ts.RectifiedFlow | ts.GaussianDiffusion, steps: number, losses: number[], dir?: string, signal?: AbortSignal) {
  return ts.trainDiT({
    dit, diffusion, data: dataset(), steps, batchSize: 4, lr: 3e-3, warmup: 5, ema: 0.9, seed: 3,
    checkpointDir: dir, checkpointEvery: 10, signal, onStep: (s) => losses.push(s.loss),
  });
}

test('abort saves a checkpoint; a rerun resumes at that step; Gaussian diffusion trains too', async () => {
  const dir = path.join(tmp, 'ck');
  const ac = new AbortController();
  const losses: number[] = [];
  const dit = model();
  const gd = new ts.GaussianDiffusion({ learnSigma: false });
  await ts.trainDiT({ dit, diffusion: gd, data: dataset(), steps: 30, batchSize: 2, checkpointDir: dir, checkpointEvery: 100, seed: 1, signal: ac.signal,
    onStep: (s) => { losses.push(s.loss); if (s.step === 7) ac.abort(); } });
  expect(losses.length).toBe(7);
  expect(fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').length).toBe(7);
  const dit2 = model();
  const more: number[] = [];
  const r = await ts.trainDiT({ dit: dit2, diffusion: gd, data: dataset(), steps: 10, batchSize: 2, checkpointDir: dir, seed: 1, onStep: (s) => more.push(s.step) });
  expect(more).toEqual([8, 9, 10]);
  expect(r.stopped).toBe('done');
  await expect(ts.trainDiT({ dit: dit2, diffusion: gd, data: dataset(), steps: 0, batchSize: 2 })).rejects.toThrow(/trainDiT: expected steps to be a positive integer, got 0/);
  expect(() => ts.sample({ dit: dit2, diffusion: gd, latentGrid: [1, 4, 4] })).toThrow(/sample: a text-conditioned DiT needs prompts/);
});

test('withFirstFrameImages adds each video first latent frame as an image; batchTokens sizes bucketed batches by tokens', async () => {
  const base = dataset();
  const d = ts.withFirstFrameImages(base);
  expect(d.length).toBe(2 * base.length);
  const v = d.get(1), im = d.get(base.length + 1);
  expect(v.latent.shape).toEqual([2, 2, 4, 4]);
  expect(im.latent.shape).toEqual([2, 1, 4, 4]);
  expect(im.caption).toBe(v.caption);
  expect(Array.from(im.latent.toFloat32Array())).toEqual(Array.from(v.latent.slice(1, 0, 1).contiguous().toFloat32Array()));
  // videos: 2x2x2 = 8 tokens per sample, images 4: with 16 tokens per batch, batches of 2 videos or 4 images
  const sizes = new Set<string>();
  const dit = model();
  await ts.trainDiT({
    dit, diffusion: new ts.RectifiedFlow(), data: d, steps: 12, batchSize: 99, batchTokens: 16, lr: 1e-3, ema: null, seed: 5,
    onStep: (s) => sizes.add(`${s.samples}x${s.tokens}`),
  });
  expect([...sizes].sort()).toEqual(['2x16', '4x16']);
  await expect(ts.trainDiT({ dit, diffusion: new ts.RectifiedFlow(), data: d, steps: 1, batchSize: 2, batchTokens: 0 })).rejects.toThrow(/batchTokens/);
  await expect(ts.trainDiT({ dit, diffusion: new ts.RectifiedFlow(), data: d, steps: 1, batchSize: 2, batchTokens: 8, mixed: 'pack' })).rejects.toThrow(/batchTokens/);
});

test('progress: after warmup the learning rate follows a cosine of the progress given, not of step / steps', async () => {
  const dit = model();
  const lrs: number[] = [];
  const ps = [0, 0, 0, 0.25, 0.5, 0.75, 1, 1.5];
  let k = 0;
  await ts.trainDiT({
    dit, diffusion: new ts.RectifiedFlow(), data: dataset(), steps: 10, batchSize: 2, lr: 1e-3, warmup: 2, ema: null, seed: 3,
    progress: () => ps[k++], onStep: (s) => lrs.push(s.lr),
  });
  // steps 1-2 warm up (progress is not read), then one step per progress value (past 1: the floor).
  const cos = (p: number): number => 1e-3 * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, p))));
  expect(lrs.slice(0, 2)).toEqual([5e-4, 1e-3]);
  expect(lrs.slice(2, 10).map((v) => v.toPrecision(6))).toEqual(ps.map((p) => cos(p).toPrecision(6)));
  await expect(ts.trainDiT({ dit, diffusion: new ts.RectifiedFlow(), data: dataset(), steps: 10, batchSize: 2, warmup: 0, ema: null, progress: () => NaN }))
    .rejects.toThrow('trainDiT: progress() returned NaN; expected a number in [0, 1]');
  await expect(ts.trainDiT({ dit, diffusion: new ts.RectifiedFlow(), data: dataset(), steps: 10, batchSize: 2, progress: 5 as unknown as () => number }))
    .rejects.toThrow('trainDiT: expected progress to be a function returning 0..1, got number');
});
