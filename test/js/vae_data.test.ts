// Datasets for the VAE: ImageFolder / VideoFolder (resizing, cropping, unreadable
// files), the MovingMNIST adapter, and the latent cache (encodeDataset + loader).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PNG } from 'pngjs';
import * as ts from '../../lib';
import { VideoVAE } from '../../lib';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-vae-data-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const hasFfmpeg = spawnSync('ffmpeg', ['-version']).status === 0;

/** Writes an RGB PNG whose pixel (x, y) has R = f(x, y), G = 0, B = 255. */
function writePng(file: string, w: number, h: number, f: (x: number, y: number) => number): void {
  const png = new PNG({ width: w, height: h });
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 4;
      png.data[o] = f(x, y);
      png.data[o + 1] = 0;
      png.data[o + 2] = 255;
      png.data[o + 3] = 255;
    }
  fs.writeFileSync(file, PNG.sync.write(png));
}

describe('resizeCenterCrop', () => {
  test('area averages blocks, nearest picks centers, and the aspect ratio is kept by a center crop', () => {
    const src = Float32Array.from({ length: 16 }, (_, i) => i); // 4x4: row y = 4y .. 4y+3
    expect(Array.from(ts.resizeCenterCrop(src, 1, 4, 4, 2, 2, 'area'))).toEqual([2.5, 4.5, 10.5, 12.5]);
    expect(Array.from(ts.resizeCenterCrop(src, 1, 4, 4, 2, 2, 'nearest'))).toEqual([5, 7, 13, 15]);
    // 2x6 -> 2x2: scale 1 (height fits), crop the middle two columns
    const wide = Float32Array.from({ length: 12 }, (_, i) => i);
    expect(Array.from(ts.resizeCenterCrop(wide, 1, 2, 6, 2, 2))).toEqual([2, 3, 8, 9]);
    // upscaling 2x2 -> 4x4 by area keeps each source value in its quadrant
    const up = ts.resizeCenterCrop(Float32Array.of(0, 1, 2, 3), 1, 2, 2, 4, 4, 'area');
    expect(Array.from(up)).toEqual([0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3]);
    // two planes are resized independently
    const two = ts.resizeCenterCrop(Float32Array.of(1, 1, 1, 1, 5, 5, 5, 5), 2, 2, 2, 1, 1);
    expect(Array.from(two)).toEqual([1, 5]);
  });
});

