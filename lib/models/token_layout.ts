// How the tokens x [B, N, D] of one DiT forward are laid out, and what that means for
// modulation (per-sample conditioning rows to per-token rows), attention segments
// (cuSeqlens) and factorized attention (the tokens of a frame, or of one place across
// frames). Batch: B rows of one grid. Packed: B = 1 holding S samples of their own grids
// (NaViT). Every index table is made on the layout's device, once per layout; a
// persistent layout (the DiT keeps one per batch size, grid and device) keeps its tables
// across forwards instead of rebuilding them each step.
//   B: rows, N: tokens per row, D: width, S: samples, grid [T', H', W'], R: conditioning
//   rows (S, or one per (sample, token frame)), Dh: head dim, M: text tokens.
import { indexTensor } from '../creation';
import * as F from '../ops/functional';
import { noGrad } from '../autograd/node';
import { Device, keep, Tensor } from '../tensor';
import type { AttentionCallOptions } from '../nn/layers_more';
import type { Grid, Packed } from './patchifier';
import { applyRotary } from './positions';

export type AttentionMode = 'full' | 'spatial' | 'temporal';

/** Text tokens packed for cross-attention: keys [1, M, Dt] with per-sample cuSeqlens. */
export interface TextContext {
  keys: Tensor;
  cuSeqlensK: Tensor;
}

const prefix = (ns: number[]): number[] => ns.reduce((a, n) => (a.push(a[a.length - 1] + n), a), [0]);

/** A token arrangement for one attention call: x rearranged, the call's options, and the way back. */
interface Arrangement {
  x: Tensor;
  opts: AttentionCallOptions;
  back: (y: Tensor) => Tensor;
}

export class TokenLayout {
  private readonly memos = new Map<string, unknown>();
  private perFrameLayout: TokenLayout | null = null;

  private constructor(
    readonly B: number,
    readonly N: number,
    readonly grids: Grid[],
    readonly packed: boolean,
    readonly device: Device,
    private readonly sampleIndex: Tensor | null,
    private readonly cu: Tensor | null,
    readonly rope: { cos: Tensor; sin: Tensor } | null,
    /** Per-frame conditioning: token -> its (sample, frame) row of c [sum T'_s, D]. */
    private readonly frameIndex: Tensor | null = null,
    /** Keep the tables made here across forwards (they are freed by dispose()). */
    private readonly persistent = false,
  ) {}

  /** B rows of tokens of one grid on `device` (rotary tables per token of one row, for 'rope3d'). */
  static batch(B: number, grid: Grid, rope: { cos: Tensor; sin: Tensor } | null = null, opts: { device?: Device; persistent?: boolean } = {}): TokenLayout {
    const device = opts.device ?? rope?.cos.device ?? 'cpu';
    return new TokenLayout(B, grid[0] * grid[1] * grid[2], [grid], false, device, null, null, rope, null, opts.persistent ?? false);
  }

  static fromPacked(p: Packed): TokenLayout {
    const N = p.seqlens.reduce((a, b) => a + b, 0);
    return new TokenLayout(1, N, p.grids, true, p.tokens.device, p.sampleIndex, p.cuSeqlens, p.rope);
  }

  /** An int32 table on the layout's device (kept when the layout is persistent). */
  private i32(v: number[] | Int32Array): Tensor {
    const t = indexTensor(v, this.device);
    return this.persistent ? keep(t) : t;
  }

  private memo<T>(key: string, make: () => T): T {
    if (!this.memos.has(key)) this.memos.set(key, make());
    return this.memos.get(key) as T;
  }

  /** Frees the tables of a persistent layout (a per-forward layout's go with their tidy). */
  dispose(): void {
    const free = (v: unknown): void => {
      if (v instanceof Tensor) v.dispose();
      else if (v && typeof v === 'object') Object.values(v).forEach(free);
    };
    if (this.persistent) this.memos.forEach(free);
    this.memos.clear();
    this.perFrameLayout?.dispose();
    if (this.persistent) this.frameIndex?.dispose();
  }

  /**
   * The same layout with conditioning rows per (sample, frame): c [sum_s T'_s, D] in
   * sample-major order (timesteps per latent frame, for conditioning frames).
   */
  perFrame(): TokenLayout {
    if (this.frameIndex) return this;
    if (this.perFrameLayout) return this.perFrameLayout;
    const idx = new Int32Array(this.B * this.N);
    let j = 0, row = 0;
    const add = ([T, H, W]: Grid): void => {
      for (let t = 0; t < T; t++) idx.fill(row + t, j, (j += H * W));
      row += T;
    };
    if (this.packed) this.grids.forEach(add);
    else for (let b = 0; b < this.B; b++) add(this.grids[0]);
    const l = new TokenLayout(this.B, this.N, this.grids, this.packed, this.device, this.sampleIndex, this.cu, this.rope, this.i32(idx), this.persistent);
    if (this.persistent) this.perFrameLayout = l;
    return l;
  }

