// Video files: GIF (gifenc) and PNG contact sheets (pngjs) written by us, MP4/WebM
// through a system ffmpeg when one is on the PATH. A batch [B, C, T, H, W] becomes
// a grid of clips. Values are in [0, 1]. Files are written atomically.
import { spawn, spawnSync } from 'child_process';
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

// ---------------------------------------------------------------------------------
// Streaming decode of clip windows through a system ffmpeg (Debian's `ffmpeg`
// package). A window is decoded by seeking before the input (-ss before -i: the
// demuxer jumps to the keyframe before the start, the decoder drops frames before
// it), taking every stride-th frame with `select`, scaling to cover the target size
// and center-cropping it inside ffmpeg, and writing exactly N raw RGB frames to a
// pipe (-frames:v N). Memory is the window's bytes, whatever the file's length.

/** Where ffmpeg and ffprobe are (null when missing); TESSERA_FFMPEG / TESSERA_FFPROBE override the PATH lookup. */
export interface FfmpegInfo {
  ffmpeg: string | null;
  ffprobe: string | null;
  /** `ffmpeg -version`'s first line, e.g. 'ffmpeg version 5.1.6-0+deb12u1'. */
  version: string | null;
}

let ffmpegCache: { key: string; info: FfmpegInfo } | null = null;

/** Finds ffmpeg and ffprobe (each run once with -version; cached per TESSERA_FFMPEG / TESSERA_FFPROBE). */
export function findFfmpeg(): FfmpegInfo {
  const ff = process.env.TESSERA_FFMPEG || 'ffmpeg', fp = process.env.TESSERA_FFPROBE || 'ffprobe';
  const key = `${ff}\n${fp}`;
  if (ffmpegCache?.key === key) return ffmpegCache.info;
  const run = (bin: string): string | null => {
    const r = spawnSync(bin, ['-hide_banner', '-version'], { encoding: 'utf8' });
    return r.status === 0 ? String(r.stdout).split('\n')[0].replace(/\s+Copyright.*$/, '').trim() : null;
  };
  const version = run(ff), probeVersion = run(fp);
  const info: FfmpegInfo = { ffmpeg: version ? ff : null, ffprobe: probeVersion ? fp : null, version };
  ffmpegCache = { key, info };
  return info;
}

/** ffmpeg and ffprobe, or one clear line naming what needs them (`what`, e.g. "--data" or "openVideoDataset"). */
export function requireFfmpeg(what: string): { ffmpeg: string; ffprobe: string } {
  const f = findFfmpeg();
  if (!f.ffmpeg || !f.ffprobe) {
    const missing = [!f.ffmpeg && (process.env.TESSERA_FFMPEG || 'ffmpeg'), !f.ffprobe && (process.env.TESSERA_FFPROBE || 'ffprobe')].filter(Boolean).join(' and ');
    throw new Error(`${what} reads videos with ffmpeg and ffprobe, a system dependency: ${missing} not found (Debian/Ubuntu: apt-get install ffmpeg)`);
  }
  return { ffmpeg: f.ffmpeg, ffprobe: f.ffprobe };
}

/** What probeVideo learns about a file. Sizes are as displayed (after rotation). */
export interface VideoProbe {
  kind: 'video' | 'image';
  codec: string;
  container: string;
  width: number;
  height: number;
  /** Rotation from the display matrix, degrees in [0, 360); ffmpeg applies it when decoding. */
  rotation: number;
  /** Seconds from the first to the end of the last frame (0 for an image). */
  duration: number;
  /** The average frame rate (0 for an image). */
  fps: number;
  /** The rate frames are counted at: the stream's rate; a VFR stream is resampled to it (`fps` filter). */
  rate: number;
  /** Variable frame rate (the average rate differs from the stream's rate by over 1 %). */
  vfr: boolean;
  /** Frames at `rate` from the first to the last frame (1 for an image). */
  frames: number;
  /** The frames (at `rate`) that are keyframes: a window starting at one decodes nothing before it. */
  keyframes: number[];
  audio: boolean;
}

