// The one loader of the native addon, and one typed interface for every export.
// Everything below the N-API boundary is reached through `native`.
import * as fs from 'fs';
import * as path from 'path';

/** An opaque native tensor handle (an N-API external). */
export interface Handle {
  readonly __tesseraHandle: unique symbol;
}

export interface NativeMemory {
  tensors: number;
  storages: number;
  bytes: { cpu: number; cuda: number };
  peakBytes: number;
  cudaReservedBytes: number;
}

export interface NativeInfo {
  cpu: { features: string[]; threads: number; hardwareThreads: number; gemmKernel: string; openmp: boolean };
  cuda: {
    available: boolean;
    built: boolean;
    devices: { index: number; name: string; totalMemory: number; computeCapability: string }[];
    reason?: string;
  };
}

export type TypedArrayData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array;

export interface NativeAddon {
  // creation and data
  fromData(data: TypedArrayData, shape: number[], dtype: string, device: string, rawDtype?: string): Handle;
  full(shape: number[], value: number, dtype: string, device: string): Handle;
  arange(start: number, end: number, step: number, dtype: string, device: string): Handle;
  rand(shape: number[], dtype: string, device: string): Handle;
  randn(shape: number[], dtype: string, device: string): Handle;
  manualSeed(seed: number): void;
  rngState(): [number, number];
  setRngState(seed: number, offset: number): void;
  meta(h: Handle): [number[], string, string];
  strides(h: Handle): number[];
  isContiguous(h: Handle): boolean;
  read(h: Handle, dtype: string): Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;
  readRaw(h: Handle): Uint8Array;
  dispose(h: Handle): void;
  copyInto(dst: Handle, src: Handle): void;
  // views and movement
  reshape(h: Handle, shape: number[]): Handle;
  view(h: Handle, shape: number[]): Handle;
  permute(h: Handle, dims: number[]): Handle;
  transpose(h: Handle, a: number, b: number): Handle;
  slice(h: Handle, axis: number, start: number, end: number, step: number): Handle;
  expand(h: Handle, shape: number[]): Handle;
  contiguous(h: Handle): Handle;
  clone(h: Handle): Handle;
  alias(h: Handle): Handle;
  toDtype(h: Handle, dtype: string): Handle;
  toDevice(h: Handle, device: string): Handle;
  cat(hs: Handle[], axis: number): Handle;
  // math
  unary(op: string, x: Handle): Handle;
  unaryBackward(op: string, dout: Handle, x: Handle, out?: Handle): Handle;
  binary(op: string, a: Handle, b: Handle): Handle;
  binaryScalar(op: string, a: Handle, s: number, scalarFirst: boolean): Handle;
  reduce(op: string, x: Handle, axes: number[], keepDim: boolean): Handle;
  sumTo(x: Handle, shape: number[]): Handle;
  matmul(a: Handle, b: Handle): Handle;
  // optimizers (in place on param, m, v)
  adamwStep(
    param: Handle, m: Handle, v: Handle, grad: Handle,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number,
  ): void;
  // runtime
  memory(): NativeMemory;
  resetPeakMemory(): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  setReferenceKernels(on: boolean): void;
  info(): NativeInfo;
}

const ROOT = path.resolve(__dirname, '..');
const CANDIDATES = [
  path.join(ROOT, 'build', 'Release', 'tessera.node'),
  path.join(ROOT, 'build', 'Debug', 'tessera.node'),
  path.join(ROOT, 'build-gyp', 'build', 'Release', 'tessera.node'),
];

function load(): NativeAddon {
  const override = process.env.TESSERA_ADDON;
  const tried = override ? [path.resolve(override)] : CANDIDATES;
  for (const file of tried) {
    if (!fs.existsSync(file)) continue;
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return require(file) as NativeAddon;
  }
  throw new Error(
    `tessera: the native addon was not found (looked for ${tried.join(', ')}). ` +
      `Build it with 'npm install' (or 'npm run build:native') in ${ROOT}; this needs g++ and cmake.`,
  );
}

export const native: NativeAddon = load();
