// checkpoint(fn, ...inputs): activation recomputation. The forward runs without
// recording a graph (its activations are freed at once); backward runs fn again
// with gradients on, from the same RNG state (so dropout masks repeat), and
// backpropagates through the recomputed graph. Parameters used inside fn receive
// their gradients during that inner backward.
import { native } from '../native';
import { Tensor } from '../tensor';
import { backwardMany } from './engine';
import { enableGrad, isGradEnabled, Node, noGrad } from './node';

export function checkpoint(fn: (...xs: Tensor[]) => Tensor, ...inputs: Tensor[]): Tensor {
  if (typeof fn !== 'function') throw new TypeError(`checkpoint: expected a function, got ${typeof fn}`);
  inputs.forEach((t, i) => {
    if (!(t instanceof Tensor)) throw new TypeError(`checkpoint: input ${i} must be a Tensor`);
    if (t.isDisposed) throw new Error(`checkpoint: input ${i} is a disposed tensor`);
  });
  if (!isGradEnabled()) return fn(...inputs);
  const [seed, offset] = native.rngState();
  const out = noGrad(() => fn(...inputs));
  if (!(out instanceof Tensor)) throw new TypeError('checkpoint: fn must return a Tensor');
  if (!out.dtype.startsWith('float')) return out;
  const node = new Node(
    'checkpoint',
    inputs.map((t) => (t.requiresGrad ? t : null)),
  );
  const saved = inputs.map((t) => {
    const a = new Tensor(native.alias(t.h), true);
    node.saved.push(a);
    return a;
  });
  node.backwardFn = (g) => {
    const [curSeed, curOffset] = native.rngState();
    native.setRngState(seed, offset);
    const xs = saved.map((s, i) => {
      const d = new Tensor(native.alias(s.h));
      d.requiresGrad = inputs[i].requiresGrad;
      return d;
    });
    let again: Tensor;
    try {
      again = enableGrad(() => fn(...xs));
    } finally {
      native.setRngState(curSeed, curOffset);
    }
    if (again.requiresGrad) backwardMany([again], [g]);
    return xs.map((x) => {
      const gx = x.grad;
      x.grad = null;
      return gx;
    });
  };
  out._node = node;
  out.requiresGrad = true;
  return out;
}
