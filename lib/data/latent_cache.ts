// The latent cache the DiT trains from: a dataset encoded once by a VideoVAE into
// safetensors shards. Layout of `dir`:
//   index.json                 {"format": "tessera-latents", "version": 1, "count", "latentShape": [Z, T', H', W'],
//                               "shards": [{"file", "count"}], "vae": config, "stats": {"mean", "std"},
//                               "scalingFactor": 1 / std, "logvar": bool}
//   latents-00000.safetensors  "mean" [n, Z, T', H', W'] (+ "logvar" when asked); __metadata__ holds
//                               "captions" and "meta" (JSON arrays, one entry per sample) and "first"
// Shards are written atomically and index.json last, so a cache with an index is complete.
import * as fs from 'fs';
import * as path from 'path';
import { noGrad } from '../autograd/node';
import { tensor } from '../creation';
import { writeJsonAtomic } from '../io/atomic';
import { loadSafetensors, saveSafetensors } from '../io/safetensors';
import type { VideoVAE } from '../models/vae';
import type { ChunkOptions } from '../models/vae_tiling';
import { cat } from '../ops/basic';
import { Tensor, tidy, typeName } from '../tensor';
import { checkDataset, getChecked, VideoDataset } from './dataset';

const FORMAT = 'tessera-latents';

export interface EncodeDatasetOptions {
  batchSize?: number; // default 4
  /** Samples per shard (default 256). */
  shardSize?: number;
  /** Also store the posterior's logvar (default false: the mean only). */
  logvar?: boolean;
  /** Encode only the first `count` samples (default all). */
  count?: number;
  /** Chunked / tiled encoding for long or large videos. */
  chunk?: ChunkOptions;
  onProgress?: (done: number, total: number) => void;
}

export interface LatentCacheIndex {
  format: string;
  version: number;
  count: number;
  latentShape: [number, number, number, number];
  shards: { file: string; count: number }[];
  vae: unknown;
  stats: { mean: number; std: number };
  scalingFactor: number;
  logvar: boolean;
}

/** Encodes a dataset with `vae` (posterior means; logvars too when asked) into shards under dir. */
export function encodeDataset(vae: VideoVAE, data: VideoDataset, dir: string, opts: EncodeDatasetOptions = {}): LatentCacheIndex {
  const op = 'encodeDataset';
  checkDataset(data, op);
  if (typeof dir !== 'string' || !dir) throw new TypeError(`${op}: expected a directory path, got ${typeName(dir)}`);
  const B = opts.batchSize ?? 4, shardSize = opts.shardSize ?? 256, count = opts.count ?? data.length;
  for (const [v, n] of [[B, 'batchSize'], [shardSize, 'shardSize'], [count, 'count']] as const)
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${op}: expected ${n} to be a positive integer, got ${String(v)}`);
  if (count > data.length) throw new RangeError(`${op}: count ${count} exceeds the dataset's ${data.length} samples`);
  const [C, T, H, W] = data.shape;
  vae.checkShape([1, C, T, H, W], 'encodeDataset');
  const per = C * T * H * W;
  fs.mkdirSync(dir, { recursive: true });
  const shards: LatentCacheIndex['shards'] = [];
  let latentShape: number[] = [];
  let sum = 0, sumSq = 0, n = 0;
  const wasTraining = vae.training;
  vae.eval();
  try {
    for (let s0 = 0; s0 < count; s0 += shardSize) {
      const sn = Math.min(shardSize, count - s0);
      const captions: (string | null)[] = [], metas: unknown[] = [];
      const means: Tensor[] = [], logvars: Tensor[] = [];
      for (let i = s0; i < s0 + sn; i += B) {
        const b = Math.min(B, s0 + sn - i);
        const x = new Float32Array(b * per);
        for (let k = 0; k < b; k++) {
          const s = getChecked(data, i + k, op);
          x.set(s.video, k * per);
          captions.push(s.caption ?? null);
          metas.push(s.meta ?? null);
        }
        const [m, lv] = tidy(() =>
          noGrad(() => {
            const post = vae.encode(tensor(x, { shape: [b, C, T, H, W] }).mul(2).sub(1), opts.chunk ?? {});
            return [post.mean, post.logvar];
          }),
        );
        for (const v of m.toFloat32Array()) (sum += v), (sumSq += v * v), n++;
        means.push(m);
        if (opts.logvar) logvars.push(lv);
        else lv.dispose();
      }
      const tensors: Record<string, Tensor> = { mean: cat(means, 0) };
      if (opts.logvar) tensors.logvar = cat(logvars, 0);
      latentShape = tensors.mean.shape.slice(1) as number[];
      const file = `latents-${String(shards.length).padStart(5, '0')}.safetensors`;
      try {
        saveSafetensors(path.join(dir, file), tensors, { captions: JSON.stringify(captions), meta: JSON.stringify(metas), first: String(s0) });
      } finally {
        for (const t of [...means, ...logvars, ...Object.values(tensors)]) t.dispose();
      }
      shards.push({ file, count: sn });
      opts.onProgress?.(s0 + sn, count);
    }
  } finally {
    vae.train(wasTraining);
  }
  const mean = sum / n, std = Math.sqrt(Math.max(0, sumSq / n - mean * mean));
  const index: LatentCacheIndex = {
    format: FORMAT, version: 1, count, latentShape: latentShape as LatentCacheIndex['latentShape'], shards, vae: vae.config,
    stats: { mean, std }, scalingFactor: std > 0 ? 1 / std : 1, logvar: !!opts.logvar,
  };
  writeJsonAtomic(path.join(dir, 'index.json'), index, 1);
  return index;
}

