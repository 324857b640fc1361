// safetensors: exact format, every dtype, interop with a spec-only Python
// reader/writer (test/fixtures/safetensors_spec.py), validation errors, atomic writes.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../../lib';
import { native } from '../../lib/native';

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const PYTHON = '/usr/bin/python3';
let dir: string;
beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-st-'))));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = (name: string): string => path.join(dir, name);

/** Values as the Python side encodes them: exact floats (nan/inf as strings), int64 as strings. */
function encode(t: ts.Tensor): (number | string)[] {
  return Array.from(t.dataSync() as ArrayLike<number | bigint>, (v) => {
    if (typeof v === 'bigint') return v.toString();
    if (Number.isNaN(v)) return 'nan';
    if (v === Infinity) return 'inf';
    if (v === -Infinity) return '-inf';
    return v;
  });
}
const ST_NAMES: Record<string, string> = {
  float32: 'F32', float16: 'F16', bfloat16: 'BF16', float64: 'F64', int32: 'I32', int64: 'I64', uint8: 'U8', bool: 'BOOL',
};

/** One tensor of every dtype, with awkward values, a 0-d and an empty tensor, and a strided view. */
function sampleTensors(): Record<string, ts.Tensor> {
  ts.manualSeed(3);
  const f = ts.randn([3, 5]).mul(100);
  return {
    f32: f,
    f32_t: f.transpose(0, 1), // non-contiguous: must be written in C order
    f16: f.to('float16'),
    bf16: f.to('bfloat16'),
    f64: ts.tensor(new Float64Array([Math.PI, -1e300, 5e-324, -0, NaN]), { dtype: 'float64' }),
    i32: ts.tensor(new Int32Array([-(2 ** 31), 2 ** 31 - 1, 0, 7])),
    i64: ts.tensor(new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 2n ** 53n + 1n]), { shape: [3, 1] }),
    u8: ts.tensor(Uint8Array.from({ length: 256 }, (_, i) => i), { shape: [4, 64] }),
    bool: ts.tensor([[true, false, true], [false, false, true]]),
    scalar: ts.tensor(2.5),
    empty: ts.zeros([0, 4]),
  };
}

function expectSameTensors(got: Record<string, ts.Tensor>, want: Record<string, ts.Tensor>): void {
  expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
  for (const [k, w] of Object.entries(want)) {
    expect([k, got[k].dtype, got[k].shape]).toEqual([k, w.dtype, w.shape]);
    expect(Buffer.from(native.readRaw(got[k].h)).equals(Buffer.from(native.readRaw(w.h)))).toBe(true);
  }
}

