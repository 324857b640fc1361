// The Diffusion Transformer (Peebles & Xie, "Scalable Diffusion Models with
// Transformers"), on spacetime patches: adaLN-Zero blocks conditioned on the timestep
// plus a class label or text (pooled text in adaLN, cross-attention to the tokens),
// full 3D or factorized (spatial, then temporal) self-attention, and batches of one
// grid or packed sequences of many (NaViT). Parameter names follow
// facebookresearch/DiT, whose class-conditional image checkpoints load directly.
//   B: batch rows, S: samples (= B, or the samples of a packed sequence), C: latent
//   channels, T/H/W: latent size, grid [T', H', W'], N: tokens per row, D: hidden
//   size, Dt: text width, L: text tokens per prompt, M: valid text tokens in a batch,
//   P = pt*ph*pw, Cout = C (or 2C with learnSigma).
import { noGrad } from '../autograd/node';
import { tensor } from '../creation';
import { loadSafetensors, saveSafetensors } from '../io/safetensors';
import * as F from '../ops/functional';
import { cat, cos, live, shapeStr, sin } from '../ops/basic';
import { Tensor, tidy, typeName } from '../tensor';
import { normal, uniform, xavierUniform, zeros as zeroInit } from '../nn/init';
import { LayerOptions, Linear, MLP, ModuleList, Sequential, SiLU } from '../nn/layers';
import { AttentionCallOptions, Embedding, LayerNorm, MultiHeadAttention } from '../nn/layers_more';
import { LoadStateDictResult, Module, StateDict } from '../nn/module';
import { Grid, Packed, Patchifier, PositionKind, Triple, patchTriple } from './patchifier';
import { applyRotary, sincos2dDiT } from './positions';
import { PackedText, TextEncoder, TextEncoderConfig, TextEncoding, maskValues, maskedMean, packTokens } from './text';

export type DiTConditionKind = 'text' | 'class' | 'none';
export type DiTAttention = 'full' | 'factorized';

export interface DiTConfig {
  hiddenSize: number;
  depth: number;
  numHeads: number;
  /** MLP hidden = floor(hiddenSize * mlpRatio); default 4. */
  mlpRatio?: number;
  /** [pt, ph, pw] or p (= [1, p, p]); default 2. */
  patchSize?: Triple | number;
  /** Latent channels; default 4. */
  inChannels?: number;
  /** Predict the variance too: output channels 2 * inChannels; default true (as DiT). */
  learnSigma?: boolean;
  /** default 'class'. */
  condition?: DiTConditionKind;
  /** Class labels 0..numClasses-1; label numClasses is the null class (guidance). Default 1000. */
  numClasses?: number;
  /** Width of the text tokens ('text'); defaults to the text encoder's width, else hiddenSize. */
  textDim?: number;
  /** A text encoder trained jointly with the DiT ('text'); without it, pass text embeddings. */
  text?: TextEncoderConfig | null;
  /** 'full' 3D attention over all tokens, or 'factorized': even blocks attend within a frame, odd blocks across frames. Default 'full'. */
  attention?: DiTAttention;
  /** default 'sincos3d'. */
  positions?: PositionKind;
}

export type ResolvedDiTConfig = Required<Omit<DiTConfig, 'patchSize' | 'text'>> & { patchSize: Triple; text: TextEncoderConfig | null };

const SIZES: Record<string, [number, number, number]> = { S: [384, 12, 6], B: [768, 12, 12], L: [1024, 24, 16], XL: [1152, 28, 16] };

/**
 * Presets: DiT's class-conditional image models 'DiT-{S,B,L,XL}/{2,4,8}' (patch
 * [1, p, p], 2D sincos positions: facebookresearch/DiT checkpoints load into them),
 * and text-conditioned video models 'DiT-{S,B,L,XL}/1x2x2' (3D sincos, full attention).
 */
export const ditPresets: Readonly<Record<string, Readonly<DiTConfig>>> = (() => {
  const out: Record<string, DiTConfig> = {};
  for (const [name, [hiddenSize, depth, numHeads]] of Object.entries(SIZES)) {
    for (const p of [2, 4, 8])
      out[`DiT-${name}/${p}`] = {
        hiddenSize, depth, numHeads, mlpRatio: 4, patchSize: [1, p, p], inChannels: 4, learnSigma: true,
        condition: 'class', numClasses: 1000, attention: 'full', positions: 'sincos2d',
      };
    out[`DiT-${name}/1x2x2`] = {
      hiddenSize, depth, numHeads, mlpRatio: 4, patchSize: [1, 2, 2], inChannels: 4, learnSigma: false,
      condition: 'text', attention: 'full', positions: 'sincos3d',
    };
  }
  return out;
})();

// ---- conditioning embedders ------------------------------------------------------------

/** Sinusoidal timestep features (width 256, [cos, sin]) -> Linear -> SiLU -> Linear. Names mlp.0, mlp.2. */
export class TimestepEmbedder extends Module {
  readonly mlp: Sequential;
  constructor(readonly hiddenSize: number, readonly frequencySize = 256, opts: LayerOptions = {}) {
    super();
    this.mlp = this.registerModule('mlp', new Sequential(new Linear(frequencySize, hiddenSize, opts), new SiLU(), new Linear(hiddenSize, hiddenSize, opts)));
  }

  /**
   * DiT's frequencies exp(-ln(maxPeriod) * i / half), i < half, rounded step by step
   * to float32 as PyTorch computes them (so timestep features match bit for bit).
   */
  static frequencies(dim: number, maxPeriod = 10000): Float32Array {
    const half = Math.floor(dim / 2), f = Math.fround;
    const out = new Float32Array(half);
    const c = f(-Math.log(maxPeriod));
    for (let i = 0; i < half; i++) out[i] = f(Math.exp(f(f(c * i) / half)));
    return out;
  }

