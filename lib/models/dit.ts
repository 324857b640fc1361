// The Diffusion Transformer (Peebles & Xie, "Scalable Diffusion Models with
// Transformers"), on spacetime patches: adaLN-Zero blocks conditioned on the timestep
// plus a class label or text (pooled text in adaLN, cross-attention to the tokens),
// full 3D or factorized (spatial, then temporal) self-attention, and batches of one
// grid or packed sequences of many (NaViT). Parameter names follow
// facebookresearch/DiT, whose class-conditional image checkpoints load directly.
// Token layouts (packing, factorized attention) live in token_layout.ts; loose inputs
// become tensors on the model's device in dit_inputs.ts, at the model's boundary.
//   B: batch rows, S: samples (= B, or the samples of a packed sequence), C: latent
//   channels, T/H/W: latent size, grid [T', H', W'], N: tokens per row, D: hidden size,
//   Dt: text width, L: text tokens per prompt, M: valid text tokens in a batch,
//   P = pt*ph*pw, Cout = C (or 2C with learnSigma), R: conditioning rows.
import { tensor } from '../creation';
import { loadSafetensors, saveSafetensors } from '../io/safetensors';
import * as F from '../ops/functional';
import { cat, cos, live, sin } from '../ops/basic';
import { Device, keep, Tensor, tidy } from '../tensor';
import { shapeStr, typeName } from '../checks';
import { normal, uniform, xavierUniform, zeros as zeroInit } from '../nn/init';
import { LayerOptions, Linear, MLP, ModuleList, Sequential, SiLU } from '../nn/layers';
import { Embedding, LayerNorm, MultiHeadAttention } from '../nn/layers_more';
import { LoadStateDictResult, Module, StateDict } from '../nn/module';
import { Grid, Packed, Patchifier } from './patchifier';
import { sincos2dDiT } from './positions';
import { packTokens, PackedText, TextEncoder, TextEncoding } from './text';
import { AttentionMode, TextContext, TokenLayout } from './token_layout';
import { frameTimesteps, labelIds, sampleTimesteps, textInputs, Timesteps } from './dit_inputs';

