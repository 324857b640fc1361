// Moving MNIST from the real digits, and video files written and read back.
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../../lib';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-video-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('MovingMNIST', () => {
  test('samples are deterministic, captioned, and move as captioned', () => {
    const ds = new ts.MovingMNIST({ length: 50, seed: 3 });
    const a = ds.get(7), b = new ts.MovingMNIST({ length: 50, seed: 3 }).get(7);
    expect(Buffer.from(a.video.buffer).equals(Buffer.from(b.video.buffer))).toBe(true);
    expect(a.video.length).toBe(17 * 64 * 64);
    expect(a.caption).toBe(`the digit ${a.meta.digits[0]} moves ${a.meta.directions[0]}`);
    expect(Buffer.from(ds.get(8).video.buffer).equals(Buffer.from(a.video.buffer))).toBe(false);
    // the center of mass moves in the captioned direction
    for (let i = 0; i < 20; i++) {
      const s = ds.get(i);
      const com = (t: number): [number, number] => {
        let m = 0, x = 0, y = 0;
        for (let yy = 0; yy < 64; yy++)
          for (let xx = 0; xx < 64; xx++) {
            const v = s.video[t * 4096 + yy * 64 + xx];
            m += v; x += v * xx; y += v * yy;
          }
        return [x / m, y / m];
      };
      const [x0, y0] = com(0), [x1, y1] = com(16);
      const angle = Math.atan2(-(y1 - y0), x1 - x0);
      const k = ((Math.round(angle / (Math.PI / 4)) % 8) + 8) % 8;
      expect(ts.DIRECTIONS[k]).toBe(s.meta.directions[0]);
    }
  });

  test('train and test use disjoint digit images; two digits and other sizes work', () => {
    const train = ts.mnistDigits('train'), test = ts.mnistDigits('test');
    expect(train.counts.reduce((p, q) => p + q, 0) + test.counts.reduce((p, q) => p + q, 0)).toBe(10000);
    const key = (v: Float32Array): string => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
    const trainKeys = new Set<string>();
    for (let c = 0; c < 10; c++) for (let i = 0; i < train.counts[c]; i++) trainKeys.add(key(ts.digitImage(train, c, i)));
    let shared = 0;
    for (let c = 0; c < 10; c++) for (let i = 0; i < test.counts[c]; i++) if (trainKeys.has(key(ts.digitImage(test, c, i)))) shared++;
    expect(shared).toBeLessThan(5); // MNIST has a handful of exact duplicates, nothing more
    const two = new ts.MovingMNIST({ numDigits: 2, size: [48, 80], frames: 9, split: 'test', length: 4 }).get(3);
    expect(two.video.length).toBe(9 * 48 * 80);
    expect(two.caption).toMatch(/^the digit \d moves [a-z ]+ and the digit \d moves [a-z ]+$/);
    expect(() => new ts.MovingMNIST({ numDigits: 3 as any })).toThrow(/MovingMNIST: expected numDigits 1 or 2, got 3/);
    expect(() => new ts.MovingMNIST({ size: 20 })).toThrow(/MovingMNIST: expected height to be an integer in \[28, 4096\], got 20/);
    expect(() => new ts.MovingMNIST({ length: 3 }).get(3)).toThrow(/MovingMNIST.get: expected index to be an integer in \[0, 2\], got 3/);
  });
});