  /** t [S] (float, may be fractional) -> [S, frequencySize]: [cos(t w), sin(t w)]. */
  static timestepFeatures(t: Tensor, dim = 256): Tensor {
    const S = t.shape[0];
    const freqs = tensor(TimestepEmbedder.frequencies(dim), { shape: [1, Math.floor(dim / 2)], device: t.device }); // [1, half]
    const args = t.reshape([S, 1]).mul(freqs); // [S, half]
    const emb = cat([cos(args), sin(args)], 1); // [S, 2*half]
    return dim % 2 ? cat([emb, tensor(new Float32Array(S), { shape: [S, 1] })], 1) : emb; // [S, dim]
  }

  forward(t: Tensor): Tensor {
    return this.mlp.forward(TimestepEmbedder.timestepFeatures(t, this.frequencySize)); // [S, D]
  }
}

/** Class labels -> vectors; row numClasses is the null class for classifier-free guidance. */
export class LabelEmbedder extends Module {
  readonly embeddingTable: Embedding;
  constructor(readonly numClasses: number, hiddenSize: number, opts: LayerOptions = {}) {
    super();
    this.embeddingTable = this.registerModule('embedding_table', new Embedding(numClasses + 1, hiddenSize, opts));
  }
  forward(labels: Tensor): Tensor {
    return this.embeddingTable.forward(labels); // [S, D]
  }
}

// ---- token layouts: a batch of one grid, or a packed sequence ---------------------------

export type AttentionMode = 'full' | 'spatial' | 'temporal';

/** Text tokens packed for cross-attention: keys [1, M, Dt] with per-sample cuSeqlens. */
export interface TextContext {
  keys: Tensor;
  cuSeqlensK: Tensor;
}

const i32 = (v: number[] | Int32Array): Tensor => tensor(Int32Array.from(v), { dtype: 'int32' });
const prefix = (ns: number[]): number[] => ns.reduce((a, n) => (a.push(a[a.length - 1] + n), a), [0]);

/**
 * How the tokens x [B, N, D] of a forward are laid out, and what that means for
 * modulation (per-sample rows to per-token), attention segments (cuSeqlens) and
 * factorized attention (frames, or the tokens of one place across frames).
 * Batch: B rows of one grid. Packed: B = 1 holding S samples of their own grids.
 */
export class TokenLayout {
  private readonly cache = new Map<string, unknown>();

  private constructor(
    readonly B: number,
    readonly N: number,
    readonly grids: Grid[],
    readonly packed: boolean,
    private readonly sampleIndex: Tensor | null,
    private readonly cu: Tensor | null,
    readonly rope: { cos: Tensor; sin: Tensor } | null,
    /** Per-frame conditioning: token -> its (sample, frame) row of c [sum T'_s, D]. */
    private readonly frameIndex: Tensor | null = null,
  ) {}

  /**
   * The same layout with conditioning rows per (sample, frame): c [sum_s T'_s, D] in
   * sample-major order (timesteps per latent frame, for conditioning frames).
   */
  perFrame(): TokenLayout {
    const idx = new Int32Array(this.B * this.N);
    let j = 0, row = 0;
    const add = ([T, H, W]: Grid): void => {
      for (let t = 0; t < T; t++) idx.fill(row + t, j, (j += H * W));
      row += T;
    };
    if (this.packed) this.grids.forEach(add);
    else for (let b = 0; b < this.B; b++) add(this.grids[0]);
    return new TokenLayout(this.B, this.N, this.grids, this.packed, this.sampleIndex, this.cu, this.rope, i32(idx));
  }

  /** B rows of tokens of one grid (tables for 'rope3d' per token of one row). */
  static batch(B: number, grid: Grid, rope: { cos: Tensor; sin: Tensor } | null = null): TokenLayout {
    return new TokenLayout(B, grid[0] * grid[1] * grid[2], [grid], false, null, null, rope);
  }

  static fromPacked(p: Packed): TokenLayout {
    const N = p.seqlens.reduce((a, b) => a + b, 0);
    return new TokenLayout(1, N, p.grids, true, p.sampleIndex, p.cuSeqlens, p.rope);
  }

  /**
   * Conditioning rows v [R, K] (one per sample, or per (sample, frame)) as modulation
   * rows for modulate()/gated(): [B, K] or [B*T', K] as they are (a batch), per token
   * [N, K] (packed). Apply it to each chunk of the adaLN output, not to the whole: the
   * per-token rows are N long, and slicing them would cost as much again in backward.
   */
  rows(v: Tensor): Tensor {
    if (!this.packed) return v; // [B, K] | [B*T', K]
    return F.embedding(this.frameIndex ?? this.sampleIndex!, v); // [N, K]
  }

  /** Frames per row and tokens per frame when a batch is conditioned per frame. */
  private get frameView(): { T: number; HW: number } | null {
    if (this.packed || !this.frameIndex) return null;
    const [T, H, W] = this.grids[0];
    return { T, HW: H * W };
  }

  /** x * (1 + scale) + shift with rows from rows(): x [B, N, D]. */
  modulate(x: Tensor, shift: Tensor, scale: Tensor): Tensor {
    const { B, N } = this, D = x.shape[2];
    const fv = this.frameView;
    if (fv) return F.modulate(x.reshape([B * fv.T, fv.HW, D]), shift, scale).reshape([B, N, D]); // rows per frame
    if (!this.packed) return F.modulate(x, shift, scale); // [B, N, D]
    return F.modulate(x.reshape([N, 1, D]), shift, scale).reshape([1, N, D]); // one token per "row"
  }

