// Pieces shared by the diffusion processes (GaussianDiffusion, RectifiedFlow): the
// model interface, per-sample coefficients, conditioning frames, classifier-free
// guidance, seeding and masked losses.
//
// Shapes: x is a latent batch [B, C, ...] (videos [B, C, T, H, W]; any rank >= 2
// works where no conditioning frames are used). The timestep given to the model,
// `t`, is a float32 tensor:
//   - [B]     one timestep per sample (the usual case);
//   - [B, T]  one per latent frame, when conditioning frames are in play: the given
//             (clean) frames get timestep 0, the others the sample's timestep.
// A model must accept both (a DiT embeds t per frame and adds each token its frame's
// embedding). GaussianDiffusion passes integer timesteps 0..timesteps-1 (as floats),
// RectifiedFlow passes t * timestepScale (t in [0, 1], 0 = clean, scale 1000 by default).
import { arange, getRngState, manualSeed, rand, randn as tsRandn, setRngState, tensor, zeros } from '../creation';
import { cat, clamp, eq, live, lt, shapeStr } from '../ops/basic';
import { Device, Tensor } from '../tensor';
import { batchShape, finiteNumber, posInt, typeName } from '../checks';

/** A denoiser: noisy latents x_t [B, C, ...], timesteps t ([B] or [B, T]), conditioning -> output [B, C', ...]. */
export type ModelFn<C = unknown> = (xt: Tensor, t: Tensor, cond: C) => Tensor;

/** Draws standard normal noise of a shape; replaceable to feed fixed noise (tests, parity). */
export type NoiseFn = (shape: number[]) => Tensor;

/** Latent frames to keep clean while sampling (image-to-video, video extension). */
export interface ConditionFrames {
  /** Clean latents of the given frames: [B or 1, C, K, H, W], K = indices.length (in that order). */
  latents: Tensor;
  /** Frame indices (along dim 2 of the latent) that the latents give. */
  indices: number[];
}

/** Options every sampler takes. */
export interface SampleOptionsBase<C> {
  /** Shape of the latent batch [B, C, ...]. */
  shape: number[];
  cond?: C;
  /** Conditioning for the unconditional branch of classifier-free guidance. */
  uncond?: C;
  /** Guidance scale (1 = no guidance, the model is called once on cond). */
  cfgScale?: number;
  /** 'batch': one model call on the doubled batch [cond; uncond] (default); 'twice': two calls. */
  cfgMode?: 'batch' | 'twice';
  /** Stacks cond and uncond into one batch for cfgMode 'batch' (default: concatCond). */
  concatCond?: (cond: C, uncond: C) => C;
  /** Number of model evaluations. */
  steps?: number;
  /**
   * Seeds the tensor RNG (Philox) for this call; the global generator's state is
   * restored afterwards, so sampling in the middle of training does not disturb it.
   */
  seed?: number;
  /** Replaces the noise source (default ts.randn on `device`): the initial noise, then per-step noise in step order. */
  noise?: NoiseFn;
  /**
   * The device the latents are made on (noise, timesteps, masks). Default: the device of
   * conditionFrames.latents when given, else 'cpu'. The model must run there.
   */
  device?: Device;
  conditionFrames?: ConditionFrames;
  /** Called after each step with its index and the new state (valid only during the call). */
  onStep?: (step: number, x: Tensor) => void;
}

// ---- argument checks -------------------------------------------------------------------

// Kept under their old names for the diffusion modules; they are lib/checks.ts's.
export const checkPosInt = (op: string, name: string, v: unknown): number => posInt(op, name, v);
export const checkNumber = (op: string, name: string, v: unknown, lo = -Infinity, hi = Infinity): number => finiteNumber(op, name, v, lo, hi);
export const checkShape = (op: string, shape: unknown): number[] => batchShape(op, shape);

export function checkModel(op: string, model: unknown): void {
  if (typeof model !== 'function') throw new TypeError(`${op}: expected model to be a function (xt, t, cond) => Tensor, got ${typeName(model)}`);
}