export type { AttentionMode, TextContext, Timesteps };
export { ditPresets } from './dit_config';
export type { DiTAttention, DiTCondition, DiTConditionKind, DiTConfig, ResolvedDiTConfig } from './dit_config';
import { DiTCondition, DiTConfig, ditPresets, resolveConfig, ResolvedDiTConfig } from './dit_config';
export { TokenLayout };

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

  private static readonly freqTables = new Map<string, Tensor>();

  /** The frequencies [1, half] on a device, made once per (dim, device). */
  private static freqs(dim: number, device: Device): Tensor {
    const key = `${dim}@${device}`;
    let f = TimestepEmbedder.freqTables.get(key);
    if (!f || f.isDisposed) {
      f = keep(tensor(TimestepEmbedder.frequencies(dim), { shape: [1, Math.floor(dim / 2)], device }));
      TimestepEmbedder.freqTables.set(key, f);
    }
    return f;
  }

  /** t [S] (float, may be fractional) -> [S, frequencySize]: [cos(t w), sin(t w)], on t's device. */
  static timestepFeatures(t: Tensor, dim = 256): Tensor {
    const S = t.shape[0];
    const args = t.reshape([S, 1]).mul(TimestepEmbedder.freqs(dim, t.device)); // [S, half]
    const emb = cat([cos(args), sin(args)], 1); // [S, 2*half]
    return dim % 2 ? cat([emb, tensor(new Float32Array(S), { shape: [S, 1], device: t.device })], 1) : emb; // [S, dim]
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

// ---- blocks ----------------------------------------------------------------------------

export interface DiTBlockOptions extends LayerOptions {
  mlpRatio?: number;
  /** Adds cross-attention (after self-attention) to text tokens of this width. */
  crossDim?: number | null;
}

/**
 * Attention whose tokens are grouped by a TokenLayout: self-attention over a row, a
 * frame or one place across frames (attend), or cross-attention of every token to its
 * own sample's text (attendText). Parameters as MultiHeadAttention's (qkv, proj; q, kv).
 */
export class SpacetimeAttention extends MultiHeadAttention {
  /** x [B, N, D] -> [B, N, D], each token attending to those `mode` lets it see. */
  attend(x: Tensor, layout: TokenLayout, mode: AttentionMode): Tensor {
    const a = layout.arrange(x, mode, this.numHeads, this.headDim);
    return a.back(this.forward(a.x, null, a.opts));
  }

  /** x [B, N, D] -> [B, N, D], each token attending to its sample's text tokens ctx.keys [1, M, Dt]. */
  attendText(x: Tensor, layout: TokenLayout, ctx: TextContext): Tensor {
    const a = layout.arrangeCross(x); // [1, B*N, D]
    return a.back(this.forward(a.x, ctx.keys, { cuSeqlensQ: a.cuSeqlensQ, cuSeqlensK: ctx.cuSeqlensK }));
  }
}

/** adaLN-Zero block: self-attention, [cross-attention], MLP; shift/scale/gate from c. */
export class DiTBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: SpacetimeAttention;
  readonly normCross: LayerNorm | null;
  readonly crossAttn: SpacetimeAttention | null;
  readonly norm2: LayerNorm;
  readonly mlp: MLP;
  readonly adaLNModulation: Sequential;

  constructor(readonly hiddenSize: number, readonly numHeads: number, opts: DiTBlockOptions = {}) {
    super();
    const D = hiddenSize, lo = { dtype: opts.dtype, device: opts.device };
    const cross = opts.crossDim ?? null;
    this.norm1 = this.registerModule('norm1', new LayerNorm(D, { ...lo, elementwiseAffine: false, eps: 1e-6 }));
    this.attn = this.registerModule('attn', new SpacetimeAttention(D, numHeads, lo));
    this.normCross = this.registerModule('norm_cross', cross === null ? null : new LayerNorm(D, { ...lo, eps: 1e-6 }));
    this.crossAttn = this.registerModule('cross_attn', cross === null ? null : new SpacetimeAttention(D, numHeads, { ...lo, kvDim: cross }));
    this.norm2 = this.registerModule('norm2', new LayerNorm(D, { ...lo, elementwiseAffine: false, eps: 1e-6 }));
    this.mlp = this.registerModule('mlp', new MLP(D, { ...lo, hiddenFeatures: Math.floor(D * (opts.mlpRatio ?? 4)) }));
    this.adaLNModulation = this.registerModule('adaLN_modulation', new Sequential(new SiLU(), new Linear(D, 6 * D, lo)));
  }

  /**
   * x [B, N, D], c [R, D] (one row per sample, or per (sample, token frame)). Without a
   * layout, x is a batch of B = R rows each attending over all its N tokens.
   */
  forward(x: Tensor, c: Tensor, layout?: TokenLayout, mode: AttentionMode = 'full', ctx: TextContext | null = null): Tensor {
    const lay = layout ?? TokenLayout.batch(x.shape[0], [1, 1, x.shape[1]], null, { device: x.device });
    const [shMsa, scMsa, gMsa, shMlp, scMlp, gMlp] = this.adaLNModulation.forward(c).chunk(6, 1).map((r: Tensor) => lay.rows(r)); // 6 x [B | B*T' | N, D]
    x = x.add(lay.gated(gMsa, this.attn.attend(lay.modulate(this.norm1.forward(x), shMsa, scMsa), lay, mode))); // [B, N, D]
    if (this.crossAttn) {
      if (!ctx) throw new Error('DiTBlock.forward: this block has cross-attention and needs text context');
      x = x.add(this.crossAttn.attendText(this.normCross!.forward(x), lay, ctx)); // [B, N, D]
    }
    return x.add(lay.gated(gMlp, this.mlp.forward(lay.modulate(this.norm2.forward(x), shMlp, scMlp)))); // [B, N, D]
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

const CONFIG_KEY = 'tessera.dit.config';

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
  /** Batch layouts with their index tables, per (B, grid, device); least recently used first. */
  private readonly layouts = new Map<string, TokenLayout>();

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
    const out = this.run(x, t, cond, B, this.batchLayout(B, grid)); // [B, N, P*Cout]
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

  /** The layout of B rows of one grid, kept per (B, grid, device) with its index tables. */
  private batchLayout(B: number, grid: Grid): TokenLayout {
    const device = this.xEmbedder.proj.weight.device;
    const key = `${B}:${grid.join('x')}@${device}`;
    let l = this.layouts.get(key);
    if (l && l.rope && l.rope.cos.isDisposed) {
      l.dispose(); // its rotary tables left the patchifier's cache: build it again
      this.layouts.delete(key);
      l = undefined;
    }
    if (l) {
      this.layouts.delete(key); // most recently used last
    } else {
      l = TokenLayout.batch(B, grid, this.xEmbedder.rotary(grid), { device, persistent: true }); // rotary cos/sin [N, Dh/2] | null
      if (this.layouts.size >= 16) {
        const [oldest, old] = this.layouts.entries().next().value as [string, TokenLayout];
        old.dispose();
        this.layouts.delete(oldest);
      }
    }
    this.layouts.set(key, l);
    return l;
  }

  /** Blocks and final layer on tokens x [B, N, D] (positions added) for S samples. */
  private run(x: Tensor, t: Timesteps, cond: DiTCondition, S: number, layout: TokenLayout): Tensor {
    const device = x.device;
    const grids = layout.grids.length === S ? layout.grids : new Array<Grid>(S).fill(layout.grids[0]);
    const frames = frameTimesteps(t, grids, this.config.patchSize[0], device); // t [R], sampleOfRow [R] | null
    if (frames) layout = layout.perFrame();
    const { c, ctx } = this.conditioning(frames ? frames.t : sampleTimesteps(t, S, device), cond, S, frames?.sampleOfRow ?? null); // c [R, D], ctx keys [1, M, Dt] | null
    const factorized = this.config.attention === 'factorized';
    [...this.blocks].forEach((block, i) => {
      const mode: AttentionMode = factorized ? (i % 2 ? 'temporal' : 'spatial') : 'full';
      x = block.forward(x, c, layout, mode, ctx); // [B, N, D]
    });
    return this.finalLayer.forward(x, c, layout); // [B, N, P*Cout]
  }

  /**
   * c = t_embedder(t) (+ label or pooled-text embedding) [R, D]; text context for
   * cross-attention. t [R]: per sample, or per (sample, token frame) with sampleOfRow
   * [R] (the sample of each row): c then repeats each sample's embedding on its frames.
   */
  private conditioning(t: Tensor, cond: DiTCondition, S: number, sampleOfRow: Tensor | null): { c: Tensor; ctx: TextContext | null } {
    const device = t.device;
    let c = this.tEmbedder.forward(t); // [R, D]
    const perRow = (e: Tensor): Tensor => (sampleOfRow ? F.indexSelect(e, sampleOfRow) : e); // [S, D] -> [R, D]
    const kind = this.config.condition;
    if (kind === 'class') {
      const v = cond !== null && typeof cond === 'object' && !(cond instanceof Tensor) && !Array.isArray(cond) && 'labels' in cond ? cond.labels : cond;
      return { c: c.add(perRow(this.yEmbedder!.forward(labelIds(v, S, this.config.numClasses, device)))), ctx: null }; // [R, D]
    }
    if (kind === 'none') {
      if (cond !== undefined && cond !== null) throw new TypeError(`DiT.forward: condition 'none' takes no cond, got ${typeName(cond)}`);
      return { c, ctx: null };
    }
    const enc: TextEncoding = textInputs(cond, S, this.config.textDim, this.textEncoder, device);
    c = c.add(perRow(this.pooledEmbedder!.forward(enc.pooled))); // [R, D]
    const packed: PackedText = packTokens(enc.tokens, enc.mask, 'DiT.forward', enc.maskHost); // keys [1, M, Dt]
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

  /** Moves or converts the model; cached layouts (index tables on the old device) are dropped. */
  to(target: Parameters<Module['to']>[0]): this {
    this.dropLayouts();
    return super.to(target);
  }

  dispose(): void {
    this.dropLayouts();
    super.dispose();
  }

  private dropLayouts(): void {
    for (const l of this.layouts.values()) l.dispose();
    this.layouts.clear();
  }

  extraRepr(): string {
    const c = this.config;
    return `hidden_size=${c.hiddenSize}, depth=${c.depth}, heads=${c.numHeads}, patch=[${c.patchSize.join(', ')}], condition=${c.condition}, attention=${c.attention}, positions=${c.positions}`;
  }
}
