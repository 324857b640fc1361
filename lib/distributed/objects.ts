// Collectives on plain values (numbers and JSON), for the decisions every rank must
// share: a plan read from a file by rank 0, a stop flag, evaluation sums, captions.
// They travel as small host tensors over the same process group (MPI), so they also
// order and synchronize the ranks like any collective. With one rank nothing travels.
import { native } from '../native';
import { Tensor, typeName } from '../tensor';
import * as group from './group';

function hostTensor(v: Float64Array | Uint8Array, dtype: 'float64' | 'uint8'): Tensor {
  return new Tensor(native.fromData(v, [v.length], dtype, 'cpu'), true);
}

/** The element-wise sum / mean / max of `values` over the ranks (float64 on the host). */
export function allReduceNumbers(values: readonly number[], op: group.ReduceOp = 'sum'): number[] {
  if (!Array.isArray(values) || values.some((v) => typeof v !== 'number'))
    throw new TypeError(`distributed.allReduceNumbers: expected an array of numbers, got ${typeName(values)}`);
  if (group.worldSize() === 1 || values.length === 0) return [...values];
  const t = hostTensor(Float64Array.from(values), 'float64');
  try {
    group.allReduce(t, op);
    return Array.from(t.dataSync() as Float64Array);
  } finally {
    t.dispose();
  }
}

function encode(value: unknown, op: string): Uint8Array {
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError(`distributed.${op}: expected a JSON-serializable value, got ${typeName(value)}`);
  return new Uint8Array(Buffer.from(json, 'utf8'));
}

const decode = (bytes: Uint8Array): unknown => JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8'));

/** Root's `value` on every rank (a JSON round trip: numbers, strings, arrays, plain objects). */
export function broadcastObject<T>(value: T, root = 0): T {
  const n = group.worldSize();
  if (n === 1) return value;
  const mine = group.rank() === root ? encode(value, 'broadcastObject') : new Uint8Array(0);
  const len = hostTensor(Float64Array.of(mine.length), 'float64');
  let bytes: Tensor | null = null;
  try {
    group.broadcast(len, root);
    const size = (len.dataSync() as Float64Array)[0];
    bytes = hostTensor(group.rank() === root ? mine : new Uint8Array(size), 'uint8');
    group.broadcast(bytes, root);
    return decode(bytes.dataSync() as Uint8Array) as T;
  } finally {
    len.dispose();
    bytes?.dispose();
  }
}

/** Every rank's `value`, in rank order (a JSON round trip). */
export function allGatherObject<T>(value: T): T[] {
  const n = group.worldSize();
  if (n === 1) return [JSON.parse(JSON.stringify(value)) as T];
  const mine = encode(value, 'allGatherObject');
  const lens = allReduceNumbers(Array.from({ length: n }, (_, r) => (r === group.rank() ? mine.length : 0)), 'sum');
  const max = Math.max(...lens);
  const padded = new Uint8Array(max);
  padded.set(mine);
  const t = hostTensor(padded, 'uint8');
  let all: Tensor | null = null;
  try {
    all = group.allGather(t); // [n, max]
    const flat = all.dataSync() as Uint8Array;
    return lens.map((len, r) => decode(flat.subarray(r * max, r * max + len)) as T);
  } finally {
    t.dispose();
    all?.dispose();
  }
}
