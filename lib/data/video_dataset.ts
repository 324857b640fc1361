// A streaming dataset of a user's videos (and images) for the VAE and the DiT, in the
// manner of the loaders of Open-Sora and CogVideoX:
// - the files of a folder (or a list with captions) are probed once with ffprobe
//   (size, rotation, frame rate, frames, whether the first and last frames decode) and
//   the results kept in an index next to the data (.tessera-index.json, written
//   atomically, each entry refreshed when its file's size or mtime changes);
// - each file gets a bucket: the frame size [H, W] nearest its aspect ratio and the
//   longest frame count (1 + k * temporalCompression) its frames allow at the stride;
//   images are 1-frame clips;
// - an epoch holds clipsPerVideo windows per file; a window's start is a pure function
//   of (seed, epoch, file, clip), so get(i) is reproducible;
// - a window is decoded alone (seek, stride, scale to cover and center crop all inside
//   ffmpeg, raw frames through a pipe), by worker threads that decode the next clips
//   while the caller trains.
// Unreadable, truncated, empty or too-short files are skipped and reported (`skipped`,
// and one warning naming them), or fail the open with `strict: true`.
// Shapes: a clip is [C, T, H, W] (channels, frames, height, width), values in [0, 1].
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { writeJsonAtomic } from '../io/atomic';
import {
  ClipWindow, clipWindowArgs, decodeClipSync, IMAGE_EXTS, probeVideo, requireFfmpeg, rgbFramesToPlanar, VIDEO_EXTS, VideoProbe,
} from '../io/video';
import { finiteNumber, oneOf, posInt, typeName } from '../checks';
import { VideoDataset, VideoSample } from './dataset';
import type { SkippedFile } from './folders';
import { ClipJob, ClipWorkerPool } from './clip_workers';
import { DataRng } from './rng';

export type { SkippedFile };

/** Open-Sora-style buckets: frame sizes by aspect ratio and frame counts by duration. */
export interface VideoBucketOptions {
  /** Frame sizes [height, width]; a file takes the one nearest its aspect ratio (default [[256, 256], [192, 320], [320, 192]]). */
  sizes?: [number, number][];
  /** Frame counts, each 1 + k * temporalCompression; a file takes the longest its frames allow (default [1, 17]). */
  frames?: number[];
}

export interface VideoDatasetOptions {
  buckets?: VideoBucketOptions;
  /** The VAE's temporal compression: every frame count must be 1 + k * this (default 4). */
  temporalCompression?: number;
  /** Target frames per second: the stride is round(source rate / fps), at least 1 (default: every frame). */
  fps?: number;
  /** Take every frameStride-th frame (default 1; give fps or frameStride, not both). */
  frameStride?: number;
  /** Windows per file in an epoch (default 1). */
  clipsPerVideo?: number;
  /**
   * Frames a window may start after a keyframe (default: anywhere). Decoding a window
   * starts at the keyframe before it, so the frames in between cost as much as the
   * window's own: 0 starts every window at a keyframe, the cheapest decode (on files with
   * long keyframe intervals, the x264 default is 250 frames, several times cheaper).
   */
  maxPreroll?: number;
  /** Seed of the windows and of the batch order (default 0). */
  seed?: number;
  /** 'rgb' (3 channels, default) or 'gray' (1 channel, the mean of R, G, B). */
  color?: 'rgb' | 'gray';
  /** Decoding worker threads (default min(2, CPUs)); 0 decodes in the calling thread, nothing ahead. */
  workers?: number;
  /** Clips decoded ahead at most (default 16): bounds the memory of prefetching. */
  prefetch?: number;
  /** Fail the open on any unusable file instead of skipping it (default false). */
  strict?: boolean;
  /** Look into subfolders too (default false). */
  recursive?: boolean;
  /** The probe index file (default <folder>/.tessera-index.json); false: probe every time, write nothing. */
  index?: string | false;
  /**
   * A captions.jsonl ({"file", "caption"} per line, files relative to it; default
   * <folder>/captions.jsonl when present). A caption given in the list, then a .txt beside
   * the file, come before it.
   */
  captions?: string;
  /** Where warnings go (skipped files, an index that cannot be written); default process.emitWarning. */
  onWarning?: (message: string) => void;
  /** Seconds a decode may take before it counts as failed (default 120). */
  decodeTimeout?: number;
  /** Niceness of the decoding ffmpeg processes (default 10: decoding yields the cores to the training step). */
  decodeNice?: number;
}

