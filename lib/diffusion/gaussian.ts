// Gaussian diffusion (DDPM, Ho et al. 2020) with the improvements DiT uses (Nichol &
// Dhariwal 2021, "Improved DDPM"): linear or cosine betas, eps- or v-prediction,
// learned-range variances trained by the hybrid loss, timestep respacing; samplers
// DDPM (ancestral), DDIM (Song et al. 2021, with eta) and DPM-Solver++(2M) (Lu et al.
// 2022, data-prediction form, multistep, second order).
//
// Notation: x0 clean latents, x_t noisy latents, ab_t = alphas_cumprod[t] (alpha-bar),
//   q(x_t | x0) = N(sqrt(ab_t) x0, (1 - ab_t) I);   x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps;
//   v = sqrt(ab_t) eps - sqrt(1 - ab_t) x0  (Salimans & Ho 2022).
// Schedule tables are computed in float64 (JS numbers) and applied as float32.
// The model is called with integer timesteps t in [0, timesteps) as float32 ([B] or
// [B, T], see common.ts); with learnSigma its output has 2C channels: the prediction,
// then v in [-1, 1] that interpolates the log variance between the posterior's
// (clipped) log variance and log beta_t.
import { rand, tensor } from '../creation';
import { noGrad } from '../autograd/node';
import { gt, live, lt, maximum, minimum, shapeStr } from '../ops/basic';
import { indexSelect } from '../ops/nn';
import { Device, Tensor, keep as keepTensor, tidy } from '../tensor';
import { typeName } from '../checks';
import {
  ModelFn, SampleOptionsBase, callModel, checkNumber, checkPosInt, checkShape, frameMaskedMean, frameTimesteps, guidedModel,
  keepFrames, modelTimesteps, noiseSource, resolveConditionFrames, samplingDevice, withSeed,
} from './common';
import { composeTrainingLoss, Diffusion, TrainingBatch, TrainingLoss, TrainingLossOptions } from './diffusion';

export type BetaSchedule = 'linear' | 'cosine';
export type Prediction = 'eps' | 'v';

export interface GaussianDiffusionOptions {
  betaSchedule?: BetaSchedule; // default 'linear'
  timesteps?: number; // default 1000
  prediction?: Prediction; // default 'eps'
  /** Model outputs 2C channels: prediction and learned-range variance (DiT). Default false. */
  learnSigma?: boolean;
  /** Variance when it is not learned: 'small' = posterior variance (default), 'large' = beta_t. */
  fixedVariance?: 'small' | 'large';
  /**
   * Weight lambda of the variational bound term in the hybrid loss
   * mse + lambda * L_vb (L_vb: per-timestep KL in bits, averaged over elements).
   * Default 1, as in DiT/improved-DDPM's code, which equals lambda = 0.001 on the
   * VLB summed over 1000 timesteps in the paper's notation.
   */
  vlbWeight?: number;
}

/** Betas for a named schedule (improved-DDPM's get_named_beta_schedule), float64. */
export function betaSchedule(kind: BetaSchedule, timesteps: number): Float64Array {
  checkPosInt('betaSchedule', 'timesteps', timesteps);
  const out = new Float64Array(timesteps);
  if (kind === 'linear') {
    // DDPM's linear betas from 1e-4 to 0.02 for 1000 steps, scaled to keep the same ends for other counts.
    const scale = 1000 / timesteps, b0 = scale * 0.0001, b1 = scale * 0.02;
    for (let i = 0; i < timesteps; i++) out[i] = timesteps === 1 ? b0 : b0 + ((b1 - b0) * i) / (timesteps - 1);
  } else if (kind === 'cosine') {
    const ab = (t: number): number => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
    for (let i = 0; i < timesteps; i++) out[i] = Math.min(1 - ab((i + 1) / timesteps) / ab(i / timesteps), 0.999);
  } else {
    throw new TypeError(`betaSchedule: expected 'linear' or 'cosine', got ${typeName(kind)} ${String(kind)}`);
  }
  return out;
}

/** Round half up (floor(x + 0.5)); the Python reference uses the same, not banker's rounding. */
const roundHalfUp = (x: number): number => Math.floor(x + 0.5);