/** Calls the model and checks that it returned [B, channels, ...rest of x]. */
export function callModel<C>(op: string, model: ModelFn<C>, x: Tensor, t: Tensor, cond: C, channels: number): Tensor {
  const out = model(x, t, cond);
  if (!(out instanceof Tensor)) throw new TypeError(`${op}: expected the model to return a Tensor, got ${typeName(out)}`);
  const want = [x.shape[0], channels, ...x.shape.slice(2)];
  if (out.shape.length !== want.length || out.shape.some((s, i) => s !== want[i]))
    throw new Error(`${op}: expected the model output of shape ${shapeStr(want)} for input ${shapeStr(x.shape)}, got ${shapeStr(out.shape)}`);
  return out;
}

// ---- coefficients --------------------------------------------------------------------

/** A per-sample coefficient [B, 1, ..., 1] (rank of x) broadcasting over x. */
export function perSample(values: ArrayLike<number>, rank: number, device: Tensor['device']): Tensor {
  const shape = [values.length, ...new Array<number>(rank - 1).fill(1)];
  return tensor(Float32Array.from(values), { shape, device });
}

/** The model's timestep tensor: [B], or [B, T] with 0 at each sample's conditioning frames. */
export function modelTimesteps(values: ArrayLike<number>, frames: number | null, condIdx: number[][] | null, device: Tensor['device']): Tensor {
  const B = values.length;
  if (frames === null) return tensor(Float32Array.from(values), { shape: [B], device });
  const out = new Float32Array(B * frames);
  for (let b = 0; b < B; b++)
    for (let f = 0; f < frames; f++) out[b * frames + f] = condIdx && condIdx[b].includes(f) ? 0 : values[b];
  return tensor(out, { shape: [B, frames], device });
}

/**
 * Timesteps t [B] (already in the model's units) as the model sees them: [B], or [B, T]
 * with 0 at the conditioning frames of a frame mask [B, 1, T, 1, 1]. On t's device.
 */
export function frameTimesteps(t: Tensor, mask: Tensor | null): Tensor {
  if (!mask) return t; // [B]
  const [B, , T] = mask.shape;
  return t.reshape([B, 1]).mul(mask.reshape([B, T]).mul(-1).add(1)); // [B, T]
}

/** A per-sample tensor t [B] as a coefficient [B, 1, ..., 1] broadcasting over x of `rank`. */
export function perSampleOf(t: Tensor, rank: number): Tensor {
  return t.reshape([t.shape[0], ...new Array<number>(rank - 1).fill(1)]);
}

// ---- conditioning frames -------------------------------------------------------------

/** Checks per-sample conditioning frame indices against a video latent [B, C, T, H, W]. */
export function checkFrameIndices(op: string, idx: unknown, B: number, T: number): number[][] {
  if (!Array.isArray(idx) || idx.length !== B || !idx.every(Array.isArray))
    throw new TypeError(`${op}: expected conditionFrames to be ${B} arrays of frame indices (one per sample), got ${typeName(idx)}`);
  return (idx as unknown[][]).map((list, b) => {
    for (const f of list)
      if (!Number.isInteger(f) || (f as number) < 0 || (f as number) >= T)
        throw new RangeError(`${op}: sample ${b}: conditioning frame ${String(f)} is out of range for ${T} frames`);
    if (new Set(list).size !== list.length) throw new Error(`${op}: sample ${b}: conditioning frames [${list.join(', ')}] repeat`);
    if (list.length >= T) throw new Error(`${op}: sample ${b}: all ${T} frames are conditioning frames; at least one must be generated`);
    return list as number[];
  });
}

/** Frame mask [B, 1, T, 1, 1]: 1 at conditioning frames (from host indices, made on device). */
export function frameMask(idx: number[][], T: number, device: Tensor['device']): Tensor {
  const m = new Float32Array(idx.length * T);
  idx.forEach((list, b) => list.forEach((f) => (m[b * T + f] = 1)));
  return tensor(m, { shape: [idx.length, 1, T, 1, 1], device });
}

