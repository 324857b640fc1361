// nn: Module naming and state dicts (PyTorch-compatible), strict loading, modes,
// conversion, containers, layers against PyTorch, and seeded initialization.
import * as ts from '../../lib';
import { expectClose, loadFixture } from './helpers';

const { nn } = ts;

class Block extends nn.Module {
  readonly attn: ts.nn.Linear;
  readonly mlp: ts.nn.MLP;
  constructor(d: number) {
    super();
    this.attn = this.registerModule('attn', new nn.Linear(d, 3 * d));
    this.mlp = this.registerModule('mlp', new nn.MLP(d, { hiddenFeatures: 2 * d }));
  }
}

class Net extends nn.Module {
  readonly xEmbedder = this.registerModule('x_embedder', new nn.Linear(3, 4));
  readonly blocks = this.registerModule('blocks', new nn.ModuleList([new Block(4), new Block(4)]));
  readonly head = this.registerModule('head', new nn.Sequential(new nn.SiLU(), new nn.Linear(4, 2, { bias: false })));
  readonly pos = this.registerBuffer('pos', ts.arange(4));
  readonly cache = this.registerBuffer('cache', ts.zeros([2]), { persistent: false });
  forward(x: ts.Tensor): ts.Tensor {
    let h = this.xEmbedder.forward(x).add(this.pos);
    for (const b of this.blocks) h = h.add(b.mlp.forward(h));
    return this.head.forward(h);
  }
}

const BLOCK = (i: number): string[] =>
  ['attn.weight', 'attn.bias', 'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias'].map((n) => `blocks.${i}.${n}`);

describe('Module structure', () => {
  test('PyTorch-style dotted names with numeric indices, in registration order', () => {
    const net = new Net();
    expect(net.namedParameters().map(([n]) => n)).toEqual(['x_embedder.weight', 'x_embedder.bias', ...BLOCK(0), ...BLOCK(1), 'head.1.weight']);
    expect(Object.keys(net.stateDict())).toEqual(['pos', 'x_embedder.weight', 'x_embedder.bias', ...BLOCK(0), ...BLOCK(1), 'head.1.weight']);
    expect(net.namedBuffers().map(([n]) => n)).toEqual(['pos', 'cache']);
    expect(net.namedModules().map(([n]) => n)).toEqual(['', 'x_embedder', 'blocks', 'blocks.0', 'blocks.0.attn', 'blocks.0.mlp',
      'blocks.0.mlp.fc1', 'blocks.0.mlp.act', 'blocks.0.mlp.fc2', 'blocks.1', 'blocks.1.attn', 'blocks.1.mlp', 'blocks.1.mlp.fc1',
      'blocks.1.mlp.act', 'blocks.1.mlp.fc2', 'head', 'head.0', 'head.1']);
    expect(net.getParameter('blocks.1.mlp.fc2.bias')).toBe(net.blocks.at(1).mlp.fc2.bias);
    expect(net.getSubmodule('blocks.0.mlp')).toBe(net.blocks.at(-2).mlp);
    expect(() => net.getSubmodule('blocks.7')).toThrow("Net.getSubmodule: 'blocks.7': ModuleList has no submodule '7'");
    // 3*4+4 + 2 * (4*12+12 + 4*8+8 + 8*4+4) + 4*2
    expect(net.numParameters()).toBe(16 + 2 * (60 + 40 + 36) + 8);
    expect(net.parameters().every((p) => p instanceof nn.Parameter && p.requiresGrad && p.isLeaf)).toBe(true);
    expect(net.blocks.length).toBe(2);
    expect([...net.blocks].length).toBe(2);
    net.dispose();
  });

  test('a shared parameter is listed once by parameters() and under each name by stateDict()', () => {
    const a = new nn.Linear(2, 2);
    const seq = new nn.Sequential(a, new nn.SiLU(), a);
    expect(seq.namedParameters().map(([n]) => n)).toEqual(['0.weight', '0.bias']);
    expect(Object.keys(seq.stateDict())).toEqual(['0.weight', '0.bias', '2.weight', '2.bias']);
    expect(seq.numParameters()).toBe(6);
  });

  test('registration errors', () => {
    const m = new nn.Module();
    m.registerParameter('w', ts.ones([2]));
    expect(() => m.registerBuffer('w', ts.ones([2]))).toThrow("Module: cannot register buffer 'w': a parameter of that name exists");
    expect(() => m.registerModule('a.b', new nn.SiLU())).toThrow("Module: module name 'a.b' must not contain '.'");
    expect(() => m.registerModule('x', {} as any)).toThrow("Module: expected submodule 'x' to be a Module, got object");
    expect(() => m.registerParameter('i', ts.arange(3, undefined, 1, { dtype: 'int32' }))).toThrow(/expected a floating tensor, got int32/);
    expect(() => m.forward(ts.ones([1]))).toThrow('Module: forward() is not implemented');
    expect(() => new nn.Linear(2.5, 3)).toThrow('Linear: expected inFeatures to be a non-negative integer, got number 2.5');
    expect(() => new nn.ModuleList([new nn.SiLU()]).at(3)).toThrow('ModuleList: index 3 is out of range for 1 modules');
  });

  test('toString prints the tree', () => {
    expect(new nn.MLP(4, { hiddenFeatures: 8 }).toString()).toBe(
      'MLP(\n  (fc1): Linear(in_features=4, out_features=8, bias=true)\n  (act): GELU(approximate=\'tanh\')\n' +
        '  (fc2): Linear(in_features=8, out_features=4, bias=true)\n)',
    );
  });

  test('modules own their tensors: construction inside tidy survives, dispose frees everything', () => {
    const before = ts.memory().tensors;
    const net = ts.tidy(() => new Net());
    expect(net.pos.toArray()).toEqual([0, 1, 2, 3]);
    ts.tidy(() => net.forward(ts.ones([2, 3])).sum().backward());
    net.zeroGrad();
    net.dispose();
    expect(ts.memory().tensors).toBe(before);
  });
});