/** `count` timesteps evenly spread over [0, timesteps - 1], ascending (DiT's respacing with one section). */
export function spacedTimesteps(timesteps: number, count: number): number[] {
  checkPosInt('spacedTimesteps', 'count', count);
  if (count > timesteps) throw new RangeError(`spacedTimesteps: expected at most ${timesteps} steps, got ${count}`);
  if (count === 1) return [timesteps - 1];
  return [...Array(count).keys()].map((i) => roundHalfUp((i * (timesteps - 1)) / (count - 1)));
}

/** The tables of one (possibly respaced) schedule, float64. Index i runs over its own steps. */
export class GaussianSchedule {
  readonly alphasCumprod: Float64Array;
  readonly alphasCumprodPrev: Float64Array;
  readonly posteriorVariance: Float64Array;
  /** log of the posterior variance, with index 0 (where it is 0) replaced by index 1. */
  readonly posteriorLogVarianceClipped: Float64Array;
  readonly posteriorMeanCoef1: Float64Array;
  readonly posteriorMeanCoef2: Float64Array;

  /** `timestepMap[i]`: the timestep of the full schedule that index i stands for (what the model sees). */
  constructor(readonly betas: Float64Array, readonly timestepMap: number[]) {
    const n = betas.length;
    this.alphasCumprod = new Float64Array(n);
    this.alphasCumprodPrev = new Float64Array(n);
    this.posteriorVariance = new Float64Array(n);
    this.posteriorLogVarianceClipped = new Float64Array(n);
    this.posteriorMeanCoef1 = new Float64Array(n);
    this.posteriorMeanCoef2 = new Float64Array(n);
    let ab = 1;
    for (let i = 0; i < n; i++) {
      this.alphasCumprodPrev[i] = ab;
      ab *= 1 - betas[i];
      this.alphasCumprod[i] = ab;
    }
    for (let i = 0; i < n; i++) {
      const abi = this.alphasCumprod[i], abp = this.alphasCumprodPrev[i], b = betas[i];
      this.posteriorVariance[i] = (b * (1 - abp)) / (1 - abi);
      this.posteriorMeanCoef1[i] = (b * Math.sqrt(abp)) / (1 - abi);
      this.posteriorMeanCoef2[i] = ((1 - abp) * Math.sqrt(1 - b)) / (1 - abi);
    }
    for (let i = 0; i < n; i++)
      this.posteriorLogVarianceClipped[i] = Math.log(i === 0 && n > 1 ? this.posteriorVariance[1] : this.posteriorVariance[i]);
  }

  get length(): number {
    return this.betas.length;
  }

  /** A schedule over a subset of this one's steps (ascending): betas from the ratios of alpha-bars. */
  respaced(use: number[]): GaussianSchedule {
    const betas = new Float64Array(use.length);
    let last = 1;
    use.forEach((t, i) => {
      betas[i] = 1 - this.alphasCumprod[t] / last;
      last = this.alphasCumprod[t];
    });
    return new GaussianSchedule(betas, use.map((t) => this.timestepMap[t]));
  }
}

export type GaussianSampler = 'ddpm' | 'ddim' | 'dpm++2m';

export interface GaussianSampleOptions<C> extends SampleOptionsBase<C> {
  /** 'ddpm' (ancestral, default), 'ddim' or 'dpm++2m'. */
  sampler?: GaussianSampler;
  /** DDIM's eta: 0 deterministic (default), 1 DDPM-like. */
  eta?: number;
  /** Clip predicted x0 to [-1, 1] (pixel-space models; off for latents, as DiT). */
  clipDenoised?: boolean;
}

export type { TrainingLoss, TrainingLossOptions };

/**
 * Per-sample schedule coefficients by name: plain numbers while sampling (every sample at
 * one step), columns of a table gathered per sample while training (t is a tensor).
 */
const COEFS = [
  'sqrtAb', 'sqrt1mAb', 'sqrtRecipAb', 'sqrtRecipm1Ab', 'coef1', 'coef2', 'logVarClipped', 'lvHalfRange', 'lvMid', 'isZero',
] as const;
type CoefName = (typeof COEFS)[number];
type Coefs = (name: CoefName) => Coef;

