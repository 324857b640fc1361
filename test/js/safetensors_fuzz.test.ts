// Fuzzing the safetensors reader: thousands of seeded mutations of valid files
// (bit flips, truncations, length-field edits, structural JSON edits, inserted and
// deleted bytes). Every case must either throw a clean Error naming the file or load
// exactly what an independent minimal reading of the same bytes says it holds.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../../lib';
import { native } from '../../lib/native';

const TIME_BUDGET_MS = 20000;
const MAX_CASES = 8000;
const ST: Record<string, [string, number]> = {
  F32: ['float32', 4], F16: ['float16', 2], BF16: ['bfloat16', 2], F64: ['float64', 8],
  I32: ['int32', 4], I64: ['int64', 8], U8: ['uint8', 1], BOOL: ['bool', 1],
};

/** mulberry32: a small seeded PRNG. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Base files: tessera-written files of varied content plus the Python-written fixture. */
function baseFiles(dir: string): Buffer[] {
  const out: Buffer[] = [fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'safetensors_dtypes.safetensors'))];
  ts.manualSeed(9);
  const sets = ts.tidy((): Record<string, ts.Tensor>[] => [
    { w: ts.randn([3, 4]), b: ts.randn([4]).to('bfloat16'), m: ts.tensor([[true, false]]), z: ts.zeros([0]) },
    { only: ts.tensor(new BigInt64Array([1n, -2n, 3n])) },
    { h: ts.randn([2, 2, 2]).to('float16'), d: ts.randn([5]).to('float64'), i: ts.tensor(new Int32Array([9, 8])), u: ts.tensor(new Uint8Array([1, 2, 3])) },
    {},
  ]);
  sets.forEach((s, i) => {
    const f = path.join(dir, `base${i}.safetensors`);
    ts.saveSafetensors(f, s, i === 0 ? { a: 'x', b: 'y' } : undefined);
    out.push(fs.readFileSync(f));
    for (const t of Object.values(s)) t.dispose();
  });
  return out;
}

function headerOf(buf: Buffer): { n: number; json: any } | null {
  if (buf.length < 8) return null;
  const n = Number(buf.readBigUInt64LE(0));
  if (n > buf.length - 8) return null;
  try {
    return { n, json: JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) };
  } catch {
    return null;
  }
}

