// Video files: GIF (gifenc) and PNG contact sheets (pngjs) written by us, MP4/WebM
// through a system ffmpeg when one is on the PATH. A batch [B, C, T, H, W] becomes
// a grid of clips. Values are in [0, 1]. Files are written atomically.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { GIFEncoder, applyPalette, quantize } from 'gifenc';
import { GifReader } from 'omggif';
import { PNG } from 'pngjs';
import { tensor } from '../creation';
import { writeAll, writeFileAtomic } from './atomic';
import { live, shapeStr } from '../ops/basic';
import { Tensor } from '../tensor';

/** Frames as RGBA bytes: [T][H*W*4]. */
interface Rgba {
  frames: Uint8Array[];
  width: number;
  height: number;
}

export interface SaveVideoOptions {
  /** Frames per second (GIF/MP4), default 8. */
  fps?: number;
  /** Columns of the grid for a batch (default ceil(sqrt(B))). */
  columns?: number;
  /** Padding between clips of a grid, in pixels (default 2). */
  padding?: number;
}

function writeBytes(file: string, data: Uint8Array): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  writeFileAtomic(file, (fd) => writeAll(fd, data));
}

function toRgba(video: Tensor, opts: SaveVideoOptions): Rgba {
  const v = live(video, 'saveVideo', 'video');
  let shape = v.shape as number[];
  if (shape.length === 4) shape = [1, ...shape];
  if (shape.length !== 5) throw new Error(`saveVideo: expected video [C, T, H, W] or [B, C, T, H, W], got ${shapeStr(v.shape)}`);
  const [B, C, T, H, W] = shape;
  if (C !== 1 && C !== 3) throw new Error(`saveVideo: expected 1 or 3 channels, got ${C} (shape ${shapeStr(v.shape)})`);
  if (T < 1 || H < 1 || W < 1) throw new Error(`saveVideo: expected a non-empty video, got ${shapeStr(v.shape)}`);
  const data = v.to('float32').toFloat32Array();
  for (let i = 0; i < data.length; i++)
    if (!Number.isFinite(data[i])) throw new Error(`saveVideo: the video holds NaN or Inf (at flat index ${i})`);
  const cols = opts.columns ?? Math.ceil(Math.sqrt(B));
  const rows = Math.ceil(B / cols);
  const pad = B > 1 ? (opts.padding ?? 2) : 0;
  const width = cols * W + (cols - 1) * pad, height = rows * H + (rows - 1) * pad;
  const frames: Uint8Array[] = [];
  for (let t = 0; t < T; t++) {
    const f = new Uint8Array(width * height * 4);
    for (let i = 3; i < f.length; i += 4) f[i] = 255;
    for (let b = 0; b < B; b++) {
      const ox = (b % cols) * (W + pad), oy = Math.floor(b / cols) * (H + pad);
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++) {
          const o = ((oy + y) * width + ox + x) * 4;
          for (let c = 0; c < 3; c++) {
            const ch = C === 1 ? 0 : c;
            const val = data[(((b * C + ch) * T + t) * H + y) * W + x];
            f[o + c] = Math.round(255 * Math.min(1, Math.max(0, val)));
          }
        }
    }
    frames.push(f);
  }
  return { frames, width, height };
}

function encodeGif(v: Rgba, fps: number, gray: boolean): Uint8Array {
  const gif = GIFEncoder();
  const delay = Math.round(1000 / fps);
  const grayPalette = Array.from({ length: 256 }, (_, i) => [i, i, i]);
  for (const f of v.frames) {
    let index: Uint8Array, palette: number[][];
    if (gray) {
      index = new Uint8Array(v.width * v.height);
      for (let i = 0; i < index.length; i++) index[i] = f[i * 4];
      palette = grayPalette;
    } else {
      palette = quantize(f, 256, { format: 'rgb565' });
      index = applyPalette(f, palette, 'rgb565');
    }
    gif.writeFrame(index, v.width, v.height, { palette, delay, repeat: 0 });
  }
  gif.finish();
  return gif.bytes();
}

function encodePng(v: Rgba): Uint8Array {
  // Frames left to right (a contact sheet).
  const T = v.frames.length;
  const png = new PNG({ width: v.width * T, height: v.height });
  for (let t = 0; t < T; t++)
    for (let y = 0; y < v.height; y++)
      for (let x = 0; x < v.width; x++) {
        const s = (y * v.width + x) * 4, d = (y * v.width * T + t * v.width + x) * 4;
        for (let c = 0; c < 4; c++) png.data[d + c] = v.frames[t][s + c];
      }
  return PNG.sync.write(png);
}

function ffmpegPath(): string | null {
  const r = spawnSync('ffmpeg', ['-version'], { encoding: 'utf8' });
  return r.status === 0 ? 'ffmpeg' : null;
}