/** One usable file: what the probe found, its caption and its bucket. */
export interface VideoEntry extends VideoProbe {
  file: string;
  /** The path relative to the folder (or index directory), with '/'. */
  rel: string;
  caption: string | null;
  /** Frames of a clip (its duration bucket), and its frame size (its aspect bucket). */
  clipFrames: number;
  clipHeight: number;
  clipWidth: number;
  /** Frames between a clip's frames (1: consecutive). */
  stride: number;
}

/** One window of one file: what get(i) decodes. */
export interface ClipSpec {
  /** Index into `entries`. */
  entry: number;
  file: string;
  /** 'TxHxW', e.g. '17x192x320'. */
  bucket: string;
  startFrame: number;
  /** startFrame is a keyframe (decoding starts there). */
  fromKeyframe: boolean;
  /** Seconds from the file's start. */
  start: number;
  frames: number;
  stride: number;
  height: number;
  width: number;
  caption: string | null;
}

export interface VideoBucket {
  key: string;
  /** [C, T, H, W] of its clips. */
  shape: [number, number, number, number];
  /** Clips of the bucket in an epoch. */
  clips: number;
}

/** A batch of clips of one bucket. */
export interface VideoBatch {
  bucket: string;
  /** [B, C, T, H, W]. */
  shape: [number, number, number, number, number];
  /** B clips [C, T, H, W] one after another, in [0, 1]. */
  video: Float32Array;
  captions: (string | null)[];
  meta: Record<string, unknown>[];
  /** The clips' indices in the epoch's plan. */
  indices: number[];
  epoch: number;
}

const INDEX_FORMAT = 'tessera-video-index';
const INDEX_VERSION = 2; // 2: probes list keyframes
export const DEFAULT_BUCKET_SIZES: [number, number][] = [[256, 256], [192, 320], [320, 192]];
export const DEFAULT_BUCKET_FRAMES = [1, 17];

interface IndexFile {
  format: string;
  version: number;
  files: Record<string, { size: number; mtimeMs: number; probe?: VideoProbe; error?: string }>;
}

const bucketKey = (frames: number, h: number, w: number): string => `${frames}x${h}x${w}`;
const toPosix = (p: string): string => p.split(path.sep).join('/');

function listMedia(dir: string, recursive: boolean): string[] {
  const exts = [...VIDEO_EXTS, ...IMAGE_EXTS];
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (recursive) walk(p);
      } else if (e.isFile() && exts.includes(path.extname(e.name).toLowerCase())) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** captions.jsonl: {"file": path relative to the jsonl (or absolute), "caption": text} per line. */
function readCaptionsJsonl(file: string, op: string): Map<string, string> {
  const map = new Map<string, string>();
  const dir = path.dirname(path.resolve(file));
  fs.readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let rec: { file?: unknown; caption?: unknown };
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new Error(`${op}: ${file}:${i + 1} is not JSON (${(e as Error).message})`);
    }
    if (typeof rec?.file !== 'string' || typeof rec.caption !== 'string')
      throw new Error(`${op}: ${file}:${i + 1}: expected {"file": string, "caption": string}, got ${line.trim().slice(0, 80)}`);
    map.set(path.resolve(dir, rec.file), rec.caption);
  });
  return map;
}

/** Runs fn over items with at most `limit` at a time, results in order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const run = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
  return out;
}

/** Nearest aspect ratio (in log space); ties go to the first size listed. */
function nearestSize(sizes: [number, number][], h: number, w: number): [number, number] {
  let best = sizes[0], d = Infinity;
  for (const s of sizes) {
    const e = Math.abs(Math.log(w / h) - Math.log(s[1] / s[0]));
    if (e < d - 1e-9) (d = e), (best = s);
  }
  return best;
}

/**
 * Opens a streaming video dataset over a folder (its videos and images; captions from a
 * .txt beside each file or from captions.jsonl) or over a list of files (strings, or
 * { file, caption }). See the file header and VideoDatasetOptions. Call close() when
 * done (it stops the decoding workers).
 */