describe('state dicts', () => {
  test('strict loading lists missing, unexpected and mismatched keys in one error and copies nothing', () => {
    const net = new Net();
    const other = new Net();
    const sd = { ...other.stateDict() };
    delete sd['blocks.1.mlp.fc2.bias'];
    sd['blocks.2.attn.weight'] = ts.ones([1]);
    sd['x_embedder.weight'] = ts.ones([3, 4]);
    const before = net.blocks.at(0).attn.weight.toFloat32Array();
    let msg = '';
    try {
      net.loadStateDict(sd);
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toBe(
      'Net.loadStateDict: cannot load the state dict:\n' +
        '  missing keys (1): blocks.1.mlp.fc2.bias\n' +
        '  unexpected keys (1): blocks.2.attn.weight\n' +
        '  shape mismatches (1): x_embedder.weight: expected [4, 3], got [3, 4]',
    );
    expect(net.blocks.at(0).attn.weight.toFloat32Array()).toEqual(before);
    // Non-strict: missing/unexpected are returned, but a shape mismatch is still an error.
    expect(() => net.loadStateDict(sd, { strict: false })).toThrow(/shape mismatches \(1\)/);
    sd['x_embedder.weight'] = other.xEmbedder.weight;
    expect(net.loadStateDict(sd, { strict: false })).toEqual({ missingKeys: ['blocks.1.mlp.fc2.bias'], unexpectedKeys: ['blocks.2.attn.weight'] });
    expect(net.blocks.at(0).attn.weight.toFloat32Array()).toEqual(other.blocks.at(0).attn.weight.toFloat32Array());
    expect(net.blocks.at(1).mlp.fc2.bias!.toFloat32Array()).not.toEqual(other.blocks.at(1).mlp.fc2.bias!.toFloat32Array());
  });

  test('values are copied (not shared) and converted from other dtypes', () => {
    const a = new nn.Linear(3, 2), b = new nn.Linear(3, 2);
    const sd = { weight: a.weight.to('float64'), bias: a.bias!.to('bfloat16') };
    b.loadStateDict(sd);
    expect(b.weight.dtype).toBe('float32');
    expectClose(b.weight, a.weight, 0);
    expectClose(b.bias!, a.bias!.to('bfloat16').to('float32'), 0);
    ts.tidy(() => a.weight.copy_(ts.zeros([2, 3])));
    expect(b.weight.toFloat32Array().some((v) => v !== 0)).toBe(true);
  });

  test('PyTorch state dicts load by name and reproduce outputs and gradients', () => {
    const T = loadFixture('nnmod').tensors;
    const pick = (prefix: string): Record<string, ts.Tensor> =>
      Object.fromEntries(Object.entries(T).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
    const mlp = new nn.MLP(8, { hiddenFeatures: 16, outFeatures: 4 });
    const seq = new nn.Sequential(new nn.Linear(4, 8), new nn.SiLU(), new nn.Linear(8, 3));
    mlp.loadStateDict(pick('mlp.'));
    seq.loadStateDict(pick('seq.'));
    const h = mlp.forward(T.x);
    const y = seq.forward(h);
    expectClose(h, T.h, 1e-12);
    expectClose(y, T.y, 1e-12);
    y.mul(T.w).sum().backward();
    for (const [n, p] of [...mlp.namedParameters().map(([n, p]) => [`mlp.${n}`, p] as const), ...seq.namedParameters().map(([n, p]) => [`seq.${n}`, p] as const)])
      expectClose(p.grad!, T[`grad.${n}`], 1e-10);
  });
});

describe('modes, conversion and gradients', () => {
  test('train()/eval() reach every submodule', () => {
    const net = new Net();
    expect(net.eval().modules().every((m) => !m.training)).toBe(true);
    expect(net.train().modules().every((m) => m.training)).toBe(true);
  });

  test('to(dtype) converts floating tensors in place, keeping Parameter identity and gradients', () => {
    const net = new Net();
    const p = net.blocks.at(0).attn.weight;
    const vals = p.toFloat32Array();
    ts.tidy(() => net.forward(ts.ones([1, 3])).sum().backward());
    net.to('float64');
    expect(net.blocks.at(0).attn.weight).toBe(p);
    expect(p.dtype).toBe('float64');
    expect(p.toFloat32Array()).toEqual(vals);
    expect(net.xEmbedder.weight.grad!.dtype).toBe('float64');
    expect(net.pos.dtype).toBe('float64'); // a floating buffer
    net.to('bfloat16').to('float32');
    expect(p.dtype).toBe('float32');
    expect(net.to('cpu')).toBe(net);
    expect(() => net.to('int32')).toThrow('Net.to: modules convert only to floating dtypes, got int32');
    expect(() => net.to('tpu' as any)).toThrow('Net.to: expected a dtype or device name, got string tpu');
  });

  test('zeroGrad drops gradients; requiresGrad_ freezes; numParameters counts trainable ones', () => {
    const m = new nn.MLP(3, { hiddenFeatures: 5 });
    ts.tidy(() => m.forward(ts.ones([2, 3])).sum().backward());
    expect(m.parameters().every((p) => p.grad !== null)).toBe(true);
    m.zeroGrad();
    expect(m.parameters().every((p) => p.grad === null)).toBe(true);
    m.fc1.requiresGrad_(false);
    expect(m.numParameters({ trainableOnly: true })).toBe(5 * 3 + 3);
    expect(m.numParameters()).toBe(3 * 5 + 5 + 5 * 3 + 3);
  });

  test('Linear and GELU match the functional ops; apply() visits every module', () => {
    const lin = new nn.Linear(5, 3);
    const x = ts.randn([2, 4, 5]);
    expectClose(lin.forward(x), x.matmul(lin.weight.transpose(0, 1)).add(lin.bias!), 1e-12);
    expectClose(new nn.GELU().forward(x), ts.F.gelu(x), 0);
    expectClose(new nn.Identity().forward(x), x, 0);
    const seen: string[] = [];
    new nn.MLP(2).apply((m) => seen.push(m.constructor.name));
    expect(seen.sort()).toEqual(['GELU', 'Linear', 'Linear', 'MLP']);
  });
});

describe('initialization', () => {
  const stats = (t: ts.Tensor): { min: number; max: number; mean: number; std: number } => {
    const v = t.toFloat32Array();
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
    return { min: Math.min(...v), max: Math.max(...v), mean, std };
  };

  test('Linear default (kaiming-uniform a=sqrt(5), bias U(+-1/sqrt(fanIn))) and seeded repeatability', () => {
    ts.manualSeed(42);
    const a = new nn.Linear(256, 300);
    ts.manualSeed(42);
    const b = new nn.Linear(256, 300);
    expect(a.weight.toFloat32Array()).toEqual(b.weight.toFloat32Array());
    expect(a.bias!.toFloat32Array()).toEqual(b.bias!.toFloat32Array());
    const bound = 1 / Math.sqrt(256);
    const w = stats(a.weight);
    expect(w.max).toBeLessThanOrEqual(bound);
    expect(w.min).toBeGreaterThanOrEqual(-bound);
    expect(w.max).toBeGreaterThan(0.99 * bound);
    expect(Math.abs(w.std / (bound / Math.sqrt(3)) - 1)).toBeLessThan(0.02);
    const bs = stats(a.bias!);
    expect(Math.max(Math.abs(bs.min), Math.abs(bs.max))).toBeLessThanOrEqual(bound);
    expect(new nn.Linear(256, 300).weight.toFloat32Array()).not.toEqual(a.weight.toFloat32Array());
  });

  test('xavierUniform, kaimingUniform, normal, constants and gains follow PyTorch', () => {
    const { init } = nn;
    const w = ts.zeros([200, 100, 3]); // fanIn 300, fanOut 600
    expect(init.calculateFanInAndFanOut(w)).toEqual([300, 600]);
    const xb = Math.sqrt(6 / 900);
    const x = stats(init.xavierUniform(w));
    expect(x.max).toBeLessThanOrEqual(xb);
    expect(Math.abs(x.std / (xb / Math.sqrt(3)) - 1)).toBeLessThan(0.02);
    const k = stats(init.kaimingUniform(w, { nonlinearity: 'relu' }));
    expect(Math.abs(k.std / Math.sqrt(2 / 300) - 1)).toBeLessThan(0.02);
    const n = stats(init.normal(w, 0.5, 0.02));
    expect(Math.abs(n.mean - 0.5)).toBeLessThan(0.001);
    expect(Math.abs(n.std / 0.02 - 1)).toBeLessThan(0.02);
    expect(stats(init.ones(w))).toEqual({ min: 1, max: 1, mean: 1, std: 0 });
    expect(stats(init.zeros(w)).max).toBe(0);
    expect(init.calculateGain('leaky_relu', Math.sqrt(5))).toBeCloseTo(Math.sqrt(1 / 3), 12);
    expect(init.calculateGain('tanh')).toBeCloseTo(5 / 3, 12);
    expect(() => init.xavierUniform(ts.zeros([3]))).toThrow('calculateFanInAndFanOut: expected a tensor of rank >= 2, got shape [3]');
    const half = ts.zeros([4, 4], { dtype: 'bfloat16' });
    expect(stats(init.uniform(half, 2, 3)).min).toBeGreaterThanOrEqual(2);
  });
});