/** Every coefficient of schedule s at index i (float64). */
function coefValues(s: GaussianSchedule, i: number): Record<CoefName, number> {
  const ab = s.alphasCumprod[i], minLog = s.posteriorLogVarianceClipped[i], maxLog = Math.log(s.betas[i]);
  return {
    sqrtAb: Math.sqrt(ab), sqrt1mAb: Math.sqrt(1 - ab), sqrtRecipAb: Math.sqrt(1 / ab), sqrtRecipm1Ab: Math.sqrt(1 / ab - 1),
    coef1: s.posteriorMeanCoef1[i], coef2: s.posteriorMeanCoef2[i], logVarClipped: minLog,
    lvHalfRange: (maxLog - minLog) / 2, lvMid: (maxLog + minLog) / 2, isZero: i === 0 ? 1 : 0,
  };
}

type Coef = number | Tensor;

export class GaussianDiffusion implements Diffusion {
  readonly samplers = ['ddpm', 'ddim', 'dpm++2m'] as const;
  readonly defaultSampler = 'ddpm';
  /** The coefficient table [timesteps, COEFS] per device, made once (training gathers rows of it). */
  private readonly tables = new Map<Device, Tensor>();
  readonly betaSchedule: BetaSchedule;
  readonly timesteps: number;
  readonly prediction: Prediction;
  readonly learnSigma: boolean;
  readonly fixedVariance: 'small' | 'large';
  readonly vlbWeight: number;
  /** The full schedule (index = timestep). */
  readonly schedule: GaussianSchedule;