describe('round trip', () => {
  test('every dtype, bit-exact, with metadata; the layout follows the spec', () =>
    ts.tidy(() => {
      const t = sampleTensors();
      ts.saveSafetensors(file('all.safetensors'), t, { format: 'pt', note: 'ünïcode ☃' });
      const r = ts.loadSafetensors(file('all.safetensors'));
      expectSameTensors(r.tensors, t);
      expect({ ...r.metadata }).toEqual({ format: 'pt', note: 'ünïcode ☃' });
      expect(r.tensors.f32_t.toArray()).toEqual(t.f32.transpose(0, 1).contiguous().toArray());
      // Layout: header length is a multiple of 8 and space padded; data aligned and contiguous.
      const buf = fs.readFileSync(file('all.safetensors'));
      const n = Number(buf.readBigUInt64LE(0));
      expect(n % 8).toBe(0);
      const text = buf.subarray(8, 8 + n).toString('utf8');
      expect(text.trimEnd().endsWith('}')).toBe(true);
      expect(/^[^ ]*\s*$/.test(text.slice(text.lastIndexOf('}')))).toBe(true);
      const header = JSON.parse(text);
      const entries = Object.entries<any>(header).filter(([k]) => k !== '__metadata__');
      entries.sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
      let at = 0;
      for (const [k, e] of entries) {
        expect(e.dtype).toBe(ST_NAMES[t[k].dtype]);
        expect(e.data_offsets[0]).toBe(at);
        expect(e.data_offsets[0] % ({ F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2 } as any)[e.dtype] || 0).toBe(0);
        at = e.data_offsets[1];
      }
      expect(8 + n + at).toBe(buf.length);
      expect(ts.readSafetensorsHeader(file('all.safetensors')).tensors.i64).toEqual({ dtype: 'int64', shape: [3, 1], dataOffsets: expect.any(Array) });
    }));

  test('no metadata means no __metadata__ entry; an empty dict of tensors is valid', () => {
    ts.saveSafetensors(file('none.safetensors'), {});
    const buf = fs.readFileSync(file('none.safetensors'));
    expect(buf.subarray(8).toString().trim()).toBe('{}');
    expect(Object.keys(ts.loadSafetensors(file('none.safetensors')).tensors)).toEqual([]);
  });

  test('large tensors are written and read in pieces with the same bytes', () =>
    ts.tidy(() => {
      const t = sampleTensors();
      ts.saveSafetensors(file('chunked.safetensors'), t, undefined, { chunkBytes: 24 });
      ts.saveSafetensors(file('whole.safetensors'), t);
      expect(fs.readFileSync(file('chunked.safetensors')).equals(fs.readFileSync(file('whole.safetensors')))).toBe(true);
      expectSameTensors(ts.loadSafetensors(file('whole.safetensors'), { chunkBytes: 16 }).tensors, t);
    }));

  test('reading in pieces bounds the extra native memory to one piece', () => {
    const big = ts.randn([2 * 1024 * 1024]); // 8 MiB
    ts.saveSafetensors(file('big.safetensors'), { big });
    const before = ts.memory().bytes.cpu;
    ts.resetPeakMemory();
    const r = ts.loadSafetensors(file('big.safetensors'), { chunkBytes: 1 << 20 });
    expect(ts.memory().peakBytes - before).toBeLessThanOrEqual(8 * 1024 * 1024 + (2 << 20));
    expect(Buffer.from(native.readRaw(r.tensors.big.h)).equals(Buffer.from(native.readRaw(big.h)))).toBe(true);
    r.tensors.big.dispose();
    big.dispose();
  });

  test('saving replaces a file atomically and leaves no temp files', () => {
    ts.tidy(() => ts.saveSafetensors(file('atomic.safetensors'), { a: ts.ones([3]) }));
    ts.tidy(() => ts.saveSafetensors(file('atomic.safetensors'), { b: ts.zeros([2]) }));
    expect(Object.keys(ts.loadSafetensors(file('atomic.safetensors')).tensors)).toEqual(['b']);
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect(() => ts.tidy(() => ts.saveSafetensors(path.join(dir, 'no-such-dir', 'x.safetensors'), { a: ts.ones([1]) }))).toThrow(
      /saveSafetensors: .*no-such-dir.*ENOENT/,
    );
  });

  test('argument errors are clear', () =>
    ts.tidy(() => {
      const ok = ts.ones([2]);
      expect(() => ts.saveSafetensors(file('x'), { a: [1, 2] as any })).toThrow("saveSafetensors: expected 'a' to be a Tensor, got array");
      expect(() => ts.saveSafetensors(file('x'), { __metadata__: ok })).toThrow("'__metadata__' is reserved");
      expect(() => ts.saveSafetensors(file('x'), { a: ok }, { n: 3 as any })).toThrow("metadata value of 'n' must be a string, got number");
      const gone = ts.ones([1]);
      gone.dispose();
      expect(() => ts.saveSafetensors(file('x'), { gone })).toThrow("'gone' is a disposed tensor");
      expect(() => ts.loadSafetensors(file('missing.safetensors'))).toThrow(/loadSafetensors: cannot open .*missing\.safetensors/);
    }));
});

