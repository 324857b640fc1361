// Text conditioning: a small transformer encoder over the caption tokenizer, trained
// jointly with the DiT, and helpers for text embeddings that users bring themselves.
//   B: prompts, L: tokens per prompt (the tokenizer's maxLength, padded), D: width,
//   M: valid (non-padding) tokens of the whole batch.
// Padding never takes part: the valid tokens of all prompts are packed into one
// sequence [1, M, D] and attention runs per prompt (cuSeqlens), so outputs at padding
// positions are zero and an empty prompt (all padding: the null condition for
// classifier-free guidance) gives zero tokens and a zero pooled vector.
import { noGrad } from '../autograd/node';
import { indexTensor, tensor, zeros } from '../creation';
import * as F from '../ops/functional';
import { cat, live, shapeStr } from '../ops/basic';
import { Tensor, typeName } from '../tensor';
import { posInt } from '../checks';
import { xavierUniform, normal, zeros as zeroInit } from '../nn/init';
import { LayerOptions, Linear, MLP, ModuleList } from '../nn/layers';
import { Embedding, LayerNorm, MultiHeadAttention } from '../nn/layers_more';
import { Module, Parameter } from '../nn/module';
import { Tokenizer, TokenizerState } from './tokenizer';

export interface TextEncoderConfig {
  /** The tokenizer's vocabulary and maxLength: saved with the model's config. */
  tokenizer: TokenizerState;
  hiddenSize: number;
  /**
   * Transformer blocks (default 2). 0: each token is its own embedding plus position,
   * layer-normed: a bag of words (each token vector depends on its own word and place
   * only, the pooled vector is their mean), so combinations never seen in training
   * still encode as their parts.
   */
  depth?: number;
  numHeads?: number;
  mlpRatio?: number;
}

/** Encoded text: tokens [B, L, D] (zero at padding), mask [B, L] (1 = token), pooled [B, D] (masked mean). */
export interface TextEncoding {
  tokens: Tensor;
  mask: Tensor;
  pooled: Tensor;
  /** The mask's values on the host, when known (saves reading mask back from a device). */
  maskHost?: Float32Array;
}

/** Valid tokens of a batch packed for per-prompt attention. */
export interface PackedText {
  /** [1, M, D] the valid tokens, prompt after prompt. */
  tokens: Tensor;
  /** int32 [B + 1] prefix sums of the prompts' valid token counts, on the tokens' device. */
  cuSeqlens: Tensor;
  lengths: number[];
  /** For each of the B*L slots, its row in `tokens`, or M for padding. */
  slots: Int32Array;
}

/**
 * A mask [B, L] (any numeric dtype; non-zero = token) as host values 0/1, checked. Uses
 * `host` when given (values the caller already has); otherwise reads the mask, which on a
 * device is a host read: the packing of valid tokens depends on it.
 */
export function maskValues(mask: unknown, B: number, L: number, op: string, host?: Float32Array): Float32Array {
  const m = live(mask, op, 'mask');
  if (m.rank !== 2 || m.shape[0] !== B || m.shape[1] !== L)
    throw new Error(`${op}: expected a mask [${B}, ${L}] (1 = token, 0 = padding), got ${shapeStr(m.shape)}`);
  if (host) {
    if (host.length !== B * L) throw new Error(`${op}: expected ${B * L} host mask values, got ${host.length}`);
    return host;
  }
  const v = m.dataSync();
  const out = new Float32Array(B * L);
  for (let i = 0; i < out.length; i++) out[i] = Number(v[i]) !== 0 ? 1 : 0;
  return out;
}

/**
 * Gathers the valid tokens of x [B, L, D] (mask [B, L]) into [1, M, D], differentiably
 * (a row gather; its backward scatters the gradient back). The tables are made on x's
 * device; maskHost (the mask's host values, when the caller has them) avoids a read.
 */
export function packTokens(x: Tensor, mask: Tensor, op = 'packTokens', maskHost?: Float32Array): PackedText {
  const t = live(x, op, 'tokens');
  if (t.rank !== 3) throw new Error(`${op}: expected tokens [B, L, D], got ${shapeStr(t.shape)}`);
  const [B, L, D] = t.shape;
  const m = maskValues(mask, B, L, op, maskHost);
  const rows: number[] = [];
  const lengths = new Array<number>(B).fill(0);
  for (let b = 0; b < B; b++) for (let l = 0; l < L; l++) if (m[b * L + l]) (rows.push(b * L + l), lengths[b]++);
  const M = rows.length;
  const slots = new Int32Array(B * L).fill(M);
  rows.forEach((r, i) => (slots[r] = i));
  const cu = [0];
  for (const n of lengths) cu.push(cu[cu.length - 1] + n);
  const device = t.device;
  const packed = M === 0
    ? zeros([1, 0, D], { device })
    : F.indexSelect(t.reshape([B * L, D]), tensor(Int32Array.from(rows), { dtype: 'int32', device })).reshape([1, M, D]); // [1, M, D]
  return { tokens: packed, cuSeqlens: indexTensor(cu, device), lengths, slots };
}