  constructor(opts: GaussianDiffusionOptions = {}) {
    const op = 'GaussianDiffusion';
    if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: expected an options object, got ${typeName(opts)}`);
    this.betaSchedule = opts.betaSchedule ?? 'linear';
    this.timesteps = checkPosInt(op, 'timesteps', opts.timesteps ?? 1000);
    this.prediction = opts.prediction ?? 'eps';
    if (this.prediction !== 'eps' && this.prediction !== 'v') throw new TypeError(`${op}: expected prediction 'eps' or 'v', got ${String(this.prediction)}`);
    this.learnSigma = opts.learnSigma ?? false;
    if (typeof this.learnSigma !== 'boolean') throw new TypeError(`${op}: expected learnSigma to be a boolean, got ${typeName(this.learnSigma)}`);
    this.fixedVariance = opts.fixedVariance ?? 'small';
    if (this.fixedVariance !== 'small' && this.fixedVariance !== 'large') throw new TypeError(`${op}: expected fixedVariance 'small' or 'large', got ${String(this.fixedVariance)}`);
    this.vlbWeight = checkNumber(op, 'vlbWeight', opts.vlbWeight ?? 1, 0);
    const betas = betaSchedule(this.betaSchedule, this.timesteps);
    this.schedule = new GaussianSchedule(betas, [...Array(this.timesteps).keys()]);
  }

  /** Channels the model must output for C latent channels. */
  outputChannels(C: number): number {
    return this.learnSigma ? 2 * C : C;
  }

  get alphasCumprod(): Float64Array {
    return this.schedule.alphasCumprod;
  }

  private checkT(op: string, t: unknown, B: number): number[] {
    if (!Array.isArray(t) || t.length !== B || !t.every((v) => Number.isInteger(v) && v >= 0 && v < this.timesteps))
      throw new RangeError(`${op}: expected t to be ${B} integers in [0, ${this.timesteps}), got ${Array.isArray(t) ? `[${t.join(', ')}]` : typeName(t)}`);
    return t as number[];
  }

  /** The full schedule's coefficients as a float32 table [timesteps, COEFS] on `device` (cached). */
  private table(device: Device): Tensor {
    let tab = this.tables.get(device);
    if (!tab || tab.isDisposed) {
      const K = COEFS.length, v = new Float32Array(this.timesteps * K);
      for (let i = 0; i < this.timesteps; i++) {
        const c = coefValues(this.schedule, i);
        COEFS.forEach((n, k) => (v[i * K + k] = c[n]));
      }
      tab = keepTensor(tensor(v, { shape: [this.timesteps, K], device }));
      this.tables.set(device, tab);
    }
    return tab;
  }

  /** Coefficients of the full schedule at timesteps t [B] (integers as float32), per sample, on t's device. */
  private coefsAt(t: Tensor, rank: number): Coefs {
    const rows = indexSelect(this.table(t.device), t.to('int32')); // [B, K]
    const B = t.shape[0], ones = new Array<number>(rank - 1).fill(1);
    return (name) => {
      const k = COEFS.indexOf(name);
      return rows.slice(1, k, k + 1).reshape([B, ...ones]); // [B, 1, ...]
    };
  }

  /** Coefficients of schedule s at index i, the same for every sample (sampling). */
  private coefsOf(s: GaussianSchedule, i: number): Coefs {
    const c = coefValues(s, i);
    return (name) => c[name];
  }

  /** Frees the cached coefficient tables (they are made again when needed). */
  dispose(): void {
    for (const t of this.tables.values()) t.dispose();
    this.tables.clear();
  }

  /** Samples x_t ~ q(x_t | x0) = sqrt(ab_t) x0 + sqrt(1 - ab_t) noise, t per sample. */
  qSample(x0: Tensor, t: number[], noise: Tensor): Tensor {
    const op = 'GaussianDiffusion.qSample';
    const x = live(x0, op, 'x0');
    const n = live(noise, op, 'noise');
    if (n.shape.length !== x.shape.length || n.shape.some((s, i) => s !== x.shape[i]))
      throw new Error(`${op}: expected noise of shape ${shapeStr(x.shape)}, got ${shapeStr(n.shape)}`);
    const ts = this.checkT(op, t, x.shape[0]);
    return this.addNoise(x, n, tensor(Float32Array.from(ts), { device: x.device }));
  }

  // ---- the Diffusion pieces ------------------------------------------------------------

  /**
   * B training timesteps uniform over [0, timesteps): integers as float32 [B] on `device`,
   * floor(u * timesteps) of u from the tensor RNG, computed on the device.
   */
  sampleTimesteps(B: number, opts: { device?: Device; numTokens?: number } = {}): Tensor {
    checkPosInt('GaussianDiffusion.sampleTimesteps', 'B', B);
    const u = rand([B], { device: opts.device ?? 'cpu' });
    // int conversion truncates: floor for u * T >= 0; the clamp guards float32 rounding up to T.
    return u.mul(this.timesteps).to('int32').to('float32').clamp(null, this.timesteps - 1); // [B]
  }

  /** x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) noise, t [B] per sample. */
  addNoise(x0: Tensor, noise: Tensor, t: Tensor): Tensor {
    const c = this.coefsAt(t, x0.rank);
    return x0.mul(c('sqrtAb')).add(noise.mul(c('sqrt1mAb')));
  }

  /** The model sees the integer timesteps ([B], or [B, T] with 0 at conditioning frames). */
  modelTimesteps(t: Tensor, frameMask: Tensor | null = null): Tensor {
    return frameTimesteps(t, frameMask);
  }

  /** eps (the noise), or v = sqrt(ab) eps - sqrt(1 - ab) x0. */
  target(x0: Tensor, noise: Tensor, t: Tensor): Tensor {
    if (this.prediction === 'eps') return noise;
    const c = this.coefsAt(t, x0.rank);
    return noise.mul(c('sqrtAb')).sub(x0.mul(c('sqrt1mAb')));
  }

  /**
   * mse between the model's prediction and its target (eps or v), plus with learnSigma the
   * variational bound term on the learned variance with a stop-gradient on the mean
   * (improved-DDPM's hybrid loss). Conditioning frames are left out.
   */
  loss(out: Tensor, b: TrainingBatch): TrainingLoss {
    const C = b.x0.shape[1];
    const [pred, varValues] = this.split(out, C);
    const mse = frameMaskedMean(pred.sub(this.target(b.x0, b.noise, b.t)).square(), b.frameMask);
    if (!varValues) return { loss: mse, mse: mse.detach(), vb: null, t: b.t };
    const vb = frameMaskedMean(this.vbTerm(b.x0, b.xt, pred.detach(), varValues, this.coefsAt(b.t, b.x0.rank)), b.frameMask);
    const loss = this.vlbWeight === 1 ? mse.add(vb) : mse.add(vb.mul(this.vlbWeight));
    return { loss, mse: mse.detach(), vb: vb.detach(), t: b.t };
  }

  /** The loss of one batch with one model call (see Diffusion). */
  trainingLoss<C>(model: ModelFn<C>, x0: Tensor, opts: TrainingLossOptions<C> = {}): TrainingLoss {
    const op = 'GaussianDiffusion.trainingLoss';
    return composeTrainingLoss(this, op, model, x0, opts, (t, B) => void this.checkT(op, t, B));
  }

  /** x0 and eps from the model's prediction under coefficients c. */
  private predictions(x: Tensor, pred: Tensor, c: Coefs, clip: boolean): { x0: Tensor; eps: Tensor } {
    let x0: Tensor, eps: Tensor;
    if (this.prediction === 'eps') {
      x0 = x.mul(c('sqrtRecipAb')).sub(pred.mul(c('sqrtRecipm1Ab')));
      eps = pred;
    } else {
      x0 = x.mul(c('sqrtAb')).sub(pred.mul(c('sqrt1mAb')));
      eps = x.mul(c('sqrt1mAb')).add(pred.mul(c('sqrtAb')));
    }
    if (clip) {
      x0 = clamp(x0, -1, 1);
      // eps consistent with the clipped x0 (improved-DDPM's _predict_eps_from_xstart)
      eps = x.mul(c('sqrtRecipAb')).sub(x0).div(c('sqrtRecipm1Ab'));
    }
    return { x0, eps };
  }

  /** Log variance of p(x_{t-1} | x_t): learned range from v in [-1, 1], or fixed. */
  private logVariance(s: GaussianSchedule, varValues: Tensor | null, i: number, c: Coefs): Coef {
    // frac = (v + 1) / 2; log var = frac * max + (1 - frac) * min = v * (max - min) / 2 + (max + min) / 2
    if (varValues) return varValues.mul(c('lvHalfRange')).add(c('lvMid'));
    if (this.fixedVariance === 'small') return c('logVarClipped');
    return Math.log(i === 0 ? s.posteriorVariance[1] ?? s.betas[0] : s.betas[i]);
  }

  /** Posterior mean coef1 * x0 + coef2 * x_t. */
  private posteriorMean(x0: Tensor, xt: Tensor, c: Coefs): Tensor {
    return x0.mul(c('coef1')).add(xt.mul(c('coef2')));
  }

  /** Splits a model output into prediction [B, C, ...] and variance values (learnSigma) or null. */
  private split(out: Tensor, C: number): [Tensor, Tensor | null] {
    return this.learnSigma ? [out.slice(1, 0, C), out.slice(1, C, 2 * C)] : [out, null];
  }

  /**
   * Per-element variational bound term in bits: KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t))
   * for t > 0, the discretized Gaussian decoder NLL of x0 for t = 0 (chosen per sample by
   * the isZero coefficient, so no timestep is read back). The model's mean comes from a
   * detached prediction, so only the variance learns from this term.
   */
  private vbTerm(x0: Tensor, xt: Tensor, predDetached: Tensor, varValues: Tensor, c: Coefs): Tensor {
    const { x0: x0Pred } = this.predictions(xt, predDetached, c, false);
    const modelMean = this.posteriorMean(x0Pred, xt, c);
    const modelLogVar = varValues.mul(c('lvHalfRange')).add(c('lvMid'));
    const trueMean = this.posteriorMean(x0, xt, c);
    const trueLogVar = c('logVarClipped');
    // KL of N(m1, e^{l1}) from N(m2, e^{l2}) = 0.5 (-1 + l2 - l1 + e^{l1 - l2} + (m1 - m2)^2 e^{-l2})
    const kl = modelLogVar.mul(-1).add(trueLogVar).exp() // e^{l1 - l2}
      .add(modelLogVar.sub(trueLogVar)) // + l2 - l1
      .add(trueMean.sub(modelMean).square().mul(modelLogVar.mul(-1).exp()))
      .sub(1)
      .mul(0.5 / Math.LN2);
    const nll = discretizedGaussianLogLikelihood(x0, modelMean, modelLogVar.mul(0.5)).mul(-1 / Math.LN2);
    const isZero = c('isZero') as Tensor;
    return kl.mul(isZero.mul(-1).add(1)).add(nll.mul(isZero));
  }

  // ---- sampling ------------------------------------------------------------------------

  /**
   * Draws samples of `shape` from noise with `steps` model evaluations (default: all
   * timesteps for 'ddpm', 50 for the others). 'ddpm' and 'ddim' run on the schedule
   * respaced to `steps` timesteps evenly spread over [0, timesteps - 1]; 'dpm++2m'
   * evaluates at round(linspace(timesteps - 1, 0, steps + 1))[0..steps-1] and ends on
   * the clean data (see dpmSolver2M).
   */
  sample<C>(model: ModelFn<C>, opts: GaussianSampleOptions<C>): Tensor {
    const op = 'GaussianDiffusion.sample';
    if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: expected an options object, got ${typeName(opts)}`);
    const shape = checkShape(op, opts.shape);
    const sampler = opts.sampler ?? 'ddpm';
    if (!['ddpm', 'ddim', 'dpm++2m'].includes(sampler)) throw new TypeError(`${op}: expected sampler 'ddpm', 'ddim' or 'dpm++2m', got ${String(sampler)}`);
    const steps = checkPosInt(op, 'steps', opts.steps ?? (sampler === 'ddpm' ? this.timesteps : 50));
    // dpm++2m needs distinct evaluation timesteps: spacing (timesteps - 1) / steps >= 1
    const maxSteps = sampler === 'dpm++2m' ? this.timesteps - 1 : this.timesteps;
    if (steps > maxSteps) throw new RangeError(`${op}: expected steps <= ${maxSteps} for ${sampler}, got ${steps}`);
    const eta = checkNumber(op, 'eta', opts.eta ?? 0, 0);
    const C = shape[1];
    const gm = guidedModel(op, model, opts, C);
    const device = samplingDevice(opts);
    const noise = noiseSource(opts, device);
    return withSeed(opts.seed, () => noGrad(() => tidy(() => {
      const frames = resolveConditionFrames(op, opts.conditionFrames, shape);
      const keep = (x: Tensor): Tensor => (frames ? keepFrames(x, frames.clean, frames.mask) : x);
      const B = shape[0];
      const callAt = (x: Tensor, modelT: number): Tensor => {
        const tm = modelTimesteps(new Array(B).fill(modelT), frames ? frames.frames : null, frames ? frames.indices : null, device);
        return callModel(op, gm, x, tm, opts.cond as C, this.outputChannels(C));
      };
      let x = keep(noise(shape));
      const advance = (next: Tensor, step: number): void => {
        x.dispose();
        x = next;
        opts.onStep?.(step, x);
      };
      if (sampler === 'dpm++2m') {
        this.dpmSolver2M(x, steps, callAt, keep, C, opts.clipDenoised ?? false, advance);
        return x;
      }
      const s = this.schedule.respaced(spacedTimesteps(this.timesteps, steps));
      for (let k = 0; k < steps; k++) {
        const i = steps - 1 - k;
        const next = tidy(() => {
          const [pred, varValues] = this.split(callAt(x, s.timestepMap[i]), C);
          const c = this.coefsOf(s, i);
          const { x0, eps } = this.predictions(x, pred, c, opts.clipDenoised ?? false);
          if (sampler === 'ddpm') {
            const mean = this.posteriorMean(x0, x, c);
            if (i === 0) return keep(mean);
            const logVar = this.logVariance(s, varValues, i, c);
            const std = typeof logVar === 'number' ? Math.exp(0.5 * logVar) : logVar.mul(0.5).exp();
            return keep(mean.add(noise(shape).mul(std)));
          }
          const ab = s.alphasCumprod[i], abp = s.alphasCumprodPrev[i];
          const sigma = eta * Math.sqrt((1 - abp) / (1 - ab)) * Math.sqrt(1 - ab / abp);
          const mean = x0.mul(Math.sqrt(abp)).add(eps.mul(Math.sqrt(Math.max(0, 1 - abp - sigma * sigma))));
          return keep(i > 0 && sigma > 0 ? mean.add(noise(shape).mul(sigma)) : mean);
        });
        advance(next, k);
      }
      return x;
    })));
  }

  /**
   * DPM-Solver++(2M), midpoint form (Lu et al. 2022, alg. 2), on lambda = log(alpha / sigma)
   * of the discrete schedule (alpha = sqrt(ab), sigma = sqrt(1 - ab)), as diffusers'
   * DPMSolverMultistepScheduler with its defaults: the model is evaluated at
   * tau_k = round(linspace(timesteps - 1, 0, steps + 1))[k], k < steps; the first step
   * is first order, the others second order, and the last one goes to sigma = 0 in
   * first order, i.e. returns the last x0 prediction.
   */
  private dpmSolver2M(
    x0State: Tensor, steps: number, callAt: (x: Tensor, t: number) => Tensor, keep: (x: Tensor) => Tensor, C: number,
    clip: boolean, advance: (next: Tensor, step: number) => void,
  ): void {
    const T = this.timesteps;
    const taus = [...Array(steps).keys()].map((k) => roundHalfUp(((T - 1) * (steps - k)) / steps));
    const ab = this.schedule.alphasCumprod;
    const alpha = (t: number): number => Math.sqrt(ab[t]), sigma = (t: number): number => Math.sqrt(1 - ab[t]);
    const lambda = (t: number): number => Math.log(alpha(t) / sigma(t));
    let x = x0State;
    let prevX0: Tensor | null = null;
    for (let k = 0; k < steps; k++) {
      const s = taus[k];
      const cur = x, prev = prevX0;
      const [next, d0] = tidy(() => {
        const [pred] = this.split(callAt(cur, s), C);
        const { x0 } = this.predictions(cur, pred, this.coefsOf(this.schedule, s), clip);
        if (k === steps - 1) return [keep(x0), x0]; // to sigma = 0, alpha = 1: x = x0
        const t = taus[k + 1];
        const h = lambda(t) - lambda(s);
        const phi = Math.expm1(-h); // e^{-h} - 1
        let out = cur.mul(sigma(t) / sigma(s)).sub(x0.mul(alpha(t) * phi));
        if (prev) {
          // D1 = (x0_k - x0_{k-1}) / r with r = h_{k-1} / h_k
          const r = (lambda(s) - lambda(taus[k - 1])) / h;
          out = out.sub(x0.sub(prev).mul((0.5 * alpha(t) * phi) / r));
        }
        return [keep(out), x0];
      });
      prevX0?.dispose();
      prevX0 = d0;
      advance(next, k);
      x = next;
    }
    if (prevX0 !== x) prevX0?.dispose(); // the last x0 may be the result itself
  }
}

