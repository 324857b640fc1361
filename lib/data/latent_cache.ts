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
import { writeJsonAtomic } from '../io/atomic';
import { loadSafetensors, saveSafetensors } from '../io/safetensors';
import { Device, Tensor } from '../tensor';
import { device as checkDevice, typeName } from '../checks';

const FORMAT = 'tessera-latents';

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

/**
 * Writes a latent cache: shards of posterior means (and logvars) as they come, then the
 * index with the statistics of every mean, last (a cache with an index is complete).
 * encodeDataset (lib/train/encode.ts) drives it with a VideoVAE.
 */
export class LatentCacheWriter {
  private readonly shards: LatentCacheIndex['shards'] = [];
  private latentShape: number[] = [];
  private sum = 0;
  private sumSq = 0;
  private n = 0;
  private count = 0;

  constructor(readonly dir: string) {
    if (typeof dir !== 'string' || !dir) throw new TypeError(`LatentCacheWriter: expected a directory path, got ${typeName(dir)}`);
    fs.mkdirSync(dir, { recursive: true });
  }

  /** Writes one shard: mean [n, Z, T', H', W'] (logvar likewise, or null) with a caption and meta per sample. */
  addShard(mean: Tensor, logvar: Tensor | null, captions: (string | null)[], metas: unknown[]): void {
    const first = this.count;
    for (const v of mean.toFloat32Array()) (this.sum += v), (this.sumSq += v * v), this.n++;
    this.latentShape = mean.shape.slice(1) as number[];
    const tensors: Record<string, Tensor> = { mean };
    if (logvar) tensors.logvar = logvar;
    const file = `latents-${String(this.shards.length).padStart(5, '0')}.safetensors`;
    saveSafetensors(path.join(this.dir, file), tensors, { captions: JSON.stringify(captions), meta: JSON.stringify(metas), first: String(first) });
    this.shards.push({ file, count: mean.shape[0] });
    this.count += mean.shape[0];
  }

  /** Writes index.json (atomically) and returns it. */
  finish(vae: unknown, logvar: boolean): LatentCacheIndex {
    const mean = this.sum / this.n, std = Math.sqrt(Math.max(0, this.sumSq / this.n - mean * mean));
    const index: LatentCacheIndex = {
      format: FORMAT, version: 1, count: this.count, latentShape: this.latentShape as LatentCacheIndex['latentShape'], shards: this.shards, vae,
      stats: { mean, std }, scalingFactor: std > 0 ? 1 / std : 1, logvar,
    };
    writeJsonAtomic(path.join(this.dir, 'index.json'), index, 1);
    return index;
  }
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
  /** The device latentDataset(cache) reads samples to by default. */
  readonly device: Device;

  constructor(readonly dir: string, opts: { maxBytes?: number; device?: Device } = {}) {
    this.maxBytes = opts.maxBytes ?? LATENT_CACHE_MEMORY;
    this.device = opts.device === undefined ? 'cpu' : checkDevice('loadLatentCache', 'device', opts.device);
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

/**
 * Opens a latent cache written by encodeDataset (maxBytes: see LatentCache; device: where
 * latentDataset(cache) puts its samples by default).
 */
export function loadLatentCache(dir: string, opts: { maxBytes?: number; device?: Device } = {}): LatentCache {
  if (typeof dir !== 'string' || !dir) throw new TypeError(`loadLatentCache: expected a directory path, got ${typeName(dir)}`);
  return new LatentCache(dir, opts);
}
