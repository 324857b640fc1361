// DiT: parity with a PyTorch reference of facebookresearch/DiT (fixture written by
// test/fixtures/gen_dit.py: state dict with DiT's names and random non-zero weights,
// inputs, output, gradients), the state dict names, initialization, presets,
// save/load, and errors for bad input.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { expectClose, loadFixture, nmse } from './helpers';

const fx = loadFixture('dit');
const T = fx.tensors;
const referenceSd = (): Record<string, Tensor> =>
  Object.fromEntries(Object.entries(T).filter(([k]) => k.startsWith('sd.')).map(([k, v]) => [k.slice(3), v]));
const small = (): ts.DiT =>
  new ts.DiT({ hiddenSize: 48, depth: 2, numHeads: 3, patchSize: 2, inChannels: 4, learnSigma: true, condition: 'class', numClasses: 10, positions: 'sincos2d' });

test('forward and gradients match the PyTorch DiT reference after loading its state dict', () => {
  expect(fx.meta.hidden).toBe('48');
  const model = small();
  const res = model.loadStateDict(referenceSd()); // pos_embed checked and consumed, Conv2d weight reshaped
  expect(res).toEqual({ missingKeys: [], unexpectedKeys: [] });
  expect(model.xEmbedder.proj.weight.shape).toEqual([48, 4, 1, 2, 2]);
  expectClose(model.xEmbedder.proj.weight.reshape([48, 4, 2, 2]), T['sd.x_embedder.proj.weight'], 0);
  ts.tidy(() => {
    const x = T['input.x'].clone().requiresGrad_(true); // [3, 4, 8, 8]: an image batch is [B, C, 1, H, W]
    const out = model.forward(x, T['input.t'], T['input.y']); // int64 labels, one of them the null class 10
    expect(out.shape).toEqual([3, 8, 8, 8]);
    const e = nmse(out.toFloat32Array(), T['output'].toFloat32Array());
    expect(e).toBeLessThan(1e-5);
    expect(e).toBeLessThan(1e-9); // what we measure: ~1e-12
    out.mul(T['grad.w']).sum().backward();
    expectClose(x.grad!, T['grad.input.x'], 1e-8);
    for (const k of Object.keys(T).filter((n) => n.startsWith('grad.') && n !== 'grad.w' && n !== 'grad.input.x')) {
      const name = k.slice(5);
      const g = model.getParameter(name).grad!;
      expectClose(name === 'x_embedder.proj.weight' ? g.reshape([48, 4, 2, 2]) : g, T[k], 1e-8);
    }
    // the same batch as a video [B, C, 1, H, W] gives the same numbers
    const v = ts.noGrad(() => model.forward(T['input.x'].unsqueeze(2), [3, 421.7, 999], { labels: [1, 7, 10] }));
    expectClose(v.squeeze(2), T['output'], 1e-9);
  });
  model.dispose();
});

