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
  /** Bytes of freed CPU blocks (>= 64 KiB) kept for reuse; see cpuCache. */
  cpuCachedBytes: number;
  /**
   * Reads from a device to the host so far: tensor values read from any device but cpu
   * (item, dataSync, toArray, to('cpu'), copies into cpu tensors). A training step on a
   * device does one, at its logging cadence; hostReadBytes counts their bytes.
   */
  hostReads: number;
  hostReadBytes: number;
  /** Live bytes and their peak (since resetPeakMemory) per device: 'cpu', 'cpu:1', 'cuda:0', ... */
  devices: Record<string, { bytes: number; peakBytes: number }>;
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
  /** hostDevices: cpu plus the simulated host devices cpu:1.. (TESSERA_HOST_DEVICES). */
  version: string;
  backend: 'cpu' | 'cuda';
}

export function info(): Info {
  const i = native.info();
  return { version, backend: i.cuda.available ? 'cuda' : 'cpu', ...i };
}

export type MatmulPrecision = 'highest' | 'high' | 'medium';

/**
 * How much float32 matrix math (matmul, attention, conv3d) may give up for speed on
 * CUDA, like torch.set_float32_matmul_precision: 'highest' (float32, default),
 * 'high' (TF32 tensor cores), 'medium' (bfloat16 tensor cores, float32 accumulate).
 * Tensors stay float32; the CPU backend always computes in float32.
 */
export function setFloat32MatmulPrecision(p: MatmulPrecision): void {
  native.setMatmulPrecision(p);
}
export function getFloat32MatmulPrecision(): MatmulPrecision {
  return native.getMatmulPrecision() as MatmulPrecision;
}

/**
 * Runs fn with matmuls, attention and convs in bfloat16 on CUDA tensor cores (float32
 * accumulate, float32 master weights, norms and softmax statistics in float32);
 * 'float32' runs them in full float32. A no-op on the CPU, which computes in float32.
 */
export function autocast<T>(dtype: 'bfloat16' | 'float32', fn: () => T): T {
  if (dtype !== 'bfloat16' && dtype !== 'float32') throw new TypeError(`autocast: expected 'bfloat16' or 'float32', got '${String(dtype)}'`);
  if (typeof fn !== 'function') throw new TypeError(`autocast: expected a function, got ${typeof fn}`);
  const prev = getFloat32MatmulPrecision();
  setFloat32MatmulPrecision(dtype === 'bfloat16' ? 'medium' : 'highest');
  try {
    return fn();
  } finally {
    setFloat32MatmulPrecision(prev);
  }
}

/**
 * The CPU block cache: freed blocks of 64 KiB or more are kept and handed out again for
 * the next allocation of the same size, so a training step's activations do not come
 * back from the system as fresh, page-faulting memory each step. Its limit is
 * TESSERA_CPU_CACHE_MB (0: off) or by default an eighth of RAM, at most 2 GiB; the least
 * recently freed blocks go first. memory().cpuCachedBytes says what it holds.
 */
export const cpuCache = {
  /** Returns every cached block to the system allocator. */
  empty: (): void => native.cpuEmptyCache(),
  /** The limit in bytes (0: the cache is off). */
  limit: (): number => native.cpuCacheLimit(),
  /** Sets the limit in bytes (0 turns the cache off); blocks over it are freed now. */
  setLimit: (bytes: number): void => {
    if (typeof bytes !== 'number' || !Number.isInteger(bytes) || bytes < 0)
      throw new RangeError(`cpuCache.setLimit: expected a whole number of bytes >= 0, got ${String(bytes)}`);
    native.setCpuCacheLimit(bytes);
  },
};

/** CUDA runtime helpers. */
export const cuda = {
  isAvailable: (): boolean => native.info().cuda.available,
  deviceCount: (): number => native.info().cuda.devices.length,
  /** Returns the caching allocator's free blocks to the driver. */
  emptyCache: (): void => native.cudaEmptyCache(),
};
