// encodeDataset: the loop that runs a VideoVAE's encoder over a dataset into a latent
// cache (data/latent_cache.ts holds the format, its writer and its reader). Encoding runs
// on the VAE's device (or `device`); batches are made there from the dataset's host
// values, and each batch's latents are read back once, to be written. On several ranks
// (ts.distributed; the `distributed` option) each shard's samples are split into one
// contiguous part per rank, each rank encodes its part, and rank 0 gathers the latents
// (an allGather, the parts padded to one size) and writes the shard and the index.
import { noGrad } from '../autograd/node';
import { tensor, zeros } from '../creation';
import { checkDataset, getChecked, VideoDataset } from '../data/dataset';
import { LatentCacheIndex, LatentCacheWriter } from '../data/latent_cache';
import type { VideoVAE } from '../models/vae';
import type { ChunkOptions } from '../models/vae_tiling';
import { allGather } from '../distributed/group';
import { allGatherObject } from '../distributed/objects';
import { cat } from '../ops/basic';
import { Device, Tensor, tidy } from '../tensor';
import { device as checkDevice, posInt, typeName } from '../checks';
import { DataParallel, dataParallel, DistributedOption } from './distributed';

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
  /** The device to encode on (default the VAE's); the VAE is moved there. */
  device?: Device;
  /** Called after every shard (on every rank, with the counts of all ranks). */
  onProgress?: (done: number, total: number) => void;
  /**
   * Split the encoding over the ranks of ts.distributed ('auto': when it is initialized
   * with several ranks); rank 0 writes the cache, every rank returns its index.
   */
  distributed?: DistributedOption;
}

/**
 * The shard's tensor [sn, ...] from every rank's part [m_r, ...] (on rank 0; null
 * elsewhere): parts are padded to the largest, all-gathered, and unpadded.
 */
function gatherParts(dp: DataParallel, part: Tensor | null, sn: number, row: number[], device: Device): Tensor | null {
  const P = Math.ceil(sn / dp.world);
  return tidy(() => {
    const m = part ? part.shape[0] : 0;
    const padded = m === P ? part! : m === 0 ? zeros([P, ...row], { device }) : cat([part!, zeros([P - m, ...row], { device })], 0);
    const all = allGather(padded); // [world, P, ...row]
    if (!dp.isMain) return null;
    const rows: Tensor[] = [];
    for (let r = 0; r < dp.world; r++) {
      const [a, b] = [Math.floor((r * sn) / dp.world), Math.floor(((r + 1) * sn) / dp.world)];
      if (b > a) rows.push(all.slice(0, r, r + 1).reshape([P, ...row]).slice(0, 0, b - a));
    }
    return cat(rows, 0);
  });
}

/** Encodes a dataset with `vae` (posterior means; logvars too when asked) into shards under dir. */
export function encodeDataset(vae: VideoVAE, data: VideoDataset, dir: string, opts: EncodeDatasetOptions = {}): LatentCacheIndex {
  const op = 'encodeDataset';
  checkDataset(data, op);
  if (typeof dir !== 'string' || !dir) throw new TypeError(`${op}: expected a directory path, got ${typeName(dir)}`);
  const B = posInt(op, 'batchSize', opts.batchSize ?? 4), shardSize = posInt(op, 'shardSize', opts.shardSize ?? 256);
  const count = posInt(op, 'count', opts.count ?? data.length);
  if (count > data.length) throw new RangeError(`${op}: count ${count} exceeds the dataset's ${data.length} samples`);
  const device = opts.device === undefined ? vae.device : checkDevice(op, 'device', opts.device);
  if (vae.device !== device) vae.to(device);
  const [C, T, H, W] = data.shape;
  vae.checkShape([1, C, T, H, W], 'encodeDataset');
  const per = C * T * H * W;
  const dp = dataParallel(op, opts.distributed);
  const row = vae.latentShape([1, C, T, H, W]).slice(1); // [Z, T', H', W']
  const writer = dp.isMain ? new LatentCacheWriter(dir) : null;
  const wasTraining = vae.training;
  vae.eval();
  try {
    for (let s0 = 0; s0 < count; s0 += shardSize) {
      const sn = Math.min(shardSize, count - s0);
      const [p0, p1] = dp.part(sn).map((k) => s0 + k); // this rank's part of the shard
      const captions: (string | null)[] = [], metas: unknown[] = [];
      const means: Tensor[] = [], logvars: Tensor[] = [];
      try {
        for (let i = p0; i < p1; i += B) {
          const b = Math.min(B, p1 - i);
          const x = new Float32Array(b * per);
          for (let k = 0; k < b; k++) {
            const s = getChecked(data, i + k, op);
            x.set(s.video, k * per);
            captions.push(s.caption ?? null);
            metas.push(s.meta ?? null);
          }
          const [m, lv] = tidy(() =>
            noGrad(() => {
              const post = vae.encode(tensor(x, { shape: [b, C, T, H, W], device }).mul(2).sub(1), opts.chunk ?? {});
              return [post.mean, post.logvar];
            }),
          );
          means.push(m);
          if (opts.logvar) logvars.push(lv);
          else lv.dispose();
        }
        if (!dp.active) tidy(() => writer!.addShard(cat(means, 0), opts.logvar ? cat(logvars, 0) : null, captions, metas));
        else
          tidy(() => {
            const m = gatherParts(dp, means.length ? cat(means, 0) : null, sn, row, device);
            const lv = opts.logvar ? gatherParts(dp, logvars.length ? cat(logvars, 0) : null, sn, row, device) : null;
            const texts = allGatherObject({ captions, metas });
            if (writer) writer.addShard(m!, lv, texts.flatMap((x) => x.captions), texts.flatMap((x) => x.metas));
          });
      } finally {
        for (const t of [...means, ...logvars]) t.dispose();
      }
      opts.onProgress?.(s0 + sn, count);
    }
  } finally {
    vae.train(wasTraining);
  }
  // Sent from rank 0 once written: no rank reads the cache before its index exists.
  return dp.fromRank0(() => writer!.finish(vae.config, !!opts.logvar));
}

export type { LatentCacheIndex };