const IMAGE_EXTS = ['.png', '.jpg', '.jpeg', '.webp', '.bmp'];
/** File types openVideoDataset reads: videos (GIF included) and still images. */
export const VIDEO_EXTS = ['.mp4', '.m4v', '.mov', '.mkv', '.webm', '.avi', '.gif'];
export { IMAGE_EXTS };

function execFileText(bin: string, args: string[], maxBytes: number): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let n = 0, err = '';
    p.stdout.on('data', (c: Buffer) => {
      if (n < maxBytes) out.push(c), (n += c.length);
    });
    p.stderr.on('data', (c: Buffer) => {
      if (err.length < 8192) err += c.toString('utf8');
    });
    p.on('error', (e) => resolve({ code: -1, stdout: Buffer.alloc(0), stderr: e.message }));
    p.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
  });
}

const lastLine = (s: string): string => s.trim().split('\n').filter((l) => l.trim()).pop()?.trim() ?? '';

function rateOf(s: unknown): number {
  const m = /^(\d+)\/(\d+)$/.exec(String(s ?? ''));
  if (!m) return Number(s) || 0;
  const d = Number(m[2]);
  return d > 0 ? Number(m[1]) / d : 0;
}

/**
 * Probes a video or image with ffprobe and checks that it decodes: the first frame,
 * and the last one (a truncated file declares more than its data holds). Rejects
 * with the reason when the file cannot be used.
 */