export async function openVideoDataset(source: string | (string | { file: string; caption?: string })[], opts: VideoDatasetOptions = {}): Promise<VideoClipDataset> {
  const op = 'openVideoDataset';
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: expected an options object, got ${typeName(opts)}`);
  requireFfmpeg(op);
  const sizes = opts.buckets?.sizes ?? DEFAULT_BUCKET_SIZES;
  const frameCounts = [...(opts.buckets?.frames ?? DEFAULT_BUCKET_FRAMES)].sort((a, b) => a - b);
  const ft = posInt(op, 'temporalCompression', opts.temporalCompression ?? 4);
  if (!Array.isArray(sizes) || !sizes.length || !sizes.every((s) => Array.isArray(s) && s.length === 2 && s.every((v) => Number.isInteger(v) && v > 0)))
    throw new RangeError(`${op}: expected buckets.sizes to be [height, width] pairs of positive integers, got ${JSON.stringify(sizes)}`);
  if (!frameCounts.length || !frameCounts.every((f) => Number.isInteger(f) && f >= 1 && (f - 1) % ft === 0))
    throw new RangeError(`${op}: expected buckets.frames to be frame counts 1 + k*${ft} (1, ${1 + ft}, ${1 + 2 * ft}, ...), got ${JSON.stringify(opts.buckets?.frames)}`);
  if (opts.fps !== undefined && opts.frameStride !== undefined) throw new TypeError(`${op}: give fps or frameStride, not both`);
  const fps = opts.fps === undefined ? null : finiteNumber(op, 'fps', opts.fps, 1e-3);
  const frameStride = posInt(op, 'frameStride', opts.frameStride ?? 1);
  const color = oneOf(op, 'color', opts.color ?? 'rgb', ['rgb', 'gray'] as const);
  const workers = posInt(op, 'workers', opts.workers ?? Math.min(2, os.cpus().length), 0);
  const warn = opts.onWarning ?? ((m: string) => process.emitWarning(m, 'TesseraDataWarning'));

  // The files and their captions.
  let root: string, files: string[];
  const given = new Map<string, string>();
  if (typeof source === 'string') {
    root = path.resolve(source);
    if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) throw new Error(`${op}: no such folder: ${source}`);
    files = listMedia(root, opts.recursive ?? false);
  } else if (Array.isArray(source)) {
    files = source.map((s, i) => {
      const f = typeof s === 'string' ? s : s?.file;
      if (typeof f !== 'string' || !f) throw new TypeError(`${op}: expected item ${i} to be a file path or { file, caption }, got ${typeName(s)}`);
      const abs = path.resolve(f);
      if (typeof s !== 'string' && typeof s.caption === 'string') given.set(abs, s.caption);
      return abs;
    });
    if (!files.length) throw new Error(`${op}: the file list is empty`);
    root = files.map((f) => path.dirname(f)).reduce((a, b) => {
      while (!(b + path.sep).startsWith(a + path.sep) && a !== path.dirname(a)) a = path.dirname(a);
      return a;
    });
  } else throw new TypeError(`${op}: expected a folder or a list of files, got ${typeName(source)}`);
  const captionsFile = opts.captions ?? (fs.existsSync(path.join(root, 'captions.jsonl')) ? path.join(root, 'captions.jsonl') : null);
  if (opts.captions !== undefined && !fs.existsSync(opts.captions)) throw new Error(`${op}: no such captions file: ${opts.captions}`);
  const jsonl = captionsFile ? readCaptionsJsonl(captionsFile, op) : new Map<string, string>();

  // Probe each file, reusing the index for files whose size and mtime are unchanged.
  const indexFile = opts.index === false ? null : path.resolve(opts.index ?? path.join(root, '.tessera-index.json'));
  let index: IndexFile = { format: INDEX_FORMAT, version: INDEX_VERSION, files: {} };
  if (indexFile && fs.existsSync(indexFile)) {
    try {
      const old = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as IndexFile;
      if (old?.format === INDEX_FORMAT && old.version === INDEX_VERSION && old.files && typeof old.files === 'object') index = old;
    } catch {
      warn(`${op}: ${indexFile} is not valid JSON; probing every file again`);
    }
  }
  const indexDir = indexFile ? path.dirname(indexFile) : root;
  let changed = false;
  const fresh: IndexFile['files'] = {};
  const probed = await mapLimit(files, Math.max(2, workers), async (file) => {
    const rel = toPosix(path.relative(indexDir, file));
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch (e) {
      return { file, rel, error: `cannot stat (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
    }
    const old = index.files[rel];
    if (old && old.size === st.size && old.mtimeMs === st.mtimeMs) {
      fresh[rel] = old;
      return { file, rel, probe: old.probe, error: old.error };
    }
    changed = true;
    let rec: IndexFile['files'][string];
    try {
      rec = { size: st.size, mtimeMs: st.mtimeMs, probe: await probeVideo(file) };
    } catch (e) {
      rec = { size: st.size, mtimeMs: st.mtimeMs, error: (e as Error).message };
    }
    fresh[rel] = rec;
    return { file, rel, probe: rec.probe, error: rec.error };
  });
  if (Object.keys(index.files).some((k) => !(k in fresh) && !fs.existsSync(path.resolve(indexDir, k)))) changed = true; // a file went away
  if (indexFile && changed) {
    // Keep entries of files outside this listing (another subset of the same folder).
    const keep = Object.fromEntries(Object.entries(index.files).filter(([k]) => !(k in fresh) && fs.existsSync(path.resolve(indexDir, k))));
    try {
      writeJsonAtomic(indexFile, { format: INDEX_FORMAT, version: INDEX_VERSION, files: { ...keep, ...fresh } }, 0);
    } catch (e) {
      warn(`${op}: could not write the probe index ${indexFile} (${(e as Error).message}); the files will be probed again next time`);
    }
  }

  // Buckets.
  const skipped: SkippedFile[] = [];
  const entries: VideoEntry[] = [];
  for (const p of probed) {
    if (!p.probe) {
      skipped.push({ file: p.file, reason: p.error ?? 'unreadable' });
      continue;
    }
    const pr = p.probe;
    const stride = pr.kind === 'image' ? 1 : fps === null ? frameStride : Math.max(1, Math.round(pr.rate / fps));
    const fits = frameCounts.filter((f) => (pr.kind === 'image' ? f === 1 : (f - 1) * stride + 1 <= pr.frames));
    if (!fits.length) {
      const need = frameCounts[0];
      skipped.push({
        file: p.file,
        reason: pr.kind === 'image'
          ? `an image needs a 1-frame bucket (buckets.frames is ${JSON.stringify(frameCounts)})`
          : `too short: ${pr.frames} frame${pr.frames === 1 ? '' : 's'}, the shortest bucket needs ${(need - 1) * stride + 1} at stride ${stride}`,
      });
      continue;
    }
    const [h, w] = nearestSize(sizes, pr.height, pr.width);
    const sidecar = p.file.slice(0, p.file.length - path.extname(p.file).length) + '.txt';
    const caption = given.get(p.file) ?? (fs.existsSync(sidecar) ? fs.readFileSync(sidecar, 'utf8').trim() : jsonl.get(p.file) ?? null);
    entries.push({ ...pr, file: p.file, rel: p.rel, caption, clipFrames: fits[fits.length - 1], clipHeight: h, clipWidth: w, stride });
  }
  if (skipped.length) {
    const list = skipped.map((s) => `${path.relative(root, s.file) || s.file} (${s.reason})`).join('; ');
    if (opts.strict) throw new Error(`${op}: ${skipped.length} of ${files.length} files cannot be used (strict): ${list}`);
    warn(`${op}: skipped ${skipped.length} of ${files.length} files: ${list}`);
  }
  if (!entries.length) throw new Error(`${op}: no usable videos or images in ${typeof source === 'string' ? source : 'the list'} (${files.length} files${skipped.length ? `, ${skipped.length} skipped` : ''})`);
  return new VideoClipDataset(root, entries, skipped, {
    seed: posInt(op, 'seed', opts.seed ?? 0, 0), clipsPerVideo: posInt(op, 'clipsPerVideo', opts.clipsPerVideo ?? 1), color, workers,
    maxPreroll: opts.maxPreroll === undefined || opts.maxPreroll === Infinity ? Infinity : posInt(op, 'maxPreroll', opts.maxPreroll, 0),
    prefetch: posInt(op, 'prefetch', opts.prefetch ?? 16), timeoutMs: 1000 * finiteNumber(op, 'decodeTimeout', opts.decodeTimeout ?? 120, 1e-3),
    sizes, frameCounts, nice: finiteNumber(op, 'decodeNice', opts.decodeNice ?? 10, -20, 19),
  });
}