  /** gate * y for a gate row g from rows() and y [B, N, D]. */
  gated(g: Tensor, y: Tensor): Tensor {
    const { B, N } = this, D = y.shape[2];
    const fv = this.frameView;
    if (fv) return y.reshape([B, fv.T, fv.HW, D]).mul(g.reshape([B, fv.T, 1, D])).reshape([B, N, D]);
    return this.packed ? y.mul(g.unsqueeze(0)) : y.mul(g.unsqueeze(1)); // [B, N, D]
  }

  private memo<T>(key: string, make: () => T): T {
    if (!this.cache.has(key)) this.cache.set(key, make());
    return this.cache.get(key) as T;
  }

  /** Token order for temporal attention: place by place, frame by frame within each sample. */
  private temporalOrder(): { perm: Tensor; inv: Tensor; cu: Tensor; permHost: Int32Array } {
    return this.memo('temporal', () => {
      const perm = new Int32Array(this.packed ? this.N : this.grids[0][0] * this.grids[0][1] * this.grids[0][2]);
      const segs: number[] = [];
      let j = 0, base = 0;
      for (const [T, H, W] of this.grids) {
        const HW = H * W;
        for (let s = 0; s < HW; s++) {
          for (let t = 0; t < T; t++) perm[j++] = base + t * HW + s;
          segs.push(T);
        }
        base += T * HW;
        if (!this.packed) break;
      }
      const inv = new Int32Array(perm.length);
      perm.forEach((p, k) => (inv[p] = k));
      return { perm: i32(perm), inv: i32(inv), cu: i32(prefix(segs)), permHost: perm };
    });
  }

  /** Rotary tables in temporal token order (rows permuted like the tokens). */
  private temporalRope(): { cos: Tensor; sin: Tensor } | null {
    if (!this.rope) return null;
    return this.memo('ropeT', () => {
      const { perm } = this.temporalOrder();
      return noGrad(() => ({ cos: F.embedding(perm, this.rope!.cos), sin: F.embedding(perm, this.rope!.sin) }));
    });
  }

  private rotary(tables: { cos: Tensor; sin: Tensor } | null, heads: number, headDim: number): AttentionCallOptions['rotary'] {
    if (!tables) return undefined;
    // q/k arrive as [B', N', heads, Dh] for the arrangement in use; the tables are per
    // token of one row in that arrangement's order, so view them as [B, N, heads, Dh].
    const rows = tables.cos.shape[0];
    return (q) => applyRotary(q.reshape([-1, rows, heads, headDim]), tables.cos, tables.sin).reshape(q.shape as number[]);
  }

  /** Self-attention of x [B, N, D] over the tokens each one may see in `mode`. */
  selfAttention(attn: MultiHeadAttention, x: Tensor, mode: AttentionMode): Tensor {
    const { B, N } = this;
    const D = x.shape[2], Hh = attn.numHeads, Dh = attn.headDim;
    const [T, H, W] = this.grids[0];
    if (mode === 'full') {
      const cu = this.packed ? { cuSeqlensQ: this.cu!, cuSeqlensK: this.cu! } : {};
      return attn.forward(x, null, { ...cu, rotary: this.rotary(this.rope, Hh, Dh) }); // [B, N, D]
    }
    if (mode === 'spatial') {
      const rot = this.rotary(this.rope, Hh, Dh);
      if (!this.packed) return attn.forward(x.reshape([B * T, H * W, D]), null, { rotary: rot }).reshape([B, N, D]); // per frame
      const cu = this.memo('frames', () => i32(prefix(this.grids.flatMap(([t, h, w]) => new Array<number>(t).fill(h * w)))));
      return attn.forward(x, null, { cuSeqlensQ: cu, cuSeqlensK: cu, rotary: rot }); // [1, N, D]
    }
    const order = this.temporalOrder();
    const rot = this.rotary(this.temporalRope(), Hh, Dh);
    if (!this.packed) {
      const xt = x.reshape([B, T, H * W, D]).permute([0, 2, 1, 3]).reshape([B * H * W, T, D]); // [B*H'W', T', D]
      const y = attn.forward(xt, null, { rotary: rot }); // [B*H'W', T', D]
      return y.reshape([B, H * W, T, D]).permute([0, 2, 1, 3]).reshape([B, N, D]); // [B, N, D]
    }
    const xt = F.embedding(order.perm, x.reshape([N, D])).unsqueeze(0); // [1, N, D] in temporal order
    const y = attn.forward(xt, null, { cuSeqlensQ: order.cu, cuSeqlensK: order.cu, rotary: rot }); // [1, N, D]
    return F.embedding(order.inv, y.reshape([N, D])).unsqueeze(0); // [1, N, D] back in (t, h, w) order
  }

  /** Cross-attention of every token to its own sample's text tokens (ctx.keys [1, M, Dt]). */
  crossAttention(attn: MultiHeadAttention, x: Tensor, ctx: TextContext): Tensor {
    const { B, N } = this;
    const D = x.shape[2];
    const cuQ = this.packed ? this.cu! : this.memo('rowsCu', () => i32(prefix(new Array<number>(B).fill(N))));
    const y = attn.forward(x.reshape([1, B * N, D]), ctx.keys, { cuSeqlensQ: cuQ, cuSeqlensK: ctx.cuSeqlensK }); // [1, B*N, D]
    return y.reshape([B, N, D]); // [B, N, D]
  }
}

// ---- blocks ----------------------------------------------------------------------------

export interface DiTBlockOptions extends LayerOptions {
  mlpRatio?: number;
  /** Adds cross-attention (after self-attention) to text tokens of this width. */
  crossDim?: number | null;
}

