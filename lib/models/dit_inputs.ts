// The DiT's boundary: loose inputs (numbers, label arrays, prompts, per-frame timestep
// lists) become tensors here, once per forward, on the model's device. Everything past
// this file sees tensors only. Values given as JS numbers are checked on the host;
// tensors are checked by shape and dtype only, so nothing is read back from a device
// (ids out of range fail in the embedding on host-memory devices, and give zero rows on
// CUDA rather than a host sync per step).
//   S: samples, T: latent frames, T': token frames (T / pt), R: conditioning rows
//   (S, or sum of T'_s with per-frame timesteps), L: text tokens per prompt, Dt: text width.
import { tensor } from '../creation';
import { cat, live } from '../ops/basic';
import { Device, Tensor } from '../tensor';
import { shapeStr, typeName } from '../checks';
import type { Grid } from './patchifier';
import { maskedTokenMean, maskValues, TextEncoder, TextEncoding } from './text';

const op = 'DiT.forward';

/** Timesteps of a forward: one number, [S] (per sample), or per latent frame ([S, T] arrays or tensor; one [T_s] tensor per sample when packed). */
export type Timesteps = Tensor | number | number[] | number[][] | Tensor[];

function onDevice(t: Tensor, device: Device, what: string): Tensor {
  if (t.device !== device) throw new Error(`${op}: expected ${what} on the model's device ${device}, got ${t.device} (move it with .to('${device}'))`);
  return t;
}

/** One timestep per sample: t [S] float32 on device. */
export function sampleTimesteps(t: unknown, S: number, device: Device): Tensor {
  if (typeof t === 'number') {
    if (!Number.isFinite(t)) throw new TypeError(`${op}: expected a finite timestep, got ${t}`);
    return tensor(new Float32Array(S).fill(t), { shape: [S], device });
  }
  if (Array.isArray(t)) {
    if (t.length !== S || !t.every((v) => typeof v === 'number' && Number.isFinite(v)))
      throw new TypeError(`${op}: expected ${S} finite timesteps (one per sample), got [${t.map(String).join(', ')}]`);
    return tensor(Float32Array.from(t as number[]), { shape: [S], device });
  }
  const tt = onDevice(live(t, op, 't'), device, 't');
  if (tt.rank !== 1 || tt.shape[0] !== S) throw new Error(`${op}: expected timesteps t [${S}] (one per sample), got ${shapeStr(tt.shape)}`);
  return tt.dtype === 'float32' ? tt : tt.to('float32');
}

/**
 * Per-frame timesteps -> one per (sample, token frame) in sample-major order, t [R], with
 * the sample of each row, or null when t is per sample. Accepted: arrays (S arrays of
 * each sample's T latent frames, or T' token frames; checked: with a temporal patch
 * pt > 1 the frames of one patch must share their timestep), a tensor [S, T] (a batch of
 * one grid), or S tensors [T_s] (packed samples). For tensors, nothing is read back: each
 * token frame takes the timestep of its patch's first latent frame.
 */
export function frameTimesteps(t: unknown, grids: Grid[], pt: number, device: Device): { t: Tensor; sampleOfRow: Tensor } | null {
  const S = grids.length;
  const owner: number[] = [];
  grids.forEach(([Tp], s) => owner.push(...new Array<number>(Tp).fill(s)));
  const sampleOfRow = (): Tensor => tensor(Int32Array.from(owner), { dtype: 'int32', device });
  const tokenFrames = (row: Tensor, s: number): Tensor => {
    const Tp = grids[s][0];
    const n = row.shape[row.rank - 1];
    if (n !== Tp && n !== Tp * pt) throw new Error(`${op}: sample ${s}: expected ${Tp * pt} per-frame timesteps (one per latent frame), got ${n}`);
    return n === Tp ? row : row.slice(row.rank - 1, 0, n, pt); // the first latent frame of each patch
  };
  if (t instanceof Tensor) {
    const tt = onDevice(live(t, op, 't'), device, 't');
    if (tt.rank !== 2) return null;
    if (tt.shape[0] !== S) throw new Error(`${op}: expected per-frame timesteps t [${S}, T] (one row per sample), got ${shapeStr(tt.shape)}`);
    if (grids.some((g) => g[0] !== grids[0][0])) throw new Error(`${op}: per-frame timesteps as one tensor [S, T] need samples of one frame count; pass one tensor per sample`);
    const f = tt.dtype === 'float32' ? tt : tt.to('float32');
    return { t: tokenFrames(f, 0).contiguous().reshape([-1]), sampleOfRow: sampleOfRow() }; // [S * T']
  }
  if (Array.isArray(t) && t.length && t.every((r) => r instanceof Tensor)) {
    if (t.length !== S) throw new TypeError(`${op}: expected per-frame timesteps as ${S} tensors (one per sample), got ${t.length}`);
    const rows = (t as Tensor[]).map((r, s) => {
      const rr = onDevice(live(r, op, `t[${s}]`), device, `t[${s}]`);
      if (rr.rank !== 1) throw new Error(`${op}: sample ${s}: expected per-frame timesteps [T], got ${shapeStr(rr.shape)}`);
      return tokenFrames(rr.dtype === 'float32' ? rr : rr.to('float32'), s);
    });
    return { t: rows.length === 1 ? rows[0].contiguous() : cat(rows, 0), sampleOfRow: sampleOfRow() };
  }
  if (!(Array.isArray(t) && t.some((r) => Array.isArray(r)))) return null;
  if (t.length !== S || !t.every((r) => Array.isArray(r)))
    throw new TypeError(`${op}: expected per-frame timesteps as ${S} arrays (one per sample), got ${t.length} entries`);
  const flat: number[] = [];
  (t as number[][]).forEach((r, s) => {
    const Tp = grids[s][0];
    if (!r.every((v) => typeof v === 'number' && Number.isFinite(v))) throw new TypeError(`${op}: sample ${s}: per-frame timesteps must be finite numbers`);
    if (r.length !== Tp && r.length !== Tp * pt)
      throw new Error(`${op}: sample ${s}: expected ${Tp * pt} per-frame timesteps (one per latent frame), got ${r.length}`);
    const step = r.length === Tp ? 1 : pt;
    for (let k = 0; k < Tp; k++) {
      const group = r.slice(k * step, (k + 1) * step);
      if (group.some((v) => v !== group[0]))
        throw new Error(`${op}: sample ${s}: latent frames ${k * step}..${(k + 1) * step - 1} form one temporal patch (pt = ${pt}) and need one timestep, got [${group.join(', ')}]`);
      flat.push(group[0]);
    }
  });
  return { t: tensor(Float32Array.from(flat), { shape: [flat.length], device }), sampleOfRow: sampleOfRow() };
}