interface Settings {
  seed: number;
  clipsPerVideo: number;
  maxPreroll: number;
  color: 'rgb' | 'gray';
  workers: number;
  prefetch: number;
  timeoutMs: number;
  sizes: [number, number][];
  frameCounts: number[];
  nice: number;
}

/** A clip being decoded by a worker, or (no workers) to be decoded in this thread when asked for. */
type Pending = { job: ClipJob } | { later: true };

/** The dataset openVideoDataset returns. */
export class VideoClipDataset {
  private pool: ClipWorkerPool | null;
  private plan: ClipSpec[];
  private epochNumber = 0;
  private iterator: AsyncIterator<VideoBatch> | null = null;
  private iteratorBatch = 0;
  private closed = false;

  /** @internal use openVideoDataset */
  constructor(
    /** The folder (or the common folder of a list). */
    readonly root: string,
    /** The usable files, with their probes, captions and buckets. */
    readonly entries: readonly VideoEntry[],
    /** Files left out, and why. */
    readonly skipped: readonly SkippedFile[],
    private readonly s: Settings,
  ) {
    this.pool = s.workers > 0 ? new ClipWorkerPool({ workers: s.workers, timeoutMs: s.timeoutMs, nice: s.nice }) : null;
    this.plan = this.planEpoch(0);
  }