/** adaLN-Zero block: self-attention, [cross-attention], MLP; shift/scale/gate from c. */
export class DiTBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: MultiHeadAttention;
  readonly normCross: LayerNorm | null;
  readonly crossAttn: MultiHeadAttention | null;
  readonly norm2: LayerNorm;
  readonly mlp: MLP;
  readonly adaLNModulation: Sequential;

  constructor(readonly hiddenSize: number, readonly numHeads: number, opts: DiTBlockOptions = {}) {
    super();
    const D = hiddenSize, lo = { dtype: opts.dtype, device: opts.device };
    const cross = opts.crossDim ?? null;
    this.norm1 = this.registerModule('norm1', new LayerNorm(D, { ...lo, elementwiseAffine: false, eps: 1e-6 }));
    this.attn = this.registerModule('attn', new MultiHeadAttention(D, numHeads, lo));
    this.normCross = this.registerModule('norm_cross', cross === null ? null : new LayerNorm(D, { ...lo, eps: 1e-6 }));
    this.crossAttn = this.registerModule('cross_attn', cross === null ? null : new MultiHeadAttention(D, numHeads, { ...lo, kvDim: cross }));
    this.norm2 = this.registerModule('norm2', new LayerNorm(D, { ...lo, elementwiseAffine: false, eps: 1e-6 }));
    this.mlp = this.registerModule('mlp', new MLP(D, { ...lo, hiddenFeatures: Math.floor(D * (opts.mlpRatio ?? 4)) }));
    this.adaLNModulation = this.registerModule('adaLN_modulation', new Sequential(new SiLU(), new Linear(D, 6 * D, lo)));
  }

  /**
   * x [B, N, D], c [S, D] (one row per sample). Without a layout, x is a batch of
   * B = S rows each attending over all its N tokens.
   */
  forward(x: Tensor, c: Tensor, layout?: TokenLayout, mode: AttentionMode = 'full', ctx: TextContext | null = null): Tensor {
    const lay = layout ?? TokenLayout.batch(x.shape[0], [1, 1, x.shape[1]]);
    const [shMsa, scMsa, gMsa, shMlp, scMlp, gMlp] = this.adaLNModulation.forward(c).chunk(6, 1).map((r: Tensor) => lay.rows(r)); // 6 x [B | B*T' | N, D]
    const h = lay.modulate(this.norm1.forward(x), shMsa, scMsa); // [B, N, D]
    x = x.add(lay.gated(gMsa, lay.selfAttention(this.attn, h, mode))); // [B, N, D]
    if (this.crossAttn) {
      if (!ctx) throw new Error('DiTBlock.forward: this block has cross-attention and needs text context');
      x = x.add(lay.crossAttention(this.crossAttn, this.normCross!.forward(x), ctx)); // [B, N, D]
    }
    const m = lay.modulate(this.norm2.forward(x), shMlp, scMlp); // [B, N, D]
    return x.add(lay.gated(gMlp, this.mlp.forward(m))); // [B, N, D]
  }
}

/** adaLN-modulated LayerNorm (no affine) and a linear map to P * Cout per token. */
export class FinalLayer extends Module {
  readonly normFinal: LayerNorm;
  readonly linear: Linear;
  readonly adaLNModulation: Sequential;
  constructor(hiddenSize: number, outFeatures: number, opts: LayerOptions = {}) {
    super();
    this.normFinal = this.registerModule('norm_final', new LayerNorm(hiddenSize, { ...opts, elementwiseAffine: false, eps: 1e-6 }));
    this.linear = this.registerModule('linear', new Linear(hiddenSize, outFeatures, opts));
    this.adaLNModulation = this.registerModule('adaLN_modulation', new Sequential(new SiLU(), new Linear(hiddenSize, 2 * hiddenSize, opts)));
  }
  forward(x: Tensor, c: Tensor, layout: TokenLayout): Tensor {
    const [shift, scale] = this.adaLNModulation.forward(c).chunk(2, 1).map((r: Tensor) => layout.rows(r)); // 2 x [B | B*T' | N, D]
    return this.linear.forward(layout.modulate(this.normFinal.forward(x), shift, scale)); // [B, N, P*Cout]
  }
}

// ---- the model -------------------------------------------------------------------------

/**
 * The condition of a forward, one entry per sample:
 * - 'class': labels (int32/int64 tensor [S] or numbers; numClasses = null class);
 * - 'text': { prompts } (needs the model's text encoder; '' = null), { ids, mask }
 *   (tokenized), a TextEncoding { tokens, mask, pooled }, or your own embeddings
 *   { textEmbeddings [S, L, textDim], mask? [S, L] } (pooled = masked mean);
 * - 'none': nothing.
 */
export type DiTCondition =
  | Tensor
  | number[]
  | { labels: Tensor | number[] }
  | { prompts: string[] }
  | { ids: Tensor; mask: Tensor }
  | TextEncoding
  | { textEmbeddings: Tensor; mask?: Tensor }
  | null
  | undefined;

function resolveConfig(c: DiTConfig): ResolvedDiTConfig {
  const op = 'DiT';
  if (c === null || typeof c !== 'object') throw new TypeError(`${op}: expected a config object (or use DiT.fromPreset), got ${typeName(c)}`);
  const pos = (v: unknown, what: string): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new TypeError(`${op}: expected ${what} to be a positive integer, got ${typeName(v)} ${String(v)}`);
    return v;
  };
  const condition = c.condition ?? 'class';
  if (!['text', 'class', 'none'].includes(condition)) throw new TypeError(`${op}: expected condition 'text', 'class' or 'none', got ${String(condition)}`);
  const attention = c.attention ?? 'full';
  if (attention !== 'full' && attention !== 'factorized') throw new TypeError(`${op}: expected attention 'full' or 'factorized', got ${String(attention)}`);
  const positions = c.positions ?? 'sincos3d';
  const hiddenSize = pos(c.hiddenSize, 'hiddenSize'), numHeads = pos(c.numHeads, 'numHeads');
  if (hiddenSize % numHeads) throw new RangeError(`${op}: hiddenSize ${hiddenSize} is not divisible by numHeads ${numHeads}`);
  const mlpRatio = c.mlpRatio ?? 4;
  if (typeof mlpRatio !== 'number' || !(mlpRatio > 0)) throw new TypeError(`${op}: expected a positive mlpRatio, got ${String(mlpRatio)}`);
  const text = c.text ?? null;
  if (text && condition !== 'text') throw new Error(`${op}: a text encoder needs condition 'text', got '${condition}'`);
  return {
    hiddenSize, depth: pos(c.depth, 'depth'), numHeads, mlpRatio,
    patchSize: patchTriple(c.patchSize ?? 2, op), inChannels: pos(c.inChannels ?? 4, 'inChannels'),
    learnSigma: c.learnSigma ?? true, condition, numClasses: pos(c.numClasses ?? 1000, 'numClasses'),
    textDim: pos(c.textDim ?? text?.hiddenSize ?? hiddenSize, 'textDim'), text, attention, positions,
  };
}

