// lib/diffusion behaviour: samplers reach the right distribution with the exact
// denoiser of Gaussian data, a tiny model learns, seeds, guidance, per-frame
// timesteps and conditioning frames, the hybrid loss's stop-gradient, errors, leaks.
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import {
  GaussianDiffusion, RectifiedFlow, ModelFn, classifierFreeGuidance, randomConditionFrames, spacedTimesteps, timestepShift,
} from '../../lib/diffusion';

const MU = 0.7, S = 0.4; // data ~ N(MU, S^2) elementwise

function meanStd(x: Tensor): [number, number] {
  const v = x.toFloat32Array();
  let m = 0;
  for (const a of v) m += a;
  m /= v.length;
  let s = 0;
  for (const a of v) s += (a - m) ** 2;
  return [m, Math.sqrt(s / v.length)];
}

/** Per-sample column [B, 1, 1] of f(t) from the model's timestep tensor [B]. */
const col = (t: Tensor, f: (t: number) => number): Tensor => ts.tensor(Float32Array.from(t.toFloat32Array(), f), { shape: [t.shape[0], 1, 1] });

/** The exact eps / v / variance-channel prediction for Gaussian data under diffusion d. */
function idealGaussian(d: GaussianDiffusion): ModelFn<null> {
  const ab = d.alphasCumprod;
  return (x, t) => {
    const a = (tt: number): number => ab[Math.round(tt)];
    // E[eps | x_t] = sqrt(1 - ab) (x - sqrt(ab) MU) / (ab S^2 + 1 - ab)
    const eps = x.sub(col(t, (tt) => Math.sqrt(a(tt)) * MU)).mul(col(t, (tt) => Math.sqrt(1 - a(tt)) / (a(tt) * S * S + 1 - a(tt))));
    let pred = eps;
    if (d.prediction === 'v') {
      const x0 = x.sub(eps.mul(col(t, (tt) => Math.sqrt(1 - a(tt))))).div(col(t, (tt) => Math.sqrt(a(tt))));
      pred = eps.mul(col(t, (tt) => Math.sqrt(a(tt)))).sub(x0.mul(col(t, (tt) => Math.sqrt(1 - a(tt)))));
    }
    return d.learnSigma ? ts.cat([pred, ts.zerosLike(pred)], 1) : pred;
  };
}

/** The exact velocity E[noise - x0 | x_t] for Gaussian data (t given as t * 1000). */
const idealFlow: ModelFn<null> = (x, tScaled) => {
  const tt = (v: number): number => v / 1000;
  const varx = (v: number): number => (1 - tt(v)) ** 2 * S * S + tt(v) ** 2;
  // x0 | x_t: E = MU + (1-t) S^2 (x - (1-t) MU) / var; noise | x_t: E = t (x - (1-t) MU) / var
  const r = x.sub(col(tScaled, (v) => (1 - tt(v)) * MU));
  const en = r.mul(col(tScaled, (v) => tt(v) / varx(v)));
  const ex0 = r.mul(col(tScaled, (v) => ((1 - tt(v)) * S * S) / varx(v))).add(MU);
  return en.sub(ex0);
};