/** Class labels -> int32 [S] on device: numbers checked on the host, a tensor by dtype and shape. */
export function labelIds(v: unknown, S: number, numClasses: number, device: Device): Tensor {
  const K = numClasses;
  if (v instanceof Tensor) {
    const l = onDevice(live(v, op, 'labels'), device, 'labels');
    if (l.dtype !== 'int32' && l.dtype !== 'int64') throw new TypeError(`${op}: expected labels of dtype int32 or int64, got ${l.dtype}`);
    if (l.rank !== 1 || l.shape[0] !== S) throw new Error(`${op}: expected labels [${S}], got ${shapeStr(l.shape)}`);
    return l;
  }
  if (!Array.isArray(v)) throw new TypeError(`${op}: condition 'class' expects labels (an int32 tensor [${S}] or numbers), got ${typeName(v)}`);
  if (v.length !== S) throw new Error(`${op}: expected ${S} labels (one per sample), got ${v.length}`);
  const bad = v.find((x) => !Number.isInteger(x) || x < 0 || x > K);
  if (bad !== undefined) throw new RangeError(`${op}: labels must be integers in [0, ${K}] (${K} = null class), got ${bad}`);
  return tensor(Int32Array.from(v as number[]), { dtype: 'int32', device });
}

/** Text inputs -> { tokens [S, L, Dt], mask [S, L], pooled [S, Dt] } on device. */
export function textInputs(cond: unknown, S: number, textDim: number, encoder: TextEncoder | null, device: Device): TextEncoding {
  const o = cond as Record<string, unknown>;
  const want = `condition 'text' expects { prompts }, { ids, mask }, { tokens, mask, pooled } or { textEmbeddings, mask }`;
  if (o === null || typeof o !== 'object' || o instanceof Tensor || Array.isArray(o)) throw new TypeError(`${op}: ${want}, got ${typeName(cond)}`);
  const needEncoder = (): TextEncoder => {
    if (!encoder) throw new Error(`${op}: this model has no text encoder (config.text); pass { textEmbeddings, mask } instead`);
    return encoder;
  };
  let enc: TextEncoding;
  if ('prompts' in o) {
    const ps = o.prompts;
    if (!Array.isArray(ps) || ps.length !== S) throw new Error(`${op}: expected ${S} prompts (one per sample), got ${Array.isArray(ps) ? ps.length : typeName(ps)}`);
    enc = needEncoder().encode(ps as string[]);
  } else if ('ids' in o) {
    enc = needEncoder().forward(onDevice(live(o.ids, op, 'ids'), device, 'ids'), onDevice(live(o.mask, op, 'mask'), device, 'mask'));
  } else if ('textEmbeddings' in o || 'tokens' in o) {
    const e = onDevice(live(o.textEmbeddings ?? o.tokens, op, 'textEmbeddings'), device, 'textEmbeddings');
    if (e.rank !== 3 || e.shape[2] !== textDim) throw new Error(`${op}: expected textEmbeddings [S, L, ${textDim}], got ${shapeStr(e.shape)}`);
    const [B, L] = e.shape;
    let maskHost = o.maskHost instanceof Float32Array ? o.maskHost : undefined;
    let mask: Tensor;
    if (o.mask === undefined) {
      maskHost = new Float32Array(B * L).fill(1);
      mask = tensor(maskHost, { shape: [B, L], device });
    } else mask = onDevice(live(o.mask, op, 'mask'), device, 'mask');
    maskHost = maskValues(mask, B, L, op, maskHost); // checks the shape, naming this method
    const pooled = o.pooled instanceof Tensor ? onDevice(o.pooled, device, 'pooled') : maskedTokenMean(e, mask, maskHost);
    enc = { tokens: e, mask, pooled, maskHost };
  } else {
    throw new TypeError(`${op}: ${want}, got an object with keys [${Object.keys(o).join(', ')}]`);
  }
  if (enc.tokens.shape[0] !== S) throw new Error(`${op}: expected text for ${S} samples, got ${enc.tokens.shape[0]}`);
  return enc;
}