/** Saves a video [C, T, H, W] or batch [B, C, T, H, W] (values in [0, 1]) as .gif, .png, .mp4 or .webm. */
export function saveVideo(video: Tensor, file: string, opts: SaveVideoOptions = {}): void {
  if (typeof file !== 'string' || !file) throw new TypeError(`saveVideo: expected a file path, got ${typeof file}`);
  const ext = path.extname(file).toLowerCase();
  const fps = opts.fps ?? 8;
  if (!(fps > 0 && fps <= 120)) throw new RangeError(`saveVideo: expected 0 < fps <= 120, got ${fps}`);
  if (!['.gif', '.png', '.mp4', '.webm'].includes(ext))
    throw new Error(`saveVideo: unsupported file type '${ext || file}' (expected .gif, .png, .mp4 or .webm)`);
  const rgba = toRgba(video, opts);
  const channels = (video.shape.length === 5 ? video.shape[1] : video.shape[0]) as number;
  if (ext === '.gif') return writeBytes(file, encodeGif(rgba, fps, channels === 1));
  if (ext === '.png') return writeBytes(file, encodePng(rgba));
  const ff = ffmpegPath();
  if (!ff) throw new Error(`saveVideo: writing ${ext} needs ffmpeg on the PATH (not found); write .gif or .png instead`);
  const raw = Buffer.alloc(rgba.frames.length * rgba.width * rgba.height * 3);
  rgba.frames.forEach((f, t) => {
    for (let i = 0; i < rgba.width * rgba.height; i++)
      for (let c = 0; c < 3; c++) raw[(t * rgba.width * rgba.height + i) * 3 + c] = f[i * 4 + c];
  });
  const tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.${process.pid}.tmp${ext}`);
  const codec = ext === '.mp4' ? ['-c:v', 'libx264', '-pix_fmt', 'yuv420p'] : ['-c:v', 'libvpx-vp9'];
  const even = ['-vf', 'pad=ceil(iw/2)*2:ceil(ih/2)*2'];
  const r = spawnSync(ff, ['-y', '-loglevel', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${rgba.width}x${rgba.height}`, '-r', String(fps), '-i', '-', ...even, ...codec, tmp], { input: raw });
  if (r.status !== 0) {
    fs.rmSync(tmp, { force: true });
    throw new Error(`saveVideo: ffmpeg failed writing ${file}: ${String(r.stderr).trim().split('\n').pop()}`);
  }
  fs.renameSync(tmp, file);
}

export interface LoadVideoOptions {
  /** 'rgb' (3 channels, default) or 'gray' (1 channel, the mean of R, G, B). */
  color?: 'rgb' | 'gray';
}

function fromRgba(frames: Uint8Array[], width: number, height: number, color: 'rgb' | 'gray'): Tensor {
  const C = color === 'gray' ? 1 : 3, T = frames.length;
  const out = new Float32Array(C * T * height * width);
  for (let t = 0; t < T; t++)
    for (let i = 0; i < width * height; i++) {
      const r = frames[t][i * 4], g = frames[t][i * 4 + 1], b = frames[t][i * 4 + 2];
      if (C === 1) out[t * width * height + i] = (r + g + b) / (3 * 255);
      else for (let c = 0; c < 3; c++) out[(c * T + t) * width * height + i] = [r, g, b][c] / 255;
    }
  return tensor(out, { shape: [C, T, height, width] });
}

/** Reads .gif (all frames), .png (one frame) or, with ffmpeg on the PATH, .mp4/.webm into [C, T, H, W] in [0, 1]. */
export function loadVideo(file: string, opts: LoadVideoOptions = {}): Tensor {
  if (typeof file !== 'string' || !file) throw new TypeError(`loadVideo: expected a file path, got ${typeof file}`);
  const color = opts.color ?? 'rgb';
  if (color !== 'rgb' && color !== 'gray') throw new TypeError(`loadVideo: expected color 'rgb' or 'gray', got '${String(color)}'`);
  if (!fs.existsSync(file)) throw new Error(`loadVideo: no such file: ${file}`);
  const ext = path.extname(file).toLowerCase();
  const bytes = fs.readFileSync(file);
  if (ext === '.gif') {
    let reader: GifReader;
    try {
      reader = new GifReader(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
    } catch (e) {
      throw new Error(`loadVideo: ${file} is not a readable GIF (${(e as Error).message})`);
    }
    const frames: Uint8Array[] = [];
    const canvas = new Uint8Array(reader.width * reader.height * 4);
    for (let i = 0; i < reader.numFrames(); i++) {
      reader.decodeAndBlitFrameRGBA(i, canvas);
      frames.push(canvas.slice());
    }
    if (!frames.length) throw new Error(`loadVideo: ${file} has no frames`);
    return fromRgba(frames, reader.width, reader.height, color);
  }
  if (ext === '.png') {
    let png: PNG;
    try {
      png = PNG.sync.read(bytes);
    } catch (e) {
      throw new Error(`loadVideo: ${file} is not a readable PNG (${(e as Error).message})`);
    }
    return fromRgba([new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length)], png.width, png.height, color);
  }
  if (ext === '.mp4' || ext === '.webm') {
    const ff = ffmpegPath();
    if (!ff) throw new Error(`loadVideo: reading ${ext} needs ffmpeg on the PATH (not found)`);
    const probe = spawnSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', file], { encoding: 'utf8' });
    const [w, h] = String(probe.stdout).trim().split(',').map(Number);
    if (!(w > 0 && h > 0)) throw new Error(`loadVideo: could not read the video size of ${file}`);
    const r = spawnSync(ff, ['-loglevel', 'error', '-i', file, '-f', 'rawvideo', '-pix_fmt', 'rgba', '-'], { maxBuffer: 1 << 30 });
    if (r.status !== 0) throw new Error(`loadVideo: ffmpeg failed reading ${file}: ${String(r.stderr).trim().split('\n').pop()}`);
    const frameBytes = w * h * 4;
    const frames: Uint8Array[] = [];
    for (let o = 0; o + frameBytes <= r.stdout.length; o += frameBytes) frames.push(new Uint8Array(r.stdout.subarray(o, o + frameBytes)));
    return fromRgba(frames, w, h, color);
  }
  throw new Error(`loadVideo: unsupported file type '${ext || file}' (expected .gif, .png, .mp4 or .webm)`);
}