function clamp(x: Tensor, lo: number, hi: number): Tensor {
  return minimum(maximum(x, tensor([lo], { device: x.device })), tensor([hi], { device: x.device }));
}

/**
 * The argument z of improved-DDPM's approximate standard normal CDF written as a
 * sigmoid: 0.5 (1 + tanh(y)) = sigmoid(2 y), y = sqrt(2 / pi) (x + 0.044715 x^3).
 */
function cdfLogit(x: Tensor): Tensor {
  return x.add(x.pow(3).mul(0.044715)).mul(2 * Math.sqrt(2 / Math.PI));
}

/**
 * Log-likelihood of x (data in [-1, 1], 256 bins) under a discretized Gaussian with
 * means and log scales (log std), per element (improved-DDPM's decoder likelihood,
 * same approximate CDF). The bin mass cdf(b) - cdf(a) is computed on the side of the
 * mean where both values are small (cdf(-a) - cdf(-b) above it), which keeps float32
 * from cancelling to 0 when the bin lies in the tail of a narrow Gaussian.
 */
export function discretizedGaussianLogLikelihood(x: Tensor, means: Tensor, logScales: Tensor): Tensor {
  const centered = x.sub(means);
  const invStd = logScales.mul(-1).exp();
  const zPlus = cdfLogit(centered.add(1 / 255).mul(invStd)), zMin = cdfLogit(centered.sub(1 / 255).mul(invStd));
  const tiny = tensor([1e-12], { device: x.device });
  const logCdfPlus = maximum(zPlus.sigmoid(), tiny).log();
  const logOneMinusCdfMin = maximum(zMin.mul(-1).sigmoid(), tiny).log();
  const above = gt(centered, 0); // bin above the mean
  const below = above.mul(-1).add(1);
  const delta = zMin.mul(-1).sigmoid().sub(zPlus.mul(-1).sigmoid()).mul(above).add(zPlus.sigmoid().sub(zMin.sigmoid()).mul(below));
  const logDelta = maximum(delta, tiny).log();
  const lo = lt(x, -0.999);
  const hi = gt(x, 0.999);
  const mid = lo.add(hi).mul(-1).add(1);
  return logCdfPlus.mul(lo).add(logOneMinusCdfMin.mul(hi)).add(logDelta.mul(mid));
}