  get channels(): number {
    return this.s.color === 'gray' ? 1 : 3;
  }
  get seed(): number {
    return this.s.seed;
  }
  get epoch(): number {
    return this.epochNumber;
  }
  /** Clips in an epoch. */
  get length(): number {
    return this.plan.length;
  }

  /** Chooses the epoch whose windows get(i) and batches() use (windows differ per epoch, same buckets). */
  setEpoch(epoch: number): this {
    this.epochNumber = posInt('VideoClipDataset.setEpoch', 'epoch', epoch, 0);
    this.plan = this.planEpoch(this.epochNumber);
    return this;
  }

  /** The windows of an epoch: clipsPerVideo per file, starts drawn from (seed, epoch, file, clip). */
  planEpoch(epoch: number, shape?: { frames: number; size: [number, number] }, clipsPerVideo = this.s.clipsPerVideo): ClipSpec[] {
    const out: ClipSpec[] = [];
    this.entries.forEach((e, k) => {
      const frames = shape ? shape.frames : e.clipFrames;
      const [h, w] = shape ? shape.size : [e.clipHeight, e.clipWidth];
      const span = (frames - 1) * e.stride + 1;
      if (e.kind === 'image' ? frames !== 1 : span > e.frames) return; // does not fit this shape
      for (let c = 0; c < clipsPerVideo; c++) {
        const startFrame = e.kind === 'image' ? 0 : this.drawStart(e, e.frames - span, new DataRng(this.s.seed, epoch, k, c));
        out.push({
          entry: k, file: e.file, bucket: bucketKey(frames, h, w), startFrame, fromKeyframe: !e.vfr && e.keyframes.includes(startFrame),
          start: e.kind === 'image' ? 0 : startFrame / e.rate,
          frames, stride: e.stride, height: h, width: w, caption: e.caption,
        });
      }
    });
    return out;
  }

  /** A window start in [0, last]: anywhere, or within maxPreroll frames after a keyframe. */
  private drawStart(e: VideoEntry, last: number, rng: DataRng): number {
    const P = this.s.maxPreroll;
    if (P === Infinity) return rng.int(last + 1);
    const keys = e.keyframes.length ? e.keyframes : [0];
    // The starts allowed after each keyframe (up to the next keyframe, which has its own).
    const spans: [number, number][] = [];
    let total = 0;
    keys.forEach((k, j) => {
      if (k > last) return;
      const end = Math.min(k + P, last, j + 1 < keys.length ? keys[j + 1] - 1 : Infinity);
      spans.push([k, end]);
      total += end - k + 1;
    });
    if (!total) return 0;
    let r = rng.int(total);
    for (const [a, b] of spans) {
      if (r <= b - a) return a + r;
      r -= b - a + 1;
    }
    return 0;
  }

  /** The window of clip i of the current epoch. */
  clip(i: number): ClipSpec {
    if (!Number.isInteger(i) || i < 0 || i >= this.plan.length) throw new RangeError(`VideoClipDataset.clip: index ${i} is out of range for ${this.plan.length} clips`);
    return this.plan[i];
  }

  /** The buckets of the current epoch, largest first. */
  get buckets(): VideoBucket[] {
    const m = new Map<string, VideoBucket>();
    for (const c of this.plan) {
      const b = m.get(c.bucket) ?? { key: c.bucket, shape: [this.channels, c.frames, c.height, c.width] as [number, number, number, number], clips: 0 };
      b.clips++;
      m.set(c.bucket, b);
    }
    return [...m.values()].sort((a, b) => b.clips - a.clips || (a.key < b.key ? -1 : 1));
  }

  /** Every caption of the usable files ('' for none), e.g. to build a tokenizer. */
  captions(): string[] {
    return this.entries.map((e) => e.caption ?? '');
  }

