// Weight initialization, in place and seeded through the global Philox generator
// (ts.manualSeed), with PyTorch's formulas (torch.nn.init). Each function fills
// `t` (any dtype/device: values are drawn in float32 on the CPU and copied in)
// and returns it. Fans follow PyTorch: for a weight [out, in, *kernel],
// fanIn = in * prod(kernel), fanOut = out * prod(kernel).
import { noGrad } from '../autograd/node';
import { full, rand, randn } from '../creation';
import { live, shapeStr } from '../ops/basic';
import { Tensor, tidy } from '../tensor';

export type Nonlinearity = 'linear' | 'conv1d' | 'conv2d' | 'conv3d' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu' | 'selu';

/** PyTorch's recommended gain for a nonlinearity (param: leaky_relu's negative slope). */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear': case 'conv1d': case 'conv2d': case 'conv3d': case 'sigmoid':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.sqrt(2);
    case 'leaky_relu': {
      const slope = param ?? 0.01;
      return Math.sqrt(2 / (1 + slope * slope));
    }
    case 'selu':
      return 3 / 4;
  }
  throw new Error(`calculateGain: unknown nonlinearity '${String(nonlinearity)}'`);
}

/** [fanIn, fanOut] of a weight of rank >= 2. */
export function calculateFanInAndFanOut(t: Tensor): [number, number] {
  const x = live(t, 'calculateFanInAndFanOut');
  if (x.rank < 2) throw new Error(`calculateFanInAndFanOut: expected a tensor of rank >= 2, got shape ${shapeStr(x.shape)}`);
  const receptive = x.shape.slice(2).reduce((a, b) => a * b, 1);
  return [x.shape[1] * receptive, x.shape[0] * receptive];
}

function fill(t: Tensor, op: string, make: (shape: number[]) => Tensor): Tensor {
  const x = live(t, op);
  noGrad(() => tidy(() => { x.copy_(make(x.shape as number[])); }));
  return x;
}

function finite(v: number, op: string, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`${op}: expected a finite ${what}, got ${String(v)}`);
  return v;
}

/** Uniform on [a, b). */
export function uniform(t: Tensor, a = 0, b = 1): Tensor {
  finite(a, 'uniform', 'lower bound');
  finite(b, 'uniform', 'upper bound');
  return fill(t, 'uniform', (s) => rand(s).mul(b - a).add(a));
}

/** Normal with mean and std. */
export function normal(t: Tensor, mean = 0, std = 1): Tensor {
  finite(mean, 'normal', 'mean');
  if (finite(std, 'normal', 'std') < 0) throw new RangeError(`normal: expected std >= 0, got ${std}`);
  return fill(t, 'normal', (s) => randn(s).mul(std).add(mean));
}

export function constant(t: Tensor, value: number): Tensor {
  finite(value, 'constant', 'value');
  return fill(t, 'constant', (s) => full(s, value));
}
export const zeros = (t: Tensor): Tensor => constant(t, 0);
export const ones = (t: Tensor): Tensor => constant(t, 1);

/** Glorot uniform: U(-b, b), b = gain * sqrt(6 / (fanIn + fanOut)). */
export function xavierUniform(t: Tensor, gain = 1): Tensor {
  const [fi, fo] = calculateFanInAndFanOut(t);
  const b = finite(gain, 'xavierUniform', 'gain') * Math.sqrt(6 / (fi + fo));
  return uniform(t, -b, b);
}

/** Glorot normal: N(0, std), std = gain * sqrt(2 / (fanIn + fanOut)). */
export function xavierNormal(t: Tensor, gain = 1): Tensor {
  const [fi, fo] = calculateFanInAndFanOut(t);
  return normal(t, 0, finite(gain, 'xavierNormal', 'gain') * Math.sqrt(2 / (fi + fo)));
}

export interface KaimingOptions {
  /** Negative slope of the leaky_relu that follows (PyTorch's `a`). */
  a?: number;
  mode?: 'fan_in' | 'fan_out';
  nonlinearity?: Nonlinearity;
}

function kaimingStd(t: Tensor, op: string, o: KaimingOptions): number {
  const mode = o.mode ?? 'fan_in';
  if (mode !== 'fan_in' && mode !== 'fan_out') throw new TypeError(`${op}: expected mode 'fan_in' or 'fan_out', got '${String(mode)}'`);
  const [fi, fo] = calculateFanInAndFanOut(t);
  const fan = mode === 'fan_in' ? fi : fo;
  if (fan === 0) throw new Error(`${op}: cannot initialize a tensor with zero elements (fan is 0)`);
  return calculateGain(o.nonlinearity ?? 'leaky_relu', o.a ?? 0) / Math.sqrt(fan);
}

/** He uniform: U(-b, b), b = sqrt(3) * gain / sqrt(fan). PyTorch's Linear/Conv default uses a = sqrt(5). */
export function kaimingUniform(t: Tensor, opts: KaimingOptions = {}): Tensor {
  const b = Math.sqrt(3) * kaimingStd(t, 'kaimingUniform', opts);
  return uniform(t, -b, b);
}

/** He normal: N(0, gain / sqrt(fan)). */
export function kaimingNormal(t: Tensor, opts: KaimingOptions = {}): Tensor {
  return normal(t, 0, kaimingStd(t, 'kaimingNormal', opts));
}

/**
 * PyTorch's default init of Linear and ConvNd (reset_parameters): weight
 * kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(fanIn), 1/sqrt(fanIn)), and bias
 * U(-1/sqrt(fanIn), 1/sqrt(fanIn)).
 */
export function defaultLayerInit(weight: Tensor, bias: Tensor | null): void {
  const [fanIn] = calculateFanInAndFanOut(weight);
  if (fanIn > 0) kaimingUniform(weight, { a: Math.sqrt(5) });
  if (bias) {
    const b = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
    uniform(bias, -b, b);
  }
}