test("DiT's fixed pos_embed equals our 2D sincos table; loading checks it", () => {
  expectClose(ts.sincos2dDiT(48, 4, 4), T['sd.pos_embed'].reshape([16, 48]), 1e-12);
  const sd = referenceSd();
  ts.tidy(() => {
    const model = small();
    const wrong = { ...sd, pos_embed: sd.pos_embed.mul(1.5) };
    expect(() => model.loadStateDict(wrong)).toThrow(/DiT.loadStateDict: pos_embed differs from the fixed 2D sincos table .* learned position tables are not supported/);
    const other = new ts.DiT({ ...model.config, positions: 'sincos3d' });
    expect(() => other.loadStateDict(sd)).toThrow(/pos_embed is DiT's 2D sincos table; this model uses positions 'sincos3d'/);
    // our own state dict (Conv3d-shaped patch weight, no pos_embed) loads strictly
    const own = small();
    own.loadStateDict(sd);
    const again = small();
    expect(again.loadStateDict(own.stateDict()).unexpectedKeys).toEqual([]);
    expectClose(again.xEmbedder.proj.weight, own.xEmbedder.proj.weight, 0);
    [model, other, own, again].forEach((m) => m.dispose());
  });
});

test('parameter names are DiT names; initializeWeights gives adaLN-Zero (output exactly 0)', () => {
  ts.manualSeed(0);
  const model = new ts.DiT({ hiddenSize: 32, depth: 2, numHeads: 2, patchSize: [1, 2, 2], inChannels: 4, numClasses: 5 });
  const names = model.namedParameters().map(([n]) => n);
  for (const n of ['x_embedder.proj.weight', 'x_embedder.proj.bias', 't_embedder.mlp.0.weight', 't_embedder.mlp.2.bias',
    'y_embedder.embedding_table.weight', 'blocks.1.attn.qkv.weight', 'blocks.1.attn.proj.bias', 'blocks.0.mlp.fc1.weight',
    'blocks.0.mlp.fc2.bias', 'blocks.0.adaLN_modulation.1.weight', 'final_layer.linear.weight', 'final_layer.adaLN_modulation.1.bias'])
    expect(names).toContain(n);
  expect(names.length).toBe(2 + 4 + 1 + 2 * 10 + 4);
  expect(model.getParameter('y_embedder.embedding_table.weight').shape).toEqual([6, 32]); // + null class
  expect(model.nullClass).toBe(5);
  const absMax = (n: string): number => model.getParameter(n).abs().max().item();
  expect(absMax('blocks.0.adaLN_modulation.1.weight')).toBe(0);
  expect(absMax('final_layer.linear.weight')).toBe(0);
  expect(absMax('blocks.0.attn.qkv.bias')).toBe(0);
  const std = (n: string): number => ts.tidy(() => model.getParameter(n).square().mean().sqrt().item());
  expect(std('t_embedder.mlp.0.weight')).toBeCloseTo(0.02, 2);
  expect(std('y_embedder.embedding_table.weight')).toBeCloseTo(0.02, 2);
  expect(std('blocks.0.attn.qkv.weight')).toBeCloseTo(Math.sqrt(2 / (32 + 96)), 2); // xavier-uniform
  expect(std('x_embedder.proj.weight')).toBeCloseTo(Math.sqrt(2 / (16 + 32)), 2); // xavier on [D, C*P]
  ts.tidy(() => {
    const out = model.forward(ts.randn([2, 4, 2, 4, 4]), [10, 20], [0, 5]);
    expect(out.shape).toEqual([2, 8, 2, 4, 4]);
    expect(out.abs().max().item()).toBe(0);
  });
  model.dispose();
});

test('presets: a table of DiT-S/B/L/XL with patch 2/4/8, and text video variants', () => {
  expect(ts.ditPresets['DiT-XL/2']).toMatchObject({ hiddenSize: 1152, depth: 28, numHeads: 16, patchSize: [1, 2, 2], condition: 'class', positions: 'sincos2d', learnSigma: true });
  expect(ts.ditPresets['DiT-S/8']).toMatchObject({ hiddenSize: 384, depth: 12, numHeads: 6, patchSize: [1, 8, 8] });
  expect(ts.ditPresets['DiT-B/4']).toMatchObject({ hiddenSize: 768, depth: 12, numHeads: 12 });
  expect(ts.ditPresets['DiT-L/2']).toMatchObject({ hiddenSize: 1024, depth: 24, numHeads: 16 });
  expect(ts.ditPresets['DiT-S/1x2x2']).toMatchObject({ patchSize: [1, 2, 2], condition: 'text', positions: 'sincos3d' });
  expect(Object.keys(ts.ditPresets).length).toBe(16);
  const m = ts.DiT.fromPreset('DiT-S/2', { depth: 1, numClasses: 3 });
  expect(m.config).toMatchObject({ hiddenSize: 384, depth: 1, numHeads: 6, patchSize: [1, 2, 2], inChannels: 4 });
  // DiT-S/2 minus 11 blocks and 997 classes, counted by hand
  const block = 384 * 1152 + 1152 + 384 * 384 + 384 + 384 * 1536 + 1536 + 1536 * 384 + 384 + 384 * 2304 + 2304;
  const rest = 16 * 384 + 384 + 256 * 384 + 384 + 384 * 384 + 384 + 4 * 384 + 384 * 32 + 32 + 384 * 768 + 768;
  expect(m.numParameters()).toBe(block + rest);
  m.dispose();
  expect(() => ts.DiT.fromPreset('DiT-M/2')).toThrow(/DiT.fromPreset: unknown preset 'DiT-M\/2' \(known: DiT-S\/2/);
});

test('save/load keeps the config and weights', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dit-'));
  ts.manualSeed(2);
  const m = new ts.DiT({ hiddenSize: 16, depth: 1, numHeads: 2, patchSize: [1, 2, 2], inChannels: 2, numClasses: 3, attention: 'factorized', positions: 'rope3d' });
  ts.noGrad(() => m.parameters().forEach((p) => ts.tidy(() => p.copy_(ts.randn(p.shape as number[]).mul(0.3)))));
  m.save(path.join(dir, 'm.safetensors'));
  const back = ts.DiT.load(path.join(dir, 'm.safetensors'));
  expect(back.config).toEqual(m.config);
  ts.tidy(() => {
    const x = ts.randn([1, 2, 2, 4, 4]);
    expectClose(ts.noGrad(() => back.forward(x, [7], [2])), ts.noGrad(() => m.forward(x, [7], [2])), 0);
  });
  fs.writeFileSync(path.join(dir, 'bare.safetensors'), '');
  ts.saveSafetensors(path.join(dir, 'bare.safetensors'), m.stateDict());
  expect(() => ts.DiT.load(path.join(dir, 'bare.safetensors'))).toThrow(/DiT.load: .* has no 'tessera.dit.config' metadata/);
  m.dispose();
  back.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('bad input names the method and what it expected', () => {
  const model = small();
  const any = (v: unknown): any => v;
  const x = ts.keep(ts.randn([2, 4, 8, 8]));
  const cases: [() => unknown, RegExp][] = [
    [() => model.forward(any('x'), [1, 2], [0, 1]), /DiT.forward: expected xt to be a Tensor, got string/],
    [() => model.forward(ts.zeros([2, 4, 8]), [1, 2], [0, 1]), /DiT.forward: expected xt \[B, C, T, H, W\] or an image batch \[B, C, H, W\], got \[2, 4, 8\]/],
    [() => model.forward(ts.zeros([2, 3, 8, 8]), [1, 2], [0, 1]), /DiT.forward: expected 4 latent channels, got 3/],
    [() => model.forward(ts.zeros([2, 4, 7, 8]), [1, 2], [0, 1]), /DiT.forward: latent size \[T, H, W\] = \[1, 7, 8\] is not a positive multiple of the patch \[1, 2, 2\]/],
    [() => model.forward(x, [1], [0, 1]), /DiT.forward: expected 2 finite timesteps \(one per sample\), got \[1\]/],
    [() => model.forward(x, ts.zeros([3]), [0, 1]), /DiT.forward: expected timesteps t \[2\] \(one per sample\), got \[3\]/],
    [() => model.forward(x, [1, NaN], [0, 1]), /DiT.forward: expected 2 finite timesteps/],
    [() => model.forward(x, [1, 2], [0, 11]), /DiT.forward: labels must be integers in \[0, 10\] \(10 = null class\), got 11/],
    [() => model.forward(x, [1, 2], [0]), /DiT.forward: expected 2 labels \(one per sample\), got 1/],
    [() => model.forward(x, [1, 2], ts.zeros([2])), /DiT.forward: expected labels of dtype int32 or int64, got float32/],
    [() => model.forward(x, [1, 2], any({ prompts: ['a', 'b'] })), /DiT.forward: condition 'class' expects labels/],
    [() => model.forward(x, [1, 2]), /DiT.forward: condition 'class' expects labels .* got undefined/],
    [() => model.loadStateDict(any(5)), /DiT.loadStateDict: expected an object \(or Map\) of name -> Tensor, got number/],
    [() => model.loadStateDict({ ...referenceSd(), pos_embed: ts.zeros([1, 15, 48]) }), /DiT.loadStateDict: expected pos_embed \[1, N, 48\] of a square grid, got \[1, 15, 48\]/],
    [() => model.loadStateDict({ 'blocks.0.attn.qkv.weight': ts.zeros([3, 3]) }), /DiT.loadStateDict: cannot load the state dict:[\s\S]*missing keys[\s\S]*blocks.0.attn.qkv.weight: expected \[144, 48\], got \[3, 3\]/],
    [() => new ts.DiT(any(null)), /DiT: expected a config object \(or use DiT.fromPreset\), got null/],
    [() => new ts.DiT({ hiddenSize: 30, depth: 1, numHeads: 4 }), /DiT: hiddenSize 30 is not divisible by numHeads 4/],
    [() => new ts.DiT(any({ hiddenSize: 32, depth: 1, numHeads: 4, attention: 'sparse' })), /DiT: expected attention 'full' or 'factorized', got sparse/],
    [() => new ts.DiT(any({ hiddenSize: 32, depth: 1, numHeads: 4, condition: 'audio' })), /DiT: expected condition 'text', 'class' or 'none', got audio/],
    [() => new ts.DiT({ hiddenSize: 32, depth: 0, numHeads: 4 }), /DiT: expected depth to be a positive integer, got number 0/],
    [() => new ts.DiT({ hiddenSize: 32, depth: 1, numHeads: 4, condition: 'none' }).forward(ts.zeros([1, 4, 2, 2]), [1], [3]), /DiT.forward: condition 'none' takes no cond, got array/],
  ];
  for (const [fn, re] of cases) expect(() => ts.tidy(fn)).toThrow(re);
  x.dispose();
  model.dispose();
});