  /** One line: clips, buckets, skipped files. */
  summary(): string {
    const b = this.buckets.map((x) => `${x.key}: ${x.clips}`).join(', ');
    const images = this.entries.filter((e) => e.kind === 'image').length;
    const uncaptioned = this.entries.filter((e) => !e.caption).length;
    return `${this.entries.length - images} videos and ${images} images in ${this.root}: ${this.plan.length} clips in buckets ${b}` +
      `${uncaptioned ? `; ${uncaptioned} without a caption` : ''}${this.skipped.length ? `; ${this.skipped.length} skipped (${this.skipped.map((s) => path.basename(s.file)).join(', ')})` : ''}`;
  }

  /** Starts decoding a clip (on a worker, or here without workers). */
  startDecode(c: ClipSpec): Pending {
    if (this.closed) throw new Error('VideoClipDataset: the dataset is closed');
    const e = this.entries[c.entry];
    const w: ClipWindow = { startFrame: c.startFrame, frames: c.frames, stride: c.stride, height: c.height, width: c.width, fromKeyframe: c.fromKeyframe };
    if (!this.pool) return { later: true };
    const { ffmpeg } = requireFfmpeg('VideoClipDataset');
    return { job: this.pool.submit(ffmpeg, clipWindowArgs(e.file, e, w), c.frames * c.height * c.width * 3, `decoding ${e.rel} at ${c.start.toFixed(2)} s`) };
  }

  /**
   * The sample of a decoded clip: [C, T, H, W] in [0, 1] (a window that ends early repeats
   * its last frame; meta says so), written into `into` when given.
   */
  toSample(c: ClipSpec, bytes: Uint8Array, into?: Float32Array): VideoSample {
    const e = this.entries[c.entry];
    const frameBytes = c.height * c.width * 3;
    const decoded = Math.floor(bytes.length / frameBytes);
    if (decoded < 1) throw new Error(`VideoClipDataset: no frame decoded from ${e.rel} at ${c.start.toFixed(2)} s (the file may have changed since it was probed)`);
    return {
      video: rgbFramesToPlanar(bytes, c.frames, c.height, c.width, this.s.color, into),
      caption: c.caption ?? undefined,
      meta: {
        file: e.file, rel: e.rel, bucket: c.bucket, startFrame: c.startFrame, fromKeyframe: c.fromKeyframe, start: c.start, stride: c.stride,
        fps: e.kind === 'image' ? 0 : e.rate / c.stride, frames: c.frames, decodedFrames: decoded,
        source: { width: e.width, height: e.height, rotation: e.rotation, duration: e.duration, codec: e.codec, vfr: e.vfr },
      },
    };
  }

  private decodeHere(c: ClipSpec): Uint8Array {
    const e = this.entries[c.entry];
    return decodeClipSync(e.file, e, { startFrame: c.startFrame, frames: c.frames, stride: c.stride, height: c.height, width: c.width, fromKeyframe: c.fromKeyframe });
  }

  /** Finishes a started decode synchronously (its buffer goes back to the pool). */
  finishSync(c: ClipSpec, p: Pending): VideoSample {
    if (!('job' in p)) return this.toSample(c, this.decodeHere(c));
    try {
      return this.toSample(c, p.job.waitSync());
    } finally {
      p.job.release();
    }
  }

  /** Finishes a started decode (into `into` when given; its buffer goes back to the pool). */
  async finish(c: ClipSpec, p: Pending, into?: Float32Array): Promise<VideoSample> {
    if (!('job' in p)) return this.toSample(c, this.decodeHere(c), into);
    try {
      return this.toSample(c, await p.job.wait(), into);
    } finally {
      p.job.release();
    }
  }

  /** Whether clips decode ahead (workers > 0). */
  get decodesAhead(): boolean {
    return this.pool !== null;
  }

  /** Decodes clip i of the current epoch. */
  async get(i: number): Promise<VideoSample> {
    const c = this.clip(i);
    return this.finish(c, this.startDecode(c));
  }

