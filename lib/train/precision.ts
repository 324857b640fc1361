// The compute precision of the training loops: fp32, or bf16 autocast on CUDA (matmul,
// attention and conv in bfloat16 on tensor cores, float32 master weights, norms and
// softmax statistics), the field's default for DiT training on GPUs.
import { autocast } from '../runtime';
import { Device } from '../tensor';
import { oneOf } from '../checks';

/** Compute precision of a training loop: 'bf16' autocasts matmul, attention and conv to bfloat16 on CUDA (float32 master weights). */
export type Precision = 'fp32' | 'bf16';

/** The precision a loop on `device` uses: bf16 on CUDA by default, fp32 elsewhere; bf16 is refused off CUDA. */
export function resolvePrecision(op: string, device: Device, p: unknown): Precision {
  const cuda = device.startsWith('cuda');
  if (p === undefined) return cuda ? 'bf16' : 'fp32';
  const v = oneOf(op, 'precision', p, ['fp32', 'bf16'] as const);
  if (v === 'bf16' && !cuda) throw new Error(`${op}: precision 'bf16' runs on CUDA tensor cores; ${device} computes in float32 (use precision 'fp32')`);
  return v;
}

/** Runs fn under the loop's precision. */
export function withPrecision<T>(p: Precision, fn: () => T): T {
  return p === 'bf16' ? autocast('bfloat16', fn) : fn();
}

