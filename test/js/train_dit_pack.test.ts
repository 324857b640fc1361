// trainDiT with mixed: 'pack': samples of different grids (videos, other aspect ratios,
// single images) in one packed sequence. The packed step's gradients equal those of
// the same losses computed group by group with ordinary batched forwards.
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { packedTrainingStep } from '../../lib/train/dit';
import { DataRng } from '../../lib/data/rng';
import { expectClose } from './helpers';

function model(learnSigma: boolean): ts.DiT {
  ts.manualSeed(5);
  const m = new ts.DiT({ hiddenSize: 32, depth: 2, numHeads: 2, patchSize: [1, 2, 2], inChannels: 2, learnSigma, condition: 'class', numClasses: 3 });
  ts.noGrad(() => {
    for (const p of m.parameters()) p.copy_(ts.randn([...p.shape]).mul(0.2)); // no zero-init blind spots
  });
  return m;
}

const shapes: number[][] = [[2, 3, 4, 4], [2, 3, 4, 4], [2, 2, 4, 6], [2, 1, 4, 4], [2, 3, 4, 4]];
function batch(): ts.LatentSample[] {
  ts.manualSeed(11);
  return shapes.map((s, i) => ({ latent: ts.keep(ts.randn(s)), label: i % 3 }));
}

function grads(m: ts.DiT): Map<string, Float32Array> {
  return new Map(m.namedParameters().map(([n, p]) => [n, p.grad ? p.grad.toFloat32Array() : new Float32Array(p.numel)]));
}

/** The same losses group by group (grids in first-seen order), each group one batched forward. */
function reference(m: ts.DiT, d: ts.GaussianDiffusion | ts.RectifiedFlow, b: ts.LatentSample[], condProb: number): number {
  const groups = new Map<string, number[]>();
  b.forEach((s, i) => {
    const k = s.latent.shape.join('x');
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(i);
  });
  let loss = 0;
  for (const idx of groups.values()) {
    const x0 = ts.stack(idx.map((i) => b[i].latent));
    const T = x0.shape[2];
    const conditionFrames = condProb > 0 && T > 1 ? ts.randomConditionFrames(idx.length, T, { prob: condProb }) : undefined;
    const noise = ts.randn([...x0.shape]);
    const l = d.trainingLoss((xt: Tensor, t: Tensor, c: unknown) => m.forward(xt, t, c as number[]), x0, { cond: idx.map((i) => b[i].label!), noise, conditionFrames }).loss.mul(idx.length / b.length);
    l.backward();
    loss += l.item();
  }
  return loss;
}

test.each([
  ['gaussian learnSigma (hybrid loss)', () => new ts.GaussianDiffusion({ learnSigma: true }), true, 0],
  ['rectified flow with conditioning frames', () => new ts.RectifiedFlow(), false, 0.7],
] as const)('packed gradients equal group-by-group gradients: %s', (_, make, learnSigma, condProb) => {
  const m = model(learnSigma);
  const d = make();
  const b = batch();
  ts.tidy(() => {
    ts.manualSeed(42);
    const r = packedTrainingStep(m, d, b, 0, condProb, new DataRng(0, 7, 0));
    const packed = grads(m);
    m.zeroGrad();
    ts.manualSeed(42);
    const loss = reference(m, d, b, condProb);
    const want = grads(m);
    m.zeroGrad();
    expect(r.loss.item()).toBeCloseTo(loss, 5);
    expect(r.tokens).toBe(3 * 4 + 3 * 4 + 2 * 6 + 1 * 4 + 3 * 4);
    let nonzero = 0;
    for (const [n, g] of want) {
      expectClose(ts.tensor(packed.get(n)!, { shape: [g.length] }), ts.tensor(g, { shape: [g.length] }), 1e-4);
      if (g.some((v) => v !== 0)) nonzero++;
    }
    expect(nonzero).toBe(want.size);
  });
  for (const s of b) s.latent.dispose();
});

test("trainDiT mixed: 'pack' trains on videos, another aspect ratio and images together", async () => {
  const m = model(false);
  ts.manualSeed(1);
  const pats = [[2, 3, 4, 4], [2, 2, 4, 6], [2, 1, 4, 4]].map((s) => ts.keep(ts.randn(s).mul(0.5).add(1)));
  const data: ts.LatentDataset = { length: 6, get: (i) => ({ latent: pats[i % 3], label: i % 3 }) };
  const losses: number[] = [];
  const r = await ts.trainDiT({ dit: m, diffusion: new ts.RectifiedFlow(), data, steps: 60, batchSize: 4, lr: 3e-3, mixed: 'pack', ema: null, seed: 3, onStep: (s) => losses.push(s.loss) });
  expect(r.stopped).toBe('done');
  const mean = (xs: number[]): number => xs.reduce((a, v) => a + v, 0) / xs.length;
  expect(mean(losses.slice(-10))).toBeLessThan(0.7 * mean(losses.slice(0, 10)));
  await expect(ts.trainDiT({ dit: m, diffusion: new ts.RectifiedFlow(), data, steps: 1, batchSize: 2, mixed: 'packed' as 'pack' })).rejects.toThrow(/mixed must be 'bucket' or 'pack', got 'packed'/);
  pats.forEach((p) => p.dispose());
});
