// Layers over the op families: Conv3d, norms, Embedding, Dropout and multi-head
// attention (self with fused qkv, or cross), with PyTorch parameter names.
import { Conv3dOptions } from '../ops/conv';
import * as F from '../ops/functional';
import { reshape } from '../ops/basic';
import { Tensor } from '../tensor';
import { defaultLayerInit, normal } from './init';
import { LayerOptions, Linear } from './layers';
import { Module, Parameter } from './module';

import { posInt, Triple, triple } from '../checks';

export interface Conv3dLayerOptions extends LayerOptions, Conv3dOptions {
  bias?: boolean;
}

/** 3-D convolution: weight [out, in, kt, kh, kw], bias [out]; causal temporal padding optional. */
export class Conv3d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: Triple;
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly options: Conv3dOptions;

  constructor(inChannels: number, outChannels: number, kernelSize: number | Triple, opts: Conv3dLayerOptions = {}) {
    super();
    this.inChannels = posInt('Conv3d', 'inChannels', inChannels);
    this.outChannels = posInt('Conv3d', 'outChannels', outChannels);
    this.kernelSize = triple('Conv3d', 'kernelSize', kernelSize);
    const o = { dtype: opts.dtype, device: opts.device };
    this.weight = this.registerParameter('weight', Parameter.zeros([outChannels, inChannels, ...this.kernelSize], o));
    this.bias = this.registerParameter('bias', opts.bias === false ? null : Parameter.zeros([outChannels], o));
    this.options = { stride: opts.stride, padding: opts.padding, causal: opts.causal, paddingMode: opts.paddingMode };
    defaultLayerInit(this.weight, this.bias);
  }

  forward(x: Tensor): Tensor {
    return F.conv3d(x, this.weight, this.bias, this.options); // [B, out, T', H', W']
  }

  extraRepr(): string {
    return `${this.inChannels}, ${this.outChannels}, kernel_size=[${this.kernelSize.join(', ')}]${this.options.causal ? ', causal' : ''}`;
  }
}

/** GroupNorm over [B, C, ...] with per-channel affine weight/bias. */
export class GroupNorm extends Module {
  readonly weight: Parameter | null;
  readonly bias: Parameter | null;
  constructor(readonly numGroups: number, readonly numChannels: number, opts: LayerOptions & { eps?: number; affine?: boolean } = {}) {
    super();
    posInt('GroupNorm', 'numGroups', numGroups);
    posInt('GroupNorm', 'numChannels', numChannels);
    if (numChannels % numGroups) throw new RangeError(`GroupNorm: numChannels ${numChannels} is not divisible by numGroups ${numGroups}`);
    this.eps = opts.eps ?? 1e-5;
    const o = { dtype: opts.dtype, device: opts.device };
    const affine = opts.affine ?? true;
    this.weight = this.registerParameter('weight', affine ? Parameter.ones([numChannels], o) : null);
    this.bias = this.registerParameter('bias', affine ? Parameter.zeros([numChannels], o) : null);
  }
  readonly eps: number;
  forward(x: Tensor): Tensor {
    return F.groupNorm(x, this.numGroups, this.weight, this.bias, this.eps);
  }
}

/** LayerNorm over the trailing `normalizedShape` dims; affine optional (DiT uses none). */
export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly weight: Parameter | null;
  readonly bias: Parameter | null;
  readonly eps: number;
  constructor(normalizedShape: number | number[], opts: LayerOptions & { eps?: number; elementwiseAffine?: boolean; bias?: boolean } = {}) {
    super();
    this.normalizedShape = Array.isArray(normalizedShape) ? normalizedShape : [normalizedShape];
    this.normalizedShape.forEach((s) => posInt('LayerNorm', 'normalizedShape', s));
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.elementwiseAffine ?? true;
    const o = { dtype: opts.dtype, device: opts.device };
    this.weight = this.registerParameter('weight', affine ? Parameter.ones(this.normalizedShape, o) : null);
    this.bias = this.registerParameter('bias', affine && opts.bias !== false ? Parameter.zeros(this.normalizedShape, o) : null);
  }
  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

export class RMSNorm extends Module {
  readonly weight: Parameter | null;
  readonly eps: number;
  constructor(readonly dim: number, opts: LayerOptions & { eps?: number; elementwiseAffine?: boolean } = {}) {
    super();
    posInt('RMSNorm', 'dim', dim);
    this.eps = opts.eps ?? 1e-6;
    this.weight = this.registerParameter('weight', opts.elementwiseAffine === false ? null : Parameter.ones([dim], { dtype: opts.dtype, device: opts.device }));
  }
  forward(x: Tensor): Tensor {
    return F.rmsNorm(x, this.weight, this.eps);
  }
}

