// Weight-only 8-bit storage, for models shipped with the package: every float matrix
// (rank >= 2, at least minSize elements) is stored as uint8 codes u = q + 128 with
// q = round(w / s) in [-127, 127] and one float32 scale s = max|w| / 127 per output row
// (dim 0), under `<name>` and `<name>.q8_scale`; everything else stays as it is.
// Loading restores float32 tensors (w = (u - 128) s): the error is at most s / 2 per
// weight, about 0.4% of the largest weight of its row.
import { tensor } from '../creation';
import { Tensor, typeName } from '../tensor';

export const Q8_SUFFIX = '.q8_scale';

/** Quantizes the large float matrices of a state dict (new tensors; the input is untouched). */
export function quantizeStateDict(sd: Record<string, Tensor>, opts: { minSize?: number } = {}): Record<string, Tensor> {
  const op = 'quantizeStateDict';
  if (sd === null || typeof sd !== 'object') throw new TypeError(`${op}: expected an object of name -> Tensor, got ${typeName(sd)}`);
  const minSize = opts.minSize ?? 4096;
  const out: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(sd)) {
    if (!(t instanceof Tensor)) throw new TypeError(`${op}: '${name}' is not a Tensor (${typeName(t)})`);
    if (name.endsWith(Q8_SUFFIX)) throw new Error(`${op}: the name '${name}' ends with the reserved suffix '${Q8_SUFFIX}'`);
    const floating = t.dtype === 'float32' || t.dtype === 'float16' || t.dtype === 'bfloat16' || t.dtype === 'float64';
    if (!floating || t.rank < 2 || t.numel < minSize) {
      out[name] = t.clone();
      continue;
    }
    const w = t.to('float32').toFloat32Array();
    const rows = t.shape[0], cols = w.length / rows;
    const codes = new Uint8Array(w.length), scales = new Float32Array(rows);
    for (let r = 0; r < rows; r++) {
      let m = 0;
      for (let k = r * cols; k < (r + 1) * cols; k++) m = Math.max(m, Math.abs(w[k]));
      if (!Number.isFinite(m)) throw new Error(`${op}: '${name}' row ${r} holds a non-finite value`);
      const s = m > 0 ? m / 127 : 1;
      scales[r] = s;
      for (let k = r * cols; k < (r + 1) * cols; k++) codes[k] = Math.round(w[k] / s) + 128;
    }
    out[name] = tensor(codes, { shape: [...t.shape], dtype: 'uint8' });
    out[name + Q8_SUFFIX] = tensor(scales, { shape: [rows] });
  }
  return out;
}

/** The float32 state dict of a quantized one (tensors without a scale pass through as clones). */
export function dequantizeStateDict(q: Record<string, Tensor>): Record<string, Tensor> {
  const op = 'dequantizeStateDict';
  const out: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(q)) {
    if (name.endsWith(Q8_SUFFIX)) {
      if (!(name.slice(0, -Q8_SUFFIX.length) in q)) throw new Error(`${op}: scale '${name}' has no weight '${name.slice(0, -Q8_SUFFIX.length)}'`);
      continue;
    }
    const scale = q[name + Q8_SUFFIX];
    if (!scale) {
      out[name] = t.clone();
      continue;
    }
    if (t.dtype !== 'uint8' || scale.rank !== 1 || scale.shape[0] !== t.shape[0])
      throw new Error(`${op}: expected '${name}' as uint8 codes [${t.shape[0]}, ...] with ${t.shape[0]} scales, got ${t.dtype} [${t.shape.join(', ')}] and [${scale.shape.join(', ')}]`);
    const codes = t.dataSync() as Uint8Array, s = scale.toFloat32Array();
    const rows = t.shape[0], cols = codes.length / rows;
    const w = new Float32Array(codes.length);
    for (let r = 0; r < rows; r++) for (let k = r * cols; k < (r + 1) * cols; k++) w[k] = (codes[k] - 128) * s[r];
    out[name] = tensor(w, { shape: [...t.shape] });
  }
  return out;
}