describe('samplers with the exact denoiser of N(0.7, 0.4^2) data reach that distribution', () => {
  const shape = [4000, 1, 1];
  const stdError = (sample: () => Tensor): number => {
    const x = sample();
    const [m, s] = meanStd(x);
    x.dispose();
    expect(Math.abs(m - MU)).toBeLessThan(0.03); // sampling error of the mean: 0.4 / sqrt(4000) = 0.006
    return Math.abs(s - S);
  };
  // Deterministic samplers shrink the variance by their discretization error, which
  // falls with the step count at their order: DDIM and Euler first, DPM-Solver++ second.
  test.each([
    ['ddpm', 100, { prediction: 'eps', learnSigma: true }, 0.05],
    ['ddpm', 50, { prediction: 'v', betaSchedule: 'cosine' }, 0.05],
    ['ddim', 100, { prediction: 'eps' }, 0.02],
    ['ddim', 100, { prediction: 'v', betaSchedule: 'cosine' }, 0.02],
    ['dpm++2m', 30, { prediction: 'eps' }, 0.02],
    ['dpm++2m', 30, { prediction: 'v', betaSchedule: 'cosine', learnSigma: true }, 0.02],
  ] as const)('%s, %i steps, %j', (sampler, steps, o, tol) => {
    const d = new GaussianDiffusion(o);
    expect(stdError(() => d.sample(idealGaussian(d), { shape, sampler, steps, seed: 3 }))).toBeLessThan(tol);
  });

  test('DPM-Solver++(2M) is more accurate than DDIM at equal steps; both converge', () => {
    const d = new GaussianDiffusion();
    const err = (sampler: 'ddim' | 'dpm++2m', steps: number): number => stdError(() => d.sample(idealGaussian(d), { shape, sampler, steps, seed: 3 }));
    const ddim20 = err('ddim', 20), ddim80 = err('ddim', 80), dpm20 = err('dpm++2m', 20), dpm80 = err('dpm++2m', 80);
    expect(dpm20).toBeLessThan(0.6 * ddim20);
    expect(ddim80).toBeLessThan(ddim20 / 2.5); // first order: about / 4
    expect(dpm80).toBeLessThan(dpm20 / 5);
  });

  test.each([[1, 30], [3, 100]])('flow Euler, shift %d, %i steps', (shift, steps) => {
    const f = new RectifiedFlow({ shift });
    expect(stdError(() => f.sample(idealFlow, { shape, steps, seed: 3 }))).toBeLessThan(0.03);
  });
});

/** A tiny learnable model: out = x * A[bucket(t)] + b[bucket(t)], 10 timestep buckets. */
class Tiny extends ts.nn.Module {
  a = this.registerParameter('a', ts.zeros([10, 1]));
  b = this.registerParameter('b', ts.zeros([10, 1]));
  constructor(readonly tMax: number) {
    super();
  }
  forward(x: Tensor, t: Tensor): Tensor {
    const ids = ts.tensor(Int32Array.from(t.toFloat32Array(), (v) => Math.min(9, Math.floor((v / this.tMax) * 10))));
    const B = x.shape[0];
    return x.mul(ts.F.embedding(ids, this.a).reshape([B, 1, 1])).add(ts.F.embedding(ids, this.b).reshape([B, 1, 1]));
  }
}

