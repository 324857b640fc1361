// Datasets of a user's own files: ImageFolder (PNG) and VideoFolder (GIF; MP4/WebM
// through a system ffmpeg when it is on the PATH). Every sample is scaled so that it
// covers the target size (nearest or area resampling), then center-cropped to it, and
// comes back as [C, T, H, W] in [0, 1] (C channels, T frames, H height, W width; T = 1
// for images). A caption is read from a .txt file beside the media file, if present.
// Unreadable files are found when the folder is opened (each is probed) and are either
// skipped (listed in `skipped` with the reason) or make the constructor throw, as asked.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { GifReader } from 'omggif';
import { PNG } from 'pngjs';
import { loadVideo } from '../io/video';
import { VideoDataset, VideoSample } from './dataset';

export interface FolderOptions {
  /** Output size: a number for square samples or [height, width]. */
  size: number | [number, number];
  /** 'rgb' (3 channels, default) or 'gray' (1 channel). */
  color?: 'rgb' | 'gray';
  /** Resampling: 'area' (box filter, default; right for shrinking) or 'nearest'. */
  resize?: 'area' | 'nearest';
  /** What an unreadable file does: 'skip' it (default; see `skipped`) or 'fail' (throw). */
  onError?: 'skip' | 'fail';
  /** Look into subfolders too (default false). */
  recursive?: boolean;
}

export interface VideoFolderOptions extends FolderOptions {
  /** Frames per clip (default 17): every frameStride-th frame from the start; shorter videos repeat their last frame. */
  frames?: number;
  frameStride?: number; // default 1
}

export interface SkippedFile {
  file: string;
  reason: string;
}

function hasFfmpeg(): boolean {
  return spawnSync('ffmpeg', ['-version']).status === 0 && spawnSync('ffprobe', ['-version']).status === 0;
}

function listFiles(dir: string, exts: string[], recursive: boolean, op: string): string[] {
  if (typeof dir !== 'string' || !fs.existsSync(dir) || !fs.statSync(dir).isDirectory())
    throw new Error(`${op}: no such folder: ${String(dir)}`);
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (recursive) walk(p);
      } else if (exts.includes(path.extname(e.name).toLowerCase())) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Per output index along one axis: the source indices and weights (they sum to 1). */
function axisMap(n: number, scaled: number, out: number, offset: number, mode: 'area' | 'nearest'): [Int32Array, Float32Array][] {
  const s = n / scaled; // source pixels per scaled pixel
  const maps: [Int32Array, Float32Array][] = [];
  for (let o = 0; o < out; o++) {
    const a = (o + offset) * s, b = a + s;
    if (mode === 'nearest') {
      maps.push([Int32Array.of(Math.min(n - 1, Math.floor((a + b) / 2))), Float32Array.of(1)]);
      continue;
    }
    const idx: number[] = [], w: number[] = [];
    for (let i = Math.floor(a); i < Math.min(n, Math.ceil(b)); i++) {
      const cover = Math.min(b, i + 1) - Math.max(a, i);
      if (cover > 1e-9) idx.push(i), w.push(cover / s);
    }
    maps.push([Int32Array.from(idx), Float32Array.from(w)]);
  }
  return maps;
}

/**
 * Scales planes [P, H, W] to cover [outH, outW] (keeping the aspect ratio) and crops
 * the center: returns [P, outH, outW].
 */
export function resizeCenterCrop(
  src: Float32Array, planes: number, H: number, W: number, outH: number, outW: number, mode: 'area' | 'nearest' = 'area',
): Float32Array {
  const scale = Math.max(outH / H, outW / W);
  const sh = Math.max(outH, Math.round(H * scale)), sw = Math.max(outW, Math.round(W * scale));
  const my = axisMap(H, sh, outH, Math.floor((sh - outH) / 2), mode);
  const mx = axisMap(W, sw, outW, Math.floor((sw - outW) / 2), mode);
  const out = new Float32Array(planes * outH * outW);
  const row = new Float32Array(W);
  for (let p = 0; p < planes; p++)
    for (let y = 0; y < outH; y++) {
      row.fill(0);
      const [iy, wy] = my[y];
      for (let k = 0; k < iy.length; k++) {
        const base = (p * H + iy[k]) * W;
        for (let x = 0; x < W; x++) row[x] += wy[k] * src[base + x];
      }
      const o = (p * outH + y) * outW;
      for (let x = 0; x < outW; x++) {
        const [ix, wx] = mx[x];
        let v = 0;
        for (let k = 0; k < ix.length; k++) v += wx[k] * row[ix[k]];
        out[o + x] = v;
      }
    }
  return out;
}

abstract class MediaFolder implements VideoDataset {
  readonly files: string[];
  readonly skipped: SkippedFile[] = [];
  readonly shape: [number, number, number, number];
  protected readonly mode: 'area' | 'nearest';
  protected readonly color: 'rgb' | 'gray';

