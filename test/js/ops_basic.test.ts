// Foundation ops against PyTorch fixtures, plus finite-difference gradient checks.
import * as ts from '../../lib';
import { expectClose, gradcheck, loadFixture } from './helpers';

const fx = loadFixture('basic');
const T = fx.tensors;
const leaf = (name: string): ts.Tensor => ts.keep(T[name].clone().requiresGrad_());

function checkBinary(name: string, k: number, fn: (a: ts.Tensor, b: ts.Tensor) => ts.Tensor): void {
  const a = leaf(`${name}${k}.a`), b = leaf(`${name}${k}.b`);
  const out = fn(a, b);
  expectClose(out, T[`${name}${k}.out`], 1e-12);
  out.mul(T[`${name}${k}.w`]).sum().backward();
  expectClose(a.grad!, T[`${name}${k}.ga`], 1e-12);
  expectClose(b.grad!, T[`${name}${k}.gb`], 1e-12);
}

describe('foundation ops match PyTorch (forward and backward)', () => {
  for (const k of [0, 1]) {
    test(`broadcast add/sub/mul/div, case ${k}`, () => {
      checkBinary('add', k, (a, b) => a.add(b));
      checkBinary('sub', k, (a, b) => a.sub(b));
      checkBinary('mul', k, (a, b) => a.mul(b));
      checkBinary('div', k, (a, b) => a.div(b));
    });
    test(`unary tanh/exp/sigmoid and reductions, case ${k}`, () => {
      for (const [name, fn] of [
        ['tanh', (x: ts.Tensor) => x.tanh()],
        ['exp', (x: ts.Tensor) => x.exp()],
        ['sigmoid', (x: ts.Tensor) => x.sigmoid()],
        ['sum', (x: ts.Tensor) => x.sum(1, true)],
        ['max', (x: ts.Tensor) => x.max(-1)],
      ] as const) {
        const a = leaf(`${name}${k}.a`);
        const out = fn(a);
        expectClose(out, T[`${name}${k}.out`], 1e-12);
        out.mul(T[`${name}${k}.w`]).sum().backward();
        expectClose(a.grad!, T[`${name}${k}.ga`], 1e-12);
      }
    });
    test(`batched broadcasting matmul, case ${k}`, () => checkBinary('matmul', k, (a, b) => a.matmul(b)));
  }
});

describe('the remaining unary ops, reductions and shape ops match PyTorch', () => {
  const cases: [string, (x: ts.Tensor) => ts.Tensor][] = [
    ['log', (x) => x.abs().add(0.5).log()],
    ['sqrt', (x) => x.abs().add(0.5).sqrt()],
    ['abs', (x) => x.abs()],
    ['neg', (x) => x.neg()],
    ['relu', (x) => x.relu()],
    ['silu', (x) => ts.F.silu(x)],
    ['gelu', (x) => ts.F.gelu(x)],
    ['gelutanh', (x) => ts.F.gelu(x, { approximate: 'tanh' })],
    ['pow3', (x) => x.pow(3)],
    ['square', (x) => x.square()],
    ['sin', (x) => ts.sin(x)],
    ['cos', (x) => ts.cos(x)],
    ['rsqrt', (x) => ts.rsqrt(x.abs().add(0.5))],
    ['mean', (x) => x.mean(0)],
    ['min', (x) => x.min(-1, true)],
    ['shape', (x) => {
      const c = ts.cat([x, x.mul(2)], -1);
      const p = c.permute([...Array(c.rank).keys()].reverse()).reshape([-1]);
      return p.slice(0, 1, p.shape[0], 3);
    }],
    ['stack', (x) => ts.stack([x, x.mul(3)], 1).chunk(2, 1)[1]],
  ];
  for (const k of [0, 1])
    for (const [name, fn] of cases)
      test(`${name}, case ${k}`, () => {
        const a = leaf(`${name}${k}.a`);
        const out = fn(a);
        expectClose(out, T[`${name}${k}.out`], 1e-12);
        out.mul(T[`${name}${k}.w`]).sum().backward();
        expectClose(a.grad!, T[`${name}${k}.ga`], 1e-12);
      });
});

describe('finite-difference gradient checks', () => {
  const r = (shape: number[], seed: number, shift = 0): ts.Tensor => {
    ts.manualSeed(seed);
    return ts.keep(ts.randn(shape).add(shift).requiresGrad_());
  };
  test('elementwise and broadcasting', () => {
    gradcheck((a, b) => a.mul(b).add(a.div(b.abs().add(1))).sub(b.pow(2)), [r([3, 4, 5], 1), r([4, 1], 2)]);
    gradcheck((a) => a.tanh().sigmoid().add(a.exp().mul(0.1)).add(ts.sin(a)).add(ts.cos(a)), [r([6, 7], 3)]);
    gradcheck((a) => ts.rsqrt(a.abs().add(1)).add(a.abs().add(1).log()).add(ts.relu(a)), [r([6, 7], 30)]);
    gradcheck((a) => a.abs().add(0.5).sqrt(), [r([6, 7], 4)]);
    gradcheck((a) => a.pow(3).mul(0.1), [r([9], 5)]);
    gradcheck((a, b) => ts.maximum(a, b).add(ts.minimum(a, b).mul(2)), [r([5, 5], 6), r([5], 7)]);
  });
  test('reductions', () => {
    gradcheck((a) => a.sum([0, 2]), [r([3, 4, 5], 8)]);
    gradcheck((a) => a.mean(1, true), [r([3, 4, 5], 9)]);
    gradcheck((a) => a.max(-1), [r([3, 4, 5], 10)]);
    gradcheck((a) => a.min(), [r([3, 4, 5], 11)]);
  });
  test('matmul (batched, broadcast, 1-D operands)', () => {
    gradcheck((a, b) => a.matmul(b), [r([2, 1, 3, 4], 12), r([3, 4, 5], 13)]);
    gradcheck((a, b) => a.matmul(b), [r([4], 14), r([4, 5], 15)]);
    gradcheck((a, b) => a.matmul(b), [r([3, 4], 16), r([4], 17)]);
    gradcheck((a, b) => a.matmul(b.transpose(0, 1)), [r([6, 4], 18), r([5, 4], 19)]);
  });
  test('shape ops', () => {
    gradcheck((a) => a.permute([2, 0, 1]).reshape([5, 12]).slice(0, 1, 5, 2), [r([3, 4, 5], 20)]);
    gradcheck((a, b) => ts.cat([a, b], 1).chunk(3, 1)[1], [r([2, 3], 21), r([2, 4], 22)]);
    gradcheck((a, b) => ts.stack([a, b], 2).flatten(), [r([2, 3], 23), r([2, 3], 24)]);
    gradcheck((a) => a.unsqueeze(1).expand([3, 4, 5]).contiguous().squeeze(), [r([3, 5], 25)]);
  });
});