/** Keeps the masked frames of x at `clean`: x * (1 - m) + clean * m (exact for m in {0, 1}). */
export function keepFrames(x: Tensor, clean: Tensor, mask: Tensor): Tensor {
  return x.mul(mask.mul(-1).add(1)).add(clean.mul(mask));
}

/** Resolved sampling-time conditioning: full-size clean latents, mask and indices per sample. */
export interface ResolvedFrames {
  clean: Tensor; // [B, C, T, H, W], zeros outside the given frames
  mask: Tensor; // [B, 1, T, 1, 1]
  indices: number[][];
  frames: number;
}

export function resolveConditionFrames(op: string, cf: ConditionFrames | undefined, shape: number[]): ResolvedFrames | null {
  if (cf === undefined || cf === null) return null;
  if (typeof cf !== 'object' || !Array.isArray(cf.indices))
    throw new TypeError(`${op}: expected conditionFrames { latents, indices }, got ${typeName(cf)}`);
  if (shape.length !== 5) throw new Error(`${op}: conditionFrames need a video latent shape [B, C, T, H, W], got ${shapeStr(shape)}`);
  const [B, C, T, H, W] = shape;
  const lat = live(cf.latents, op, 'conditionFrames.latents');
  const K = cf.indices.length;
  if (K === 0) return null;
  const ls = lat.shape;
  if (ls.length !== 5 || (ls[0] !== B && ls[0] !== 1) || ls[1] !== C || ls[2] !== K || ls[3] !== H || ls[4] !== W)
    throw new Error(`${op}: expected conditionFrames.latents of shape [${B} or 1, ${C}, ${K}, ${H}, ${W}] (one frame per index), got ${shapeStr(ls)}`);
  const indices = checkFrameIndices(op, new Array(B).fill(cf.indices), B, T);
  const latB = ls[0] === B ? lat : lat.expand([B, C, K, H, W]);
  const parts: Tensor[] = [];
  for (let f = 0; f < T; f++) {
    const k = cf.indices.indexOf(f);
    parts.push(k >= 0 ? latB.slice(2, k, k + 1) : zeros([B, C, 1, H, W], { device: lat.device }));
  }
  return { clean: cat(parts, 2), mask: frameMask(indices, T, lat.device), indices, frames: T };
}

// ---- losses --------------------------------------------------------------------------

/**
 * Mean over each sample's elements (all dims but 0), then over the batch. With a frame
 * mask [B, 1, T, 1, 1] (1 = conditioning frame), the masked frames are left out: each
 * sample's mean is over its generated frames only.
 */
export function frameMaskedMean(perElement: Tensor, mask: Tensor | null): Tensor {
  const dims = perElement.shape.map((_, i) => i).slice(1);
  if (!mask) return perElement.mean(dims).mean();
  const [, C, , H, W] = perElement.shape;
  const keepW = mask.mul(-1).add(1); // [B, 1, T, 1, 1]
  const counts = keepW.sum([1, 2, 3, 4]).mul(C * H * W); // [B]
  return perElement.mul(keepW).sum(dims).div(counts).mean();
}

// ---- classifier-free guidance --------------------------------------------------------

/** Concatenates two conditionings along the batch: tensors, arrays and plain objects of them, null. */
export function concatCond<C>(a: C, b: C): C {
  if (a === null || a === undefined) return a;
  if (a instanceof Tensor) return cat([a, b as unknown as Tensor], 0) as unknown as C;
  if (Array.isArray(a)) {
    const bb = b as unknown as unknown[];
    if (!Array.isArray(bb) || bb.length !== a.length) throw new Error('concatCond: cond and uncond arrays differ in length');
    if (a.every((x) => typeof x === 'string' || typeof x === 'number')) return [...a, ...bb] as unknown as C;
    return a.map((x, i) => concatCond(x, bb[i])) as unknown as C;
  }
  if (typeof a === 'object' && Object.getPrototypeOf(a) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(a as Record<string, unknown>)) out[k] = concatCond(v, (b as Record<string, unknown>)[k]);
    return out as C;
  }
  throw new TypeError(`concatCond: cannot concatenate a conditioning of type ${typeName(a)}; pass concatCond for your conditioning type`);
}