describe('training', () => {
  test.each(['gaussian', 'flow'] as const)('%s: a tiny model learns N(0.7, 0.4^2) and samples it', (kind) => {
    ts.manualSeed(11);
    const proc = kind === 'gaussian' ? new GaussianDiffusion({ prediction: 'eps' }) : new RectifiedFlow({ timestepSampling: 'uniform' });
    const model = new Tiny(kind === 'gaussian' ? 1000 : 1000);
    const opt = new ts.optim.AdamW(model, { lr: 0.05, weightDecay: 0 });
    const fn: ModelFn<null> = (x, t) => model.forward(x, t);
    const losses: number[] = [];
    for (let step = 0; step < 150; step++)
      ts.tidy(() => {
        const x0 = ts.randn([256, 1, 1]).mul(S).add(MU);
        const { loss } = proc.trainingLoss(fn, x0);
        opt.zeroGrad();
        loss.backward();
        opt.step();
        losses.push(loss.item());
      });
    const avg = (a: number[]): number => a.reduce((p, q) => p + q, 0) / a.length;
    expect(avg(losses.slice(-20))).toBeLessThan(0.6 * avg(losses.slice(0, 5)));
    const shape = [2000, 1, 1];
    const x = proc instanceof GaussianDiffusion ? proc.sample(fn, { shape, steps: 50, sampler: 'ddim', seed: 1 }) : proc.sample(fn, { shape, steps: 30, seed: 1 });
    const [m, s] = meanStd(x);
    x.dispose();
    expect(Math.abs(m - MU)).toBeLessThan(0.1);
    expect(Math.abs(s - S)).toBeLessThan(0.15);
    opt.dispose?.();
  });

  test('hybrid loss: stop-gradient on the mean; the vb term trains only the variance channels', () => {
    const x0 = ts.randn([3, 2, 5]);
    const noise = ts.randn([3, 2, 5]);
    const out = ts.randn([3, 4, 5]).requiresGrad_();
    const grads = (vlbWeight: number): Float32Array[] => {
      const d = new GaussianDiffusion({ learnSigma: true, vlbWeight });
      out.grad?.dispose();
      out.grad = null;
      d.trainingLoss(() => out.mul(1), x0, { t: [0, 10, 700], noise }).loss.backward();
      return [out.grad!.slice(1, 0, 2).contiguous().toFloat32Array(), out.grad!.slice(1, 2, 4).contiguous().toFloat32Array()];
    };
    const [p0, v0] = grads(0), [p1, v1] = grads(1), [p2, v2] = grads(2);
    expect(Array.from(p1)).toEqual(Array.from(p0));
    expect(Array.from(p2)).toEqual(Array.from(p0));
    expect(v0.every((g) => g === 0)).toBe(true);
    expect(v1.some((g) => g !== 0)).toBe(true);
    v1.forEach((g, i) => expect(v2[i]).toBeCloseTo(2 * g, 6));
  });

  test('conditioning frames: clean in x_t, t = 0 for them, no gradient from them', () => {
    const x0 = ts.randn([2, 1, 4, 2, 2]);
    const out = ts.randn([2, 1, 4, 2, 2]).requiresGrad_();
    for (const proc of [new GaussianDiffusion(), new RectifiedFlow()]) {
      let seenT: number[] = [], seenX: Float32Array = new Float32Array();
      const model: ModelFn<null> = (x, t) => {
        expect(t.shape).toEqual([2, 4]);
        seenT = Array.from(t.toFloat32Array());
        seenX = x.toFloat32Array();
        return out.mul(1);
      };
      out.grad = null;
      const r = proc.trainingLoss(model, x0, { conditionFrames: [[0, 1], []], t: proc instanceof RectifiedFlow ? [0.5, 0.25] : [500, 250] });
      r.loss.backward();
      expect(seenT.slice(0, 2)).toEqual([0, 0]);
      expect(seenT.slice(2, 4).every((v) => v === 500)).toBe(true);
      expect(seenT.slice(4)).toEqual([250, 250, 250, 250]);
      const xv = x0.toFloat32Array(), g = out.grad!.toFloat32Array();
      for (let i = 0; i < 8; i++) expect(seenX[i]).toBe(xv[i]); // sample 0, frames 0-1 clean
      for (let i = 0; i < 8; i++) expect(Math.abs(g[i])).toBe(0);
      expect(g.slice(8).every((v) => v !== 0)).toBe(true);
    }
  });

  test('randomConditionFrames: probability, patterns, seeds', () => {
    ts.manualSeed(5);
    const a = randomConditionFrames(400, 5, { prob: 0.5 });
    ts.manualSeed(5);
    expect(randomConditionFrames(400, 5, { prob: 0.5 })).toEqual(a);
    const n = a.filter((l) => l.length).length;
    expect(n).toBeGreaterThan(150);
    expect(n).toBeLessThan(250);
    for (const l of a) if (l.length) expect(l).toEqual([...Array(l.length).keys()]), expect(l.length).toBeLessThan(5);
    expect(a.filter((l) => l.length === 1).length).toBeGreaterThan(n / 2); // first frame alone: half of them, plus k = 1
    expect(randomConditionFrames(3, 5, { prob: 0 })).toEqual([[], [], []]);
    expect(randomConditionFrames(3, 1, { prob: 1 })).toEqual([[], [], []]);
  });
});

