// Chunked and tiled VideoVAE encode/decode: exact temporal chunks (the causal cache),
// blended spatial tiles, bounded memory, and option errors.
import * as ts from '../../lib';
import { Tensor, VideoVAE } from '../../lib';

const tiny = {
  inChannels: 1, latentChannels: 4, baseChannels: 4, channelMultipliers: [1, 2, 2], numResBlocks: 1, decoderResBlocks: 1,
  temporalCompression: 4, spatialCompression: 4, numGroups: 2,
};

function maxDiff(a: Tensor, b: Tensor): number {
  const x = a.toFloat32Array(), y = b.toFloat32Array();
  expect(a.shape).toEqual(b.shape);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}
function rms(a: Tensor, b: Tensor): number {
  const x = a.toFloat32Array(), y = b.toFloat32Array();
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (x[i] - y[i]) ** 2;
  return Math.sqrt(s / x.length);
}

/** A smooth random video (low frequencies), so tile borders matter little. */
function smoothVideo(shape: number[]): Tensor {
  return ts.tidy(() => {
    const [B, C, T, H, W] = shape;
    const coarse = ts.rand([B, C, T, H / 8, W / 8]).mul(2).sub(1);
    return ts.F.interpolate(coarse, { scaleFactor: [1, 8, 8] });
  });
}

describe('temporal chunks are exact', () => {
  test.each([
    [4, 33, 9],
    [4, 33, 17],
    [4, 21, 5],
    [2, 17, 7],
  ])('ft=%i: %i frames in chunks of %i (with mid attention) match one pass', (ft, T, chunk) => {
    ts.manualSeed(ft * 100 + chunk);
    const vae = new VideoVAE({ ...tiny, temporalCompression: ft, midAttention: true });
    ts.tidy(() =>
      ts.noGrad(() => {
        const x = ts.rand([2, 1, T, 16, 16]).mul(2).sub(1);
        const a = vae.encode(x), b = vae.encode(x, { temporalChunk: chunk });
        expect(maxDiff(a.mean, b.mean)).toBeLessThan(1e-5);
        expect(maxDiff(a.logvar, b.logvar)).toBeLessThan(1e-5);
        const y = vae.decode(a.mean), y2 = vae.decode(a.mean, { temporalChunk: chunk });
        expect(y2.shape).toEqual([2, 1, T, 16, 16]);
        expect(maxDiff(y, y2)).toBeLessThan(1e-5);
      }),
    );
    vae.dispose();
  });

  test('chunking leaves no tensors behind', () => {
    const vae = new VideoVAE(tiny);
    const x = ts.rand([1, 1, 17, 16, 16]);
    const before = ts.memory().tensors;
    ts.noGrad(() => {
      const p = vae.encode(x, { temporalChunk: 5 });
      const y = vae.decode(p.mean, { temporalChunk: 5, tile: 8 });
      p.dispose();
      y.dispose();
    });
    expect(ts.memory().tensors).toBe(before);
    x.dispose();
    vae.dispose();
  });
});

describe('spatial tiles', () => {
  test('one tile covering the frame is the plain pass; overlapping tiles blend closer than butted ones', () => {
    ts.manualSeed(11);
    const vae = new VideoVAE(tiny);
    ts.tidy(() =>
      ts.noGrad(() => {
        const x = smoothVideo([1, 1, 5, 64, 64]);
        const ref = vae.encode(x);
        expect(maxDiff(vae.encode(x, { tile: 64 }).mean, ref.mean)).toBe(0);
        const butted = vae.encode(x, { tile: { size: 32, overlap: 0 } }).mean;
        const blended = vae.encode(x, { tile: { size: 32, overlap: 16 } }).mean;
        expect(blended.shape).toEqual([1, 4, 2, 16, 16]);
        const eb = rms(butted, ref.mean), el = rms(blended, ref.mean);
        expect(el).toBeLessThan(eb);
        const y = vae.decode(ref.mean);
        const yt = vae.decode(ref.mean, { tile: { size: 32, overlap: 16 }, temporalChunk: 5 });
        expect(yt.shape).toEqual(y.shape);
        expect(rms(yt, y)).toBeLessThan(rms(vae.decode(ref.mean, { tile: { size: 32, overlap: 0 } }), y));
        // tiles on a non-square frame, last tile flush with the edge
        const z = vae.encode(smoothVideo([1, 1, 1, 48, 80]), { tile: 32 }).mean;
        expect(z.shape).toEqual([1, 4, 1, 12, 20]);
      }),
    );
    vae.dispose();
  });

  test('bad chunk and tile options', () => {
    const vae = new VideoVAE(tiny);
    ts.tidy(() =>
      ts.noGrad(() => {
        const x = ts.zeros([1, 1, 9, 16, 16]);
        expect(() => vae.encode(x, { temporalChunk: 4 })).toThrow(/temporalChunk to be an integer >= 5/);
        expect(() => vae.encode(x, { tile: 6 })).toThrow(/tile size to be a positive multiple of 4 pixels, got 6/);
        expect(() => vae.encode(x, { tile: { size: 8, overlap: 8 } })).toThrow(/overlap to be a multiple of 4 pixels below the size 8/);
        expect(() => vae.decode(ts.zeros([1, 4, 3, 4, 4]), { temporalChunk: 2.5 })).toThrow(/temporalChunk/);
      }),
    );
    vae.dispose();
  });
});

describe('memory', () => {
  test('65x128x128 frames encoded in chunks of 17 peak below 40% of one pass', () => {
    ts.manualSeed(4);
    const vae = new VideoVAE({ ...ts.vaePresets.demo, baseChannels: 8 });
    const x = ts.rand([1, 1, 65, 128, 128]).mul(2).sub(1);
    const peak = (fn: () => void): number => {
      const base = ts.memory().bytes.cpu;
      ts.resetPeakMemory();
      ts.noGrad(fn);
      return ts.memory().peakBytes - base;
    };
    let whole: Float32Array | null = null, chunked: Float32Array | null = null;
    const one = peak(() => {
      const p = vae.encode(x);
      whole = p.mean.toFloat32Array();
      p.dispose();
    });
    const parts = peak(() => {
      const p = vae.encode(x, { temporalChunk: 17 });
      chunked = p.mean.toFloat32Array();
      p.dispose();
    });
    expect(parts / one).toBeLessThan(0.4);
    let m = 0;
    for (let i = 0; i < whole!.length; i++) m = Math.max(m, Math.abs(whole![i] - chunked![i]));
    expect(m).toBeLessThan(1e-5);
    x.dispose();
    vae.dispose();
  });
});