export async function probeVideo(file: string): Promise<VideoProbe> {
  const { ffmpeg, ffprobe } = requireFfmpeg('probeVideo');
  const st = fs.statSync(file);
  if (st.size === 0) throw new Error('empty file (0 bytes)');
  const r = await execFileText(ffprobe, ['-v', 'error', '-show_streams', '-show_format', '-of', 'json', file], 1 << 22);
  if (r.code !== 0) throw new Error(`ffprobe cannot read it (${lastLine(r.stderr) || `exit ${r.code}`})`);
  let j: { streams?: Record<string, any>[]; format?: Record<string, any> };
  try {
    j = JSON.parse(r.stdout.toString('utf8'));
  } catch {
    throw new Error('ffprobe printed no JSON');
  }
  const streams = j.streams ?? [];
  const v = streams.find((s) => s.codec_type === 'video' && !(s.disposition?.attached_pic));
  if (!v) throw new Error('no video stream');
  const cw = Number(v.width), ch = Number(v.height);
  if (!(cw > 0 && ch > 0)) throw new Error(`no frame size (${v.width}x${v.height})`);
  const sideRot = (v.side_data_list ?? []).find((d: Record<string, unknown>) => typeof d.rotation === 'number')?.rotation;
  const rot = Number(sideRot ?? v.tags?.rotate ?? 0) || 0;
  const rotation = ((Math.round(rot) % 360) + 360) % 360;
  const swap = rotation === 90 || rotation === 270;
  const container = String(j.format?.format_name ?? '');
  const ext = path.extname(file).toLowerCase();
  const still = IMAGE_EXTS.includes(ext) || /_pipe$|^image2$/.test(container);
  const base = { codec: String(v.codec_name ?? '?'), container, width: swap ? ch : cw, height: swap ? cw : ch, rotation, audio: streams.some((s) => s.codec_type === 'audio') };

  // Decodes one small gray frame at `at` seconds (null: from the start); true when a frame came out.
  const decodes = async (at: number | null): Promise<{ ok: boolean; why: string }> => {
    const args = ['-nostdin', '-v', 'error', ...(at === null ? [] : ['-ss', at.toFixed(6)]), '-i', file, '-map', '0:v:0', '-frames:v', '1',
      '-vf', 'scale=16:16', '-f', 'rawvideo', '-pix_fmt', 'gray', 'pipe:1'];
    const d = await execFileText(ffmpeg, args, 1024);
    return { ok: d.stdout.length >= 256, why: lastLine(d.stderr) };
  };
  const first = await decodes(null);
  if (!first.ok) throw new Error(`no frame decodes${first.why ? ` (${first.why})` : ''}`);
  if (still) return { ...base, kind: 'image', duration: 0, fps: 0, rate: 0, vfr: false, frames: 1, keyframes: [0] };

  const start = Number(v.start_time ?? j.format?.start_time ?? 0) || 0;
  const tagged = /^(\d+):(\d+):([\d.]+)$/.exec(String(v.tags?.DURATION ?? '')); // Matroska/WebM keep it in a tag
  const declared = Number(v.duration ?? (tagged ? 3600 * +tagged[1] + 60 * +tagged[2] + +tagged[3] : j.format?.duration) ?? NaN);
  const avg = rateOf(v.avg_frame_rate), base_ = rateOf(v.r_frame_rate);
  // The last frame's time and the keyframes' times, from the packets (demuxed, not decoded).
  const pk = await execFileText(ffprobe, ['-v', 'error', '-select_streams', String(v.index ?? 0), '-show_entries', 'packet=pts_time,flags', '-of', 'csv=p=0', file], 1 << 28);
  let lastPts = -Infinity;
  const keyTimes: number[] = [];
  for (const line of pk.stdout.toString('utf8').split('\n')) {
    const [t, flags] = line.split(',');
    const x = t === undefined || t === '' ? NaN : Number(t) - start;
    if (!Number.isFinite(x)) continue;
    if (x > lastPts) lastPts = x;
    if (flags?.startsWith('K')) keyTimes.push(x);
  }
  if (lastPts === -Infinity) lastPts = NaN;
  let rate = avg > 0 && avg <= 1000 ? avg : base_;
  const vfr = avg > 0 && base_ > 0 && Math.abs(avg - base_) / base_ > 0.01;
  if (vfr) rate = base_ <= 240 ? base_ : avg;
  if (!(rate > 0)) throw new Error(`no frame rate (r_frame_rate ${v.r_frame_rate}, avg_frame_rate ${v.avg_frame_rate})`);
  const nb = Number(v.nb_frames);
  let frames: number;
  if (Number.isFinite(lastPts)) frames = Math.floor(lastPts * rate + 1e-3) + 1;
  else if (nb > 0) frames = nb;
  else frames = Math.max(1, Math.floor((Number.isFinite(declared) ? declared : 0) * rate + 1e-3));
  if (!vfr && nb > 0) frames = Math.min(frames, nb);
  const duration = frames / rate;
  if (Number.isFinite(declared) && declared - duration > Math.max(1, 0.1 * declared))
    throw new Error(`truncated: its frames end at ${duration.toFixed(2)} s of the ${declared.toFixed(2)} s it declares`);
  if (frames > 1) {
    const last = await decodes(Math.max(0, (frames - 1.5) / rate));
    if (!last.ok) throw new Error(`truncated: no frame decodes at ${((frames - 1) / rate).toFixed(2)} s of its ${duration.toFixed(2)} s${last.why ? ` (${last.why})` : ''}`);
  }
  const keyframes = [...new Set(keyTimes.map((t) => Math.round(t * rate)).filter((k) => k >= 0 && k < frames))].sort((a, b) => a - b);
  return { ...base, kind: 'video', duration, fps: avg > 0 ? avg : rate, rate, vfr, frames, keyframes };
}

/** A window of a video to decode: N frames from startFrame at a stride, scaled to cover height x width and center-cropped. */
export interface ClipWindow {
  /** First frame, counted at the probe's rate. */
  startFrame: number;
  frames: number;
  /** Take every stride-th frame (default 1). */
  stride?: number;
  height: number;
  width: number;
  /**
   * startFrame is a keyframe: seek to it and decode from there (-noaccurate_seek, nothing
   * decoded before it). Otherwise ffmpeg seeks to the keyframe before the start and drops
   * the frames up to it.
   */
  fromKeyframe?: boolean;
}

/** The ffmpeg filter that scales to cover [height, width] (area filter, accurate rounding) and crops the center, in RGB. */
export function coverCropFilter(height: number, width: number): string {
  return `scale=${width}:${height}:force_original_aspect_ratio=increase:flags=area+accurate_rnd+full_chroma_int,format=rgb24,crop=${width}:${height}`;
}

