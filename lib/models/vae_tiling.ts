// Chunked and tiled VideoVAE encode/decode: bounded memory for long or large videos.
// Dimension letters: B batch, C channels, T frames, H height, W width; ft / fs the
// temporal / spatial compression; a "grid unit" is one latent pixel (fs video pixels).
//
// Temporal chunks are exact: the model is causal (see vae.ts), so a chunk only needs,
// for each causal conv, the last input frames of that conv from the previous chunk;
// a CausalCache carries them. The first chunk holds frame 0 and 1 + k*ft frames
// (1 + k latent frames), every later chunk a multiple of ft frames, so every temporal
// down-sampling pairs the same frames as in one pass (CausalCache.first tells the
// resamplers whether frame 0 is in the chunk).
// Spatial tiles are approximate: overlapping tiles are encoded (decoded) on their own
// and blended with linear ramps across each overlap (weights normalized to sum to 1).
// Both paths are for inference: they run without recording gradients.
import { noGrad } from '../autograd/node';
import { tensor } from '../creation';
import { cat } from '../ops/basic';
import { Module } from '../nn/module';
import { Tensor, keep, tidy, typeName } from '../tensor';
/** What chunking needs of a VideoVAE (structural, so this file does not import vae.ts). */
export interface ChunkedVAE {
  readonly config: { temporalCompression: number; spatialCompression: number };
  readonly encoder: { forward(x: Tensor, cache: CausalCache | null): Tensor };
  readonly decoder: { forward(z: Tensor, cache: CausalCache | null): Tensor };
}

export interface ChunkOptions {
  /**
   * Video frames per temporal chunk (at least 1 + temporalCompression): the first chunk
   * takes 1 + k*ft frames and later ones the largest multiple of ft that fits.
   */
  temporalChunk?: number;
  /**
   * Spatial tiles in video pixels: a size, or { size, overlap } (multiples of the
   * spatial compression; default overlap size / 4 rounded down to it).
   */
  tile?: number | { size: number; overlap?: number };
}

/**
 * Per-call state of a chunked pass: the input frames each causal conv needs from the
 * previous chunk, and whether this is the first chunk. Owns its tensors; dispose() it.
 */
export class CausalCache {
  private readonly frames = new Map<Module, Tensor>();
  /** True while the first chunk (the one holding frame 0) runs. */
  first = true;

  get(m: Module): Tensor | undefined {
    return this.frames.get(m);
  }
  set(m: Module, t: Tensor): void {
    this.frames.get(m)?.dispose();
    this.frames.set(m, keep(t));
  }
  dispose(): void {
    for (const t of this.frames.values()) t.dispose();
    this.frames.clear();
  }
}

interface Plan {
  /** Frames per chunk at the input of the pass (video frames to encode, latent frames to decode). */
  chunks: number[];
  tileG: number;
  overlapG: number;
}

function plan(vae: ChunkedVAE, opts: ChunkOptions, T: number, decode: boolean, op: string): Plan {
  const { temporalCompression: ft, spatialCompression: fs } = vae.config;
  const chunks: number[] = [];
  if (opts.temporalChunk === undefined) chunks.push(T);
  else {
    const tc = opts.temporalChunk;
    if (typeof tc !== 'number' || !Number.isInteger(tc) || tc < 1 + ft)
      throw new RangeError(`VideoVAE.${op}: expected temporalChunk to be an integer >= ${1 + ft} (1 + temporalCompression), got ${String(tc)}`);
    const k = Math.floor((tc - 1) / ft), later = Math.floor(tc / ft) * ft;
    // In latent frames when decoding: the first chunk 1 + k, later ones later / ft.
    const first = decode ? 1 + k : 1 + k * ft, next = decode ? later / ft : later;
    for (let at = 0; at < T; ) {
      const n = Math.min(at === 0 ? first : next, T - at);
      chunks.push(n);
      at += n;
    }
  }
  let tileG = Infinity, overlapG = 0;
  if (opts.tile !== undefined) {
    const t = typeof opts.tile === 'number' ? { size: opts.tile } : opts.tile;
    if (t === null || typeof t !== 'object') throw new TypeError(`VideoVAE.${op}: expected tile to be a size or { size, overlap }, got ${typeName(opts.tile)}`);
    const size = t.size, overlap = t.overlap ?? Math.floor(size / 4 / fs) * fs;
    if (!Number.isInteger(size) || size < fs || size % fs)
      throw new RangeError(`VideoVAE.${op}: expected the tile size to be a positive multiple of ${fs} pixels, got ${String(size)}`);
    if (!Number.isInteger(overlap) || overlap < 0 || overlap % fs || overlap >= size)
      throw new RangeError(`VideoVAE.${op}: expected the tile overlap to be a multiple of ${fs} pixels below the size ${size}, got ${String(overlap)}`);
    tileG = size / fs;
    overlapG = overlap / fs;
  }
  return { chunks, tileG, overlapG };
}