  /**
   * Batches of one bucket each, for `epochs` epochs from the current one (default 1;
   * Infinity for no end): clips shuffled within their bucket, batches shuffled, both by
   * (seed, epoch). The clips of the next batches decode while the caller works (up to
   * `prefetch` clips ahead). dropLast drops each bucket's incomplete last batch.
   */
  async *batches(o: { batchSize: number; epochs?: number; dropLast?: boolean; shuffle?: boolean }): AsyncGenerator<VideoBatch> {
    const op = 'VideoClipDataset.batches';
    const B = posInt(op, 'batchSize', o?.batchSize);
    const epochs = o.epochs ?? 1;
    if (!(epochs === Infinity || (Number.isInteger(epochs) && epochs >= 1))) throw new RangeError(`${op}: expected epochs >= 1 (or Infinity), got ${String(epochs)}`);
    const ahead = Math.max(B, this.s.prefetch);
    const queue: { epoch: number; clips: ClipSpec[]; indices: number[]; pending: Pending[] | null }[] = [];
    let queued = 0; // clips started and not yet yielded
    const first = this.epochNumber;
    let e = first;
    const start = (q: (typeof queue)[number]): void => {
      q.pending = q.clips.map((c) => this.startDecode(c));
      queued += q.clips.length;
    };
    // Starts decodes in batch order while under the prefetch bound, planning epochs as needed.
    const refill = (): void => {
      for (;;) {
        for (const q of queue) {
          if (q.pending) continue;
          if (queued > 0 && queued + q.clips.length > ahead) return;
          start(q);
        }
        if (e >= first + epochs) return;
        const plan = e === this.epochNumber ? this.plan : this.planEpoch(e);
        const bs = this.epochBatches(plan, e, B, o.dropLast ?? false, o.shuffle ?? true);
        if (!bs.length) throw new Error(`${op}: epoch ${e} has no batch of ${B} (every bucket has fewer clips; dropLast)`);
        for (const b of bs) queue.push({ epoch: e, clips: b.map((i) => plan[i]), indices: b, pending: null });
        e++;
      }
    };
    try {
      for (;;) {
        refill();
        const q = queue.shift();
        if (!q) return;
        if (!q.pending) start(q);
        const [C, T, H, W] = [this.channels, q.clips[0].frames, q.clips[0].height, q.clips[0].width];
        const per = C * T * H * W;
        const video = new Float32Array(q.clips.length * per);
        const samples: VideoSample[] = [];
        for (let k = 0; k < q.clips.length; k++) samples.push(await this.finish(q.clips[k], q.pending![k], video.subarray(k * per, (k + 1) * per)));
        queued -= q.clips.length;
        refill(); // the next batches decode while the caller uses this one
        yield {
          bucket: q.clips[0].bucket, shape: [samples.length, C, T, H, W], video, captions: samples.map((s) => s.caption ?? null),
          meta: samples.map((s) => s.meta!), indices: q.indices, epoch: q.epoch,
        };
      }
    } finally {
      for (const q of queue) for (const p of q.pending ?? []) if ('job' in p) p.job.cancel();
    }
  }

  /** The batches of an epoch as clip indices: per bucket, shuffled and cut into batches of B; batch order shuffled. */
  private epochBatches(plan: ClipSpec[], epoch: number, B: number, dropLast: boolean, shuffle: boolean): number[][] {
    const rng = new DataRng(this.s.seed, epoch, 0x5eed);
    const byBucket = new Map<string, number[]>();
    plan.forEach((c, i) => {
      if (!byBucket.has(c.bucket)) byBucket.set(c.bucket, []);
      byBucket.get(c.bucket)!.push(i);
    });
    const shuffled = <T>(a: T[]): T[] => {
      if (!shuffle) return a;
      for (let i = a.length - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [a[i], a[j]] = [a[j], a[i]];
      }
      return a;
    };
    const batches: number[][] = [];
    for (const key of [...byBucket.keys()].sort()) {
      const idx = shuffled(byBucket.get(key)!);
      for (let i = 0; i < idx.length; i += B) {
        const b = idx.slice(i, i + B);
        if (b.length === B || !dropLast) batches.push(b);
      }
    }
    return shuffled(batches);
  }

  /** The next batch of an endless run over the epochs (batchSize fixed by the first call). */
  async next(batchSize: number): Promise<VideoBatch> {
    if (!this.iterator || this.iteratorBatch !== batchSize) {
      await this.iterator?.return?.(undefined);
      this.iterator = this.batches({ batchSize, epochs: Infinity });
      this.iteratorBatch = batchSize;
    }
    const r = await this.iterator.next();
    return r.value as VideoBatch;
  }

  /**
   * A synchronous VideoDataset of one bucket (e.g. '17x192x320'), as trainVAE and
   * encodeDataset take: see VideoClipView.
   */
  bucketDataset(key: string, opts: { epoch?: number } = {}): VideoClipView {
    const plan = opts.epoch === undefined ? this.plan : this.planEpoch(opts.epoch);
    const clips = plan.filter((c) => c.bucket === key);
    if (!clips.length) throw new Error(`VideoClipDataset.bucketDataset: no clips in bucket '${key}' (buckets: ${this.buckets.map((b) => b.key).join(', ')})`);
    return new VideoClipView(this, clips);
  }

