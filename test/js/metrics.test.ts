// PSNR and SSIM against an independent PyTorch implementation.
import * as ts from '../../lib';
import { loadFixture } from './helpers';

test('psnr and ssim match the PyTorch reference', () => {
  const { tensors: T } = loadFixture('metrics');
  expect(ts.ssim(T.a, T.b)).toBeCloseTo(T.ssim.item(), 5);
  expect(ts.psnr(T.a, T.b)).toBeCloseTo(T.psnr.item(), 3);
  expect(ts.ssim(T.a, T.a)).toBeCloseTo(1, 10);
  expect(ts.psnr(T.a, T.a)).toBe(100);
  expect(ts.psnr(ts.zeros([1, 2, 4, 4]), ts.ones([1, 2, 4, 4]))).toBeCloseTo(0, 10);
  expect(() => ts.psnr(T.a, ts.zeros([1, 1, 2, 32, 31]))).toThrow(/mse: expected videos of one shape, got \[1, 1, 2, 32, 32\] and \[1, 1, 2, 32, 31\]/);
  expect(() => ts.ssim(ts.zeros([4]), ts.zeros([4]))).toThrow(/ssim: expected a video \[C, T, H, W\] or \[B, C, T, H, W\], got \[4\]/);
});
