// Motion of a single digit across the frames of a video: its center of mass per frame,
// a robust velocity (Theil-Sen: the median of the slopes between every pair of
// frames, per axis), and the nearest of the 8 Moving MNIST directions. Theil-Sen
// ignores up to ~29% of outlying frames, so a late bounce off a wall (Moving MNIST
// places digits to avoid early ones) or a few badly generated frames do not flip it.
import { DIRECTIONS, Direction } from '../data/moving_mnist';
import { Tensor } from '../tensor';
import { centerOfMass, videoData } from './digits';

export interface MotionEstimate {
  direction: Direction;
  /** Index into DIRECTIONS: direction k points at k * 45 degrees (up is -y in the image). */
  directionIndex: number;
  /** Pixels per frame, image axes (y grows downwards). */
  velocity: [number, number]; // [vx, vy]
  speed: number;
  /** Center of mass [y, x] per frame, null for empty frames. */
  centers: ([number, number] | null)[];
}

export interface MotionOptions {
  /** Intensities up to this are ignored when locating the digit (default 0.1). */
  threshold?: number;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/** Theil-Sen slope of values over their frame indices. */
function theilSen(ts: number[], vs: number[]): number {
  const slopes: number[] = [];
  for (let i = 0; i < ts.length; i++) for (let j = i + 1; j < ts.length; j++) slopes.push((vs[j] - vs[i]) / (ts[j] - ts[i]));
  return slopes.length ? median(slopes) : 0;
}

/** Motion of the digit in frames [T, H, W] (flat); direction 'right' with speed 0 when nothing moves or fewer than 2 frames hold it. */
export function estimateMotionRaw(data: Float32Array, T: number, H: number, W: number, opts: MotionOptions = {}): MotionEstimate {
  const centers: ([number, number] | null)[] = [];
  const ts: number[] = [], ys: number[] = [], xs: number[] = [];
  for (let t = 0; t < T; t++) {
    const c = centerOfMass(data.subarray(t * H * W, (t + 1) * H * W), H, W, opts.threshold ?? 0.1);
    centers.push(c ? [c.y, c.x] : null);
    if (c) ts.push(t), ys.push(c.y), xs.push(c.x);
  }
  const vx = theilSen(ts, xs), vy = theilSen(ts, ys);
  const angle = Math.atan2(-vy, vx); // up is -y
  const k = ((Math.round(angle / (Math.PI / 4)) % 8) + 8) % 8;
  return { direction: DIRECTIONS[k], directionIndex: k, velocity: [vx, vy], speed: Math.hypot(vx, vy), centers };
}

/** Motion of the digit of one video [T, H, W] or [1, T, H, W] in [0, 1]. */
export function estimateDirection(video: Tensor, opts: MotionOptions = {}): MotionEstimate {
  const { data, T, H, W } = videoData('estimateDirection', video, false);
  return estimateMotionRaw(data, T, H, W, opts);
}

/** Motion of the digit of each video of a batch [B, 1, T, H, W] or [B, T, H, W]. */
export function estimateDirections(videos: Tensor, opts: MotionOptions = {}): MotionEstimate[] {
  const { data, B, T, H, W } = videoData('estimateDirections', videos);
  const n = T * H * W;
  return [...Array(B).keys()].map((b) => estimateMotionRaw(data.subarray(b * n, (b + 1) * n), T, H, W, opts));
}
