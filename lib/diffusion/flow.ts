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
import { rand, randn, tensor } from '../creation';
import { noGrad } from '../autograd/node';
import { live } from '../ops/basic';
import { Device, Tensor, tidy } from '../tensor';
import { typeName } from '../checks';
import {
  ModelFn, SampleOptionsBase, callModel, checkNumber, checkPosInt, checkShape, frameMaskedMean, frameTimesteps, guidedModel,
  keepFrames, modelTimesteps, noiseSource, perSampleOf, resolveConditionFrames, samplingDevice, withSeed,
} from './common';
import { composeTrainingLoss, Diffusion, TrainingBatch, TrainingLoss, TrainingLossOptions } from './diffusion';

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

/** @deprecated names: the loss options and result are the shared ones of every Diffusion. */
export type FlowLossOptions<C> = TrainingLossOptions<C>;
export type FlowLoss = TrainingLoss;

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

export class RectifiedFlow implements Diffusion {
  readonly samplers = ['euler'] as const;
  readonly defaultSampler = 'euler';
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

  /** The velocity has as many channels as the latent. */
  outputChannels(C: number): number {
    return C;
  }

  /**
   * Draws B training timesteps [B] in [0, 1] on `device`: uniform, or logit-normal
   * sigmoid(m + s n); shifted for numTokens when shiftTraining. Computed on the device.
   */
  sampleTimesteps(B: number, opts: { device?: Device; numTokens?: number } = {}): Tensor {
    const op = 'RectifiedFlow.sampleTimesteps';
    checkPosInt(op, 'B', B);
    const device = opts.device ?? 'cpu';
    const u = this.timestepSampling === 'uniform' ? rand([B], { device }) : randn([B], { device }); // [B]
    const t = this.timestepSampling === 'uniform' ? u : u.mul(this.logitStd).add(this.logitMean).sigmoid();
    const s = this.shiftTraining ? this.shiftFor(opts.numTokens ?? 1) : 1;
    return s === 1 ? t : t.mul(s).div(t.mul(s - 1).add(1)); // shift_s(t) = s t / (1 + (s - 1) t)
  }

  /** x_t = (1 - t) x0 + t noise, t [B] per sample. */
  addNoise(x0: Tensor, noise: Tensor, t: Tensor): Tensor {
    const tc = perSampleOf(t, x0.rank); // [B, 1, ...]
    return x0.mul(tc.mul(-1).add(1)).add(noise.mul(tc));
  }

  /** x_t = (1 - t) x0 + t noise, t per sample (numbers). */
  interpolate(x0: Tensor, t: number[], noise: Tensor): Tensor {
    const x = live(x0, 'RectifiedFlow.interpolate', 'x0');
    return this.addNoise(x, noise, tensor(Float32Array.from(t), { device: x.device }));
  }

  /** The model sees t * timestepScale ([B], or [B, T] with 0 at conditioning frames). */
  modelTimesteps(t: Tensor, frameMask: Tensor | null = null): Tensor {
    return frameTimesteps(t.mul(this.timestepScale), frameMask);
  }

  /** The velocity dx_t/dt = noise - x0. */
  target(x0: Tensor, noise: Tensor): Tensor {
    return noise.sub(x0);
  }

  /** Mean squared error between the model's velocity and noise - x0 (conditioning frames left out). */
  loss(out: Tensor, b: TrainingBatch): TrainingLoss {
    const loss = frameMaskedMean(out.sub(this.target(b.x0, b.noise)).square(), b.frameMask);
    return { loss, mse: loss.detach(), vb: null, t: b.t };
  }

  /** The loss of one batch with one model call (see Diffusion). */
  trainingLoss<C>(model: ModelFn<C>, x0: Tensor, opts: TrainingLossOptions<C> = {}): TrainingLoss {
    const op = 'RectifiedFlow.trainingLoss';
    return composeTrainingLoss(this, op, model, x0, opts, (t, B) => {
      if (!Array.isArray(t) || t.length !== B || !t.every((v) => typeof v === 'number' && v >= 0 && v <= 1))
        throw new RangeError(`${op}: expected t to be ${B} numbers in [0, 1], got ${typeName(t)}`);
    });
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
    const device = samplingDevice(opts);
    const noise = noiseSource(opts, device);
    return withSeed(opts.seed, () => noGrad(() => tidy(() => {
      const frames = resolveConditionFrames(op, opts.conditionFrames, shape);
      const keep = (x: Tensor): Tensor => (frames ? keepFrames(x, frames.clean, frames.mask) : x);
      let x = keep(noise(shape));
      for (let k = 0; k < steps; k++) {
        const cur = x;
        const next = tidy(() => {
          const tm = modelTimesteps(new Array(shape[0]).fill(sig[k] * this.timestepScale), frames ? frames.frames : null, frames ? frames.indices : null, device);
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