describe('ImageFolder', () => {
  const dir = path.join(tmp, 'images');
  beforeAll(() => {
    fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
    writePng(path.join(dir, 'a.png'), 8, 8, (x) => x * 32);
    writePng(path.join(dir, 'b.png'), 16, 8, () => 255);
    fs.writeFileSync(path.join(dir, 'b.txt'), 'a wide red image\n');
    fs.writeFileSync(path.join(dir, 'broken.png'), 'not a png at all');
    fs.writeFileSync(path.join(dir, 'notes.md'), 'ignored');
    writePng(path.join(dir, 'sub', 'c.png'), 4, 4, () => 0);
  });

  test('samples are [C, 1, H, W] in [0, 1], resized and cropped, with captions; unreadable files are skipped and listed', () => {
    const ds = new ts.ImageFolder(dir, { size: 4 });
    expect(ds.length).toBe(2);
    expect(ds.shape).toEqual([3, 1, 4, 4]);
    expect(ds.skipped).toEqual([{ file: path.join(dir, 'broken.png'), reason: expect.stringMatching(/not a readable PNG/) }]);
    const a = ds.get(0);
    expect(a.video.length).toBe(48);
    expect(Array.from(a.video.slice(0, 4)).map((v) => Math.round(v * 255))).toEqual([16, 80, 144, 208]); // area 2x
    expect(Array.from(a.video.slice(32, 36))).toEqual([1, 1, 1, 1]); // blue channel
    expect(a.caption).toBeUndefined();
    expect(a.meta).toMatchObject({ file: path.join(dir, 'a.png'), sourceSize: [8, 8] });
    expect(ds.get(1).caption).toBe('a wide red image');
    const gray = new ts.ImageFolder(dir, { size: [2, 4], color: 'gray', resize: 'nearest', recursive: true });
    expect(gray.length).toBe(3);
    expect(gray.shape).toEqual([1, 1, 2, 4]);
    expect(gray.get(0).video.every((v) => v >= 0 && v <= 1)).toBe(true);
  });

  test('fail mode names the unreadable file; bad folders and options are clear errors', () => {
    expect(() => new ts.ImageFolder(dir, { size: 4, onError: 'fail' })).toThrow(/ImageFolder: cannot read .*broken\.png: not a readable PNG/);
    expect(() => new ts.ImageFolder(path.join(tmp, 'nope'), { size: 4 })).toThrow(/ImageFolder: no such folder/);
    expect(() => new ts.ImageFolder(dir, { size: 0 })).toThrow(/expected size to be a positive integer/);
    expect(() => new ts.ImageFolder(dir, { size: 4, resize: 'cubic' as 'area' })).toThrow(/resize 'area' or 'nearest'/);
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty);
    fs.writeFileSync(path.join(empty, 'x.png'), 'junk');
    expect(() => new ts.ImageFolder(empty, { size: 4 })).toThrow(/no readable \.png files .*1 unreadable: x\.png/);
    const ds = new ts.ImageFolder(dir, { size: 4 });
    fs.writeFileSync(path.join(tmp, 'gone.png'), 'x');
    (ds.files as string[])[0] = path.join(tmp, 'gone.png'); // a file that changed after opening
    expect(() => ds.get(0)).toThrow(/ImageFolder: cannot read .*gone\.png/);
    expect(() => ds.get(5)).toThrow(/index 5 is out of range for 2 files/);
  });
});

describe('VideoFolder', () => {
  const dir = path.join(tmp, 'videos');
  beforeAll(() => {
    fs.mkdirSync(dir);
    ts.tidy(() => {
      // 6 frames, 16x24, frame t has brightness t / 5
      const v = ts.tensor(Float32Array.from({ length: 6 * 16 * 24 }, (_, i) => Math.floor(i / 384) / 5), { shape: [1, 6, 16, 24] });
      ts.saveVideo(v, path.join(dir, 'ramp.gif'));
    });
    fs.writeFileSync(path.join(dir, 'bad.gif'), 'GIF89a garbage');
    fs.writeFileSync(path.join(dir, 'clip.mp4'), 'not really an mp4');
  });

  test('clips of `frames` frames at a stride, the last frame repeated when short; unreadable files skipped', () => {
    const ds = new ts.VideoFolder(dir, { size: 8, frames: 4, frameStride: 2, color: 'gray' });
    expect(ds.shape).toEqual([1, 4, 8, 8]);
    expect(ds.files.map((f) => path.basename(f))).toEqual(['ramp.gif']);
    const skipped = ds.skipped.map((s) => [path.basename(s.file), s.reason]);
    expect(skipped[0]).toEqual(['bad.gif', expect.stringMatching(/not a readable GIF/)]);
    expect(skipped[1][0]).toBe('clip.mp4');
    if (!hasFfmpeg) expect(skipped[1][1]).toMatch(/needs ffmpeg and ffprobe on the PATH/);
    const s = ds.get(0);
    const frameMean = (t: number): number => s.video.slice(t * 64, (t + 1) * 64).reduce((p, q) => p + q, 0) / 64;
    expect([0, 1, 2, 3].map((t) => Math.round(frameMean(t) * 5))).toEqual([0, 2, 4, 5]); // frames 0, 2, 4, then 5 repeated (6 is past the end)
    expect(s.meta).toMatchObject({ sourceFrames: 6, sourceSize: [16, 24] });
    expect(() => new ts.VideoFolder(dir, { size: 8, onError: 'fail' })).toThrow(/VideoFolder: cannot read .*bad\.gif/);
    expect(() => new ts.VideoFolder(dir, { size: 8, frames: 0 })).toThrow(/frames to be a positive integer/);
  });
});