describe('interop with the spec-only Python reader and writer', () => {
  test('a Python-written file of every dtype (unaligned offsets) loads with the right values', () => {
    const want = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'safetensors_dtypes.json'), 'utf8'));
    const r = ts.loadSafetensors(path.join(FIXTURES, 'safetensors_dtypes.safetensors'));
    expect({ ...r.metadata }).toEqual(want.metadata);
    expect(Object.keys(r.tensors).sort()).toEqual(Object.keys(want.tensors).sort());
    for (const [k, w] of Object.entries<any>(want.tensors)) {
      const t = r.tensors[k];
      expect([k, ST_NAMES[t.dtype], t.shape]).toEqual([k, w.dtype, w.shape]);
      const got = encode(t);
      got.forEach((v, i) => {
        if (!Object.is(v, w.values[i])) throw new Error(`${k}[${i}]: got ${String(v)}, want ${String(w.values[i])}`);
      });
      expect(got.length).toBe(w.values.length);
      t.dispose();
    }
  });

  const torchOk = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  if (!torchOk) console.warn(`skipping the Python read-back test: ${PYTHON} cannot import torch (CI installs python3-torch)`);
  (torchOk ? test : test.skip)('files tessera writes read back in Python with the same values', () =>
    ts.tidy(() => {
      const t = sampleTensors();
      ts.saveSafetensors(file('for_python.safetensors'), t, { producer: 'tessera', snow: '☃' });
      const r = spawnSync(PYTHON, [path.join(FIXTURES, 'safetensors_spec.py'), file('for_python.safetensors')], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`python reader failed: ${r.stderr}`);
      const got = JSON.parse(r.stdout);
      expect(got.metadata).toEqual({ producer: 'tessera', snow: '☃' });
      for (const [k, v] of Object.entries(t)) {
        const g = got.tensors[k];
        expect([k, g.dtype, g.shape]).toEqual([k, ST_NAMES[v.dtype], v.shape]);
        const want = encode(v.contiguous());
        g.values.forEach((x: number | string, i: number) => {
          if (!Object.is(x, want[i])) throw new Error(`${k}[${i}]: python read ${String(x)}, tessera wrote ${String(want[i])}`);
        });
      }
    }), 60000);
});

