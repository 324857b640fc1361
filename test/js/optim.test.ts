// optim: AdamW and SGD against torch.optim (test/fixtures/gen_optim.py), param
// groups, state dicts, gradient accumulation, schedules, clipping and EMA.
import * as ts from '../../lib';
import { expectClose, loadFixture } from './helpers';

const { nn, optim } = ts;
const fx = loadFixture('optim');
const T = fx.tensors;
const SHAPES: number[][] = JSON.parse(fx.meta.shapes);

/** Fresh parameters from the fixture's initial values. */
const initParams = (prefix: string): ts.nn.Parameter[] => SHAPES.map((_, i) => new nn.Parameter(T[`${prefix}.init.${i}`].clone()));

function setGrad(p: ts.Tensor, g: ts.Tensor): void {
  p.grad?.dispose();
  p.grad = ts.keep(g.clone());
}

/** Runs the fixture's steps and checks every step's parameters. */
function checkAgainstTorch(prefix: string, steps: number, make: (ps: ts.nn.Parameter[]) => ts.optim.Optimizer<any>): ts.optim.Optimizer<any> {
  const ps = initParams(prefix);
  const opt = make(ps);
  for (let s = 0; s < steps; s++) {
    ps.forEach((p, i) => setGrad(p, T[`${prefix}.grad.${s}.${i}`]));
    opt.step();
    ps.forEach((p, i) => {
      const want = T[`${prefix}.param.${s}.${i}`].toFloat32Array();
      const got = p.toFloat32Array();
      // Float32 rounding differs from torch's in the last bits (fused multiply-adds);
      // updates can cancel most of a value, so the bound is relative to the tensor's scale.
      const scale = want.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
      got.forEach((v, k) => {
        if (!(Math.abs(v - want[k]) <= 1e-6 * scale))
          throw new Error(`${prefix} step ${s} param ${i}[${k}]: got ${v}, torch ${want[k]}`);
      });
    });
  }
  return opt;
}

describe('against torch.optim', () => {
  const adamw = JSON.parse(fx.meta.adamw);
  const makeAdamW = (ps: ts.nn.Parameter[]): ts.optim.AdamW =>
    new optim.AdamW(
      [{ params: ps.slice(0, 2), ...adamw.groups[0] }, { params: ps.slice(2), ...adamw.groups[1] }],
      { betas: adamw.betas, eps: adamw.eps },
    );

  for (const reference of [false, true])
    test(`AdamW with two param groups (${reference ? 'reference loop' : 'optimized kernel'})`, () => {
      ts.setReferenceKernels(reference);
      try {
        const opt = checkAgainstTorch('adamw', 6, makeAdamW);
        const sd = opt.stateDict();
        for (let i = 0; i < SHAPES.length; i++) {
          expect(sd.state[i].step).toBe(6);
          expectClose(sd.state[i].exp_avg as ts.Tensor, T[`adamw.exp_avg.${i}`], 1e-12);
          expectClose(sd.state[i].exp_avg_sq as ts.Tensor, T[`adamw.exp_avg_sq.${i}`], 1e-12);
        }
        expect(sd.paramGroups.map((g) => [g.lr, g.weightDecay, g.params])).toEqual([[1e-2, 0.1, [0, 1]], [3e-3, 0, [2]]]);
        opt.dispose();
      } finally {
        ts.setReferenceKernels(false);
      }
    });

  test('SGD with momentum, dampening and weight decay; Nesterov', () => {
    const sgd = JSON.parse(fx.meta.sgd);
    checkAgainstTorch('sgd', 4, (ps) => new optim.SGD(ps, sgd));
    const nes = JSON.parse(fx.meta.nesterov);
    checkAgainstTorch('nesterov', 4, (ps) => new optim.SGD(ps, nes));
  });
});