/** A structural edit of the JSON header; the length field is rewritten to match (or not). */
function mutateJson(buf: Buffer, r: () => number): Buffer {
  const h = headerOf(buf);
  if (!h || typeof h.json !== 'object' || h.json === null) return buf;
  const json = h.json;
  const keys = Object.keys(json).filter((k) => k !== '__metadata__');
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const k = keys.length ? pick(keys) : null;
  const e = k ? json[k] : null;
  const weird = [-1, 1.5, 2 ** 53, 1e300, '2', null, [], {}, true, 0, 7];
  switch (Math.floor(r() * 10)) {
    case 0: if (e) e.dtype = pick(['F32', 'F16', 'BF16', 'F64', 'I32', 'I64', 'U8', 'BOOL', 'I8', 'F33', '', 5, null]); break;
    case 1: if (e && Array.isArray(e.shape)) e.shape[Math.floor(r() * (e.shape.length + 1))] = pick(weird); break;
    case 2: if (e && Array.isArray(e.shape)) (r() < 0.5 ? e.shape.pop() : e.shape.push(pick([1, 2, 0]))); break;
    case 3: if (e) e.data_offsets = pick([[0, 0], [e.data_offsets?.[1], e.data_offsets?.[0]], [0], [0, 1, 2], 'x', null]); break;
    case 4: if (e && Array.isArray(e.data_offsets)) e.data_offsets[r() < 0.5 ? 0 : 1] += pick([-8, -4, -1, 1, 2, 4, 8]); break;
    case 5: if (k && keys.length > 1) json[k].data_offsets = json[pick(keys)].data_offsets; break;
    case 6: if (k) delete json[k]; break;
    case 7: json[`extra${Math.floor(r() * 9)}`] = { dtype: 'U8', shape: [1], data_offsets: [0, 1] }; break;
    case 8: json.__metadata__ = pick([{ a: 1 }, ['x'], 'str', null, { ok: 'fine' }, { n: { deep: 'x' } }]); break;
    default: return Buffer.concat([buf.subarray(0, 8), Buffer.from(JSON.stringify(pick([[1], 3, 'x', null]))), buf.subarray(8 + h.n)]);
  }
  let hb = Buffer.from(JSON.stringify(json));
  if (r() < 0.7) hb = Buffer.concat([hb, Buffer.alloc((8 - (hb.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  const off = r() < 0.9 ? 0 : Math.floor(r() * 16) - 8;
  len.writeBigUInt64LE(BigInt(Math.max(0, hb.length + off)));
  return Buffer.concat([len, hb, buf.subarray(8 + h.n)]);
}

function mutate(base: Buffer, r: () => number): Buffer {
  const buf = Buffer.from(base);
  const pos = (lo = 0, hi = buf.length): number => lo + Math.floor(r() * Math.max(1, hi - lo));
  const h = headerOf(buf);
  const dataStart = h ? 8 + h.n : 8;
  switch (Math.floor(r() * 9)) {
    case 0: return buf.subarray(0, pos(0, buf.length)); // truncate
    case 1: for (let i = 0, n = 1 + pos(0, 8); i < n && buf.length; i++) buf[pos()] ^= 1 << pos(0, 8); return buf; // bit flips anywhere
    case 2: if (dataStart > 8) buf[pos(8, dataStart)] = pos(0, 256); return buf; // a header byte
    case 3: { // the length field
      if (buf.length < 8) return buf;
      const n = h ? h.n : 0;
      buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(r() < 0.5 ? n + pos(0, 17) - 8 : Math.floor(r() * 2 ** 40)) * (r() < 0.1 ? 2n ** 23n : 1n)), 0);
      return buf;
    }
    case 4: return mutateJson(buf, r);
    case 5: return Buffer.concat([buf, Buffer.alloc(1 + pos(0, 12), pos(0, 256))]); // trailing bytes
    case 6: { const at = pos(dataStart, buf.length + 1); return Buffer.concat([buf.subarray(0, at), Buffer.from([1, 2, 3].slice(0, 1 + pos(0, 3))), buf.subarray(at)]); }
    case 7: { const at = pos(dataStart, buf.length); return Buffer.concat([buf.subarray(0, at), buf.subarray(at + 1 + pos(0, 4))]); }
    default: if (buf.length > dataStart) buf[pos(dataStart, buf.length)] ^= 0xff; return buf; // data only: must still load
  }
}

/** Checks a successful load against an independent minimal reading of the bytes. */
function verify(buf: Buffer, got: ts.Safetensors): void {
  const h = headerOf(buf);
  if (!h) throw new Error('loaded a file whose header does not even parse');
  const entries = Object.entries<any>(h.json).filter(([k]) => k !== '__metadata__');
  expect(Object.keys(got.tensors).sort()).toEqual(entries.map(([k]) => k).sort());
  expect({ ...got.metadata }).toEqual(h.json.__metadata__ ?? {});
  // The file must really be valid: the tensors tile the data section exactly.
  const spans = entries.map(([, e]) => e.data_offsets as [number, number]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let at = 0;
  for (const [b, e] of spans) {
    if (b !== at || e < b) throw new Error(`loaded a file whose tensors do not tile the data (span [${b}, ${e}) at ${at})`);
    at = e;
  }
  if (8 + h.n + at !== buf.length) throw new Error(`loaded a file with ${buf.length - 8 - h.n - at} bytes not covered by tensors`);
  for (const [k, e] of entries) {
    const t = got.tensors[k];
    const [dtype, size] = ST[e.dtype];
    expect([t.dtype, t.shape]).toEqual([dtype, e.shape]);
    const want = buf.subarray(8 + h.n + e.data_offsets[0], 8 + h.n + e.data_offsets[1]);
    expect(want.length).toBe(t.numel * size);
    const raw = Buffer.from(native.readRaw(t.h));
    const norm = e.dtype === 'BOOL' ? Buffer.from(want.map((b) => (b ? 1 : 0))) : want;
    if (!raw.equals(norm)) throw new Error(`tensor '${k}' bytes differ from the file`);
  }
}

test('mutated and truncated files give a clean error or a correct load', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-fuzz-'));
  const before = ts.memory().tensors;
  try {
    const bases = baseFiles(dir);
    const r = rng(20240611);
    const f = path.join(dir, 'case.safetensors');
    const start = Date.now();
    let cases = 0, errors = 0, loads = 0, slowest = 0;
    const messages = new Set<string>();
    while (cases < MAX_CASES && Date.now() - start < TIME_BUDGET_MS) {
      const base = bases[Math.floor(r() * bases.length)];
      let buf = mutate(base, r);
      if (r() < 0.2) buf = mutate(buf, r); // sometimes two mutations
      fs.writeFileSync(f, buf);
      cases++;
      const t0 = Date.now();
      let res: ts.Safetensors;
      try {
        res = ts.loadSafetensors(f);
      } catch (e) {
        if (!(e instanceof Error)) throw new Error(`case ${cases}: threw a non-Error: ${String(e)}`);
        if (!e.message.startsWith(`loadSafetensors: ${f}: `)) throw new Error(`case ${cases}: unclear error: ${e.message}`);
        messages.add(e.message.slice(f.length + 19).replace(/[\d'"[\]]+/g, '').slice(0, 30));
        errors++;
        continue;
      } finally {
        slowest = Math.max(slowest, Date.now() - t0);
      }
      try {
        verify(buf, res);
      } catch (e) {
        fs.copyFileSync(f, path.join(os.tmpdir(), 'tessera-fuzz-failure.safetensors'));
        throw new Error(`case ${cases}: wrong load (kept as tessera-fuzz-failure.safetensors): ${(e as Error).message}`);
      } finally {
        for (const t of Object.values(res.tensors)) t.dispose();
      }
      loads++;
    }
    console.log(`safetensors fuzz: ${cases} cases in ${Date.now() - start} ms: ${errors} clean errors (${messages.size} kinds), ${loads} correct loads, slowest ${slowest} ms`);
    expect(cases).toBeGreaterThanOrEqual(1000);
    expect(errors).toBeGreaterThan(cases / 4);
    expect(loads).toBeGreaterThan(cases / 20);
    expect(slowest).toBeLessThan(2000);
    expect(ts.memory().tensors).toBe(before);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 60000);
