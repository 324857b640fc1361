// Moving MNIST from the real `mnist` digits: 1-2 digits glide across a black canvas
// in one of 8 directions and bounce off the walls. A sample is a pure function of
// (seed, split, index). Train and test draw from disjoint digit images. Each sample
// carries a caption ("the digit 3 moves up and to the left") and its metadata.
import { DataRng } from './rng';
import { digitImage, MNIST_SIZE, mnistDigits } from './mnist';

/** Direction k points at angle k * 45 degrees (image y grows downwards). */
export const DIRECTIONS = [
  'right', 'up and to the right', 'up', 'up and to the left', 'left', 'down and to the left', 'down', 'down and to the right',
] as const;
export type Direction = (typeof DIRECTIONS)[number];

export interface MovingMnistOptions {
  split?: 'train' | 'test';
  /** Number of samples (default 10,000 for train, 1,000 for test). */
  length?: number;
  frames?: number; // default 17
  /** Frame size: a number for square frames or [height, width] (default 64). */
  size?: number | [number, number];
  numDigits?: 1 | 2; // default 1
  /** Speed range in pixels per frame (default [2, 3]). */
  speed?: [number, number];
  seed?: number; // default 0
  /** Restrict to these digit classes (default all ten). */
  classes?: number[];
}

export interface MovingMnistSample {
  /** [T, H, W] in [0, 1]. */
  video: Float32Array;
  frames: number;
  height: number;
  width: number;
  caption: string;
  meta: { digits: number[]; directions: Direction[]; directionIndices: number[]; positions: [number, number][][] };
}

function checkInt(op: string, name: string, v: unknown, lo: number, hi = Infinity): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi)
    throw new RangeError(`${op}: expected ${name} to be an integer in [${lo}, ${hi}], got ${String(v)}`);
  return v;
}

export function captionFor(digits: number[], directions: Direction[]): string {
  return digits.map((d, i) => `the digit ${d} moves ${directions[i]}`).join(' and ');
}

export class MovingMNIST {
  readonly split: 'train' | 'test';
  readonly length: number;
  readonly frames: number;
  readonly height: number;
  readonly width: number;
  readonly numDigits: 1 | 2;
  readonly speed: [number, number];
  readonly seed: number;
  readonly classes: number[];

  constructor(opts: MovingMnistOptions = {}) {
    const op = 'MovingMNIST';
    this.split = opts.split ?? 'train';
    if (this.split !== 'train' && this.split !== 'test') throw new TypeError(`${op}: expected split 'train' or 'test', got '${String(this.split)}'`);
    this.length = checkInt(op, 'length', opts.length ?? (this.split === 'train' ? 10000 : 1000), 1);
    this.frames = checkInt(op, 'frames', opts.frames ?? 17, 1, 1024);
    const size = opts.size ?? 64;
    [this.height, this.width] = Array.isArray(size) ? size : [size, size];
    checkInt(op, 'height', this.height, MNIST_SIZE, 4096);
    checkInt(op, 'width', this.width, MNIST_SIZE, 4096);
    this.numDigits = opts.numDigits ?? 1;
    if (this.numDigits !== 1 && this.numDigits !== 2) throw new RangeError(`${op}: expected numDigits 1 or 2, got ${String(this.numDigits)}`);
    this.speed = opts.speed ?? [2, 3];
    if (!(this.speed[0] >= 0 && this.speed[1] >= this.speed[0])) throw new RangeError(`${op}: expected speed [min, max] with 0 <= min <= max, got [${this.speed.join(', ')}]`);
    this.seed = checkInt(op, 'seed', opts.seed ?? 0, 0);
    this.classes = opts.classes ?? [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    if (!this.classes.length || this.classes.some((c) => !Number.isInteger(c) || c < 0 || c > 9))
      throw new RangeError(`${op}: expected classes to be digits 0-9, got [${this.classes.join(', ')}]`);
  }

  get(index: number): MovingMnistSample {
    checkInt('MovingMNIST.get', 'index', index, 0, this.length - 1);
    const rng = new DataRng(this.seed, this.split === 'train' ? 1 : 2, index);
    const set = mnistDigits(this.split);
    const { frames: T, height: H, width: W } = this;
    const video = new Float32Array(T * H * W);
    const digits: number[] = [], dirs: Direction[] = [], dirIdx: number[] = [], positions: [number, number][][] = [];
    const maxX = W - MNIST_SIZE, maxY = H - MNIST_SIZE;
    for (let k = 0; k < this.numDigits; k++) {
      const cls = this.classes[rng.int(this.classes.length)];
      const img = digitImage(set, cls, rng.int(set.counts[cls]));
      const d = rng.int(8);
      const speed = rng.uniform(this.speed[0], this.speed[1]);
      const vx = speed * Math.cos((d * Math.PI) / 4), vy = -speed * Math.sin((d * Math.PI) / 4);
      // Start where the digit can move the whole clip (or as long as the canvas
      // allows) before its first bounce, so the caption describes what is seen.
      const start = (v: number, max: number): number => {
        const travel = Math.min(Math.abs(v) * (T - 1), max);
        const lo = v < 0 ? travel : 0, hi = v > 0 ? max - travel : max;
        return rng.uniform(lo, Math.max(lo, hi));
      };
      let x = start(vx, maxX), y = start(vy, maxY), dx = vx, dy = vy;
      const path: [number, number][] = [];
      for (let t = 0; t < T; t++) {
        const px = Math.round(x), py = Math.round(y);
        path.push([px, py]);
        const frame = video.subarray(t * H * W, (t + 1) * H * W);
        for (let r = 0; r < MNIST_SIZE; r++)
          for (let c = 0; c < MNIST_SIZE; c++) {
            const v = img[r * MNIST_SIZE + c];
            const o = (py + r) * W + px + c;
            if (v > frame[o]) frame[o] = v;
          }
        x += dx;
        y += dy;
        if (x < 0 || x > maxX) (dx = -dx), (x = x < 0 ? -x : 2 * maxX - x);
        if (y < 0 || y > maxY) (dy = -dy), (y = y < 0 ? -y : 2 * maxY - y);
      }
      digits.push(cls);
      dirs.push(DIRECTIONS[d]);
      dirIdx.push(d);
      positions.push(path);
    }
    return { video, frames: T, height: H, width: W, caption: captionFor(digits, dirs), meta: { digits, directions: dirs, directionIndices: dirIdx, positions } };
  }
}
