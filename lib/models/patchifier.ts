// Spacetime patches: latents [B, C, T, H, W] <-> tokens [B, N, D], with positions
// computed from each sample's own grid, and batches of mixed shapes either by buckets
// (equal grids stacked) or by packing (NaViT "Patch n' Pack": samples concatenated into
// one sequence [1, sum N_i, D] whose attention stays within each sample).
//   C: latent channels, T/H/W: latent frames/height/width, [pt, ph, pw]: patch,
//   grid [T', H', W'] = [T/pt, H/ph, W/pw] patches, N = T'H'W' tokens, D: hidden size,
//   P = pt*ph*pw values of one channel in a patch.
// The projection is a Conv3d patch embedding (weight [D, C, pt, ph, pw], named
// proj.weight / proj.bias as in DiT's x_embedder) applied as F.linear on the patchified
// tokens, whose features come in the conv weight's (c, pt, ph, pw) order. With pt = 1
// DiT's Conv2d weight [D, C, p, p] is the same tensor with a unit time axis.
import { indexTensor, randn, tensor } from '../creation';
import * as F from '../ops/functional';
import { cat, live, shapeStr } from '../ops/basic';
import { Device, keep, Tensor, tidy, typeName } from '../tensor';
import { noGrad } from '../autograd/node';
import { patchTriple, posInt, Triple } from '../checks';
import { LayerOptions } from '../nn/layers';
import { Conv3d } from '../nn/layers_more';
import { Module } from '../nn/module';
import { rope3d, sincos2dDiT, sincos3d } from './positions';

export type { Triple };
/** Patches along T, H, W: [T', H', W']. */
export type Grid = Triple;
export type PositionKind = 'sincos3d' | 'rope3d' | 'sincos2d';
/** Feature order of tokens given to unembed: DiT's final layer (pt, ph, pw, c) or patchify's (c, pt, ph, pw). */
export type PatchOrder = 'dit' | 'patchify';

export interface PatchifierOptions extends LayerOptions {
  /** [pt, ph, pw], or one number p for [1, p, p] (DiT's image patch). */
  patchSize: Triple | number;
  inChannels: number;
  hiddenSize: number;
  /**
   * 'sincos3d': fixed table added to the tokens, channels split between t, h, w;
   * 'sincos2d': DiT's 2D table (the same for every frame: no temporal position);
   * 'rope3d': nothing added, rotary tables for q and k in attention (needs headDim).
   */
  positions?: PositionKind;
  /** Head dim of the attention that applies 'rope3d'. */
  headDim?: number;
}

/** Several samples of different grids concatenated into one sequence (B = 1). */
export interface Packed {
  /** [1, sum N_i, D] projected patches (positions not added; see `positions`). */
  tokens: Tensor;
  /** [1, sum N_i, D] additive position table per token, or null for 'rope3d'. */
  positions: Tensor | null;
  /** Rotary tables [sum N_i, headDim/2] per token for 'rope3d', else null. */
  rope: { cos: Tensor; sin: Tensor } | null;
  /** int32 [S + 1]: prefix sums of the samples' token counts (attention segments). */
  cuSeqlens: Tensor;
  /** int32 [sum N_i]: the sample (conditioning row) of each token. */
  sampleIndex: Tensor;
  grids: Grid[];
  /** Token counts N_i and start offsets (host copies of cuSeqlens). */
  seqlens: number[];
  offsets: number[];
  /** Each sample's latent rank (4: [C, T, H, W], 5: [1, C, T, H, W]); unpack returns the same. */
  ranks: number[];
}

export interface Bucket {
  grid: Grid;
  /** Positions of the bucket's samples in the list given to bucket(). */
  indices: number[];
  /** [b, C, T, H, W]: the samples stacked. */
  batch: Tensor;
}

const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

export class Patchifier extends Module {
  readonly patchSize: Triple;
  readonly inChannels: number;
  readonly hiddenSize: number;
  readonly positionKind: PositionKind;
  readonly headDim: number | null;
  /** Conv3d patch embedding weights [D, C, pt, ph, pw] + [D], applied as a linear map. */
  readonly proj: Conv3d;
  private readonly tables = new Map<string, Tensor | { cos: Tensor; sin: Tensor }>();