  /**
   * A synchronous VideoDataset of every file long enough for `frames`, each window
   * decoded at one size (scaled to cover it, center-cropped): a fixed training shape
   * for the VAE whatever the buckets. Images take part only when frames is 1.
   */
  fixedDataset(o: { frames: number; size: number | [number, number]; epoch?: number; clipsPerVideo?: number }): VideoClipView {
    const op = 'VideoClipDataset.fixedDataset';
    const frames = posInt(op, 'frames', o?.frames);
    const [h, w] = typeof o.size === 'number' ? [o.size, o.size] : Array.isArray(o.size) ? o.size : [NaN, NaN];
    posInt(op, 'height', h), posInt(op, 'width', w);
    const clips = this.planEpoch(o.epoch ?? this.epochNumber, { frames, size: [h, w] }, posInt(op, 'clipsPerVideo', o.clipsPerVideo ?? this.s.clipsPerVideo));
    if (!clips.length) throw new Error(`${op}: no file has ${frames} frames at its stride (the longest has ${Math.max(...this.entries.map((e) => e.frames))})`);
    return new VideoClipView(this, clips);
  }

  /** Stops the decoding workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.iterator?.return?.(undefined);
    await this.pool?.close();
    this.pool = null;
  }

  /** @internal the prefetch bound, in clips */
  get prefetchClips(): number {
    return this.s.prefetch;
  }
}

/**
 * Clips of one shape as a synchronous VideoDataset ({ length, shape, get(i) }): get(i)
 * decodes clip i, or takes it from the clips decoded ahead. Ahead means: the indices
 * given to prefetch() (trainVAE passes the samples of its next steps), or, until
 * prefetch() is first called and while gets come in order from 0, the indices after the
 * last get (sequential readers such as encodeDataset). At most the dataset's `prefetch` clips are held.
 */
export class VideoClipView implements VideoDataset {
  readonly shape: [number, number, number, number];
  private readonly ahead = new Map<number, Pending>();
  private hinted = false;
  private last = -1;

  constructor(private readonly ds: VideoClipDataset, readonly clips: readonly ClipSpec[]) {
    const c = clips[0];
    this.shape = [ds.channels, c.frames, c.height, c.width];
  }

  get length(): number {
    return this.clips.length;
  }

  private check(i: number, op: string): ClipSpec {
    if (!Number.isInteger(i) || i < 0 || i >= this.clips.length) throw new RangeError(`${op}: index ${i} is out of range for ${this.clips.length} clips`);
    return this.clips[i];
  }

  private drop(keep: (i: number) => boolean): void {
    for (const [i, p] of this.ahead)
      if (!keep(i)) {
        if ('job' in p) p.job.cancel();
        this.ahead.delete(i);
      }
  }

  /** Decodes these clips ahead, in order (up to the prefetch bound); clips decoded ahead and not listed are dropped. */
  prefetch(indices: number[]): void {
    this.hinted = true;
    if (!this.ds.decodesAhead) return;
    const want = [...new Set(indices.filter((i) => Number.isInteger(i) && i >= 0 && i < this.clips.length))].slice(0, this.ds.prefetchClips);
    const set = new Set(want);
    this.drop((i) => set.has(i));
    for (const i of want) if (!this.ahead.has(i)) this.ahead.set(i, this.ds.startDecode(this.clips[i]));
  }

  get(i: number): VideoSample {
    const c = this.check(i, 'VideoClipView.get');
    let p = this.ahead.get(i);
    if (!p) {
      p = this.ds.startDecode(c);
      this.ahead.set(i, p);
    }
    const sequential = i === this.last + 1;
    this.last = i;
    if (!this.hinted && sequential && this.ds.decodesAhead) {
      // Sequential read-ahead (from get(0), or a get right after the previous index): keep i .. i + prefetch - 1.
      const n = this.ds.prefetchClips;
      this.drop((k) => k >= i && k < i + n);
      for (let k = i + 1; k < Math.min(this.clips.length, i + n); k++) if (!this.ahead.has(k)) this.ahead.set(k, this.ds.startDecode(this.clips[k]));
    }
    this.ahead.delete(i); // its buffer goes back to the pool: a repeated index decodes again
    return this.ds.finishSync(c, p);
  }
}