/** The inverse of packTokens: [1, M, D] -> [B, L, D] with zeros at padding. */
export function unpackTokens(packed: PackedText, B: number, L: number): Tensor {
  const D = packed.tokens.shape[2];
  const M = packed.tokens.shape[1];
  const device = packed.tokens.device;
  const rows = cat([packed.tokens.reshape([M, D]), zeros([1, D], { device })], 0); // [M + 1, D], last row zero
  return F.indexSelect(rows, tensor(packed.slots, { dtype: 'int32', shape: [B, L], device })); // [B, L, D]
}

/**
 * Mean of tokens [B, L, D] over the valid positions of mask [B, L]; zeros where a prompt
 * has none (the pooled text vector). maskHost: the mask's host values, when known.
 */
export function maskedTokenMean(tokens: Tensor, mask: Tensor, maskHost?: Float32Array): Tensor {
  const op = 'maskedTokenMean';
  const t = live(tokens, op, 'tokens');
  if (t.rank !== 3) throw new Error(`${op}: expected tokens [B, L, D], got ${shapeStr(t.shape)}`);
  const [B, L] = t.shape;
  const m = maskValues(mask, B, L, op, maskHost);
  const inv = new Float32Array(B);
  for (let b = 0; b < B; b++) {
    let n = 0;
    for (let l = 0; l < L; l++) n += m[b * L + l];
    inv[b] = n > 0 ? 1 / n : 0;
  }
  const device = t.device;
  const mt = tensor(m, { shape: [B, L, 1], device });
  return t.mul(mt).sum(1).mul(tensor(inv, { shape: [B, 1], device })); // [B, D]
}

/** Pre-norm transformer block over packed tokens [1, M, D] with per-prompt attention. */
export class TextBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: MultiHeadAttention;
  readonly norm2: LayerNorm;
  readonly mlp: MLP;
  constructor(dim: number, numHeads: number, mlpRatio: number, opts: LayerOptions = {}) {
    super();
    this.norm1 = this.registerModule('norm1', new LayerNorm(dim, opts));
    this.attn = this.registerModule('attn', new MultiHeadAttention(dim, numHeads, opts));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dim, opts));
    this.mlp = this.registerModule('mlp', new MLP(dim, { ...opts, hiddenFeatures: Math.floor(dim * mlpRatio) }));
  }
  forward(x: Tensor, cuSeqlens: Tensor): Tensor {
    const cu = { cuSeqlensQ: cuSeqlens, cuSeqlensK: cuSeqlens };
    x = x.add(this.attn.forward(this.norm1.forward(x), null, cu)); // [1, M, D]
    return x.add(this.mlp.forward(this.norm2.forward(x))); // [1, M, D]
  }
}


/**
 * Caption tokenizer + token embedding + learned positions + pre-norm transformer
 * blocks + final LayerNorm. Parameter names: token_embedding.weight,
 * position_embedding [L, D], blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2},
 * norm_final.
 */
export class TextEncoder extends Module {
  readonly tokenizer: Tokenizer;
  readonly hiddenSize: number;
  readonly depth: number;
  readonly numHeads: number;
  readonly mlpRatio: number;
  readonly tokenEmbedding: Embedding;
  readonly positionEmbedding: Parameter;
  readonly blocks: ModuleList<TextBlock>;
  readonly normFinal: LayerNorm;

