// Runtime: memory accounting, threads, build and device info.
import * as fs from 'fs';
import * as path from 'path';
import { native, NativeInfo } from './native';

export interface MemoryInfo {
  /** Live tensor handles held by JS (views included). */
  tensors: number;
  /** Live native allocations. */
  storages: number;
  /** Bytes held by live tensors, per device. */
  bytes: { cpu: number; cuda: number };
  /** Highest total of live bytes since start or resetPeakMemory(). */
  peakBytes: number;
  /** Bytes the CUDA caching allocator holds from the driver. */
  cudaReservedBytes: number;
}

export function memory(): MemoryInfo {
  return native.memory();
}
export function resetPeakMemory(): void {
  native.resetPeakMemory();
}

export function setNumThreads(n: number): void {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1)
    throw new RangeError(`setNumThreads: expected a positive integer, got ${String(n)}`);
  native.setNumThreads(n);
}
export function getNumThreads(): number {
  return native.getNumThreads();
}

/** Makes every CPU op use its plain reference loop (for checking optimized kernels). */
export function setReferenceKernels(on: boolean): void {
  if (typeof on !== 'boolean') throw new TypeError(`setReferenceKernels: expected a boolean, got ${typeof on}`);
  native.setReferenceKernels(on);
}

export const version: string = (() => {
  try {
    return JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')).version as string;
  } catch {
    return 'unknown';
  }
})();

export interface Info extends NativeInfo {
  version: string;
  backend: 'cpu' | 'cuda';
}

export function info(): Info {
  const i = native.info();
  return { version, backend: i.cuda.available ? 'cuda' : 'cpu', ...i };
}