const CONFIG_KEY = 'tessera.dit.config';

/** Timesteps of a forward: one number, [S] (per sample), or [S, T] (per latent frame). */
export type Timesteps = Tensor | number | number[] | number[][];

export class DiT extends Module {
  readonly config: ResolvedDiTConfig;
  readonly outChannels: number;
  readonly xEmbedder: Patchifier;
  readonly tEmbedder: TimestepEmbedder;
  readonly yEmbedder: LabelEmbedder | null;
  /** Pooled text -> conditioning vector (Linear-SiLU-Linear), for 'text'. */
  readonly pooledEmbedder: Sequential | null;
  readonly textEncoder: TextEncoder | null;
  readonly blocks: ModuleList<DiTBlock>;
  readonly finalLayer: FinalLayer;

  constructor(config: DiTConfig, opts: LayerOptions = {}) {
    super();
    const c = (this.config = resolveConfig(config));
    const D = c.hiddenSize, P = c.patchSize[0] * c.patchSize[1] * c.patchSize[2];
    this.outChannels = c.learnSigma ? 2 * c.inChannels : c.inChannels;
    this.xEmbedder = this.registerModule('x_embedder', new Patchifier({
      ...opts, patchSize: c.patchSize, inChannels: c.inChannels, hiddenSize: D, positions: c.positions, headDim: D / c.numHeads,
    }));
    this.tEmbedder = this.registerModule('t_embedder', new TimestepEmbedder(D, 256, opts));
    this.yEmbedder = this.registerModule('y_embedder', c.condition === 'class' ? new LabelEmbedder(c.numClasses, D, opts) : null);
    const text = c.condition === 'text';
    this.pooledEmbedder = this.registerModule('pooled_embedder', text ? new Sequential(new Linear(c.textDim, D, opts), new SiLU(), new Linear(D, D, opts)) : null);
    this.textEncoder = this.registerModule('text_encoder', c.text ? new TextEncoder(c.text, opts) : null);
    if (this.textEncoder && this.textEncoder.hiddenSize !== c.textDim)
      throw new Error(`DiT: textDim ${c.textDim} differs from the text encoder's width ${this.textEncoder.hiddenSize}`);
    this.blocks = this.registerModule('blocks', new ModuleList<DiTBlock>());
    for (let i = 0; i < c.depth; i++)
      this.blocks.append(new DiTBlock(D, c.numHeads, { ...opts, mlpRatio: c.mlpRatio, crossDim: text ? c.textDim : null }));
    this.finalLayer = this.registerModule('final_layer', new FinalLayer(D, P * this.outChannels, opts));
    this.initializeWeights();
  }

  /** A model from a preset name ('DiT-XL/2', 'DiT-S/1x2x2', ...) with overrides. */
  static fromPreset(name: string, overrides: Partial<DiTConfig> = {}, opts: LayerOptions = {}): DiT {
    const p = ditPresets[name];
    if (!p) throw new Error(`DiT.fromPreset: unknown preset '${String(name)}' (known: ${Object.keys(ditPresets).join(', ')})`);
    return new DiT({ ...p, ...overrides }, opts);
  }

  /** The label of the null class (classifier-free guidance), for 'class'. */
  get nullClass(): number {
    return this.config.numClasses;
  }

  /**
   * All init decisions, as DiT: xavier-uniform linears with zero bias, the patch
   * embedding xavier-uniform as a [D, C*P] matrix, N(0, 0.02) for the label table,
   * the timestep MLP and the text embeddings, and zeros for every adaLN modulation,
   * the final linear and the cross-attention output (each block starts as identity).
   */
  initializeWeights(): void {
    for (const m of this.modules())
      if (m instanceof Linear) {
        xavierUniform(m.weight);
        if (m.bias) zeroInit(m.bias);
      }
    const w = this.xEmbedder.proj.weight;
    const bound = Math.sqrt(6 / (this.xEmbedder.patchDim + this.config.hiddenSize));
    uniform(w, -bound, bound);
    if (this.xEmbedder.proj.bias) zeroInit(this.xEmbedder.proj.bias);
    if (this.yEmbedder) normal(this.yEmbedder.embeddingTable.weight, 0, 0.02);
    normal((this.tEmbedder.mlp.at(0) as Linear).weight, 0, 0.02);
    normal((this.tEmbedder.mlp.at(2) as Linear).weight, 0, 0.02);
    if (this.textEncoder) {
      normal(this.textEncoder.tokenEmbedding.weight, 0, 0.02);
      normal(this.textEncoder.positionEmbedding, 0, 0.02);
    }
    const zeroLinear = (l: Linear): void => {
      zeroInit(l.weight);
      if (l.bias) zeroInit(l.bias);
    };
    for (const b of this.blocks) {
      zeroLinear(b.adaLNModulation.at(1) as Linear);
      if (b.crossAttn) zeroLinear(b.crossAttn.proj);
    }
    zeroLinear(this.finalLayer.adaLNModulation.at(1) as Linear);
    zeroLinear(this.finalLayer.linear);
  }

