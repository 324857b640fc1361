// Latents of a bucketed video dataset: one latent cache (encodeDataset) per bucket, and
// one scale for all of them. Layout of `dir`:
//   buckets.json   {"format": "tessera-latent-buckets", "version": 1, "buckets": [{"key", "dir",
//                   "count", "latentShape"}], "stats": {"mean", "std"}, "scalingFactor"}
//   <key>/         the latent cache of bucket <key> ('17x192x320': T x H x W of its clips),
//                  with source.json: a hash of what it encodes (the clips, the VAE's config, `id`)
// A bucket whose cache is complete and has the same source is kept when encoding again,
// so an interrupted run resumes; a changed VAE (pass `id`, e.g. its file's mtime) or
// changed windows encode it again. buckets.json is written last.
// The scale is 1 / std over every latent element of every bucket (the pooled statistics
// of the caches), so the DiT sees one unit-variance latent space whatever the bucket.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { writeJsonAtomic } from '../io/atomic';
import { LatentCache, LatentCacheIndex, loadLatentCache } from '../data/latent_cache';
import type { VideoClipDataset } from '../data/video_dataset';
import type { VideoVAE } from '../models/vae';
import { Device } from '../tensor';
import { encodeDataset, EncodeDatasetOptions } from './encode';
import { LatentDataset, latentDataset } from './dit';

const FORMAT = 'tessera-latent-buckets';

export interface LatentBucketsIndex {
  format: string;
  version: number;
  buckets: { key: string; dir: string; count: number; latentShape: [number, number, number, number] }[];
  stats: { mean: number; std: number };
  scalingFactor: number;
}

/** Pooled mean and std of several caches' latents (each cache's stats weighted by its element count). */
function pooledStats(idx: LatentCacheIndex[]): { mean: number; std: number } {
  let n = 0, s1 = 0, s2 = 0;
  for (const i of idx) {
    const k = i.count * i.latentShape.reduce((a, b) => a * b, 1);
    n += k;
    s1 += k * i.stats.mean;
    s2 += k * (i.stats.std * i.stats.std + i.stats.mean * i.stats.mean);
  }
  const mean = s1 / n;
  return { mean, std: Math.sqrt(Math.max(0, s2 / n - mean * mean)) };
}

/**
 * Encodes every bucket of a video dataset (the current epoch's clips; or only `buckets`)
 * into dir/<key>, then writes dir/buckets.json. opts go to encodeDataset; onProgress
 * counts clips over all buckets.
 */
export function encodeBuckets(
  vae: VideoVAE, data: VideoClipDataset, dir: string, opts: EncodeDatasetOptions & { buckets?: string[]; id?: string } = {},
): LatentBucketsIndex {
  const op = 'encodeBuckets';
  if (typeof dir !== 'string' || !dir) throw new TypeError(`${op}: expected a directory path, got ${typeof dir}`);
  const all = data.buckets;
  const keys = opts.buckets ?? all.map((b) => b.key);
  for (const k of keys) if (!all.some((b) => b.key === k)) throw new Error(`${op}: no bucket '${k}' (buckets: ${all.map((b) => b.key).join(', ')})`);
  const total = keys.reduce((a, k) => a + all.find((b) => b.key === k)!.clips, 0);
  fs.mkdirSync(dir, { recursive: true });
  const done: LatentCacheIndex[] = [];
  let before = 0;
  for (const key of keys) {
    const view = data.bucketDataset(key);
    const sub = path.join(dir, key);
    const indexFile = path.join(sub, 'index.json'), sourceFile = path.join(sub, 'source.json');
    const source = createHash('sha256')
      .update(JSON.stringify({ id: opts.id ?? null, vae: vae.config, clips: view.clips.map((c) => [c.file, c.startFrame, c.stride, c.frames, c.height, c.width]) }))
      .digest('hex');
    let idx: LatentCacheIndex | null = null;
    if (fs.existsSync(indexFile) && fs.existsSync(sourceFile)) {
      const old = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as LatentCacheIndex;
      if (old.count === view.length && JSON.parse(fs.readFileSync(sourceFile, 'utf8')).source === source) idx = old;
    }
    if (!idx) {
      fs.rmSync(sub, { recursive: true, force: true });
      try {
        idx = encodeDataset(vae, view, sub, { ...opts, onProgress: (d) => opts.onProgress?.(before + d, total) });
      } catch (e) {
        throw new Error(`${op}: bucket ${key}: ${(e as Error).message}`);
      }
      writeJsonAtomic(sourceFile, { source, id: opts.id ?? null });
    }
    before += view.length;
    opts.onProgress?.(before, total);
    done.push(idx);
  }
  const stats = pooledStats(done);
  const index: LatentBucketsIndex = {
    format: FORMAT, version: 1,
    buckets: keys.map((key, i) => ({ key, dir: key, count: done[i].count, latentShape: done[i].latentShape })),
    stats, scalingFactor: stats.std > 0 ? 1 / stats.std : 1,
  };
  writeJsonAtomic(path.join(dir, 'buckets.json'), index);
  return index;
}

/** The index and the caches of a directory written by encodeBuckets. */
export function loadLatentBuckets(dir: string, opts: { device?: Device; maxBytes?: number } = {}): { index: LatentBucketsIndex; caches: LatentCache[] } {
  const op = 'loadLatentBuckets';
  const file = path.join(dir, 'buckets.json');
  if (!fs.existsSync(file)) throw new Error(`${op}: ${dir} has no buckets.json (not written by encodeBuckets, or encoding did not finish)`);
  const index = JSON.parse(fs.readFileSync(file, 'utf8')) as LatentBucketsIndex;
  if (index?.format !== FORMAT || index.version !== 1) throw new Error(`${op}: ${file} is not a ${FORMAT} v1 index`);
  const caches = index.buckets.map((b) => loadLatentCache(path.join(dir, b.dir), opts));
  return { index, caches };
}

/**
 * All buckets of an encodeBuckets directory as one latent dataset (samples of bucket 0,
 * then bucket 1, ...), each latent times the pooled scaling factor (or `scale`).
 * trainDiT batches it by latent grid.
 */
export function latentBucketsDataset(dir: string, opts: { device?: Device; scale?: number } = {}): LatentDataset & { scalingFactor: number; index: LatentBucketsIndex } {
  const { index, caches } = loadLatentBuckets(dir, { device: opts.device });
  const scale = opts.scale ?? index.scalingFactor;
  const parts = caches.map((c) => latentDataset(c, { scale, device: opts.device }));
  const starts: number[] = [];
  let n = 0;
  for (const p of parts) starts.push(n), (n += p.length);
  return {
    length: n,
    scalingFactor: scale,
    index,
    get: (i) => {
      if (!Number.isInteger(i) || i < 0 || i >= n) throw new RangeError(`latentBucketsDataset.get: index ${i} is out of range for ${n} samples`);
      let k = parts.length - 1;
      while (starts[k] > i) k--;
      return parts[k].get(i - starts[k]);
    },
  };
}
