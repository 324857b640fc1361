// Rectified flow (Liu et al. 2022; Esser et al. 2024, "SD3"): the straight path
//   x_t = (1 - t) x0 + t noise,  t in [0, 1] (0 = clean data, 1 = pure noise),
// and the model predicts its velocity dx_t/dt = noise - x0. Training timesteps are
// uniform or logit-normal (t = sigmoid(m + s n), n ~ N(0, 1)), optionally shifted
// toward noise; sampling integrates the ODE from t = 1 to 0 with Euler steps.
//
// Timestep shift (SD3 section 5.3.2): with shift s,
//   shift_s(t) = s t / (1 + (s - 1) t),
// which multiplies the noise-to-signal odds t / (1 - t) by s. Larger inputs keep more
// signal at a given noise level, so they need more noise: SD3 shifts a schedule tuned
// for n tokens (or pixels) to m tokens by s = sqrt(m / n). Here, with shiftBaseTokens
// set, a batch of N tokens uses
//   s(N) = shift * sqrt(N / shiftBaseTokens)
// (shifts compose by multiplying s, so `shift` is the value at shiftBaseTokens). N
// defaults to the latent positions per sample (numel / (B C)); since only the ratio
// N / shiftBaseTokens matters, any unit works if both use it (e.g. DiT tokens).
// The model receives t * timestepScale (default 1000, the range of DDPM timesteps,
// which a DiT's sinusoidal timestep embedding expects).
import { rand, randn } from '../creation';
import { noGrad } from '../autograd/node';
import { live, shapeStr } from '../ops/basic';
import { Tensor, tidy, typeName } from '../tensor';
import {
  ModelFn, SampleOptionsBase, callModel, checkFrameIndices, checkModel, checkNumber, checkPosInt, checkShape, frameMask,
  guidedModel, keepFrames, maskedMean, modelTimesteps, noiseSource, perSample, resolveConditionFrames, withSeed,
} from './common';

export interface RectifiedFlowOptions {
  /** Training timestep density: 'logit-normal' (SD3's default, default here) or 'uniform'. */
  timestepSampling?: 'uniform' | 'logit-normal';
  /** Mean m and std s of the logit-normal density (default 0, 1). */
  logitMean?: number;
  logitStd?: number;
  /** Timestep shift s (1 = none, default); the value at shiftBaseTokens when that is set. */
  shift?: number;
  /** When set, the shift grows with the token count N: shift * sqrt(N / shiftBaseTokens). */
  shiftBaseTokens?: number;
  /** Apply the shift to the training timesteps too (default true). */
  shiftTraining?: boolean;
  /** The model sees t * timestepScale (default 1000). */
  timestepScale?: number;
}

export interface FlowLossOptions<C> {
  cond?: C;
  /** Timesteps per sample in [0, 1], used as given (no shift). Default: drawn from the density, shifted. */
  t?: number[];
  noise?: Tensor;
  /** Per-sample conditioning frames of a video latent (clean, model t = 0, not in the loss). */
  conditionFrames?: number[][];
  /** Tokens per sample for the shift (default latent positions per sample). */
  numTokens?: number;
}

export interface FlowLoss {
  loss: Tensor;
  mse: Tensor;
  t: number[];
}

export interface FlowSampleOptions<C> extends SampleOptionsBase<C> {
  /** 'euler' (the only one). */
  sampler?: 'euler';
  /** Tokens per sample for the shift (default latent positions per sample). */
  numTokens?: number;
}

/** shift_s(t) = s t / (1 + (s - 1) t). */
export function timestepShift(t: number, s: number): number {
  return (s * t) / (1 + (s - 1) * t);
}

export class RectifiedFlow {
  readonly timestepSampling: 'uniform' | 'logit-normal';
  readonly logitMean: number;
  readonly logitStd: number;
  readonly shift: number;
  readonly shiftBaseTokens: number | null;
  readonly shiftTraining: boolean;
  readonly timestepScale: number;