  constructor(opts: PatchifierOptions) {
    super();
    const op = 'Patchifier';
    if (opts === null || typeof opts !== 'object')
      throw new TypeError(`${op}: expected options { patchSize, inChannels, hiddenSize, positions }, got ${typeName(opts)}`);
    this.patchSize = patchTriple(op, opts.patchSize);
    this.inChannels = posInt(op, 'inChannels', opts.inChannels);
    this.hiddenSize = posInt(op, 'hiddenSize', opts.hiddenSize);
    const kind = opts.positions ?? 'sincos3d';
    if (kind !== 'sincos3d' && kind !== 'rope3d' && kind !== 'sincos2d')
      throw new TypeError(`${op}: expected positions 'sincos3d', 'rope3d' or 'sincos2d', got ${String(kind)}`);
    this.positionKind = kind;
    this.headDim = opts.headDim === undefined ? null : posInt(op, 'headDim', opts.headDim);
    if (kind === 'rope3d' && this.headDim === null) throw new Error(`${op}: positions 'rope3d' needs the attention's headDim`);
    if (kind === 'rope3d' && (this.headDim! % 2 || this.headDim! < 8))
      throw new RangeError(`${op}: positions 'rope3d' needs an even headDim of at least 8, got ${this.headDim}`);
    if (kind === 'sincos2d' && this.hiddenSize % 4) throw new RangeError(`${op}: positions 'sincos2d' needs hiddenSize divisible by 4, got ${this.hiddenSize}`);
    if (kind === 'sincos3d' && this.hiddenSize < 8) throw new RangeError(`${op}: positions 'sincos3d' needs hiddenSize >= 8, got ${this.hiddenSize}`);
    const lo = { dtype: opts.dtype, device: opts.device };
    this.proj = this.registerModule('proj', new Conv3d(this.inChannels, this.hiddenSize, this.patchSize, { ...lo, stride: this.patchSize }));
  }

  /** Values in one token before projection: C * pt * ph * pw. */
  get patchDim(): number {
    return this.inChannels * this.patchSize[0] * this.patchSize[1] * this.patchSize[2];
  }

  /** The patch grid of a latent [B, C, T, H, W] (checks channels and divisibility). */
  gridOf(latent: Tensor, op = 'Patchifier.gridOf'): Grid {
    const x = live(latent, op, 'latent');
    if (x.rank !== 5) throw new Error(`${op}: expected a latent [B, C, T, H, W], got ${shapeStr(x.shape)}`);
    return this.gridOfSize(x.shape.slice(1) as number[], op);
  }

  private gridOfSize([C, T, H, W]: number[], op: string): Grid {
    const [pt, ph, pw] = this.patchSize;
    if (C !== this.inChannels) throw new Error(`${op}: expected ${this.inChannels} latent channels, got ${C}`);
    if (T % pt || H % ph || W % pw || T === 0 || H === 0 || W === 0)
      throw new Error(`${op}: latent size [T, H, W] = [${T}, ${H}, ${W}] is not a positive multiple of the patch [${pt}, ${ph}, ${pw}]`);
    return [T / pt, H / ph, W / pw];
  }

  /** Projection weight as a linear map [D, C*pt*ph*pw] (a view of proj.weight). */
  private linearWeight(): Tensor {
    return this.proj.weight.reshape([this.hiddenSize, this.patchDim]);
  }

  /** latent [B, C, T, H, W] -> tokens [B, N, D], (t, h, w) row-major; positions not added. */
  embed(latent: Tensor): Tensor {
    this.gridOf(latent, 'Patchifier.embed');
    const patches = F.patchify(latent, this.patchSize); // [B, N, C*pt*ph*pw], features (c, pt, ph, pw)
    return F.linear(patches, this.linearWeight(), this.proj.bias); // [B, N, D]
  }

  /**
   * tokens [B, N, P*Cout] -> latent [B, Cout, T'pt, H'ph, W'pw]. order 'dit' (default):
   * features in DiT's final-layer order (pt, ph, pw, c), as DiT's unpatchify reads them;
   * 'patchify': the (c, pt, ph, pw) order of F.patchify.
   */
  unembed(tokens: Tensor, grid: Grid, opts: { order?: PatchOrder } = {}): Tensor {
    const op = 'Patchifier.unembed';
    const x = live(tokens, op, 'tokens');
    const g = this.checkGrid(grid, op);
    const order = opts.order ?? 'dit';
    if (order !== 'dit' && order !== 'patchify') throw new TypeError(`${op}: expected order 'dit' or 'patchify', got ${String(order)}`);
    const P = this.patchSize[0] * this.patchSize[1] * this.patchSize[2];
    const N = g[0] * g[1] * g[2];
    if (x.rank !== 3 || x.shape[1] !== N || x.shape[2] % P || x.shape[2] === 0)
      throw new Error(`${op}: expected tokens [B, ${N}, ${P}*Cout] for grid [${g.join(', ')}] and patch [${this.patchSize.join(', ')}], got ${shapeStr(x.shape)}`);
    const B = x.shape[0], Cout = x.shape[2] / P;
    const cFirst = order === 'patchify' ? x : x.reshape([B, N, P, Cout]).permute([0, 1, 3, 2]).reshape([B, N, Cout * P]); // [B, N, Cout*P], (c, pt, ph, pw)
    return F.unpatchify(cFirst, { channels: Cout, grid: g, patch: this.patchSize }); // [B, Cout, T, H, W]
  }