/**
 * ffmpeg arguments that write the window as raw RGB24 frames [T, H, W, 3] to stdout.
 * `probe` gives the rate frames are counted at (a VFR stream is resampled to it first).
 */
export function clipWindowArgs(file: string, probe: Pick<VideoProbe, 'kind' | 'rate' | 'vfr'>, w: ClipWindow, opts: { threads?: number } = {}): string[] {
  const stride = w.stride ?? 1;
  const threads = String(opts.threads ?? 1);
  const pre: string[] = [];
  if (probe.kind === 'video' && w.startFrame > 0) {
    if (w.fromKeyframe) pre.push('-noaccurate_seek', '-ss', ((w.startFrame + 0.25) / probe.rate).toFixed(6));
    else pre.push('-ss', ((w.startFrame - 0.5) / probe.rate).toFixed(6));
  }
  const filters = [probe.vfr ? `fps=${probe.rate}` : '', stride > 1 ? `select='not(mod(n\\,${stride}))'` : '', coverCropFilter(w.height, w.width)].filter(Boolean);
  return [
    '-nostdin', '-v', 'error', '-threads', threads, ...pre, '-i', file, '-map', '0:v:0', '-an', '-sn', '-dn',
    '-filter_threads', threads, '-vf', filters.join(','), '-fps_mode', 'passthrough', '-frames:v', String(w.frames),
    '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1',
  ];
}

/** Decodes a window synchronously (spawnSync into a buffer of the window's size): RGB24 [T', H, W, 3], T' <= frames. */
export function decodeClipSync(file: string, probe: Pick<VideoProbe, 'kind' | 'rate' | 'vfr'>, w: ClipWindow): Uint8Array {
  const { ffmpeg } = requireFfmpeg('decodeClipSync');
  const bytes = w.frames * w.height * w.width * 3;
  const r = spawnSync(ffmpeg, clipWindowArgs(file, probe, w), { maxBuffer: bytes + 1 });
  if (r.error) throw new Error(`ffmpeg failed on ${file}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`ffmpeg failed on ${file}: ${lastLine(String(r.stderr)) || `exit ${r.status}`}`);
  return new Uint8Array(r.stdout.buffer, r.stdout.byteOffset, r.stdout.length - (r.stdout.length % (w.height * w.width * 3)));
}

/**
 * RGB24 frames [T', H, W, 3] -> [C, T, H, W] floats in [0, 1] (C = 3, or 1 for 'gray',
 * the mean of R, G, B as loadVideo does). A short window (T' < T) repeats its last frame.
 * Writes into `into` (a view of C*T*H*W floats) when given.
 */
export function rgbFramesToPlanar(
  rgb: Uint8Array, T: number, H: number, W: number, color: 'rgb' | 'gray' = 'rgb', into?: Float32Array,
): Float32Array {
  const plane = H * W, have = Math.floor(rgb.length / (plane * 3));
  if (have < 1) throw new Error(`rgbFramesToPlanar: expected at least one ${W}x${H} frame, got ${rgb.length} bytes`);
  const C = color === 'gray' ? 1 : 3;
  if (into && into.length !== C * T * plane) throw new RangeError(`rgbFramesToPlanar: expected an output of ${C * T * plane} floats, got ${into.length}`);
  const out = into ?? new Float32Array(C * T * plane);
  const s = 1 / 255;
  for (let t = 0; t < T; t++) {
    const src = Math.min(t, have - 1) * plane * 3;
    if (C === 1) {
      const o = t * plane;
      for (let i = 0; i < plane; i++) out[o + i] = (rgb[src + 3 * i] + rgb[src + 3 * i + 1] + rgb[src + 3 * i + 2]) * (s / 3);
    } else {
      const r = t * plane, g = (T + t) * plane, b = (2 * T + t) * plane;
      for (let i = 0, k = src; i < plane; i++, k += 3) {
        out[r + i] = rgb[k] * s;
        out[g + i] = rgb[k + 1] * s;
        out[b + i] = rgb[k + 2] * s;
      }
    }
  }
  return out;
}