  constructor(opts: RectifiedFlowOptions = {}) {
    const op = 'RectifiedFlow';
    if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: expected an options object, got ${typeName(opts)}`);
    this.timestepSampling = opts.timestepSampling ?? 'logit-normal';
    if (this.timestepSampling !== 'uniform' && this.timestepSampling !== 'logit-normal')
      throw new TypeError(`${op}: expected timestepSampling 'uniform' or 'logit-normal', got ${String(this.timestepSampling)}`);
    this.logitMean = checkNumber(op, 'logitMean', opts.logitMean ?? 0);
    this.logitStd = checkNumber(op, 'logitStd', opts.logitStd ?? 1, 0);
    this.shift = checkNumber(op, 'shift', opts.shift ?? 1, 1e-6);
    this.shiftBaseTokens = opts.shiftBaseTokens === undefined ? null : checkPosInt(op, 'shiftBaseTokens', opts.shiftBaseTokens);
    this.shiftTraining = opts.shiftTraining ?? true;
    this.timestepScale = checkNumber(op, 'timestepScale', opts.timestepScale ?? 1000, 1e-6);
  }

  /** The shift used for N tokens per sample. */
  shiftFor(numTokens: number): number {
    if (this.shiftBaseTokens === null) return this.shift;
    checkPosInt('RectifiedFlow.shiftFor', 'numTokens', numTokens);
    return this.shift * Math.sqrt(numTokens / this.shiftBaseTokens);
  }

  /** The steps + 1 noise levels a sampler visits: shift(1 - k / steps), k = 0..steps (from 1 to 0). */
  sigmas(steps: number, numTokens: number): number[] {
    checkPosInt('RectifiedFlow.sigmas', 'steps', steps);
    const s = this.shiftFor(numTokens);
    return [...Array(steps + 1).keys()].map((k) => timestepShift(1 - k / steps, s));
  }

  private tokens(op: string, shape: readonly number[], n: number | undefined): number {
    if (n !== undefined) return checkPosInt(op, 'numTokens', n);
    return shape.slice(2).reduce((a, b) => a * b, 1);
  }

  /** x_t = (1 - t) x0 + t noise, t per sample. */
  interpolate(x0: Tensor, t: number[], noise: Tensor): Tensor {
    const x = live(x0, 'RectifiedFlow.interpolate', 'x0');
    return x.mul(perSample(t.map((v) => 1 - v), x.rank, x.device)).add(noise.mul(perSample(t, x.rank, x.device)));
  }

  /** Draws B training timesteps from the density, shifted for numTokens when shiftTraining. */
  sampleTimesteps(B: number, numTokens: number): number[] {
    const u = tidy(() => noGrad(() => (this.timestepSampling === 'uniform' ? rand([B]) : randn([B])).toFloat32Array()));
    const s = this.shiftTraining ? this.shiftFor(numTokens) : 1;
    return Array.from(u, (v) => {
      const t = this.timestepSampling === 'uniform' ? v : 1 / (1 + Math.exp(-(this.logitMean + this.logitStd * v)));
      return timestepShift(t, s);
    });
  }

  /** Mean squared error between the model's velocity and noise - x0 (conditioning frames left out). */
  trainingLoss<C>(model: ModelFn<C>, x0: Tensor, opts: FlowLossOptions<C> = {}): FlowLoss {
    const op = 'RectifiedFlow.trainingLoss';
    checkModel(op, model);
    const x = live(x0, op, 'x0');
    if (x.rank < 2) throw new Error(`${op}: expected x0 [B, C, ...], got ${shapeStr(x.shape)}`);
    const [B, C] = x.shape;
    let t: number[];
    if (opts.t !== undefined) {
      if (!Array.isArray(opts.t) || opts.t.length !== B || !opts.t.every((v) => typeof v === 'number' && v >= 0 && v <= 1))
        throw new RangeError(`${op}: expected t to be ${B} numbers in [0, 1], got ${typeName(opts.t)}`);
      t = opts.t;
    } else t = this.sampleTimesteps(B, this.tokens(op, x.shape, opts.numTokens));
    let condIdx: number[][] | null = null;
    if (opts.conditionFrames !== undefined) {
      if (x.rank !== 5) throw new Error(`${op}: conditionFrames need a video latent x0 [B, C, T, H, W], got ${shapeStr(x.shape)}`);
      condIdx = checkFrameIndices(op, opts.conditionFrames, B, x.shape[2]);
    }
    const r = tidy(() => {
      const noise = opts.noise !== undefined ? live(opts.noise, op, 'noise') : randn(x.shape as number[]);
      if (noise.shape.some((s, i) => s !== x.shape[i])) throw new Error(`${op}: expected noise of shape ${shapeStr(x.shape)}, got ${shapeStr(noise.shape)}`);
      let xt = this.interpolate(x, t, noise);
      const mask = condIdx ? frameMask(condIdx, x.shape[2], x.device) : null;
      if (mask) xt = keepFrames(xt, x, mask);
      const tm = modelTimesteps(t.map((v) => v * this.timestepScale), condIdx ? x.shape[2] : null, condIdx, x.device);
      const v = callModel(op, model, xt, tm, opts.cond as C, C);
      const loss = maskedMean(v.sub(noise.sub(x)).square(), mask);
      return { loss, mse: loss.detach() };
    });
    return { ...r, t };
  }

  /** Integrates dx/dt = v from t = 1 (noise) to 0 with `steps` Euler steps (default 50). */
  sample<C>(model: ModelFn<C>, opts: FlowSampleOptions<C>): Tensor {
    const op = 'RectifiedFlow.sample';
    if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: expected an options object, got ${typeName(opts)}`);
    const shape = checkShape(op, opts.shape);
    if ((opts.sampler ?? 'euler') !== 'euler') throw new TypeError(`${op}: expected sampler 'euler', got ${String(opts.sampler)}`);
    const steps = checkPosInt(op, 'steps', opts.steps ?? 50);
    const sig = this.sigmas(steps, this.tokens(op, shape, opts.numTokens));
    const gm = guidedModel(op, model, opts, shape[1]);
    const noise = noiseSource(opts);
    return withSeed(opts.seed, () => noGrad(() => tidy(() => {
      const frames = resolveConditionFrames(op, opts.conditionFrames, shape);
      const keep = (x: Tensor): Tensor => (frames ? keepFrames(x, frames.clean, frames.mask) : x);
      let x = keep(noise(shape));
      for (let k = 0; k < steps; k++) {
        const cur = x;
        const next = tidy(() => {
          const tm = modelTimesteps(new Array(shape[0]).fill(sig[k] * this.timestepScale), frames ? frames.frames : null, frames ? frames.indices : null, cur.device);
          const v = callModel(op, gm, cur, tm, opts.cond as C, shape[1]);
          return keep(cur.add(v.mul(sig[k + 1] - sig[k])));
        });
        x.dispose();
        x = next;
        opts.onStep?.(k, x);
      }
      return x;
    })));
  }
}