  private checkGrid(grid: unknown, op: string): Grid {
    if (!Array.isArray(grid) || grid.length !== 3 || !grid.every(isPosInt))
      throw new TypeError(`${op}: expected grid [T', H', W'] of positive integers, got ${Array.isArray(grid) ? shapeStr(grid) : typeName(grid)}`);
    return grid as Grid;
  }

  /**
   * A table of a grid on the module's device, made once and kept (least recently used
   * dropped past 64 grids): positions do not change, so a training step reuses them
   * instead of building and uploading them again.
   */
  private cached<T extends Tensor | { cos: Tensor; sin: Tensor }>(kind: string, grid: Grid, make: (device: Device) => T): T {
    const device = this.proj.weight.device;
    const key = `${kind}:${grid.join('x')}@${device}`;
    let v = this.tables.get(key) as T | undefined;
    const gone = (x: T): boolean => (x instanceof Tensor ? x.isDisposed : x.cos.isDisposed || x.sin.isDisposed);
    if (v && gone(v)) v = undefined;
    this.tables.delete(key);
    if (!v) {
      v = noGrad(() => tidy(() => make(device)));
      if (v instanceof Tensor) keep(v);
      else (keep(v.cos), keep(v.sin));
      if (this.tables.size >= 64) {
        const [oldest, old] = this.tables.entries().next().value as [string, Tensor | { cos: Tensor; sin: Tensor }];
        if (old instanceof Tensor) old.dispose();
        else (old.cos.dispose(), old.sin.dispose());
        this.tables.delete(oldest);
      }
    }
    this.tables.set(key, v);
    return v;
  }

  /** Frees the cached position tables (they are made again when needed). */
  clearTables(): void {
    for (const v of this.tables.values()) {
      if (v instanceof Tensor) v.dispose();
      else (v.cos.dispose(), v.sin.dispose());
    }
    this.tables.clear();
  }

  to(target: Parameters<Module['to']>[0]): this {
    this.clearTables();
    return super.to(target);
  }

  dispose(): void {
    this.clearTables();
    super.dispose();
  }

  /**
   * Additive positions [N, D] for a grid ('sincos3d', 'sincos2d'), or null ('rope3d'), on
   * the module's device. The table is the module's (cached): do not dispose it.
   */
  positionalEmbedding(grid: Grid): Tensor | null {
    const [T, H, W] = this.checkGrid(grid, 'Patchifier.positionalEmbedding');
    const D = this.hiddenSize;
    if (this.positionKind === 'rope3d') return null;
    if (this.positionKind === 'sincos3d') return this.cached('pos', [T, H, W], (device) => sincos3d(D, T, H, W, device));
    return this.cached('pos', [T, H, W], (device) => {
      const table = sincos2dDiT(D, H, W, device); // [H*W, D]
      return T === 1 ? table : table.unsqueeze(0).expand([T, H * W, D]).reshape([T * H * W, D]); // [N, D]: same per frame
    });
  }

  /** Rotary tables cos, sin [N, headDim/2] for 'rope3d' (cached on the module's device), else null. */
  rotary(grid: Grid): { cos: Tensor; sin: Tensor } | null {
    const [T, H, W] = this.checkGrid(grid, 'Patchifier.rotary');
    return this.positionKind === 'rope3d' ? this.cached('rope', [T, H, W], (device) => rope3d(this.headDim!, T, H, W, 10000, device)) : null;
  }

  // ---- mixed shapes ---------------------------------------------------------------------

  /** A sample [C, T, H, W] or [1, C, T, H, W] as [1, C, T, H, W], with its grid. */
  private sample(s: unknown, i: number, op: string): { x: Tensor; grid: Grid; rank: number } {
    const t = live(s, op, `sample ${i}`);
    if (!(t.rank === 4 || (t.rank === 5 && t.shape[0] === 1)))
      throw new Error(`${op}: expected sample ${i} to be a latent [C, T, H, W] or [1, C, T, H, W], got ${shapeStr(t.shape)}`);
    const x = t.rank === 4 ? t.unsqueeze(0) : t; // [1, C, T, H, W]
    return { x, grid: this.gridOfSize(x.shape.slice(1) as number[], `${op}: sample ${i}`), rank: t.rank };
  }