export interface GuidanceOptions<C> {
  /** Guidance scale s: out = uncond + s * (cond - uncond). */
  scale: number;
  uncond: C;
  /** 'batch' (default): one call on [x; x] with cond stacked over uncond; 'twice': two calls. */
  mode?: 'batch' | 'twice';
  /**
   * Number of leading output channels to guide (default: all). The remaining channels
   * (e.g. learned variances) are taken from the conditional output.
   */
  channels?: number;
  concat?: (cond: C, uncond: C) => C;
}

/**
 * Classifier-free guidance (Ho & Salimans 2022): wraps a model so that it returns
 * eps_u + scale * (eps_c - eps_u) on every predicted channel. The result is a model
 * with the same signature (its cond argument is the conditional one).
 */
export function classifierFreeGuidance<C>(model: ModelFn<C>, opts: GuidanceOptions<C>): ModelFn<C> {
  const op = 'classifierFreeGuidance';
  checkModel(op, model);
  const scale = checkNumber(op, 'scale', opts?.scale);
  const mode = opts.mode ?? 'batch';
  if (mode !== 'batch' && mode !== 'twice') throw new TypeError(`${op}: expected mode 'batch' or 'twice', got ${String(mode)}`);
  const concat = opts.concat ?? concatCond;
  return (x: Tensor, t: Tensor, cond: C): Tensor => {
    let c: Tensor, u: Tensor;
    if (mode === 'batch') {
      const B = x.shape[0];
      const out = model(cat([x, x], 0), cat([t, t], 0), concat(cond, opts.uncond));
      if (!(out instanceof Tensor) || out.shape[0] !== 2 * B)
        throw new Error(`${op}: expected the model to return a batch of ${2 * B} for the doubled batch, got ${out instanceof Tensor ? shapeStr(out.shape) : typeName(out)}`);
      c = out.slice(0, 0, B);
      u = out.slice(0, B, 2 * B);
    } else {
      c = model(x, t, cond);
      u = model(x, t, opts.uncond);
    }
    const C = c.shape[1];
    const k = opts.channels ?? C;
    if (!Number.isInteger(k) || k < 1 || k > C) throw new RangeError(`${op}: expected channels in [1, ${C}], got ${String(k)}`);
    if (k === C) return u.add(c.sub(u).mul(scale));
    const cg = c.slice(1, 0, k), ug = u.slice(1, 0, k);
    return cat([ug.add(cg.sub(ug).mul(scale)), c.slice(1, k, C)], 1);
  };
}

/** The model a sampler calls: guided when cfgScale != 1 (guiding `channels` leading channels). */
export function guidedModel<C>(op: string, model: ModelFn<C>, o: SampleOptionsBase<C>, channels: number): ModelFn<C> {
  checkModel(op, model);
  const scale = o.cfgScale ?? 1;
  checkNumber(op, 'cfgScale', scale);
  if (scale === 1) return model;
  if (o.uncond === undefined) throw new Error(`${op}: cfgScale ${scale} needs an unconditional conditioning (uncond)`);
  return classifierFreeGuidance(model, { scale, uncond: o.uncond, mode: o.cfgMode, channels, concat: o.concatCond });
}

// ---- seeding -------------------------------------------------------------------------

/** Runs fn with the tensor RNG seeded by `seed` (when given), restoring the global generator afterwards. */
export function withSeed<T>(seed: number | undefined, fn: () => T): T {
  if (seed === undefined) return fn();
  const saved = getRngState();
  manualSeed(seed);
  try {
    return fn();
  } finally {
    setRngState(saved);
  }
}

