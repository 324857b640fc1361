// encodeDataset: the loop that runs a VideoVAE's encoder over a dataset into a latent
// cache (data/latent_cache.ts holds the format, its writer and its reader). Encoding runs
// on the VAE's device (or `device`); batches are made there from the dataset's host
// values, and each batch's latents are read back once, to be written.
import { noGrad } from '../autograd/node';
import { tensor } from '../creation';
import { checkDataset, getChecked, VideoDataset } from '../data/dataset';
import { LatentCacheIndex, LatentCacheWriter } from '../data/latent_cache';
import type { VideoVAE } from '../models/vae';
import type { ChunkOptions } from '../models/vae_tiling';
import { cat } from '../ops/basic';
import { Device, Tensor, tidy } from '../tensor';
import { device as checkDevice, posInt, typeName } from '../checks';

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
  onProgress?: (done: number, total: number) => void;
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
  const writer = new LatentCacheWriter(dir);
  const wasTraining = vae.training;
  vae.eval();
  try {
    for (let s0 = 0; s0 < count; s0 += shardSize) {
      const sn = Math.min(shardSize, count - s0);
      const captions: (string | null)[] = [], metas: unknown[] = [];
      const means: Tensor[] = [], logvars: Tensor[] = [];
      try {
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
              const post = vae.encode(tensor(x, { shape: [b, C, T, H, W], device }).mul(2).sub(1), opts.chunk ?? {});
              return [post.mean, post.logvar];
            }),
          );
          means.push(m);
          if (opts.logvar) logvars.push(lv);
          else lv.dispose();
        }
        tidy(() => writer.addShard(cat(means, 0), opts.logvar ? cat(logvars, 0) : null, captions, metas));
      } finally {
        for (const t of [...means, ...logvars]) t.dispose();
      }
      opts.onProgress?.(s0 + sn, count);
    }
  } finally {
    vae.train(wasTraining);
  }
  return writer.finish(vae.config, !!opts.logvar);
}

export type { LatentCacheIndex };