/** Tile starts along an axis of n grid units: step size - overlap, the last one flush with the end. */
function starts(n: number, size: number, overlap: number): number[] {
  if (size >= n) return [0];
  const out: number[] = [];
  for (let s = 0; s + size < n; s += size - overlap) out.push(s);
  out.push(n - size);
  return out;
}

/** Blend weights (output units) of the tile at index i: linear ramps over the overlaps with its neighbours. */
function ramp(all: number[], i: number, size: number, scale: number): Float32Array {
  const n = size * scale;
  const before = i > 0 ? (all[i - 1] + size - all[i]) * scale : 0;
  const after = i < all.length - 1 ? (all[i] + size - all[i + 1]) * scale : 0;
  const w = new Float32Array(n);
  for (let p = 0; p < n; p++) {
    const a = before > 0 ? Math.min(1, (p + 0.5) / before) : 1;
    const b = after > 0 ? Math.min(1, (n - p - 0.5) / after) : 1;
    w[p] = Math.min(a, b);
  }
  return w;
}

/**
 * Runs `pass` over temporal chunks of x (a new CausalCache per spatial tile) and over
 * spatial tiles (grid units; inScale / outScale pixels per grid unit at the input /
 * output), and assembles [B, Co, To, Hg*outScale, Wg*outScale].
 */
function run(
  x: Tensor,
  p: Plan,
  inScale: number,
  outScale: number,
  pass: (x: Tensor, cache: CausalCache | null) => Tensor,
): Tensor {
  const [, , , H, W] = x.shape;
  const Hg = H / inScale, Wg = W / inScale;
  const temporal = (xt: Tensor): Tensor => {
    if (p.chunks.length === 1) return tidy(() => pass(xt, null));
    const cache = new CausalCache();
    try {
      const outs: Tensor[] = [];
      let at = 0;
      for (const n of p.chunks) {
        outs.push(tidy(() => pass(xt.slice(2, at, at + n), cache))); // [B, Co, To_chunk, h, w]
        cache.first = false;
        at += n;
      }
      const all = cat(outs, 2); // [B, Co, To, h, w]
      outs.forEach((o) => o.dispose());
      return all;
    } finally {
      cache.dispose();
    }
  };
  const ys = starts(Hg, p.tileG, p.overlapG), xs = starts(Wg, p.tileG, p.overlapG);
  if (ys.length === 1 && xs.length === 1) return temporal(x);
  const th = Math.min(p.tileG, Hg), tw = Math.min(p.tileG, Wg);
  // Tiles are blended on x's device: acc += w * tile over each tile's window, then acc / sum of w.
  const device = x.device;
  const Ho = Hg * outScale, Wo = Wg * outScale;
  let acc: Tensor | null = null;
  const wsum = new Float32Array(Ho * Wo);
  try {
    ys.forEach((y0, iy) => {
      const wy = ramp(ys, iy, th, outScale);
      xs.forEach((x0, ix) => {
        const wx = ramp(xs, ix, tw, outScale);
        const h = wy.length, w = wx.length;
        const w2 = new Float32Array(h * w);
        for (let yy = 0; yy < h; yy++) for (let xx = 0; xx < w; xx++) w2[yy * w + xx] = wy[yy] * wx[xx];
        const oy = y0 * outScale, ox = x0 * outScale;
        for (let yy = 0; yy < h; yy++) for (let xx = 0; xx < w; xx++) wsum[(oy + yy) * Wo + ox + xx] += w2[yy * w + xx];
        tidy(() => {
          const out = temporal(x.slice(3, y0 * inScale, (y0 + th) * inScale).slice(4, x0 * inScale, (x0 + tw) * inScale)); // [B, Co, To, h, w]
          const [B, Co, To] = out.shape;
          if (!acc) acc = keep(tensor(new Float32Array(B * Co * To * Ho * Wo), { shape: [B, Co, To, Ho, Wo], device }));
          const win = acc.slice(3, oy, oy + h).slice(4, ox, ox + w); // a view of acc
          win.copy_(win.add(out.mul(tensor(w2, { shape: [h, w], device }))));
        });
      });
    });
    const a = acc!;
    return tidy(() => a.div(tensor(wsum, { shape: [Ho, Wo], device }))); // [B, Co, To, Ho, Wo]
  } finally {
    (acc as Tensor | null)?.dispose();
  }
}

/** Encoder moments [B, 2Z, T', H', W'] of a video, chunked in time and / or tiled in space. */
export function encodeChunked(vae: ChunkedVAE, x: Tensor, opts: ChunkOptions): Tensor {
  const p = plan(vae, opts, x.shape[2], false, 'encode');
  return noGrad(() => run(x, p, vae.config.spatialCompression, 1, (xc, cache) => vae.encoder.forward(xc, cache)));
}

/** A video [B, C, T, H, W] decoded from latents [B, Z, T', H', W'], chunked and / or tiled. */
export function decodeChunked(vae: ChunkedVAE, z: Tensor, opts: ChunkOptions): Tensor {
  const p = plan(vae, opts, z.shape[2], true, 'decode');
  return noGrad(() => run(z, p, 1, vae.config.spatialCompression, (zc, cache) => vae.decoder.forward(zc, cache)));
}
