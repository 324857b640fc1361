// Layers over the op families: names, shapes, and equivalence with the functional ops.
import * as ts from '../../lib';
import { expectClose } from './helpers';

const { nn, F } = ts;

test('Conv3d, GroupNorm, LayerNorm, RMSNorm, Embedding, Dropout', () => {
  ts.manualSeed(0);
  const conv = new nn.Conv3d(3, 8, 3, { padding: 1, causal: true });
  expect(conv.namedParameters().map(([n, p]) => [n, p.shape])).toEqual([['weight', [8, 3, 3, 3, 3]], ['bias', [8]]]);
  const x = ts.randn([2, 3, 5, 6, 7]);
  expect(conv.forward(x).shape).toEqual([2, 8, 5, 6, 7]);
  expectClose(conv.forward(x), F.conv3d(x, conv.weight, conv.bias, { padding: 1, causal: true }), 0);
  const gn = new nn.GroupNorm(4, 8);
  expect(gn.forward(conv.forward(x)).shape).toEqual([2, 8, 5, 6, 7]);
  expect(() => new nn.GroupNorm(3, 8)).toThrow(/GroupNorm: numChannels 8 is not divisible by numGroups 3/);
  const ln = new nn.LayerNorm(16, { elementwiseAffine: false, eps: 1e-6 });
  expect(ln.parameters().length).toBe(0);
  const t = ts.randn([2, 5, 16]);
  expectClose(ln.forward(t), F.layerNorm(t, [16], null, null, 1e-6), 0);
  expect(new nn.RMSNorm(16).forward(t).shape).toEqual([2, 5, 16]);
  const emb = new nn.Embedding(10, 4);
  expect(emb.forward(ts.tensor([[1, 2, 3]], { dtype: 'int32' })).shape).toEqual([1, 3, 4]);
  const drop = new nn.Dropout(0.5);
  drop.eval();
  expectClose(drop.forward(t), t, 0);
});

test('MultiHeadAttention: self (fused qkv) and cross, timm/DiT parameter names', () => {
  ts.manualSeed(1);
  const attn = new nn.MultiHeadAttention(32, 4);
  expect(attn.namedParameters().map(([n]) => n)).toEqual(['qkv.weight', 'qkv.bias', 'proj.weight', 'proj.bias']);
  const x = ts.randn([2, 7, 32]);
  const y = attn.forward(x);
  expect(y.shape).toEqual([2, 7, 32]);
  // the same computation by hand: softmax(q k^T / sqrt(d)) v per head
  const qkv = F.linear(x, attn.qkv!.weight, attn.qkv!.bias).reshape([2, 7, 3, 4, 8]).permute([2, 0, 3, 1, 4]); // [3, B, H, N, Dh]
  const [q, k, v] = [0, 1, 2].map((i) => qkv.slice(0, i, i + 1).squeeze(0));
  const p = F.softmax(q.matmul(k.transpose(-1, -2)).mul(1 / Math.sqrt(8)), -1);
  const o = p.matmul(v).permute([0, 2, 1, 3]).reshape([2, 7, 32]);
  expectClose(y, F.linear(o, attn.proj.weight, attn.proj.bias), 1e-10);
  const cross = new nn.MultiHeadAttention(32, 4, { kvDim: 12 });
  expect(cross.namedParameters().map(([n]) => n)).toEqual(['q.weight', 'q.bias', 'kv.weight', 'kv.bias', 'proj.weight', 'proj.bias']);
  expect(cross.forward(x, ts.randn([2, 3, 12])).shape).toEqual([2, 7, 32]);
  expect(() => cross.forward(x)).toThrow(/cross-attention needs a context/);
  // gradients reach every parameter
  attn.forward(x).sum().backward();
  for (const [n, p2] of attn.namedParameters()) expect([n, p2.grad !== null]).toEqual([n, true]);
});
