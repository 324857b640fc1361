// The one loader of the native addon, and one typed interface for every export.
// Everything below the N-API boundary is reached through `native`.
import * as fs from 'fs';
import * as path from 'path';

/** An opaque native tensor handle: a number naming a slot of the addon's tensor table. */
export type Handle = number & { readonly __tesseraHandle: true };

export interface NativeMemory {
  tensors: number;
  storages: number;
  bytes: { cpu: number; cuda: number };
  peakBytes: number;
  cudaReservedBytes: number;
  cpuCachedBytes: number;
  hostReads: number;
  hostReadBytes: number;
  devices: Record<string, { bytes: number; peakBytes: number }>;
}

export interface NativeInfo {
  cpu: { features: string[]; threads: number; hardwareThreads: number; gemmKernel: string; openmp: boolean };
  cuda: {
    available: boolean;
    built: boolean;
    devices: { index: number; name: string; totalMemory: number; computeCapability: string }[];
    reason?: string;
  };
  hostDevices: number;
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
  /** x [..., K] @ weight [N, K]^T + bias [N] (nn.Linear), one GEMM. */
  linear(x: Handle, weight: Handle, bias: Handle | null): Handle;
  linearBackward(dout: Handle, x: Handle, weight: Handle, needDx: boolean, needDw: boolean, needDb: boolean): [Handle | null, Handle | null, Handle | null];
  // nn family (native/napi/nn_napi.cc); multi-output ops return arrays of handles,
  // null where a gradient was not computed
  softmax(x: Handle, axis: number, log: boolean): Handle;
  softmaxBackward(dout: Handle, out: Handle, axis: number, log: boolean): Handle;
  layerNorm(x: Handle, normalizedShape: number[], weight: Handle | null, bias: Handle | null, eps: number): [Handle, Handle, Handle];
  layerNormBackward(
    dout: Handle, x: Handle, weight: Handle | null, mean: Handle, rstd: Handle, normalizedShape: number[], hasBias: boolean,
  ): [Handle, Handle | null, Handle | null];
  groupNorm(x: Handle, numGroups: number, weight: Handle | null, bias: Handle | null, eps: number): [Handle, Handle, Handle];
  groupNormBackward(
    dout: Handle, x: Handle, weight: Handle | null, mean: Handle, rstd: Handle, numGroups: number, hasBias: boolean,
  ): [Handle, Handle | null, Handle | null];
  rmsNorm(x: Handle, weight: Handle | null, eps: number): [Handle, Handle];
  rmsNormBackward(dout: Handle, x: Handle, weight: Handle | null, rstd: Handle): [Handle, Handle | null];
  modulate(x: Handle, shift: Handle, scale: Handle): Handle;
  modulateBackward(dout: Handle, x: Handle, scale: Handle): [Handle, Handle, Handle];
  embedding(ids: Handle, weight: Handle): Handle;
  embeddingBackward(dout: Handle, ids: Handle, numEmbeddings: number): Handle;
  /** Returns the output and the Philox (seed, offset) its mask came from. */
  dropout(x: Handle, p: number, training: boolean): [Handle, number, number];
  dropoutBackward(dout: Handle, p: number, seed: number, offset: number): Handle;
  loss(kind: 'mse' | 'l1', a: Handle, b: Handle, reduction: 'mean' | 'sum' | 'none'): Handle;
  lossBackward(kind: 'mse' | 'l1', dout: Handle, a: Handle, b: Handle, reduction: 'mean' | 'sum' | 'none'): [Handle, Handle];
  gaussianKL(mean: Handle, logvar: Handle): Handle;
  gaussianKLBackward(dout: Handle, mean: Handle, logvar: Handle): [Handle, Handle];
  interpolateNearest(x: Handle, scale: number[]): Handle;
  interpolateNearestBackward(dout: Handle, scale: number[]): Handle;
  patchify(x: Handle, patch: number[]): Handle;
  unpatchify(tokens: Handle, channels: number, grid: number[], patch: number[]): Handle;
  // attention (flash-style): q [B, Nq, H, D], k/v [B, Nk, H, D]; scale null = 1/sqrt(D);
  // cuSeqlens int32 prefix sums (packed sequences, B = 1) or null. Returns [out, lse].
  scaledDotProductAttention(
    q: Handle, k: Handle, v: Handle, scale: number | null, causal: boolean,
    cuSeqlensQ: Handle | null, cuSeqlensK: Handle | null, hostQ?: Int32Array | null, hostK?: Int32Array | null,
  ): [Handle, Handle];
  /** Returns [dq, dk, dv] given the forward's out and lse [B, H, Nq] and its options. */
  scaledDotProductAttentionBackward(
    dout: Handle, q: Handle, k: Handle, v: Handle, out: Handle, lse: Handle, scale: number | null, causal: boolean,
    cuSeqlensQ: Handle | null, cuSeqlensK: Handle | null, hostQ?: Int32Array | null, hostK?: Int32Array | null,
  ): [Handle, Handle, Handle];
  // conv3d: stride / padding as [t, h, w]; paddingMode 'zeros' | 'replicate'
  conv3d(
    x: Handle, weight: Handle, bias: Handle | undefined, stride: number[], padding: number[], causal: boolean,
    paddingMode: string,
  ): Handle;
  /** Gradients [dinp, dweight, dbias]; null where `needs` is false. */
  conv3dBackward(
    dout: Handle, x: Handle, weight: Handle, stride: number[], padding: number[], causal: boolean, paddingMode: string,
    needs: [boolean, boolean, boolean],
  ): [Handle | null, Handle | null, Handle | null];
  // fused norms (native/napi/fused_norm_napi.cc): forwards return [out, mean, rstd]
  groupNormSiLU(x: Handle, numGroups: number, weight: Handle | null, bias: Handle | null, eps: number, perFrame?: boolean): [Handle, Handle, Handle];
  groupNormSiLUBackward(
    dout: Handle, x: Handle, weight: Handle | null, bias: Handle | null, mean: Handle, rstd: Handle, numGroups: number, perFrame?: boolean,
  ): [Handle, Handle | null, Handle | null];
  layerNormModulate(x: Handle, shift: Handle, scale: Handle, eps: number): [Handle, Handle, Handle];
  /** Returns [dinp, dshift, dscale]. */
  layerNormModulateBackward(dout: Handle, x: Handle, scale: Handle, mean: Handle, rstd: Handle): [Handle, Handle, Handle];
  // optimizers (in place on param, m, v)
  /** Sum of x^2 over every element of every tensor: float64 [1] on their device (deterministic). */
  sumOfSquares(xs: Handle[]): Handle;
  /** x *= maxNorm / (sqrt(sumsq) + 1e-6) in place when below 1 and finite, computed on the device. */
  clipByNorm_(xs: Handle[], sumsq: Handle, maxNorm: number): void;
  /** x *= s in place for each (float32, contiguous). */
  scale_(xs: Handle[], s: number): void;
  /** shadow = decay * shadow + (1 - decay) * param for each pair, in place. */
  emaUpdate(shadow: Handle[], params: Handle[], decay: number): void;
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
  measurePeakGflops(seconds: number): number;
  setMatmulPrecision(p: string): void;
  getMatmulPrecision(): string;
  cudaEmptyCache(): void;
  cpuEmptyCache(): void;
  cpuCacheLimit(): number;
  setCpuCacheLimit(bytes: number): void;
  // Ctrl-C for synchronous loops (interrupt_napi.cc): a SIGINT handler that only sets a flag
  interruptInstall(): void;
  interruptPending(): boolean;
  // distributed (native/napi/dist_napi.cc; lib/distributed): collectives return a work
  // id at once; distWait(id) blocks until done (CPU) or stream-ordered (CUDA)
  distInfo(): { mpiBuilt: boolean; mpiVersion: string; cudaBuilt: boolean; ncclLoaded: boolean; initialized: boolean };
  distInit(
    timeoutSeconds: number, expectedRank: number, expectedSize: number,
  ): { rank: number; worldSize: number; localRank: number; localSize: number; library: string };
  distFinalize(): void;
  distAbort(message: string, code: number): never;
  distNcclLoad(candidates: string[]): { loaded: boolean; path: string; version: number; why: string };
  distAllReduce(t: Handle, op: 'sum' | 'mean' | 'max'): number;
  /** Copies the tensors into one fresh 1-D bucket, reduced in place: [work, bucket]. */
  distAllReduceCoalesced(ts: Handle[], op: 'sum' | 'mean' | 'max'): [number, Handle];
  distBroadcast(t: Handle, root: number): number;
  /** [work, out] with out = [worldSize, ...t.shape]. */
  distAllGather(t: Handle): [number, Handle];
  distBarrier(): number;
  distWait(work: number): void;
  distDone(work: number): boolean;
}

const ROOT = path.resolve(__dirname, '..');
const CANDIDATES = [
  path.join(ROOT, 'build', 'Release', 'tessera.node'),
  path.join(ROOT, 'build', 'Debug', 'tessera.node'),
  path.join(ROOT, 'build-gyp', 'build', 'Release', 'tessera.node'), // npm run build:gyp
];

function load(): NativeAddon {
  // OpenMP worker threads spin between parallel regions; libgomp's default (300000
  // spins, milliseconds) is right for a machine of one's own but, on cores shared with
  // other processes, a spinning thread burns the time slices its partner needs, and a
  // training step of many short ops ran 2x slower on 2 threads than on 1. 10000 spins
  // (well under a millisecond) still bridges the gaps between consecutive ops. libgomp
  // reads this once, when the addon loads it; an explicit user setting wins.
  if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined)
    process.env.GOMP_SPINCOUNT = '10000';
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