describe('sampling API', () => {
  const d = new GaussianDiffusion({ timesteps: 100 });
  const m: ModelFn<null> = (x, t) => x.mul(0.5).add(t.reshape(t.rank === 1 ? [x.shape[0], 1, 1, 1, 1] : [x.shape[0], 1, t.shape[1], 1, 1]).mul(1e-3));

  test('a fixed seed gives identical samples and restores the global generator', () => {
    ts.manualSeed(99);
    const before = ts.getRngState();
    const run = (seed: number): Float32Array => {
      const x = d.sample(m, { shape: [2, 1, 2, 3, 3], steps: 5, seed });
      const v = x.toFloat32Array();
      x.dispose();
      return v;
    };
    const a = run(1), b = run(1), c = run(2);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    expect(ts.getRngState()).toEqual(before);
  });

  test('the model sees t [B] normally, [B, T] with 0 at given frames', () => {
    const seen: number[][] = [];
    const spy: ModelFn<null> = (x, t) => (seen.push([...t.shape, ...t.toFloat32Array()]), x.mul(0.1));
    d.sample(spy, { shape: [1, 1, 3, 2, 2], steps: 2, seed: 0 }).dispose();
    expect(seen).toEqual([[1, 99], [1, 0]]);
    seen.length = 0;
    const latents = ts.ones([1, 1, 1, 2, 2]);
    const x = d.sample(spy, { shape: [2, 1, 3, 2, 2], steps: 2, seed: 0, conditionFrames: { latents, indices: [1] } });
    expect(seen).toEqual([[2, 3, 99, 0, 99, 99, 0, 99], [2, 3, 0, 0, 0, 0, 0, 0]]);
    const v = x.toFloat32Array();
    for (let b = 0; b < 2; b++) for (let p = 0; p < 4; p++) expect(v[b * 12 + 4 + p]).toBe(1);
    x.dispose();
  });

  test('classifierFreeGuidance: doubled batch or two calls, guided channels, scale 1', () => {
    const calls: number[] = [];
    const model: ModelFn<Tensor> = (x, _t, c) => (calls.push(x.shape[0]), x.mul(c.reshape([x.shape[0], 1, 1])));
    const x = ts.ones([2, 3, 1]), t = ts.zeros([2]);
    const cond = ts.tensor([2, 4]), uncond = ts.tensor([1, 1]);
    const g = classifierFreeGuidance(model, { scale: 3, uncond })(x, t, cond);
    expect(calls).toEqual([4]);
    expect(g.toArray()).toEqual([[[4], [4], [4]], [[10], [10], [10]]]); // 1 + 3 (c - 1)
    const g2 = classifierFreeGuidance(model, { scale: 3, uncond, mode: 'twice', channels: 1 })(x, t, cond);
    expect(calls).toEqual([4, 2, 2]);
    expect(g2.toArray()).toEqual([[[4], [2], [2]], [[10], [4], [4]]]);
    expect(() => d.sample(m, { shape: [1, 1, 1, 1, 1], steps: 1, cfgScale: 2 })).toThrow(/needs an unconditional conditioning/);
  });

  test('clipDenoised keeps the x0 predictions, and so the DDIM result, in [-1, 1]', () => {
    const big: ModelFn<null> = (x) => x.mul(-3); // eps far off: x0 predictions blow up
    const v = d.sample(big, { shape: [2, 1, 2, 3, 3], steps: 4, sampler: 'ddim', seed: 0, clipDenoised: true });
    expect(v.toFloat32Array().every((a) => a >= -1 && a <= 1)).toBe(true);
    const u = d.sample(big, { shape: [2, 1, 2, 3, 3], steps: 4, sampler: 'ddim', seed: 0 });
    expect(u.toFloat32Array().some((a) => Math.abs(a) > 1)).toBe(true);
    v.dispose(), u.dispose();
  });

  test('no tensors leak from sampling or losses', () => {
    const latents = ts.zeros([1, 1, 1, 2, 2]);
    const before = ts.memory().tensors;
    for (const sampler of ['ddpm', 'ddim', 'dpm++2m'] as const)
      d.sample(m, { shape: [1, 1, 2, 2, 2], steps: 3, sampler, eta: 1, seed: 0, conditionFrames: { latents, indices: [0] } }).dispose();
    new RectifiedFlow().sample(m, { shape: [1, 1, 2, 2, 2], steps: 3, conditionFrames: { latents, indices: [1] } }).dispose();
    const x0 = ts.randn([2, 1, 2, 2, 2]);
    const gd = new GaussianDiffusion({ timesteps: 100, learnSigma: true });
    const r = gd.trainingLoss((x) => ts.cat([x, x], 1), x0, { t: [0, 5] });
    r.loss.dispose(), r.mse.dispose(), r.vb?.dispose(), r.t.dispose(), x0.dispose();
    gd.dispose(); // its coefficient table (kept on the device between steps)
    expect(ts.memory().tensors).toBe(before);
    latents.dispose();
  });

  test('clear errors', () => {
    expect(() => new GaussianDiffusion({ betaSchedule: 'quad' as never })).toThrow(/expected 'linear' or 'cosine'/);
    expect(() => new GaussianDiffusion({ prediction: 'x0' as never })).toThrow(/prediction 'eps' or 'v'/);
    expect(() => new RectifiedFlow({ timestepSampling: 'beta' as never })).toThrow(/timestepSampling/);
    expect(() => d.sample(m, { shape: [1, 1, 1, 1, 1], steps: 101 })).toThrow(/steps <= 100 for ddpm/);
    expect(() => d.sample(m, { shape: [1, 1, 1, 1, 1], sampler: 'heun' as never })).toThrow(/sampler/);
    expect(() => d.sample((x) => ts.cat([x, x], 1), { shape: [1, 1, 1, 1, 1], steps: 2 })).toThrow(/model output of shape \[1, 1, 1, 1, 1\].*got \[1, 2, 1, 1, 1\]/);
    expect(() => d.sample(m, { shape: [1, 1, 2, 1, 1], steps: 2, conditionFrames: { latents: ts.zeros([1, 1, 2, 1, 1]), indices: [0] } })).toThrow(/conditionFrames.latents of shape/);
    expect(() => d.sample(m, { shape: [1, 1, 2, 1, 1], steps: 2, conditionFrames: { latents: ts.zeros([1, 1, 2, 1, 1]), indices: [0, 1] } })).toThrow(/at least one must be generated/);
    expect(() => d.trainingLoss(m, ts.zeros([2, 1, 1, 1, 1]), { t: [0, 100] })).toThrow(/integers in \[0, 100\)/);
    expect(() => d.trainingLoss(m, ts.zeros([1, 1, 2, 1, 1]), { conditionFrames: [[2]] })).toThrow(/out of range/);
    expect(() => d.sample(null as never, { shape: [1, 1] })).toThrow(/expected model to be a function/);
  });
});