  // ---- forward ---------------------------------------------------------------------------

  /**
   * Predicts from noisy latents xt at timesteps t under cond:
   * - xt [B, C, T, H, W] (or an image batch [B, C, H, W]) -> [B, Cout, T, H, W] (or [B, Cout, H, W]);
   * - xt an array of latents [C, T, H, W] / [1, C, T, H, W] of any grids: packed into
   *   one sequence, attention per sample; returns one output per sample, same ranks;
   * - xt a Packed (Patchifier.pack of this model's x_embedder) -> tokens [1, sum N_i, P*Cout]
   *   in DiT's (pt, ph, pw, c) order (x_embedder.unpack turns them into latents).
   * t: [S] timesteps (tensor, numbers, or one number for all), or per latent frame
   * [S, T] (tensor, or S arrays; the conditioning frames of image-to-video have t = 0);
   * cond: see DiTCondition.
   */
  forward(xt: Tensor, t: Timesteps, cond?: DiTCondition): Tensor;
  forward(xt: Tensor[], t: Timesteps, cond?: DiTCondition): Tensor[];
  forward(xt: Packed, t: Timesteps, cond?: DiTCondition): Tensor;
  forward(xt: Tensor | Tensor[] | Packed, t: Timesteps, cond?: DiTCondition): Tensor | Tensor[] {
    if (Array.isArray(xt)) {
      const packed = this.xEmbedder.pack(xt); // tokens [1, sum N_i, D]
      return this.xEmbedder.unpack(this.forwardPacked(packed, t, cond), packed); // S x [1, Cout, T, H, W]
    }
    if (xt !== null && typeof xt === 'object' && !(xt instanceof Tensor) && 'cuSeqlens' in xt) return this.forwardPacked(xt, t, cond);
    const x0 = live(xt, 'DiT.forward', 'xt');
    if (x0.rank !== 4 && x0.rank !== 5)
      throw new Error(`DiT.forward: expected xt [B, C, T, H, W] or an image batch [B, C, H, W], got ${shapeStr(x0.shape)}`);
    const x5 = x0.rank === 4 ? x0.unsqueeze(2) : x0; // [B, C, T, H, W]
    const grid = this.xEmbedder.gridOf(x5, 'DiT.forward'); // [T', H', W']
    const B = x5.shape[0];
    let x = this.xEmbedder.embed(x5); // [B, N, D]
    const pos = this.xEmbedder.positionalEmbedding(grid); // [N, D] | null
    if (pos) x = x.add(pos); // [B, N, D]
    const layout = TokenLayout.batch(B, grid, this.xEmbedder.rotary(grid)); // rotary cos/sin [N, Dh/2] | null
    const out = this.run(x, t, cond, B, layout); // [B, N, P*Cout]
    const y = this.xEmbedder.unembed(out, grid); // [B, Cout, T, H, W]
    return x0.rank === 4 ? y.squeeze(2) : y; // [B, Cout, H, W] for an image batch
  }

  /** A packed sequence -> output tokens [1, sum N_i, P*Cout] in (pt, ph, pw, c) order. */
  forwardPacked(packed: Packed, t: Timesteps, cond?: DiTCondition): Tensor {
    const p = packed;
    if (!p || !(p.tokens instanceof Tensor) || !Array.isArray(p.grids))
      throw new TypeError(`DiT.forwardPacked: expected a Packed from x_embedder.pack(), got ${typeName(packed)}`);
    const x = p.positions ? p.tokens.add(p.positions) : p.tokens; // [1, sum N_i, D]
    return this.run(x, t, cond, p.grids.length, TokenLayout.fromPacked(p)); // [1, sum N_i, P*Cout]
  }

  /** Blocks and final layer on tokens x [B, N, D] (positions added) for S samples. */
  private run(x: Tensor, t: Timesteps, cond: DiTCondition, S: number, layout: TokenLayout): Tensor {
    const frames = this.frameTimesteps(t, layout.grids.length === S ? layout.grids : new Array<Grid>(S).fill(layout.grids[0]));
    if (frames) layout = layout.perFrame();
    const { c, ctx } = this.conditioning(frames ? frames.t : t, cond, S, frames?.sampleOfRow ?? null); // c [S | sum T'_s, D], ctx keys [1, M, Dt] | null
    const factorized = this.config.attention === 'factorized';
    [...this.blocks].forEach((block, i) => {
      const mode: AttentionMode = factorized ? (i % 2 ? 'temporal' : 'spatial') : 'full';
      x = block.forward(x, c, layout, mode, ctx); // [B, N, D]
    });
    return this.finalLayer.forward(x, c, layout); // [B, N, P*Cout]
  }

