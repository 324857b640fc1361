// The one interface the training and sampling loops use, whatever the process
// (GaussianDiffusion: DDPM-style; RectifiedFlow: straight paths). A training step is
// composed of its pieces and calls the model once:
//
//   t     = d.sampleTimesteps(B, { device, numTokens })      // [B], on the device
//   xt    = d.addNoise(x0, noise, t)                         // [B, C, ...]
//   out   = model(xt, d.modelTimesteps(t, frameMask), cond)  // [B, C', ...]
//   loss  = d.loss(out, { x0, noise, xt, t, frameMask })     // scalar, with gradient
//
// Nothing here reads a tensor back to the host: the timesteps, coefficients and masks
// of a step stay on the device of x0. Sampling (d.sample) integrates from noise with
// one of d.samplers, each step calling the model once (twice with cfgMode 'twice').
import { randn, tensor } from '../creation';
import { live } from '../ops/basic';
import { Device, Tensor, tidy } from '../tensor';
import { shapeStr } from '../checks';
import { callModel, checkFrameIndices, checkModel, ConditionFrames, frameMask, keepFrames, ModelFn, SampleOptionsBase } from './common';

/** The tensors of one training batch, as the loss needs them. */
export interface TrainingBatch {
  /** Clean latents [B, C, ...]. */
  x0: Tensor;
  /** The noise that made xt, like x0. */
  noise: Tensor;
  /** Noisy latents addNoise(x0, noise, t), conditioning frames kept clean. */
  xt: Tensor;
  /** Timesteps [B] in the process's units (sampleTimesteps). */
  t: Tensor;
  /** [B, 1, T, 1, 1], 1 at conditioning frames (left out of the loss), or null. */
  frameMask: Tensor | null;
}

export interface TrainingLoss {
  /** The scalar to minimize, with gradient. */
  loss: Tensor;
  /** Detached terms for logging: the mean squared error, and the variational bound (Gaussian with learnSigma) or null. */
  mse: Tensor;
  vb: Tensor | null;
  /** The timesteps used [B] (process units), on x0's device. */
  t: Tensor;
}

export interface TrainingLossOptions<C> {
  cond?: C;
  /** Timesteps per sample (numbers or a tensor [B], process units); default drawn by sampleTimesteps. */
  t?: number[] | Tensor;
  /** Noise like x0; default ts.randn on x0's device. */
  noise?: Tensor;
  /**
   * Conditioning frames of a video latent x0 [B, C, T, H, W]: per-sample index lists, or a
   * frame mask [B, 1, T, 1, 1] (randomFrameMask). They stay clean in x_t, get timestep 0
   * (the model then sees t [B, T]) and are left out of the loss.
   */
  conditionFrames?: number[][] | Tensor;
  /** Tokens per sample for a token-dependent timestep shift (RectifiedFlow); default latent positions per sample. */
  numTokens?: number;
}

export interface DiffusionSampleOptions<C> extends SampleOptionsBase<C> {
  /** One of the process's samplers (default: its defaultSampler). */
  sampler?: string;
}

export interface Diffusion {
  /** The samplers sample() accepts, and the one it uses by default. */
  readonly samplers: readonly string[];
  readonly defaultSampler: string;
  /** Channels the model outputs for C latent channels. */
  outputChannels(C: number): number;
  /** B training timesteps [B] (float32, process units) on `device`, from the tensor RNG. */
  sampleTimesteps(B: number, opts?: { device?: Device; numTokens?: number }): Tensor;
  /** x_t of clean x0 [B, C, ...] under noise at timesteps t [B]. */
  addNoise(x0: Tensor, noise: Tensor, t: Tensor): Tensor;
  /** The timesteps the model sees: [B], or [B, T] with 0 at the conditioning frames of frameMask. */
  modelTimesteps(t: Tensor, frameMask?: Tensor | null): Tensor;
  /** What the model's prediction regresses to at t (eps, v, or the flow's velocity). */
  target(x0: Tensor, noise: Tensor, t: Tensor): Tensor;
  /** The training loss of a model output [B, outputChannels(C), ...] for a batch. */
  loss(out: Tensor, batch: TrainingBatch): TrainingLoss;
  /** The whole step on one model call: the pieces above, composed. */
  trainingLoss<C>(model: ModelFn<C>, x0: Tensor, opts?: TrainingLossOptions<C>): TrainingLoss;
  /** Samples of opts.shape from noise. */
  sample<C>(model: ModelFn<C>, opts: DiffusionSampleOptions<C>): Tensor;
}

export type { ConditionFrames };

/**
 * trainingLoss for any Diffusion: checks the arguments, draws what is not given (in the
 * order t, then noise, from the tensor RNG), and composes addNoise, modelTimesteps, one
 * model call and loss.
 */
export function composeTrainingLoss<C>(d: Diffusion, op: string, model: ModelFn<C>, x0: Tensor, opts: TrainingLossOptions<C>, checkT: (t: number[], B: number) => void): TrainingLoss {
  checkModel(op, model);
  const x = live(x0, op, 'x0');
  if (x.rank < 2) throw new Error(`${op}: expected x0 [B, C, ...], got ${shapeStr(x.shape)}`);
  const [B, C] = x.shape;
  let t: Tensor;
  if (opts.t === undefined) t = d.sampleTimesteps(B, { device: x.device, numTokens: opts.numTokens ?? x.shape.slice(2).reduce((a, b) => a * b, 1) });
  else if (opts.t instanceof Tensor) {
    t = live(opts.t, op, 't');
    if (t.rank !== 1 || t.shape[0] !== B) throw new Error(`${op}: expected t [${B}], got ${shapeStr(t.shape)}`);
  } else {
    checkT(opts.t, B);
    t = tensor(Float32Array.from(opts.t), { device: x.device });
  }
  let mask: Tensor | null = null;
  if (opts.conditionFrames !== undefined) {
    if (x.rank !== 5) throw new Error(`${op}: conditionFrames need a video latent x0 [B, C, T, H, W], got ${shapeStr(x.shape)}`);
    if (opts.conditionFrames instanceof Tensor) {
      mask = live(opts.conditionFrames, op, 'conditionFrames');
      const want = [B, 1, x.shape[2], 1, 1];
      if (mask.shape.length !== 5 || mask.shape.some((s, i) => s !== want[i])) throw new Error(`${op}: expected a frame mask ${shapeStr(want)}, got ${shapeStr(mask.shape)}`);
    } else {
      mask = frameMask(checkFrameIndices(op, opts.conditionFrames, B, x.shape[2]), x.shape[2], x.device);
    }
  }
  const r = tidy(() => {
    const noise = opts.noise !== undefined ? live(opts.noise, op, 'noise') : randn(x.shape as number[], { device: x.device });
    if (noise.shape.length !== x.shape.length || noise.shape.some((s, i) => s !== x.shape[i])) throw new Error(`${op}: expected noise of shape ${shapeStr(x.shape)}, got ${shapeStr(noise.shape)}`);
    let xt = d.addNoise(x, noise, t);
    if (mask) xt = keepFrames(xt, x, mask);
    const out = callModel(op, model, xt, d.modelTimesteps(t, mask), opts.cond as C, d.outputChannels(C));
    const { loss, mse, vb } = d.loss(out, { x0: x, noise, xt, t, frameMask: mask });
    return { loss, mse, vb };
  });
  return { ...r, t };
}