  /**
   * Conditioning rows v [R, K] (one per sample, or per (sample, frame)) as modulation
   * rows for modulate()/gated(): [B, K] or [B*T', K] as they are (a batch), per token
   * [N, K] (packed). Apply it to each chunk of the adaLN output, not to the whole: the
   * per-token rows are N long, and slicing them would cost as much again in backward.
   */
  rows(v: Tensor): Tensor {
    if (!this.packed) return v; // [B, K] | [B*T', K]
    return F.indexSelect(v, this.frameIndex ?? this.sampleIndex!); // [N, K]
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

  /** Token order for temporal attention: place by place, frame by frame within each sample. */
  private temporalOrder(): { perm: Tensor; inv: Tensor; cu: Tensor } {
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
      return { perm: this.i32(perm), inv: this.i32(inv), cu: this.i32(prefix(segs)) };
    });
  }

  /** Rotary tables in temporal token order (rows permuted like the tokens). */
  private temporalRope(): { cos: Tensor; sin: Tensor } | null {
    if (!this.rope) return null;
    return this.memo('ropeT', () => {
      const { perm } = this.temporalOrder();
      const t = noGrad(() => ({ cos: F.indexSelect(this.rope!.cos, perm), sin: F.indexSelect(this.rope!.sin, perm) }));
      if (this.persistent) (keep(t.cos), keep(t.sin));
      return t;
    });
  }

  private rotary(tables: { cos: Tensor; sin: Tensor } | null, heads: number, headDim: number): AttentionCallOptions['rotary'] {
    if (!tables) return undefined;
    // q/k arrive as [B', N', heads, Dh] for the arrangement in use; the tables are per
    // token of one row in that arrangement's order, so view them as [B, N, heads, Dh].
    const rows = tables.cos.shape[0];
    return (q) => applyRotary(q.reshape([-1, rows, heads, headDim]), tables.cos, tables.sin).reshape(q.shape as number[]);
  }

  /**
   * How self-attention over x [B, N, D] sees the tokens in `mode`: all of a row (or of a
   * packed sample), the tokens of one frame ('spatial'), or of one place across frames
   * ('temporal'); heads and headDim size the rotary tables.
   */
  arrange(x: Tensor, mode: AttentionMode, heads: number, headDim: number): Arrangement {
    const { B, N } = this;
    const D = x.shape[2];
    const [T, H, W] = this.grids[0];
    const same = (y: Tensor): Tensor => y;
    if (mode === 'full') {
      const cu = this.packed ? { cuSeqlensQ: this.cu!, cuSeqlensK: this.cu! } : {};
      return { x, opts: { ...cu, rotary: this.rotary(this.rope, heads, headDim) }, back: same }; // [B, N, D]
    }
    if (mode === 'spatial') {
      const rotary = this.rotary(this.rope, heads, headDim);
      if (!this.packed) return { x: x.reshape([B * T, H * W, D]), opts: { rotary }, back: (y) => y.reshape([B, N, D]) }; // per frame
      const cu = this.memo('frames', () => this.i32(prefix(this.grids.flatMap(([t, h, w]) => new Array<number>(t).fill(h * w)))));
      return { x, opts: { cuSeqlensQ: cu, cuSeqlensK: cu, rotary }, back: same }; // [1, N, D]
    }
    const order = this.temporalOrder();
    const rotary = this.rotary(this.temporalRope(), heads, headDim);
    if (!this.packed) {
      const xt = x.reshape([B, T, H * W, D]).permute([0, 2, 1, 3]).reshape([B * H * W, T, D]); // [B*H'W', T', D]
      return { x: xt, opts: { rotary }, back: (y) => y.reshape([B, H * W, T, D]).permute([0, 2, 1, 3]).reshape([B, N, D]) };
    }
    const xt = F.indexSelect(x.reshape([N, D]), order.perm).unsqueeze(0); // [1, N, D] in temporal order
    return {
      x: xt,
      opts: { cuSeqlensQ: order.cu, cuSeqlensK: order.cu, rotary },
      back: (y) => F.indexSelect(y.reshape([N, D]), order.inv).unsqueeze(0), // [1, N, D] back in (t, h, w) order
    };
  }

  /** Cross-attention segments: every token attends to its own sample's text tokens (ctx.keys [1, M, Dt]). */
  arrangeCross(x: Tensor): { x: Tensor; cuSeqlensQ: Tensor; back: (y: Tensor) => Tensor } {
    const { B, N } = this;
    const D = x.shape[2];
    const cuQ = this.packed ? this.cu! : this.memo('rowsCu', () => this.i32(prefix(new Array<number>(B).fill(N))));
    return { x: x.reshape([1, B * N, D]), cuSeqlensQ: cuQ, back: (y) => y.reshape([B, N, D]) }; // [1, B*N, D] and back
  }
}