export interface LatentSample {
  /** [Z, T', H', W'] posterior mean (unscaled). */
  mean: Float32Array;
  logvar?: Float32Array;
  caption: string | null;
  meta: unknown;
}

interface LoadedShard {
  mean: Float32Array;
  logvar?: Float32Array;
  captions: (string | null)[];
  meta: unknown[];
  bytes: number;
}

/** Bytes of decoded shards a LatentCache keeps in memory by default (least recently used go first). */
export const LATENT_CACHE_MEMORY = 1 << 30;

/**
 * A latent cache opened for reading. Shards are loaded on demand and kept in memory up
 * to `maxBytes` (default LATENT_CACHE_MEMORY, 1 GiB), the least recently used dropped
 * first: training draws samples at random, so keeping only the last shard would reload
 * a shard for nearly every sample (that cost a third of a demo DiT step).
 */
export class LatentCache {
  readonly index: LatentCacheIndex;
  private readonly loaded = new Map<number, LoadedShard>(); // in order of last use
  private loadedBytes = 0;
  private readonly starts: number[] = [];
  readonly maxBytes: number;

  constructor(readonly dir: string, opts: { maxBytes?: number } = {}) {
    this.maxBytes = opts.maxBytes ?? LATENT_CACHE_MEMORY;
    if (typeof this.maxBytes !== 'number' || !(this.maxBytes >= 0))
      throw new RangeError(`loadLatentCache: expected maxBytes >= 0, got ${String(opts.maxBytes)}`);
    const op = 'loadLatentCache';
    const file = path.join(dir, 'index.json');
    if (!fs.existsSync(file)) throw new Error(`${op}: ${dir} has no index.json (not a latent cache, or encoding did not finish)`);
    let idx: LatentCacheIndex;
    try {
      idx = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new Error(`${op}: ${file} is not valid JSON (${(e as Error).message})`);
    }
    if (idx?.format !== FORMAT || idx.version !== 1) throw new Error(`${op}: ${file} is not a ${FORMAT} v1 index`);
    let at = 0;
    for (const s of idx.shards) {
      if (!fs.existsSync(path.join(dir, s.file))) throw new Error(`${op}: shard ${s.file} listed in ${file} is missing`);
      this.starts.push(at);
      at += s.count;
    }
    if (at !== idx.count) throw new Error(`${op}: the shards hold ${at} samples but index.json says ${idx.count}`);
    this.index = idx;
  }

  get length(): number {
    return this.index.count;
  }
  /** [Z, T', H', W']. */
  get shape(): [number, number, number, number] {
    return this.index.latentShape;
  }
  get scalingFactor(): number {
    return this.index.scalingFactor;
  }

  /** Shards held in memory now (for tests and memory accounting). */
  get shardsInMemory(): number {
    return this.loaded.size;
  }

  private shardAt(k: number): LoadedShard {
    const hit = this.loaded.get(k);
    if (hit) {
      this.loaded.delete(k); // re-insert: most recently used last
      this.loaded.set(k, hit);
      return hit;
    }
    const st = loadSafetensors(path.join(this.dir, this.index.shards[k].file));
    let shard: LoadedShard;
    try {
      const mean = st.tensors.mean.toFloat32Array(), logvar = st.tensors.logvar?.toFloat32Array();
      shard = {
        mean, logvar,
        captions: JSON.parse(st.metadata?.captions ?? '[]'),
        meta: JSON.parse(st.metadata?.meta ?? '[]'),
        bytes: mean.byteLength + (logvar?.byteLength ?? 0),
      };
    } finally {
      for (const t of Object.values(st.tensors)) t.dispose();
    }
    // Make room (the shard in use always stays, even alone over the budget).
    for (const [key, old] of this.loaded) {
      if (this.loadedBytes + shard.bytes <= this.maxBytes) break;
      this.loaded.delete(key);
      this.loadedBytes -= old.bytes;
    }
    this.loaded.set(k, shard);
    this.loadedBytes += shard.bytes;
    return shard;
  }

  get(i: number): LatentSample {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) throw new RangeError(`LatentCache.get: index ${i} is out of range for ${this.length} samples`);
    let k = this.starts.length - 1;
    while (this.starts[k] > i) k--;
    const s = this.shardAt(k), j = i - this.starts[k];
    const per = this.shape.reduce((a, b) => a * b, 1);
    return {
      mean: s.mean.slice(j * per, (j + 1) * per),
      logvar: s.logvar?.slice(j * per, (j + 1) * per),
      caption: s.captions[j] ?? null,
      meta: s.meta[j] ?? null,
    };
  }
}

/** Opens a latent cache written by encodeDataset (maxBytes: see LatentCache). */
export function loadLatentCache(dir: string, opts: { maxBytes?: number } = {}): LatentCache {
  if (typeof dir !== 'string' || !dir) throw new TypeError(`loadLatentCache: expected a directory path, got ${typeName(dir)}`);
  return new LatentCache(dir, opts);
}