  constructor(config: TextEncoderConfig, opts: LayerOptions = {}) {
    super();
    const op = 'TextEncoder';
    if (config === null || typeof config !== 'object')
      throw new TypeError(`${op}: expected a config { tokenizer, hiddenSize, depth, numHeads }, got ${typeName(config)}`);
    this.tokenizer = new Tokenizer(config.tokenizer);
    this.hiddenSize = posInt(op, 'hiddenSize', config.hiddenSize);
    this.depth = posInt(op, 'depth', config.depth ?? 2, 0);
    this.numHeads = posInt(op, 'numHeads', config.numHeads ?? 4);
    this.mlpRatio = config.mlpRatio ?? 4;
    if (typeof this.mlpRatio !== 'number' || !(this.mlpRatio > 0)) throw new TypeError(`${op}: expected a positive mlpRatio, got ${String(this.mlpRatio)}`);
    const D = this.hiddenSize, L = this.tokenizer.maxLength;
    this.tokenEmbedding = this.registerModule('token_embedding', new Embedding(this.tokenizer.vocabSize, D, opts));
    this.positionEmbedding = this.registerParameter('position_embedding', Parameter.zeros([L, D], opts));
    this.blocks = this.registerModule('blocks', new ModuleList<TextBlock>());
    for (let i = 0; i < this.depth; i++) this.blocks.append(new TextBlock(D, this.numHeads, this.mlpRatio, opts));
    this.normFinal = this.registerModule('norm_final', new LayerNorm(D, opts));
    this.initializeWeights();
  }

  /** A new encoder whose tokenizer is built from the training captions. */
  static fromCaptions(captions: string[], opts: Omit<TextEncoderConfig, 'tokenizer'> & { maxLength?: number }): TextEncoder {
    const tok = Tokenizer.fromCaptions(captions, { maxLength: opts.maxLength });
    const { maxLength: _m, ...rest } = opts;
    void _m;
    return new TextEncoder({ ...rest, tokenizer: tok.state() });
  }

  /** The JSON-serializable config, tokenizer state included (save it with the weights). */
  get config(): TextEncoderConfig {
    return { tokenizer: this.tokenizer.state(), hiddenSize: this.hiddenSize, depth: this.depth, numHeads: this.numHeads, mlpRatio: this.mlpRatio };
  }

  /** Embeddings N(0, 0.02), linears xavier-uniform with zero bias, norms identity. */
  initializeWeights(): void {
    normal(this.tokenEmbedding.weight, 0, 0.02);
    normal(this.positionEmbedding, 0, 0.02);
    for (const m of this.modules())
      if (m instanceof Linear) {
        xavierUniform(m.weight);
        if (m.bias) zeroInit(m.bias);
      }
  }

  /** Tokenizes prompts and encodes them; '' is the null condition. */
  encode(prompts: string[]): TextEncoding {
    if (!Array.isArray(prompts) || prompts.some((p) => typeof p !== 'string'))
      throw new TypeError(`TextEncoder.encode: expected an array of prompt strings, got ${typeName(prompts)}`);
    const h = this.tokenizer.encodeHost(prompts);
    const device = this.device;
    const ids = tensor(h.ids, { shape: h.shape, device }), mask = tensor(h.mask, { shape: h.shape, device });
    return this.forward(ids, mask, h.mask);
  }

  /**
   * ids int32 [B, L], mask [B, L] -> { tokens [B, L, D], mask, pooled [B, D] }. maskHost:
   * the mask's values on the host when the caller has them (otherwise the mask is read:
   * which tokens are valid decides the packing).
   */
  forward(ids: Tensor, mask: Tensor, maskHost?: Float32Array): TextEncoding {
    const op = 'TextEncoder.forward';
    const i = live(ids, op, 'ids');
    const L = this.tokenizer.maxLength;
    if (i.rank !== 2 || i.shape[1] !== L || (i.dtype !== 'int32' && i.dtype !== 'int64'))
      throw new Error(`${op}: expected ids int32 [B, ${L}], got ${i.dtype} ${shapeStr(i.shape)}`);
    const B = i.shape[0];
    const x = this.tokenEmbedding.forward(i).add(this.positionEmbedding); // [B, L, D]
    const m = maskValues(mask, B, L, op, maskHost);
    const p = packTokens(x, mask, op, m); // [1, M, D]
    let h = p.tokens;
    if (h.shape[1] > 0) {
      for (const block of this.blocks) h = block.forward(h, p.cuSeqlens); // [1, M, D]
      h = this.normFinal.forward(h); // [1, M, D]
    }
    const tokens = unpackTokens({ ...p, tokens: h }, B, L); // [B, L, D], zero at padding
    const mt = noGrad(() => tensor(m, { shape: [B, L], device: x.device }));
    return { tokens, mask: mt, pooled: maskedTokenMean(tokens, mt, m), maskHost: m }; // pooled [B, D]
  }

  extraRepr(): string {
    return `vocab=${this.tokenizer.vocabSize}, max_length=${this.tokenizer.maxLength}, hidden_size=${this.hiddenSize}`;
  }
}