  /**
   * Per-frame timesteps -> one per (sample, token frame) in sample-major order, or null
   * for one timestep per sample. t [S, T] (a tensor or S arrays of T numbers; in a packed
   * batch, arrays of each sample's own T): T latent frames, or T' token frames; with a
   * temporal patch pt > 1 the frames of one patch must share their timestep.
   */
  private frameTimesteps(t: unknown, grids: Grid[]): { t: Tensor; sampleOfRow: Tensor } | null {
    const op = 'DiT.forward';
    let rows: number[][];
    if (t instanceof Tensor) {
      const tt = live(t, op, 't');
      if (tt.rank !== 2) return null;
      if (tt.shape[0] !== grids.length) throw new Error(`${op}: expected per-frame timesteps t [${grids.length}, T] (one row per sample), got ${shapeStr(tt.shape)}`);
      const v = tt.to('float32').toFloat32Array(), T = tt.shape[1];
      rows = grids.map((_, s) => Array.from(v.subarray(s * T, (s + 1) * T)));
    } else if (Array.isArray(t) && t.some((r) => Array.isArray(r))) {
      if (t.length !== grids.length || !t.every((r) => Array.isArray(r)))
        throw new TypeError(`${op}: expected per-frame timesteps as ${grids.length} arrays (one per sample), got ${t.length} entries`);
      rows = t as number[][];
    } else {
      return null;
    }
    const pt = this.config.patchSize[0];
    const flat: number[] = [], owner: number[] = [];
    rows.forEach((r, s) => {
      const Tp = grids[s][0];
      if (!r.every((v) => typeof v === 'number' && Number.isFinite(v))) throw new TypeError(`${op}: sample ${s}: per-frame timesteps must be finite numbers`);
      if (r.length !== Tp && r.length !== Tp * pt)
        throw new Error(`${op}: sample ${s}: expected ${Tp * pt} per-frame timesteps (one per latent frame), got ${r.length}`);
      const step = r.length === Tp ? 1 : pt;
      for (let k = 0; k < Tp; k++) {
        const group = r.slice(k * step, (k + 1) * step);
        if (group.some((v) => v !== group[0]))
          throw new Error(`${op}: sample ${s}: latent frames ${k * step}..${(k + 1) * step - 1} form one temporal patch (pt = ${pt}) and need one timestep, got [${group.join(', ')}]`);
        flat.push(group[0]);
        owner.push(s);
      }
    });
    return { t: tensor(Float32Array.from(flat), { shape: [flat.length] }), sampleOfRow: tensor(Int32Array.from(owner), { dtype: 'int32' }) };
  }

  private timesteps(t: unknown, S: number): Tensor {
    const op = 'DiT.forward';
    if (typeof t === 'number') {
      if (!Number.isFinite(t)) throw new TypeError(`${op}: expected a finite timestep, got ${t}`);
      return tensor(new Float32Array(S).fill(t), { shape: [S] });
    }
    if (Array.isArray(t)) {
      if (t.length !== S || !t.every((v) => typeof v === 'number' && Number.isFinite(v)))
        throw new TypeError(`${op}: expected ${S} finite timesteps (one per sample), got [${t.map(String).join(', ')}]`);
      return tensor(Float32Array.from(t), { shape: [S] });
    }
    const tt = live(t, op, 't');
    if (tt.rank !== 1 || tt.shape[0] !== S) throw new Error(`${op}: expected timesteps t [${S}] (one per sample), got ${shapeStr(tt.shape)}`);
    return tt.dtype === 'float32' ? tt : tt.to('float32');
  }

  private labels(v: unknown, S: number): Tensor {
    const op = 'DiT.forward';
    const K = this.config.numClasses;
    const ids = v instanceof Tensor ? v : Array.isArray(v) ? null : undefined;
    if (ids === undefined) throw new TypeError(`${op}: condition 'class' expects labels (an int32 tensor [${S}] or numbers), got ${typeName(v)}`);
    let vals: number[];
    if (ids === null) {
      vals = v as number[];
    } else {
      const l = live(ids, op, 'labels');
      if (l.dtype !== 'int32' && l.dtype !== 'int64') throw new TypeError(`${op}: expected labels of dtype int32 or int64, got ${l.dtype}`);
      if (l.rank !== 1) throw new Error(`${op}: expected labels [${S}], got ${shapeStr(l.shape)}`);
      vals = Array.from(l.dataSync() as ArrayLike<number | bigint>, Number);
    }
    if (vals.length !== S) throw new Error(`${op}: expected ${S} labels (one per sample), got ${vals.length}`);
    const bad = vals.find((x) => !Number.isInteger(x) || x < 0 || x > K);
    if (bad !== undefined) throw new RangeError(`${op}: labels must be integers in [0, ${K}] (${K} = null class), got ${bad}`);
    return tensor(Int32Array.from(vals), { dtype: 'int32' });
  }

  /** Text inputs -> { tokens [S, L, Dt], mask [S, L], pooled [S, Dt] }. */
  private textInputs(cond: unknown, S: number): TextEncoding {
    const op = 'DiT.forward';
    const o = cond as Record<string, unknown>;
    const want = `condition 'text' expects { prompts }, { ids, mask }, { tokens, mask, pooled } or { textEmbeddings, mask }`;
    if (o === null || typeof o !== 'object' || o instanceof Tensor || Array.isArray(o)) throw new TypeError(`${op}: ${want}, got ${typeName(cond)}`);
    const needEncoder = (): TextEncoder => {
      if (!this.textEncoder) throw new Error(`${op}: this model has no text encoder (config.text); pass { textEmbeddings, mask } instead`);
      return this.textEncoder;
    };
    let enc: TextEncoding;
    if ('prompts' in o) {
      const ps = o.prompts;
      if (!Array.isArray(ps) || ps.length !== S) throw new Error(`${op}: expected ${S} prompts (one per sample), got ${Array.isArray(ps) ? ps.length : typeName(ps)}`);
      enc = needEncoder().encode(ps as string[]);
    } else if ('ids' in o) {
      enc = needEncoder().forward(o.ids as Tensor, o.mask as Tensor);
    } else if ('textEmbeddings' in o || 'tokens' in o) {
      const e = live(o.textEmbeddings ?? o.tokens, op, 'textEmbeddings');
      if (e.rank !== 3 || e.shape[2] !== this.config.textDim)
        throw new Error(`${op}: expected textEmbeddings [S, L, ${this.config.textDim}], got ${shapeStr(e.shape)}`);
      const [B, L] = e.shape;
      const mask = o.mask === undefined ? tensor(new Float32Array(B * L).fill(1), { shape: [B, L] }) : live(o.mask, op, 'mask');
      maskValues(mask, B, L, op); // checks the shape here, naming this method
      const pooled = o.pooled instanceof Tensor ? o.pooled : maskedMean(e, mask);
      enc = { tokens: e, mask, pooled };
    } else {
      throw new TypeError(`${op}: ${want}, got an object with keys [${Object.keys(o).join(', ')}]`);
    }
    if (enc.tokens.shape[0] !== S) throw new Error(`${op}: expected text for ${S} samples, got ${enc.tokens.shape[0]}`);
    return enc;
  }