/** A lookup table weight [num, dim], initialized N(0, 1) as PyTorch does. */
export class Embedding extends Module {
  readonly weight: Parameter;
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, opts: LayerOptions = {}) {
    super();
    posInt('Embedding', 'numEmbeddings', numEmbeddings);
    posInt('Embedding', 'embeddingDim', embeddingDim);
    this.weight = this.registerParameter('weight', Parameter.zeros([numEmbeddings, embeddingDim], opts));
    normal(this.weight, 0, 1);
  }
  forward(ids: Tensor): Tensor {
    return F.embedding(ids, this.weight); // [..., dim]
  }
}

export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw new RangeError(`Dropout: expected 0 <= p < 1, got ${String(p)}`);
  }
  forward(x: Tensor): Tensor {
    return this.p === 0 ? x : F.dropout(x, this.p, this.training);
  }
}

export interface AttentionCallOptions {
  causal?: boolean;
  /** Packed sequences (B = 1): int32 prefix sums of query / key lengths. */
  cuSeqlensQ?: Tensor;
  cuSeqlensK?: Tensor;
  /** Applied to q and k [B, N, H, D] before attention (e.g. RoPE). */
  rotary?: (t: Tensor) => Tensor;
}

/**
 * Multi-head attention on tokens [B, N, D]. Self-attention uses one fused `qkv`
 * Linear (timm/DiT names: qkv, proj); cross-attention (kvDim set) uses `q`, `kv`
 * and `proj`. Heads stay in the [B, N, H, Dh] layout the attention op takes.
 */
export class MultiHeadAttention extends Module {
  readonly headDim: number;
  readonly qkv: Linear | null;
  readonly q: Linear | null;
  readonly kv: Linear | null;
  readonly proj: Linear;
  readonly qNorm: RMSNorm | null;
  readonly kNorm: RMSNorm | null;

  constructor(
    readonly dim: number,
    readonly numHeads: number,
    opts: LayerOptions & { kvDim?: number; qkvBias?: boolean; qkNorm?: boolean } = {},
  ) {
    super();
    posInt('MultiHeadAttention', 'dim', dim);
    posInt('MultiHeadAttention', 'numHeads', numHeads);
    if (dim % numHeads) throw new RangeError(`MultiHeadAttention: dim ${dim} is not divisible by numHeads ${numHeads}`);
    this.headDim = dim / numHeads;
    const o = { dtype: opts.dtype, device: opts.device, bias: opts.qkvBias ?? true };
    const cross = opts.kvDim !== undefined;
    this.qkv = this.registerModule('qkv', cross ? null : new Linear(dim, 3 * dim, o));
    this.q = this.registerModule('q', cross ? new Linear(dim, dim, o) : null);
    this.kv = this.registerModule('kv', cross ? new Linear(opts.kvDim!, 2 * dim, o) : null);
    this.qNorm = this.registerModule('q_norm', opts.qkNorm ? new RMSNorm(this.headDim) : null);
    this.kNorm = this.registerModule('k_norm', opts.qkNorm ? new RMSNorm(this.headDim) : null);
    this.proj = this.registerModule('proj', new Linear(dim, dim, { dtype: opts.dtype, device: opts.device }));
  }

  /** x [B, N, D]; context [B, M, kvDim] for cross-attention. Returns [B, N, D]. */
  forward(x: Tensor, context?: Tensor | null, opts: AttentionCallOptions = {}): Tensor {
    const [B, N] = x.shape;
    const H = this.numHeads, Dh = this.headDim;
    let q: Tensor, k: Tensor, v: Tensor;
    if (this.qkv) {
      const qkv = reshape(this.qkv.forward(x), [B, N, 3, H, Dh]); // [B, N, 3, H, Dh]
      [q, k, v] = [0, 1, 2].map((i) => qkv.slice(2, i, i + 1).reshape([B, N, H, Dh])); // views
    } else {
      if (!context) throw new Error('MultiHeadAttention: cross-attention needs a context [B, M, kvDim]');
      const M = context.shape[1];
      q = reshape(this.q!.forward(x), [B, N, H, Dh]);
      const kv = reshape(this.kv!.forward(context), [B, M, 2, H, Dh]);
      [k, v] = [0, 1].map((i) => kv.slice(2, i, i + 1).reshape([B, M, H, Dh]));
    }
    if (this.qNorm) q = this.qNorm.forward(q);
    if (this.kNorm) k = this.kNorm.forward(k);
    if (opts.rotary) (q = opts.rotary(q)), (k = opts.rotary(k));
    const o = F.scaledDotProductAttention(q, k, v, {
      causal: opts.causal, cuSeqlensQ: opts.cuSeqlensQ, cuSeqlensK: opts.cuSeqlensK,
    }); // [B, N, H, Dh]
    return this.proj.forward(o.reshape([B, N, this.dim])); // [B, N, D]
  }
}
