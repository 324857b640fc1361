// The dataset interface the training loops read: indexed samples of one fixed shape
// [C, T, H, W] (channels, frames, height, width) with values in [0, 1], plus an
// optional caption and metadata per sample. An image dataset has T = 1.
import { MovingMNIST } from './moving_mnist';

export interface VideoSample {
  /** [C, T, H, W] in C order, values in [0, 1]. */
  video: Float32Array;
  caption?: string;
  meta?: Record<string, unknown>;
}

export interface VideoDataset {
  readonly length: number;
  /** [C, T, H, W] of every sample. */
  readonly shape: readonly [number, number, number, number];
  get(index: number): VideoSample;
  /**
   * Optional hint from a training loop: these samples will be asked for next, in this
   * order (a streaming dataset decodes them meanwhile; see VideoClipView).
   */
  prefetch?(indices: number[]): void;
}

const isDims = (s: unknown): s is [number, number, number, number] =>
  Array.isArray(s) && s.length === 4 && s.every((v) => Number.isInteger(v) && v > 0);

/** Throws a clear error unless `data` looks like a VideoDataset (names the caller). */
export function checkDataset(data: unknown, op: string): VideoDataset {
  const d = data as VideoDataset;
  if (d === null || typeof d !== 'object' || typeof d.get !== 'function' || !Number.isInteger(d.length) || d.length < 1)
    throw new TypeError(`${op}: expected a dataset { length, shape: [C, T, H, W], get(i) } with at least one sample`);
  if (!isDims(d.shape)) throw new TypeError(`${op}: expected the dataset's shape to be [C, T, H, W] positive integers, got ${JSON.stringify(d.shape)}`);
  return d;
}

/**
 * Fetches sample i and checks it: a Float32Array of the dataset's shape with finite
 * values (the error names the sample and the first bad element).
 */
export function getChecked(data: VideoDataset, i: number, op: string): VideoSample {
  const s = data.get(i);
  const n = data.shape.reduce((a, b) => a * b, 1);
  if (!s || !(s.video instanceof Float32Array))
    throw new TypeError(`${op}: dataset sample ${i} has no Float32Array 'video' (got ${s === null ? 'null' : typeof s?.video})`);
  if (s.video.length !== n)
    throw new Error(`${op}: dataset sample ${i} has ${s.video.length} values, expected ${n} for shape [${data.shape.join(', ')}]`);
  const v = s.video;
  for (let k = 0; k < n; k++)
    if (!Number.isFinite(v[k])) {
      const [, T, H, W] = data.shape;
      const c = Math.floor(k / (T * H * W)), t = Math.floor(k / (H * W)) % T, y = Math.floor(k / W) % H, x = k % W;
      throw new Error(`${op}: dataset sample ${i} holds ${v[k]} at [c=${c}, t=${t}, y=${y}, x=${x}] (videos must be finite, in [0, 1])`);
    }
  return s;
}

/** MovingMNIST as a VideoDataset of [1, T, H, W] clips with captions and metadata. */
export function movingMnistDataset(mm: MovingMNIST): VideoDataset {
  if (!(mm instanceof MovingMNIST)) throw new TypeError('movingMnistDataset: expected a MovingMNIST');
  return {
    length: mm.length,
    shape: [1, mm.frames, mm.height, mm.width],
    get: (i) => {
      const s = mm.get(i);
      return { video: s.video, caption: s.caption, meta: { ...s.meta } };
    },
  };
}

/** The samples at `indices` of a dataset, as a dataset (e.g. a held-out part). */
export function subset(data: VideoDataset, indices: number[]): VideoDataset {
  for (const i of indices)
    if (!Number.isInteger(i) || i < 0 || i >= data.length) throw new RangeError(`subset: index ${i} is out of range for ${data.length} samples`);
  return { length: indices.length, shape: data.shape, get: (i) => data.get(indices[i]) };
}