  /** c = t_embedder(t) (+ label or pooled-text embedding) [S, D]; text context for cross-attention. */
  /**
   * c = t_embedder(t) (+ label or pooled-text embedding) [S, D]; text context for
   * cross-attention. With per-frame timesteps (sampleOfRow [R]: the sample of each of
   * the R timesteps) c is [R, D], the sample's embedding repeated on its frames.
   */
  private conditioning(t: unknown, cond: DiTCondition, S: number, sampleOfRow: Tensor | null = null): { c: Tensor; ctx: TextContext | null } {
    let c = this.tEmbedder.forward(sampleOfRow ? (t as Tensor) : this.timesteps(t, S)); // [S | R, D]
    const perRow = (e: Tensor): Tensor => (sampleOfRow ? F.embedding(sampleOfRow, e) : e); // [S, D] -> [S | R, D]
    const kind = this.config.condition;
    if (kind === 'class') {
      const v = cond !== null && typeof cond === 'object' && !(cond instanceof Tensor) && !Array.isArray(cond) && 'labels' in cond ? cond.labels : cond;
      return { c: c.add(perRow(this.yEmbedder!.forward(this.labels(v, S)))), ctx: null }; // [S | R, D]
    }
    if (kind === 'none') {
      if (cond !== undefined && cond !== null) throw new TypeError(`DiT.forward: condition 'none' takes no cond, got ${typeName(cond)}`);
      return { c, ctx: null };
    }
    const enc = this.textInputs(cond, S);
    c = c.add(perRow(this.pooledEmbedder!.forward(enc.pooled))); // [S | R, D]
    const packed: PackedText = packTokens(enc.tokens, enc.mask, 'DiT.forward'); // keys [1, M, Dt]
    return { c, ctx: { keys: packed.tokens, cuSeqlensK: packed.cuSeqlens } };
  }

  // ---- weights ---------------------------------------------------------------------------

  /**
   * Loads our own state dicts and facebookresearch/DiT's: a Conv2d patch weight
   * x_embedder.proj.weight [D, C, p, p] becomes [D, C, 1, p, p], and DiT's fixed
   * pos_embed [1, N, D] is checked against our 2D sincos table (positions are computed
   * per grid, so it is not stored); a model with other positions refuses it.
   */
  loadStateDict(sd: StateDict | Map<string, Tensor>, opts: { strict?: boolean } = {}): LoadStateDictResult {
    const op = 'DiT.loadStateDict';
    const entries: [string, Tensor][] = sd instanceof Map ? [...sd.entries()] : sd && typeof sd === 'object' ? Object.entries(sd) : [];
    if (!(sd instanceof Map) && (sd === null || typeof sd !== 'object' || Array.isArray(sd)))
      throw new TypeError(`${op}: expected an object (or Map) of name -> Tensor, got ${typeName(sd)}`);
    const out = new Map<string, Tensor>();
    return tidy(() => {
      for (const [k, v] of entries) {
        if (k === 'pos_embed') {
          this.checkPosEmbed(live(v, op, `'${k}'`));
          continue;
        }
        if (k === 'x_embedder.proj.weight' && v instanceof Tensor && v.rank === 4) out.set(k, v.unsqueeze(2)); // [D, C, 1, p, p]
        else out.set(k, v);
      }
      return super.loadStateDict(out, opts);
    });
  }

  private checkPosEmbed(p: Tensor): void {
    const op = 'DiT.loadStateDict';
    const D = this.config.hiddenSize;
    const N = p.shape[p.rank - 2], side = Math.round(Math.sqrt(N));
    if (p.rank !== 3 || p.shape[0] !== 1 || p.shape[2] !== D || side * side !== N)
      throw new Error(`${op}: expected pos_embed [1, N, ${D}] of a square grid, got ${shapeStr(p.shape)}`);
    if (this.config.positions !== 'sincos2d')
      throw new Error(`${op}: pos_embed is DiT's 2D sincos table; this model uses positions '${this.config.positions}' (use positions 'sincos2d')`);
    const ours = sincos2dDiT(D, side, side).toFloat32Array(), theirs = p.to('float32').toFloat32Array();
    let worst = 0;
    for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i] - theirs[i]));
    if (worst > 1e-4)
      throw new Error(`${op}: pos_embed differs from the fixed 2D sincos table (max |diff| ${worst.toExponential(2)}); learned position tables are not supported`);
  }

  /** Writes the state dict to a safetensors file, with the config (tokenizer included) and any extra metadata. */
  save(file: string, metadata: Record<string, string> = {}): void {
    saveSafetensors(file, this.stateDict(), { ...metadata, [CONFIG_KEY]: JSON.stringify(this.config) });
  }

  /** A model from a file written by save(). */
  static load(file: string, opts: LayerOptions = {}): DiT {
    const st = loadSafetensors(file, { device: opts.device });
    try {
      const json = st.metadata[CONFIG_KEY];
      if (!json) throw new Error(`DiT.load: ${file} has no '${CONFIG_KEY}' metadata (was it written by DiT.save?)`);
      const model = new DiT(JSON.parse(json) as DiTConfig, opts);
      model.loadStateDict(st.tensors);
      return model;
    } finally {
      for (const t of Object.values(st.tensors)) t.dispose();
    }
  }

  extraRepr(): string {
    const c = this.config;
    return `hidden_size=${c.hiddenSize}, depth=${c.depth}, heads=${c.numHeads}, patch=[${c.patchSize.join(', ')}], condition=${c.condition}, attention=${c.attention}, positions=${c.positions}`;
  }
}
