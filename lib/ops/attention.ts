// F.scaledDotProductAttention: flash-style attention on the native kernels (O(N)
// memory: the forward saves only the log-sum-exp per query; the backward recomputes
// the probabilities block by block).
//   q [B, Nq, H, D], k and v [B, Nk, H, D] -> [B, Nq, H, D]   (tessera's token layout:
//   no transposes after the QKV projection; q/k/v may be slices of a fused qkv)
import { native } from '../native';
import { Tensor, typeName } from '../tensor';
import { f32, live, record, wrap } from './basic';

const OP = 'scaledDotProductAttention';

export interface AttentionOptions {
  /** Multiplies q.k before the softmax; default 1/sqrt(D). */
  scale?: number;
  /**
   * Hides key j from query i when j > i (top-left aligned, as PyTorch's is_causal,
   * also when Nq != Nk). With packed sequences the positions count within each sequence.
   */
  causal?: boolean;
  /**
   * Packed sequences (NaViT): int32 prefix sums [0, n1, n1 + n2, ...] of the query
   * lengths (last entry Nq); B must be 1. Queries of sequence s see only the keys of
   * sequence s. Give both or neither.
   */
  cuSeqlensQ?: Tensor;
  /** Prefix sums of the key lengths (last entry Nk), as many sequences as cuSeqlensQ. */
  cuSeqlensK?: Tensor;
}

const KNOWN = new Set(['scale', 'causal', 'cuSeqlensQ', 'cuSeqlensK']);

function cuArg(v: unknown, what: string): Tensor | null {
  if (v === undefined || v === null) return null;
  const t = live(v, OP, what);
  if (t.dtype !== 'int32') throw new TypeError(`${OP}: expected ${what} of dtype int32, got ${t.dtype}`);
  return t;
}

/**
 * softmax(scale * q k^T + mask) v per batch row and head, computed without any
 * Nq x Nk matrix. A query that sees no key (a packed sequence without keys) gives 0.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const qt = f32(q, OP, 'q'), kt = f32(k, OP, 'k'), vt = f32(v, OP, 'v');
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts))
    throw new TypeError(`${OP}: expected options to be an object, got ${typeName(opts)}`);
  for (const key of Object.keys(opts))
    if (!KNOWN.has(key)) throw new TypeError(`${OP}: unknown option '${key}' (expected scale, causal, cuSeqlensQ, cuSeqlensK)`);
  const { scale, causal = false } = opts;
  if (scale !== undefined && (typeof scale !== 'number' || !Number.isFinite(scale)))
    throw new TypeError(`${OP}: expected scale to be a finite number, got ${typeName(scale)} ${String(scale)}`);
  if (typeof causal !== 'boolean') throw new TypeError(`${OP}: expected causal to be a boolean, got ${typeName(causal)}`);
  const cuQ = cuArg(opts.cuSeqlensQ, 'cuSeqlensQ'), cuK = cuArg(opts.cuSeqlensK, 'cuSeqlensK');
  const sc = scale ?? null;
  // Host copies of index tensors made from host values (indexTensor) spare a device read per call.
  const hq = cuQ?.hostValues ?? null, hk = cuK?.hostValues ?? null;
  const [ho, hl] = native.scaledDotProductAttention(qt.h, kt.h, vt.h, sc, causal, cuQ?.h ?? null, cuK?.h ?? null, hq, hk);
  const out = wrap(ho), lse = wrap(hl); // lse [B, H, Nq]: kept only by the backward
  try {
    return record(out, OP, [qt, kt, vt], (save, needs) => {
      const sq = save(qt), sk = save(kt), sv = save(vt), so = save(out), sl = save(lse);
      const scq = cuQ ? save(cuQ) : null, sck = cuK ? save(cuK) : null;
      return (g) => {
        const [dq, dk, dv] = native
          .scaledDotProductAttentionBackward(g.h, sq.h, sk.h, sv.h, so.h, sl.h, sc, causal, scq?.h ?? null, sck?.h ?? null, hq, hk)
          .map(wrap);
        return [needs[0] ? dq : null, needs[1] ? dk : null, needs[2] ? dv : null];
      };
    });
  } finally {
    lse.dispose();
  }
}