describe('latent cache', () => {
  test('encodeDataset writes shards with captions that loadLatentCache reads back', () => {
    ts.manualSeed(0);
    const vae = new VideoVAE({ ...ts.vaePresets.demo, baseChannels: 4, numGroups: 2 });
    const data = ts.movingMnistDataset(new ts.MovingMNIST({ length: 5, frames: 5, size: 32 }));
    const dir = path.join(tmp, 'latents');
    const seen: number[] = [];
    const index = ts.encodeDataset(vae, data, dir, { batchSize: 2, shardSize: 3, logvar: true, onProgress: (d) => seen.push(d) });
    expect(seen).toEqual([3, 5]);
    expect(index).toMatchObject({ count: 5, latentShape: [4, 2, 8, 8], logvar: true, shards: [{ count: 3 }, { count: 2 }] });
    expect(index.scalingFactor).toBeCloseTo(1 / index.stats.std, 6);
    const header = ts.readSafetensorsHeader(path.join(dir, index.shards[1].file));
    expect(header.tensors.mean.shape).toEqual([2, 4, 2, 8, 8]);
    expect(JSON.parse(header.metadata!.captions)).toEqual([data.get(3).caption, data.get(4).caption]);

    const cache = ts.loadLatentCache(dir);
    expect(cache.length).toBe(5);
    expect(cache.shape).toEqual([4, 2, 8, 8]);
    const s = cache.get(4);
    expect(s.caption).toBe(data.get(4).caption);
    expect(s.meta).toMatchObject({ digits: data.get(4).meta!.digits });
    ts.tidy(() =>
      ts.noGrad(() => {
        const x = ts.tensor(data.get(4).video, { shape: [1, 1, 5, 32, 32] }).mul(2).sub(1);
        const post = vae.encode(x);
        const want = post.mean.toFloat32Array(), lv = post.logvar.toFloat32Array();
        for (let i = 0; i < want.length; i++) expect(Math.abs(s.mean[i] - want[i])).toBeLessThan(1e-5);
        for (let i = 0; i < lv.length; i += 5) expect(Math.abs(s.logvar![i] - lv[i])).toBeLessThan(1e-5);
      }),
    );
    expect(cache.get(0).caption).toBe(data.get(0).caption);
    expect(cache.shardsInMemory).toBe(2); // both shards kept (random access reloads nothing)
    // A budget of one shard's bytes keeps one shard: the least recently used goes, and
    // what is read back is the same either way.
    const shardBytes = 3 * 4 * 2 * 8 * 8 * 4 * 2; // 3 samples, mean + logvar
    const small = ts.loadLatentCache(dir, { maxBytes: shardBytes });
    for (const i of [0, 4, 1, 3, 2]) {
      expect(Array.from(small.get(i).mean)).toEqual(Array.from(cache.get(i).mean));
      expect(small.shardsInMemory).toBe(1);
    }
    expect(() => ts.loadLatentCache(dir, { maxBytes: -1 })).toThrow(/loadLatentCache: expected maxBytes >= 0, got -1/);
    expect(() => cache.get(5)).toThrow(/out of range/);
    expect(() => ts.loadLatentCache(path.join(tmp, 'nothing'))).toThrow(/has no index\.json/);
    expect(() => ts.encodeDataset(vae, data, dir, { count: 9 })).toThrow(/count 9 exceeds the dataset's 5 samples/);
    fs.rmSync(path.join(dir, index.shards[0].file));
    expect(() => ts.loadLatentCache(dir)).toThrow(/shard latents-00000\.safetensors listed in .* is missing/);
    vae.dispose();
  });
});