describe('validation of malformed files', () => {
  const F32 = (n: number): Buffer => Buffer.alloc(4 * n, 1);
  /** A file from a header (object or raw string), data bytes, and an optional header-length override. */
  function write(name: string, header: unknown, data: Buffer, lenOverride?: bigint): string {
    let h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
    h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(lenOverride ?? BigInt(h.length));
    fs.writeFileSync(file(name), Buffer.concat([len, h, data]));
    return file(name);
  }
  const t = (dtype: string, shape: unknown, offs: unknown): unknown => ({ dtype, shape, data_offsets: offs });
  const cases: [string, () => string, RegExp][] = [
    ['too short', () => (fs.writeFileSync(file('short'), Buffer.alloc(5)), file('short')), /has 5 bytes, too few for the 8-byte header length/],
    ['header over 100 MB', () => write('huge', {}, Buffer.alloc(0), 100_000_001n), /header length 100000001 exceeds the limit of 100000000 bytes/],
    ['header beyond the file', () => write('beyond', {}, Buffer.alloc(0), 4096n), /header length 4096 reaches beyond the end of the file/],
    ['bad JSON', () => write('badjson', '{"a": {"dtype": "F32",', Buffer.alloc(0)), /the header is not valid JSON/],
    ['not an object', () => write('array', '[1, 2]', Buffer.alloc(0)), /must be a JSON object starting with '\{'/],
    ['invalid UTF-8', () => write('utf8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString('latin1'), Buffer.alloc(0)), /not valid UTF-8|not valid JSON/],
    ['unknown dtype', () => write('dtype', { a: t('F33', [2], [0, 8]) }, F32(2)), /tensor 'a': unknown dtype "F33"/],
    ['unsupported dtype', () => write('i8', { a: t('I8', [2], [0, 2]) }, Buffer.alloc(2)), /tensor 'a': dtype I8 is not supported by tessera/],
    ['negative dim', () => write('neg', { a: t('F32', [-2], [0, 8]) }, F32(2)), /tensor 'a': expected a shape of non-negative integers, got \[-2\]/],
    ['fractional offset', () => write('frac', { a: t('F32', [2], [0, 7.5]) }, F32(2)), /expected data_offsets \[begin, end\] of non-negative integers/],
    ['offsets reversed', () => write('rev', { a: t('F32', [0], [8, 0]) }, F32(2)), /data_offsets \[8, 0\] end before they begin/],
    ['offsets out of range', () => write('range', { a: t('F32', [4], [0, 16]) }, F32(2)), /data_offsets \[0, 16\] are out of range \(the data section has 8 bytes\)/],
    ['size mismatch', () => write('size', { a: t('F32', [2, 3], [0, 20]) }, F32(5)), /shape \[2, 3\] of F32 needs 24 bytes, data_offsets \[0, 20\] hold 20/],
    ['overlap', () => write('overlap', { a: t('F32', [2], [0, 8]), b: t('F32', [2], [4, 12]) }, F32(3)), /tensors 'a' and 'b' overlap/],
    ['gap', () => write('gap', { a: t('F32', [1], [0, 4]), b: t('F32', [1], [8, 12]) }, F32(3)), /data bytes \[4, 8\) belong to no tensor/],
    ['trailing bytes', () => write('trail', { a: t('F32', [2], [0, 8]) }, F32(3)), /4 trailing bytes after the last tensor's data/],
    ['metadata not strings', () => write('meta', { __metadata__: { k: 3 } }, Buffer.alloc(0)), /__metadata__ value of 'k' must be a string, got number/],
    ['metadata not an object', () => write('meta2', { __metadata__: ['x'] }, Buffer.alloc(0)), /__metadata__ must be an object of strings, got array/],
    ['entry not an object', () => write('entry', { a: 5 }, Buffer.alloc(0)), /tensor 'a': expected \{dtype, shape, data_offsets\}, got number/],
    ['rank over 16', () => write('rank', { a: t('F32', Array(17).fill(1), [0, 4]) }, F32(1)), /rank 17 exceeds tessera's limit of 16/],
  ];
  test.each(cases)('%s', (_name, make, msg) => {
    const f = make();
    expect(() => ts.loadSafetensors(f)).toThrow(msg);
    expect(() => ts.loadSafetensors(f)).toThrow(`loadSafetensors: ${f}: `);
  });

  test('the shape product is checked exactly even when it overflows a double', () => {
    const f = write('overflow', { a: t('F32', [2 ** 40, 2 ** 40, 0, 2 ** 40], [0, 0]), b: t('U8', [2 ** 52, 2 ** 52], [0, 4]) }, Buffer.alloc(4));
    expect(() => ts.loadSafetensors(f)).toThrow(/tensor 'b': shape \[4503599627370496, 4503599627370496\] of U8 needs 20282409603651670423947251286016 bytes/);
  });

  test('a zero-size tensor may sit at the end or between others; a tensor may be named __proto__', () => {
    const f = write('zero', { z: t('F32', [0, 3], [8, 8]), __proto__x: t('F32', [2], [0, 8]) }, F32(2));
    expect(Object.keys(ts.loadSafetensors(f).tensors).sort()).toEqual(['__proto__x', 'z']);
    const g = write('proto', '{"__proto__": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}', Buffer.from([1, 2]));
    expect(ts.loadSafetensors(g).tensors.__proto__.toArray()).toEqual([1, 2]);
  });
});

test('loadSafetensors takes regular files only: a FIFO or a directory is refused at once, never waited on', () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-fifo-'));
  try {
    const fifo = path.join(d, 'pipe.safetensors');
    spawnSync('mkfifo', [fifo]);
    expect(fs.statSync(fifo).isFIFO()).toBe(true);
    expect(() => ts.loadSafetensors(fifo)).toThrow(`loadSafetensors: ${fifo} is not a regular file (a FIFO)`);
    expect(() => ts.readSafetensorsHeader(d)).toThrow(`readSafetensorsHeader: ${d} is not a regular file (a directory)`);
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
});