describe('optimizer behaviour', () => {
  const mse = (m: ts.nn.Module, x: ts.Tensor, y: ts.Tensor): ts.Tensor => m.forward(x).sub(y).square().mean();

  test('gradient accumulation over micro-batches gives the update of one large batch', () => {
    ts.manualSeed(7);
    const x = ts.randn([8, 6]), y = ts.randn([8, 3]);
    const run = (micro: number): Float32Array[] => {
      ts.manualSeed(1);
      const m = new nn.MLP(6, { hiddenFeatures: 16, outFeatures: 3 });
      const opt = new optim.AdamW(m, { lr: 1e-2, weightDecay: 0.1 });
      for (let step = 0; step < 3; step++) {
        opt.zeroGrad();
        const n = 8 / micro;
        for (let k = 0; k < micro; k++)
          ts.tidy(() => mse(m, x.slice(0, k * n, (k + 1) * n), y.slice(0, k * n, (k + 1) * n)).mul(1 / micro).backward());
        opt.step();
      }
      const out = m.parameters().map((p) => p.toFloat32Array());
      opt.dispose();
      m.dispose();
      return out;
    };
    const big = run(1), small = run(4);
    big.forEach((b, i) => expectClose(ts.tensor(small[i]), b, 1e-12));
  });

  test('state dicts round-trip: a restored optimizer continues bit-identically', () => {
    ts.manualSeed(3);
    const a = new nn.MLP(4, { hiddenFeatures: 8 }); // fc1.weight [8, 4] is parameter 0
    const b = new nn.MLP(4, { hiddenFeatures: 8 });
    b.loadStateDict(a.stateDict());
    const optA = new optim.AdamW(a, { lr: 5e-3 });
    const optB = new optim.AdamW(b, { lr: 1 });
    const x = ts.randn([5, 4]);
    const step = (m: ts.nn.Module, o: ts.optim.Optimizer<any>): void => {
      o.zeroGrad();
      ts.tidy(() => m.forward(x).square().mean().backward());
      o.step();
    };
    step(a, optA);
    step(a, optA);
    b.loadStateDict(a.stateDict());
    optB.loadStateDict(optA.stateDict());
    expect(optB.paramGroups[0].lr).toBe(5e-3);
    step(a, optA);
    step(b, optB);
    a.parameters().forEach((p, i) => expect(b.parameters()[i].toFloat32Array()).toEqual(p.toFloat32Array()));
    const bad = optA.stateDict();
    bad.state['0'] = { ...bad.state['0'], exp_avg: ts.zeros([3]) };
    expect(() => optB.loadStateDict(bad)).toThrow("AdamW.loadStateDict: cannot load the state dict:\n  state 0.exp_avg: expected shape [8, 4], got [3]");
    const sgd = new optim.SGD(a, { lr: 0.1, momentum: 0.9 });
    expect(() => sgd.loadStateDict({ state: {}, paramGroups: [{ params: [0] }] })).toThrow('expected 1 param groups of sizes [4], got 1 of sizes [1]');
  });

  test('param groups: per-group lr, schedules scale each initial lr, validation', () => {
    const p1 = new nn.Parameter(ts.ones([2])), p2 = new nn.Parameter(ts.ones([2]));
    const opt = new optim.SGD([{ params: [p1], lr: 0.1 }, { params: [p2] }], { lr: 0.01 });
    opt.setLRScale(0.5);
    expect(opt.paramGroups.map((g) => g.lr)).toEqual([0.05, 0.005]);
    setGrad(p1, ts.ones([2]));
    setGrad(p2, ts.ones([2]));
    opt.step();
    expect(Array.from(p1.toFloat32Array())).toEqual([0.95, 0.95].map(Math.fround));
    expect(Array.from(p2.toFloat32Array())).toEqual([0.995, 0.995].map(Math.fround));
    expect(() => new optim.AdamW([p1, p1])).toThrow('AdamW: group 0 param 1 appears in more than one place');
    expect(() => new optim.AdamW([p1], { betas: [0.9, 1] })).toThrow('AdamW: expected defaults betas to be two numbers in [0, 1), got [0.9,1]');
    expect(() => new optim.AdamW([{ params: [p1], lr: -1 }])).toThrow('AdamW: expected group 0 lr to be a finite number >= 0, got -1');
    expect(() => new optim.AdamW([p1.mul(2)])).toThrow('AdamW: group 0 param 0 is not a leaf tensor');
    expect(() => new optim.AdamW([])).toThrow('AdamW: got an empty parameter list');
    const f64 = new nn.Parameter(ts.ones([2], { dtype: 'float64' }));
    setGrad(f64, ts.ones([2]));
    expect(() => new optim.AdamW([f64]).step()).toThrow('adamw: expected param of dtype float32 (master weights), got float64');
  });

  test('schedules', () => {
    const w = optim.linearWarmup(4);
    expect([0, 1, 2, 3, 4, 100].map(w)).toEqual([0.25, 0.5, 0.75, 1, 1, 1]);
    const c = optim.cosineDecay(10, { minFactor: 0.1 });
    expect(c(0)).toBe(1);
    expect(c(5)).toBeCloseTo(0.55, 12);
    expect(c(10)).toBeCloseTo(0.1, 12);
    expect(c(20)).toBeCloseTo(0.1, 12);
    const wc = optim.warmupCosine(2, 12);
    expect([0, 1, 2, 7, 12].map(wc).map((v) => +v.toFixed(12))).toEqual([0.5, 1, 1, 0.5, 0]);
    expect(optim.constantLR()(123)).toBe(1);
    expect(() => optim.warmupCosine(5, 5)).toThrow('warmupCosine: expected warmupSteps (5) < totalSteps (5)');
    expect(() => w(-1)).toThrow('linearWarmup: expected a step >= 0, got -1');
  });

  test('clipGradNorm returns the norm before clipping and scales to maxNorm', () => {
    const a = new nn.Parameter(ts.zeros([2])), b = new nn.Parameter(ts.zeros([1])), c = new nn.Parameter(ts.zeros([3]));
    setGrad(a, ts.tensor([3, 0]));
    setGrad(b, ts.tensor([4]));
    expect(optim.clipGradNorm([a, b, c], 10).item()).toBeCloseTo(5, 6);
    expect(Array.from(a.grad!.toFloat32Array())).toEqual([3, 0]);
    expect(optim.clipGradNorm([a, b, c], 1).item()).toBeCloseTo(5, 6);
    expect(a.grad!.toFloat32Array()[0]).toBeCloseTo(0.6, 6);
    expect(b.grad!.toFloat32Array()[0]).toBeCloseTo(0.8, 6);
    expect(optim.clipGradNorm([a, b], 0.1, { normType: Infinity }).item()).toBeCloseTo(0.8, 6);
    expect(b.grad!.toFloat32Array()[0]).toBeCloseTo(0.1, 6);
    setGrad(a, ts.tensor([NaN, 1]));
    expect(optim.clipGradNorm([a], 1).item()).toBeNaN();
    expect(a.grad!.toFloat32Array()[1]).toBe(1); // untouched
    expect(optim.clipGradNorm([c], 1).item()).toBe(0);
  });

  test('clipGradNorm scales contiguous gradients in one native call and a strided one op by op', () => {
    const a = new nn.Parameter(ts.zeros([2, 3])), b = new nn.Parameter(ts.zeros([3, 2]));
    setGrad(a, ts.tensor([[1, 2, 0], [0, 2, 0]]));
    b.grad = ts.keep(ts.tensor([[0, 0, 4], [0, 0, 0]]).transpose(0, 1)); // a strided view
    expect(b.grad!.isContiguous()).toBe(false);
    expect(optim.clipGradNorm([a, b], 2.5).item()).toBeCloseTo(5, 6);
    expect(Array.from(a.grad!.toFloat32Array()).map((v) => +v.toFixed(5))).toEqual([0.5, 1, 0, 0, 1, 0]);
    expect(Array.from(b.grad!.contiguous().toFloat32Array()).map((v) => +v.toFixed(5))).toEqual([0, 0, 0, 0, 2, 0]);
  });

  test('EMA: update, copyTo, state dict', () => {
    ts.manualSeed(5);
    const m = new nn.Linear(3, 2);
    const ema = new optim.EMA(m, 0.9);
    const w0 = Float64Array.from(m.weight.toFloat32Array());
    const want = Float64Array.from(w0);
    for (let k = 1; k <= 3; k++) {
      ts.tidy(() => m.weight.copy_(m.weight.add(1)));
      ema.update();
      want.forEach((v, i) => (want[i] = 0.9 * v + 0.1 * (w0[i] + k)));
    }
    expect(ema.numUpdates).toBe(3);
    const target = new nn.Linear(3, 2);
    ema.copyTo(target);
    target.weight.toFloat32Array().forEach((v, i) => expect(v).toBeCloseTo(want[i], 5));
    const ema2 = new optim.EMA(new nn.Linear(3, 2), 0.5);
    ema2.loadStateDict(ema.stateDict());
    expect([ema2.decay, ema2.numUpdates]).toEqual([0.9, 3]);
    expectClose(ema2.stateDict().shadow.weight, ema.stateDict().shadow.weight, 0);
    expect(() => new optim.EMA(new nn.Linear(3, 5)).loadStateDict(ema.stateDict())).toThrow(
      "EMA.loadStateDict: cannot load the state dict:\n  'weight': expected shape [5, 3], got [2, 3]\n  'bias': expected shape [5], got [2]",
    );
    expect(() => new optim.EMA(m, 1.5)).toThrow('EMA: expected decay in [0, 1], got 1.5');
  });

  test('optimizers free their state on dispose', () => {
    const before = ts.memory().tensors;
    const m = new nn.MLP(3);
    const opt = new optim.AdamW(m);
    const ema = new optim.EMA(m);
    ts.tidy(() => m.forward(ts.ones([2, 3])).sum().backward());
    opt.step();
    ema.update();
    m.zeroGrad();
    opt.dispose();
    ema.dispose();
    m.dispose();
    expect(ts.memory().tensors).toBe(before);
  });
});
