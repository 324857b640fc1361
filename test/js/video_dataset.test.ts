// The streaming video dataset on files made by ffmpeg: each edge file loads as the
// expected clips or is reported; windows equal the same frames of a full decode after
// the same resize; the probe index is reused and refreshed; windows are reproducible;
// batches, the synchronous views and per-bucket latents.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../../lib';
import { Fixture, fullDecode, hasFfmpeg, makeEdgeFolder } from './video_fixtures';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-vds-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const dir = path.join(tmp, 'edge');
const sizes: [number, number][] = [[64, 64], [48, 80], [80, 48]];
const buckets = { sizes, frames: [1, 9, 17] };
let fixtures: Fixture[] = [];
let ds: ts.VideoClipDataset;
const warnings: string[] = [];

const d = hasFfmpeg ? describe : describe.skip;
if (!hasFfmpeg) test.skip('the video dataset tests need ffmpeg and ffprobe on the PATH (CI installs them)', () => {});

d('openVideoDataset on edge files', () => {
  beforeAll(async () => {
    fixtures = makeEdgeFolder(dir);
    ds = await ts.openVideoDataset(dir, { buckets, frameStride: 2, workers: 2, seed: 3, onWarning: (m) => warnings.push(m) });
  }, 60000);
  afterAll(() => ds?.close());

  test('every file loads as the expected clips or is reported by name and reason', () => {
    const byName = new Map(ds.entries.map((e) => [path.basename(e.file), e]));
    const skipped = new Map(ds.skipped.map((s) => [path.basename(s.file), s.reason]));
    for (const f of fixtures) {
      if (f.skip) {
        expect(byName.has(f.name)).toBe(false);
        expect(skipped.get(f.name)).toMatch(f.skip);
      } else {
        expect(skipped.get(f.name)).toBeUndefined();
        expect(byName.has(f.name)).toBe(true);
      }
    }
    // One warning names the count and every skipped file.
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(new RegExp(`skipped 3 of ${fixtures.length} files: .*cut-faststart.mp4 \\(truncated.*cut.mp4 .*empty.mp4 \\(empty file`));
    const e = (n: string): ts.VideoEntry => byName.get(n)!;
    // Buckets: aspect (rotation and odd sizes included) and duration at stride 2.
    expect([e('h264.mp4').clipFrames, e('h264.mp4').clipHeight, e('h264.mp4').clipWidth]).toEqual([17, 48, 80]); // 75 frames >= 33
    expect([e('audio.mp4').clipFrames, e('audio.mp4').audio]).toEqual([17, true]); // 50 frames
    expect([e('rotated.mp4').rotation, e('rotated.mp4').width, e('rotated.mp4').height, e('rotated.mp4').clipHeight, e('rotated.mp4').clipWidth]).toEqual([90, 240, 320, 80, 48]);
    expect([e('odd.mp4').width, e('odd.mp4').height, e('odd.mp4').clipHeight]).toEqual([317, 239, 48]);
    if (byName.has('odd.webm')) expect([e('odd.webm').codec, e('odd.webm').width, e('odd.webm').height]).toEqual(['vp9', 317, 239]);
    if (byName.has('portrait.webm')) expect([e('portrait.webm').clipHeight, e('portrait.webm').clipWidth]).toEqual([80, 48]);
    expect([e('vfr.mp4').vfr, e('vfr.mp4').rate, e('h264.mp4').vfr]).toEqual([true, 25, false]);
    expect([e('one-frame.mp4').frames, e('one-frame.mp4').clipFrames]).toEqual([1, 1]);
    expect([e('still.png').kind, e('still.png').clipFrames, e('still.png').clipHeight, e('still.png').clipWidth]).toEqual(['image', 1, 64, 64]);
    // Captions: the sidecar .txt, captions.jsonl, or none.
    expect(e('h264.mp4').caption).toBe('a colorful test pattern with a moving ball');
    expect(e('mandel.mp4').caption).toBe('a zoom into the mandelbrot set');
    expect(e('rotated.mp4').caption).toBe('a rotated test pattern');
    expect(e('vfr.mp4').caption).toBeNull();
    expect(ds.summary()).toMatch(/3 skipped \(.*\)/);
  });

  test('strict: the open fails naming every unusable file', async () => {
    await expect(ts.openVideoDataset(dir, { buckets, strict: true, workers: 0 })).rejects.toThrow(
      /^openVideoDataset: 3 of \d+ files cannot be used \(strict\): cut-faststart\.mp4 \(truncated[^;]*; cut\.mp4 \(ffprobe cannot read it[^;]*; empty\.mp4 \(empty file \(0 bytes\)\)$/,
    );
  });

  test('a window equals the same frames of a full decode after the same resize (within 1/255)', async () => {
    const names = ['h264.mp4', 'odd.mp4', 'rotated.mp4', 'audio.mp4', 'mandel.mp4', 'odd.webm', 'portrait.webm'].filter((n) => ds.entries.some((e) => path.basename(e.file) === n));
    let checked = 0;
    for (let epoch = 0; epoch < 2; epoch++) {
      ds.setEpoch(epoch);
      for (let i = 0; i < ds.length; i++) {
        const c = ds.clip(i);
        if (!names.includes(path.basename(c.file))) continue;
        const s = await ds.get(i);
        const full = fullDecode(c.file, ts.coverCropFilter(c.height, c.width));
        const plane = c.height * c.width, T = c.frames;
        expect(s.video.length).toBe(3 * T * plane);
        expect(s.meta!.decodedFrames).toBe(T);
        let worst = 0;
        for (let t = 0; t < T; t++) {
          const f = (c.startFrame + t * c.stride) * plane * 3;
          for (let p = 0; p < plane; p++)
            for (let ch = 0; ch < 3; ch++) worst = Math.max(worst, Math.abs(s.video[(ch * T + t) * plane + p] - full[f + 3 * p + ch] / 255));
        }
        expect([path.basename(c.file), c.startFrame, worst <= 1 / 255 + 1e-6 ? 'within 1/255' : worst]).toEqual([path.basename(c.file), c.startFrame, 'within 1/255']);
        checked++;
      }
    }
    ds.setEpoch(0);
    expect(checked).toBeGreaterThanOrEqual(2 * 5);
  }, 60000);

  test('windows that start at keyframes (maxPreroll) seek there and still equal the full decode', async () => {
    const files = ['gop12.mp4', 'gop12.webm'].map((f) => path.join(dir, f)).filter((f) => fs.existsSync(f));
    const kds = await ts.openVideoDataset(files, { buckets, maxPreroll: 0, clipsPerVideo: 6, workers: 2, seed: 9, index: false });
    try {
      expect(kds.entries[0].keyframes.slice(0, 4)).toEqual([0, 12, 24, 36]);
      let fromKey = 0;
      for (let i = 0; i < kds.length; i++) {
        const c = kds.clip(i);
        expect(c.startFrame % 12).toBe(0); // a keyframe
        if (c.startFrame > 0) (expect(c.fromKeyframe).toBe(true), fromKey++);
        const s = await kds.get(i);
        const full = fullDecode(c.file, ts.coverCropFilter(c.height, c.width));
        const plane = c.height * c.width, T = c.frames;
        let worst = 0;
        for (let t = 0; t < T; t++) {
          const f = (c.startFrame + t * c.stride) * plane * 3;
          for (let p = 0; p < plane; p++)
            for (let ch = 0; ch < 3; ch++) worst = Math.max(worst, Math.abs(s.video[(ch * T + t) * plane + p] - full[f + 3 * p + ch] / 255));
        }
        expect([path.basename(c.file), c.startFrame, worst <= 1 / 255 + 1e-6 ? 'within 1/255' : worst]).toEqual([path.basename(c.file), c.startFrame, 'within 1/255']);
      }
      expect(fromKey).toBeGreaterThan(2);
    } finally {
      await kds.close();
    }
  }, 60000);

  test('VFR, single-frame and image clips decode whole (nothing padded)', async () => {
    for (let i = 0; i < ds.length; i++) {
      const c = ds.clip(i);
      if (!/vfr|one-frame|still/.test(c.file)) continue;
      const s = await ds.get(i);
      expect([path.basename(c.file), s.meta!.decodedFrames]).toEqual([path.basename(c.file), c.frames]);
      // Frames of a clip differ (a moving source), except a 1-frame clip's single frame.
      if (c.frames > 1) {
        const plane = c.height * c.width;
        let diff = 0;
        for (let p = 0; p < plane; p++) diff += Math.abs(s.video[p] - s.video[(c.frames - 1) * plane + p]);
        expect(diff / plane).toBeGreaterThan(1e-3);
      }
    }
  });

  test('windows are a pure function of (seed, epoch); batches cover an epoch once, one bucket each', async () => {
    const again = await ts.openVideoDataset(dir, { buckets, frameStride: 2, workers: 0, seed: 3, onWarning: () => {} });
    const other = await ts.openVideoDataset(dir, { buckets, frameStride: 2, workers: 0, seed: 4, onWarning: () => {} });
    try {
      const starts = (x: ts.VideoClipDataset): number[] => Array.from({ length: x.length }, (_, i) => x.clip(i).startFrame);
      expect(starts(again)).toEqual(starts(ds));
      expect(starts(other)).not.toEqual(starts(ds));
      expect(starts(again.setEpoch(1))).not.toEqual(starts(ds));
      // Synchronous decoding (no workers) gives the same values as the workers.
      const a = await again.setEpoch(0).get(0), b = await ds.get(0);
      expect(Buffer.from(a.video.buffer).equals(Buffer.from(b.video.buffer))).toBe(true);
    } finally {
      await again.close();
      await other.close();
    }
    const seen: number[] = [];
    for await (const b of ds.batches({ batchSize: 2 })) {
      const [B, C, T, H, W] = b.shape;
      expect(b.video.length).toBe(B * C * T * H * W);
      expect(b.bucket).toBe(`${T}x${H}x${W}`);
      b.indices.forEach((i, k) => {
        expect(ds.clip(i).bucket).toBe(b.bucket);
        expect(b.captions[k]).toBe(ds.clip(i).caption);
      });
      seen.push(...b.indices);
    }
    expect(seen.sort((x, y) => x - y)).toEqual(Array.from({ length: ds.length }, (_, i) => i));
    const first = await ds.next(2), second = await ds.next(2);
    expect(first.epoch).toBe(0);
    expect(second.indices).not.toEqual(first.indices);
  }, 60000);

  test('VideoDataset views: one shape, synchronous get, prefetch hints, read-ahead', async () => {
    const key = ds.buckets.find((b) => b.shape[1] === 17)!.key;
    const view = ds.bucketDataset(key);
    expect(view.shape).toEqual([3, 17, ...key.split('x').slice(1).map(Number)]);
    const ref = await ds.get(ds.length > 0 ? (Array.from({ length: ds.length }, (_, i) => i).find((i) => ds.clip(i) === view.clips[1]) as number) : 0);
    view.prefetch([1, 0]);
    const got = view.get(1);
    expect(Buffer.from(got.video.buffer).equals(Buffer.from(ref.video.buffer))).toBe(true);
    const fixed = ds.fixedDataset({ frames: 9, size: 32 });
    expect(fixed.shape).toEqual([3, 9, 32, 32]);
    const files = new Set(fixed.clips.map((c) => path.basename(c.file)));
    expect(files.has('still.png')).toBe(false); // images only in 1-frame shapes
    expect(files.has('one-frame.mp4')).toBe(false);
    for (let i = 0; i < fixed.length; i++) expect(fixed.get(i).video.length).toBe(3 * 9 * 32 * 32); // sequential read-ahead
    expect(() => ds.bucketDataset('5x1x1')).toThrow(/no clips in bucket '5x1x1' \(buckets: .*17x48x80/);
    const gray = await ts.openVideoDataset(dir, { buckets, workers: 0, color: 'gray', onWarning: () => {} });
    try {
      const g = await gray.get(0), c = gray.clip(0);
      expect(g.video.length).toBe(c.frames * c.height * c.width);
    } finally {
      await gray.close();
    }
  }, 60000);

  test('trainVAE reads a view through its prefetch hints', async () => {
    const view = ds.fixedDataset({ frames: 9, size: 32 });
    const asked: number[][] = [];
    const hint = view.prefetch.bind(view);
    view.prefetch = (ix: number[]) => (asked.push(ix), hint(ix));
    ts.manualSeed(0);
    const vae = new ts.VideoVAE({
      inChannels: 3, latentChannels: 4, baseChannels: 8, channelMultipliers: [1, 1, 2], numResBlocks: 1, decoderResBlocks: 1, temporalCompression: 4,
      spatialCompression: 4, numGroups: 4,
    });
    try {
      const r = await ts.trainVAE({ model: vae, data: view, steps: 3, batchSize: 2, lr: 1e-3, seed: 5 });
      expect(r.step).toBe(3);
      expect(Number.isFinite(r.last!.loss)).toBe(true);
    } finally {
      vae.dispose();
    }
    // Each step names its own samples and the next two steps' (2 + 2 + 2, then 4, then 2).
    expect(asked.map((a) => a.length)).toEqual([6, 4, 2]);
    expect(asked[1]).toEqual(asked[0].slice(2));
  }, 60000);

  test('encodeBuckets: one latent cache per bucket and one pooled scale', () => {
    ts.manualSeed(1);
    const vae = new ts.VideoVAE({
      inChannels: 3, latentChannels: 4, baseChannels: 8, channelMultipliers: [1, 1, 2], numResBlocks: 1, decoderResBlocks: 1, temporalCompression: 4,
      spatialCompression: 4, numGroups: 4,
    });
    const out = path.join(tmp, 'latents');
    try {
      const idx = ts.encodeBuckets(vae, ds, out, { batchSize: 2 });
      expect(idx.buckets.map((b) => b.key).sort()).toEqual(ds.buckets.map((b) => b.key).sort());
      let n = 0, s1 = 0, s2 = 0;
      for (const b of idx.buckets) {
        const [T, H, W] = b.key.split('x').map(Number);
        expect(b.latentShape).toEqual([4, (T - 1) / 4 + 1, H / 4, W / 4]);
        expect(b.count).toBe(ds.buckets.find((x) => x.key === b.key)!.clips);
        const cache = ts.loadLatentCache(path.join(out, b.dir));
        for (let i = 0; i < cache.length; i++) for (const v of cache.get(i).mean) (n++, (s1 += v), (s2 += v * v));
      }
      const std = Math.sqrt(s2 / n - (s1 / n) ** 2);
      expect(idx.scalingFactor).toBeCloseTo(1 / std, 4);
      const data = ts.latentBucketsDataset(out);
      expect(data.length).toBe(ds.length);
      const grids = new Set(Array.from({ length: data.length }, (_, i) => ts.tidy(() => data.get(i).latent.shape.join('x'))));
      expect(grids.size).toBe(idx.buckets.length);
      // A second run keeps the complete caches; another VAE (id) or other windows encode again.
      const mtime = (): number => fs.statSync(path.join(out, idx.buckets[0].dir, 'index.json')).mtimeMs;
      const m0 = mtime();
      ts.encodeBuckets(vae, ds, out, { batchSize: 2 });
      expect(mtime()).toBe(m0);
      ts.encodeBuckets(vae, ds, out, { batchSize: 2, id: 'another vae', buckets: [idx.buckets[0].key] });
      const m1 = mtime();
      expect(m1).toBeGreaterThan(m0);
      ts.encodeBuckets(vae, ds.setEpoch(1), out, { batchSize: 2, id: 'another vae', buckets: [idx.buckets[0].key] });
      expect(mtime()).toBeGreaterThan(m1);
      ds.setEpoch(0);
    } finally {
      vae.dispose();
    }
  }, 60000);

  test('the probe index is reused while a file is unchanged and refreshed when it changes', async () => {
    const file = path.join(dir, '.tessera-index.json');
    const idx = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(Object.keys(idx.files).sort()).toEqual(fixtures.map((f) => f.name).sort());
    expect(idx.files['empty.mp4'].error).toBe('empty file (0 bytes)');
    // Mark h264.mp4's entry: a reopen takes it as is (size and mtime unchanged) ...
    idx.files['h264.mp4'].probe.frames = 41;
    fs.writeFileSync(file, JSON.stringify(idx));
    const a = await ts.openVideoDataset(dir, { buckets, workers: 0, onWarning: () => {} });
    expect(a.entries.find((e) => e.rel === 'h264.mp4')!.frames).toBe(41);
    await a.close();
    // ... and probes it again once its mtime changes.
    const t = new Date(Date.now() + 5000);
    fs.utimesSync(path.join(dir, 'h264.mp4'), t, t);
    const b = await ts.openVideoDataset(dir, { buckets, workers: 0, onWarning: () => {} });
    expect(b.entries.find((e) => e.rel === 'h264.mp4')!.frames).toBe(75);
    await b.close();
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).files['h264.mp4'].probe.frames).toBe(75);
  }, 60000);
});

d('openVideoDataset: lists, captions and errors', () => {
  test('a list of files with captions; bad options and a missing ffmpeg fail with one clear line', async () => {
    const files = ['h264.mp4', 'mandel.mp4'].map((f) => path.join(dir, f));
    const ds2 = await ts.openVideoDataset([{ file: files[0], caption: 'given' }, files[1]], { buckets, workers: 0, index: false });
    try {
      expect(ds2.entries.map((e) => e.caption)).toEqual(['given', 'a zoom into the mandelbrot set']);
      expect(ds2.root).toBe(dir);
    } finally {
      await ds2.close();
    }
    await expect(ts.openVideoDataset(dir, { buckets: { frames: [8] } })).rejects.toThrow(/expected buckets.frames to be frame counts 1 \+ k\*4 \(1, 5, 9, \.\.\.\), got \[8\]/);
    await expect(ts.openVideoDataset(dir, { fps: 8, frameStride: 2 })).rejects.toThrow(/give fps or frameStride, not both/);
    await expect(ts.openVideoDataset(path.join(tmp, 'nope'))).rejects.toThrow(/no such folder/);
    const bad = path.join(tmp, 'badcap');
    fs.mkdirSync(bad);
    fs.copyFileSync(files[0], path.join(bad, 'a.mp4'));
    fs.writeFileSync(path.join(bad, 'captions.jsonl'), '{"file": "a.mp4", "caption": "ok"}\nnot json\n');
    await expect(ts.openVideoDataset(bad, { workers: 0 })).rejects.toThrow(/captions\.jsonl:2 is not JSON/);
    const old = process.env.TESSERA_FFMPEG;
    process.env.TESSERA_FFMPEG = path.join(tmp, 'no-ffmpeg-here');
    try {
      expect(ts.findFfmpeg().ffmpeg).toBeNull();
      await expect(ts.openVideoDataset(dir)).rejects.toThrow(
        /^openVideoDataset reads videos with ffmpeg and ffprobe, a system dependency: .*no-ffmpeg-here not found \(Debian\/Ubuntu: apt-get install ffmpeg\)$/,
      );
    } finally {
      if (old === undefined) delete process.env.TESSERA_FFMPEG;
      else process.env.TESSERA_FFMPEG = old;
    }
    expect(ts.findFfmpeg().ffmpeg).toBe('ffmpeg');
  }, 60000);
});