export function noiseSource(o: { noise?: NoiseFn }, device: Device): NoiseFn {
  if (o.noise !== undefined && typeof o.noise !== 'function') throw new TypeError(`sample: expected noise to be a function (shape) => Tensor, got ${typeName(o.noise)}`);
  return o.noise ?? ((shape: number[]) => tsRandn(shape, { device }));
}

/** The device a sampler works on: opts.device, else the conditioning latents', else 'cpu'. */
export function samplingDevice(o: { device?: Device; conditionFrames?: ConditionFrames }): Device {
  if (o.device !== undefined) return o.device;
  const lat = o.conditionFrames?.latents;
  return lat instanceof Tensor && !lat.isDisposed ? lat.device : 'cpu';
}

/**
 * Random conditioning frames for training (image-to-video and extension): each sample
 * gets conditioning frames with probability `prob`; then with probability
 * `firstFrameShare` only its first frame (image-to-video), otherwise its first k
 * frames with k uniform in [1, T - 1] (extension). Drawn from the tensor RNG, so a
 * seed reproduces them. Returns per-sample index lists (empty = unconditioned).
 */
export function randomConditionFrames(batch: number, frames: number, opts: { prob: number; firstFrameShare?: number }): number[][] {
  const op = 'randomConditionFrames';
  checkPosInt(op, 'batch', batch);
  checkPosInt(op, 'frames', frames);
  const p = checkNumber(op, 'prob', opts?.prob, 0, 1);
  const share = checkNumber(op, 'firstFrameShare', opts.firstFrameShare ?? 0.5, 0, 1);
  if (frames < 2) return new Array(batch).fill(null).map(() => []);
  const u = rand3(batch);
  const out: number[][] = [];
  for (let b = 0; b < batch; b++) {
    if (u[3 * b] >= p) out.push([]);
    else if (u[3 * b + 1] < share) out.push([0]);
    else {
      const k = 1 + Math.min(frames - 2, Math.floor(u[3 * b + 2] * (frames - 1)));
      out.push([...Array(k).keys()]);
    }
  }
  return out;
}

/**
 * The device form of randomConditionFrames: the same draws (rand([3 * batch]) from the
 * tensor RNG, so a seed gives the same frames) turned into a frame mask [batch, 1, frames,
 * 1, 1] (1 = conditioning frame) on `device`, without reading anything back: a training
 * step on a GPU keeps its conditioning frames there.
 */
export function randomFrameMask(batch: number, frames: number, opts: { prob: number; firstFrameShare?: number; device?: Device }): Tensor {
  const op = 'randomFrameMask';
  checkPosInt(op, 'batch', batch);
  checkPosInt(op, 'frames', frames);
  const p = checkNumber(op, 'prob', opts?.prob, 0, 1);
  const share = checkNumber(op, 'firstFrameShare', opts.firstFrameShare ?? 0.5, 0, 1);
  const device = opts.device ?? 'cpu';
  if (frames < 2) return zeros([batch, 1, frames, 1, 1], { device });
  const u = rand([batch, 3], { device }); // [B, 3]: conditioned?, first frame only?, prefix length
  const on = lt(u.slice(1, 0, 1), p); // [B, 1]
  const first = lt(u.slice(1, 1, 2), share); // [B, 1]
  // k = 1 + min(frames - 2, floor(u2 * (frames - 1))): the prefix length (int conversion truncates: floor for u >= 0)
  const k = clamp(u.slice(1, 2, 3).mul(frames - 1).to('int32').to('float32'), null, frames - 2).add(1); // [B, 1]
  const f = arange(frames, undefined, 1, { device }).reshape([1, frames]); // [1, T]
  const prefix = lt(f, k); // [B, T]
  const only0 = eq(f, 0); // [1, T]
  const pattern = first.mul(only0).add(first.mul(-1).add(1).mul(prefix)); // [B, T]
  return on.mul(pattern).reshape([batch, 1, frames, 1, 1]);
}

function rand3(batch: number): Float32Array {
  const r = rand([batch * 3]);
  const v = r.toFloat32Array();
  r.dispose();
  return v;
}