describe('video files', () => {
  const clip = (): ts.Tensor => {
    const s = new ts.MovingMNIST({ length: 2, frames: 5, size: 32 }).get(1);
    return ts.tensor(s.video, { shape: [1, 5, 32, 32] });
  };

  test('a grayscale GIF round-trips exactly (8-bit)', () => {
    const v = clip();
    const file = path.join(tmp, 'clip.gif');
    ts.saveVideo(v, file);
    const back = ts.loadVideo(file, { color: 'gray' });
    expect(back.shape).toEqual([1, 5, 32, 32]);
    const a = v.toFloat32Array(), b = back.toFloat32Array();
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(0.5 / 255 + 1e-6);
  });

  test('an independent decoder (Python PIL) reads our GIF frames', () => {
    const probe = spawnSync('/usr/bin/python3', ['-c', 'import PIL'], { encoding: 'utf8' });
    if (probe.status !== 0) {
      console.warn('skipped: /usr/bin/python3 has no PIL (CI installs python3-torch, which brings it)');
      return;
    }
    const v = ts.tidy(() => ts.stack([clip(), clip().mul(0.5)]));  // a batch -> grid
    const file = path.join(tmp, 'grid.gif');
    ts.saveVideo(v, file, { padding: 2 });
    const script = `
import sys
from PIL import Image, ImageSequence
im = Image.open(sys.argv[1])
frames = [f.convert('L') for f in ImageSequence.Iterator(im)]
print(len(frames), frames[0].size[0], frames[0].size[1], sum(frames[2].getdata()))`;
    const out = execFileSync('/usr/bin/python3', ['-c', script, file], { encoding: 'utf8' }).trim().split(' ').map(Number);
    const ours = ts.loadVideo(file, { color: 'gray' });
    expect(ours.shape).toEqual([1, 5, 32, 32 * 2 + 2]);
    expect(out.slice(0, 3)).toEqual([5, 66, 32]);
    const frame2 = ours.slice(1, 2, 3).sum().item() * 255;
    expect(Math.abs(out[3] - frame2)).toBeLessThan(1);
  });

  test('RGB GIF and PNG contact sheet', () => {
    ts.manualSeed(1);
    const rgb = ts.rand([3, 4, 16, 16]);
    ts.saveVideo(rgb, path.join(tmp, 'rgb.gif'));
    const back = ts.loadVideo(path.join(tmp, 'rgb.gif'));
    expect(back.shape).toEqual([3, 4, 16, 16]);
    const err = back.sub(rgb).abs().mean().item();
    expect(err).toBeLessThan(0.05); // 256-color quantization
    ts.saveVideo(rgb, path.join(tmp, 'sheet.png'));
    const sheet = ts.loadVideo(path.join(tmp, 'sheet.png'));
    expect(sheet.shape).toEqual([3, 1, 16, 64]);
    expect(sheet.slice(3, 16, 32).sub(rgb.slice(1, 1, 2)).abs().max().item()).toBeLessThanOrEqual(0.5 / 255 + 1e-6);
  });

  test('bad input gives clear errors', () => {
    expect(() => ts.saveVideo(ts.zeros([2, 2]), path.join(tmp, 'x.gif'))).toThrow(/saveVideo: expected video \[C, T, H, W\] or \[B, C, T, H, W\], got \[2, 2\]/);
    expect(() => ts.saveVideo(ts.zeros([4, 2, 8, 8]), path.join(tmp, 'x.gif'))).toThrow(/saveVideo: expected 1 or 3 channels, got 4/);
    expect(() => ts.saveVideo(ts.zeros([1, 2, 8, 8]), path.join(tmp, 'x.avi'))).toThrow(/saveVideo: unsupported file type '.avi'/);
    expect(() => ts.saveVideo(ts.full([1, 1, 2, 2], NaN), path.join(tmp, 'x.gif'))).toThrow(/saveVideo: the video holds NaN or Inf/);
    expect(() => ts.loadVideo(path.join(tmp, 'missing.gif'))).toThrow(/loadVideo: no such file/);
    fs.writeFileSync(path.join(tmp, 'bad.gif'), 'not a gif');
    expect(() => ts.loadVideo(path.join(tmp, 'bad.gif'))).toThrow(/loadVideo: .*bad.gif is not a readable GIF/);
    if (spawnSync('ffmpeg', ['-version']).status !== 0)
      expect(() => ts.saveVideo(ts.zeros([1, 2, 8, 8]), path.join(tmp, 'x.mp4'))).toThrow(/saveVideo: writing .mp4 needs ffmpeg on the PATH/);
  });
});