  constructor(readonly root: string, exts: string[], frames: number, opts: FolderOptions, readonly op: string) {
    if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: expected options { size, ... }`);
    const [h, w] = typeof opts.size === 'number' ? [opts.size, opts.size] : Array.isArray(opts.size) ? opts.size : [NaN, NaN];
    if (!(Number.isInteger(h) && h > 0 && Number.isInteger(w) && w > 0))
      throw new RangeError(`${op}: expected size to be a positive integer or [height, width], got ${JSON.stringify(opts.size)}`);
    this.color = opts.color ?? 'rgb';
    if (this.color !== 'rgb' && this.color !== 'gray') throw new TypeError(`${op}: expected color 'rgb' or 'gray', got ${String(opts.color)}`);
    this.mode = opts.resize ?? 'area';
    if (this.mode !== 'area' && this.mode !== 'nearest') throw new TypeError(`${op}: expected resize 'area' or 'nearest', got ${String(opts.resize)}`);
    const onError = opts.onError ?? 'skip';
    if (onError !== 'skip' && onError !== 'fail') throw new TypeError(`${op}: expected onError 'skip' or 'fail', got ${String(opts.onError)}`);
    this.shape = [this.color === 'gray' ? 1 : 3, frames, h, w];
    const all = listFiles(root, exts, opts.recursive ?? false, op);
    const files: string[] = [];
    for (const f of all) {
      const reason = this.probe(f);
      if (reason === null) files.push(f);
      else if (onError === 'fail') throw new Error(`${op}: cannot read ${f}: ${reason}`);
      else this.skipped.push({ file: f, reason });
    }
    if (!files.length)
      throw new Error(`${op}: no readable ${exts.join('/')} files in ${root}${this.skipped.length ? ` (${this.skipped.length} unreadable: ${this.skipped.map((s) => path.basename(s.file)).join(', ')})` : ''}`);
    this.files = files;
  }

  get length(): number {
    return this.files.length;
  }

  /** Why a file cannot be read (null when it can). */
  protected abstract probe(file: string): string | null;

  /** Frames [C, T, H, W] of the decoded file (before resizing), with T = the dataset's frames. */
  protected abstract decode(file: string): { data: Float32Array; frames: number; height: number; width: number; sourceFrames: number };

  get(index: number): VideoSample {
    if (!Number.isInteger(index) || index < 0 || index >= this.files.length)
      throw new RangeError(`${this.op}.get: index ${index} is out of range for ${this.files.length} files`);
    const file = this.files[index];
    let d: ReturnType<MediaFolder['decode']>;
    try {
      d = this.decode(file);
    } catch (e) {
      throw new Error(`${this.op}: cannot read ${file}: ${(e as Error).message}`);
    }
    const [C, T, H, W] = this.shape;
    const video = resizeCenterCrop(d.data, C * T, d.height, d.width, H, W, this.mode);
    const txt = file.slice(0, file.length - path.extname(file).length) + '.txt';
    const caption = fs.existsSync(txt) ? fs.readFileSync(txt, 'utf8').trim() : undefined;
    return { video, caption, meta: { file, sourceSize: [d.height, d.width], sourceFrames: d.sourceFrames } };
  }
}

/** Tensor [C, T, H, W] in [0, 1] -> the first `frames` frames at `stride` (the last repeated when short). */
function pickFrames(file: string, color: 'rgb' | 'gray', frames: number, stride: number): ReturnType<MediaFolder['decode']> {
  const v = loadVideo(file, { color });
  try {
    const [C, T, H, W] = v.shape;
    const all = v.toFloat32Array();
    const plane = H * W;
    const data = new Float32Array(C * frames * plane);
    for (let c = 0; c < C; c++)
      for (let t = 0; t < frames; t++) {
        const s = Math.min(T - 1, t * stride);
        data.set(all.subarray((c * T + s) * plane, (c * T + s + 1) * plane), (c * frames + t) * plane);
      }
    return { data, frames, height: H, width: W, sourceFrames: T };
  } finally {
    v.dispose();
  }
}

/** PNG images as samples [C, 1, H, W]. */
export class ImageFolder extends MediaFolder {
  constructor(root: string, opts: FolderOptions) {
    super(root, ['.png'], 1, opts, 'ImageFolder');
  }
  protected probe(file: string): string | null {
    try {
      const png = PNG.sync.read(fs.readFileSync(file));
      return png.width > 0 && png.height > 0 ? null : 'the image is empty';
    } catch (e) {
      return `not a readable PNG (${(e as Error).message})`;
    }
  }
  protected decode(file: string): ReturnType<MediaFolder['decode']> {
    return pickFrames(file, this.color, 1, 1);
  }
}

/** GIF (and, with ffmpeg on the PATH, MP4/WebM) videos as clips [C, frames, H, W]. */
export class VideoFolder extends MediaFolder {
  readonly frameStride: number;
  private ffmpeg: boolean | null = null;

  constructor(root: string, opts: VideoFolderOptions) {
    const frames = opts?.frames ?? 17, stride = opts?.frameStride ?? 1;
    for (const [v, n] of [[frames, 'frames'], [stride, 'frameStride']] as const)
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`VideoFolder: expected ${n} to be a positive integer, got ${String(v)}`);
    super(root, ['.gif', '.mp4', '.webm'], frames, opts, 'VideoFolder');
    this.frameStride = stride;
  }
  protected probe(file: string): string | null {
    const ext = path.extname(file).toLowerCase();
    if (ext === '.gif') {
      try {
        const bytes = fs.readFileSync(file);
        const r = new GifReader(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
        return r.numFrames() > 0 ? null : 'the GIF has no frames';
      } catch (e) {
        return `not a readable GIF (${(e as Error).message})`;
      }
    }
    this.ffmpeg ??= hasFfmpeg();
    if (!this.ffmpeg) return `reading ${ext} needs ffmpeg and ffprobe on the PATH (not found)`;
    const r = spawnSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', file], { encoding: 'utf8' });
    const [w, h] = String(r.stdout).trim().split(',').map(Number);
    return r.status === 0 && w > 0 && h > 0 ? null : `ffprobe found no video stream (${String(r.stderr).trim().split('\n').pop() || 'no output'})`;
  }
  protected decode(file: string): ReturnType<MediaFolder['decode']> {
    return pickFrames(file, this.color, this.shape[1], this.frameStride ?? 1);
  }
}