describe('schedules and shifts', () => {
  test('spaced timesteps and qSample', () => {
    expect(spacedTimesteps(1000, 10)).toEqual([0, 111, 222, 333, 444, 555, 666, 777, 888, 999]);
    expect(spacedTimesteps(1000, 1)).toEqual([999]);
    const d = new GaussianDiffusion();
    const x0 = ts.tensor([[1], [2]]), n = ts.tensor([[3], [-1]]);
    const xt = d.qSample(x0, [0, 999], n).toFloat32Array();
    const ab = d.alphasCumprod;
    expect(xt[0]).toBeCloseTo(Math.sqrt(ab[0]) + 3 * Math.sqrt(1 - ab[0]), 5);
    expect(xt[1]).toBeCloseTo(2 * Math.sqrt(ab[999]) - Math.sqrt(1 - ab[999]), 5);
  });

  test('the shift grows with the token count and moves timesteps toward noise', () => {
    const f = new RectifiedFlow({ shift: 1, shiftBaseTokens: 256 });
    expect(f.shiftFor(256)).toBe(1);
    expect(f.shiftFor(1024)).toBeCloseTo(2, 12);
    expect(f.shiftFor(4096)).toBeCloseTo(4, 12);
    expect(timestepShift(0.5, 3)).toBeCloseTo(0.75, 12);
    expect(timestepShift(0, 3)).toBe(0);
    expect(timestepShift(1, 3)).toBe(1);
    const s = f.sigmas(4, 1024);
    expect(s[0]).toBe(1);
    expect(s[4]).toBe(0);
    expect(s[2]).toBeCloseTo(timestepShift(0.5, 2), 12);
    // logit-normal training timesteps: median sigmoid(0) = 0.5, shifted by 3: 0.75
    ts.manualSeed(0);
    const t = Array.from(new RectifiedFlow({ shift: 3 }).sampleTimesteps(4001).toFloat32Array()).sort((a, b) => a - b);
    expect(t[2000]).toBeGreaterThan(0.72);
    expect(t[2000]).toBeLessThan(0.78);
  });
});