  private samples(list: unknown, op: string): { x: Tensor; grid: Grid; rank: number }[] {
    if (!Array.isArray(list) || list.length === 0)
      throw new TypeError(`${op}: expected a non-empty array of latents [C, T, H, W], got ${Array.isArray(list) ? 'an empty array' : typeName(list)}`);
    return list.map((s, i) => this.sample(s, i, op));
  }

  /** Groups samples of equal grid, in order of first appearance; each group stacked [b, C, T, H, W]. */
  bucket(samples: Tensor[]): Bucket[] {
    const ss = this.samples(samples, 'Patchifier.bucket');
    const groups = new Map<string, number[]>();
    ss.forEach((s, i) => {
      const key = s.grid.join('x');
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key)!.push(i);
    });
    return [...groups.values()].map((idx) => ({
      grid: ss[idx[0]].grid,
      indices: idx,
      batch: idx.length === 1 ? ss[idx[0]].x : cat(idx.map((i) => ss[i].x), 0), // [b, C, T, H, W]
    }));
  }

  /**
   * Packs samples of any grids (images are T = 1) into one sequence: tokens
   * [1, sum N_i, D] (one projection GEMM over all patches), per-token positions,
   * cuSeqlens for attention within each sample and the sample index of each token.
   */
  pack(samples: Tensor[]): Packed {
    const ss = this.samples(samples, 'Patchifier.pack');
    const grids = ss.map((s) => s.grid);
    const seqlens = grids.map(([t, h, w]) => t * h * w);
    const offsets = [0];
    for (const n of seqlens) offsets.push(offsets[offsets.length - 1] + n);
    const total = offsets[offsets.length - 1];
    const patches = cat(ss.map((s) => F.patchify(s.x, this.patchSize)), 1); // [1, sum N_i, C*pt*ph*pw]
    const tokens = F.linear(patches, this.linearWeight(), this.proj.bias); // [1, sum N_i, D]
    const idx = new Int32Array(total);
    seqlens.forEach((n, s) => idx.fill(s, offsets[s], offsets[s] + n));
    let positions: Tensor | null = null, rope: Packed['rope'] = null;
    if (this.positionKind === 'rope3d') {
      const tabs = grids.map((g) => this.rotary(g)!);
      rope = { cos: cat(tabs.map((r) => r.cos), 0), sin: cat(tabs.map((r) => r.sin), 0) }; // [sum N_i, Dh/2]
    } else {
      positions = cat(grids.map((g) => this.positionalEmbedding(g)!), 0).unsqueeze(0); // [1, sum N_i, D]
    }
    const device = tokens.device;
    return {
      tokens, positions, rope,
      cuSeqlens: indexTensor(offsets, device),
      sampleIndex: tensor(idx, { dtype: 'int32', device }),
      grids, seqlens, offsets: offsets.slice(0, -1), ranks: ss.map((s) => s.rank),
    };
  }

  /**
   * Splits packed output tokens [1, sum N_i, P*Cout] back into one latent per sample
   * ([1, Cout, T, H, W], or [Cout, T, H, W] where the sample was given so).
   */
  unpack(tokens: Tensor, packed: Packed, opts: { order?: PatchOrder } = {}): Tensor[] {
    const op = 'Patchifier.unpack';
    const x = live(tokens, op, 'tokens');
    const total = packed.seqlens.reduce((a, b) => a + b, 0);
    if (x.rank !== 3 || x.shape[0] !== 1 || x.shape[1] !== total)
      throw new Error(`${op}: expected tokens [1, ${total}, F] for the ${packed.grids.length} packed samples, got ${shapeStr(x.shape)}`);
    return packed.grids.map((g, s) => {
      const part = x.slice(1, packed.offsets[s], packed.offsets[s] + packed.seqlens[s]); // [1, N_s, F]
      const lat = this.unembed(part, g, opts); // [1, Cout, T, H, W]
      return packed.ranks[s] === 4 ? lat.squeeze(0) : lat;
    });
  }

  /**
   * Random noise patches arranged in a grid of the requested latent size, for
   * sampling: [batch, C, frames, height, width] from the seeded generator.
   */
  grid(frames: number, height: number, width: number, opts: { batch?: number } = {}): Tensor {
    const op = 'Patchifier.grid';
    const size = [posInt(op, 'frames', frames), posInt(op, 'height', height), posInt(op, 'width', width)];
    const B = posInt(op, 'batch', opts.batch ?? 1);
    this.gridOfSize([this.inChannels, ...size], op);
    return randn([B, this.inChannels, ...size], { device: this.proj.weight.device });
  }

  extraRepr(): string {
    return `patch_size=[${this.patchSize.join(', ')}], in_channels=${this.inChannels}, hidden_size=${this.hiddenSize}, positions=${this.positionKind}`;
  }
}
