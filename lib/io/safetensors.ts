// safetensors (https://github.com/huggingface/safetensors): the weights format of
// the PyTorch world. Layout of a file:
//   [8 bytes: N, little-endian u64] [N bytes: JSON header, padded with spaces]
//   [data: every tensor's bytes, C order, little-endian, back to back]
// The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]}
// (byte offsets into the data) plus an optional "__metadata__" map of strings.
// Reading validates everything before allocating, then reads each tensor's bytes
// straight from the file (never the whole file at once); writing is atomic.
import * as fs from 'fs';
import { native } from '../native';
import { DType, Device, Tensor, typeName } from '../tensor';
import { readExactly, writeAll, writeFileAtomic } from './atomic';

/** safetensors dtype names tessera reads and writes, with their tessera dtypes. */
const FROM_ST: Readonly<Record<string, DType>> = {
  F32: 'float32', F16: 'float16', BF16: 'bfloat16', F64: 'float64', I32: 'int32', I64: 'int64', U8: 'uint8', BOOL: 'bool',
};
const TO_ST: Readonly<Record<DType, string>> = {
  float32: 'F32', float16: 'F16', bfloat16: 'BF16', float64: 'F64', int32: 'I32', int64: 'I64', uint8: 'U8', bool: 'BOOL',
};
const ITEMSIZE: Readonly<Record<DType, number>> = {
  float32: 4, float16: 2, bfloat16: 2, float64: 8, int32: 4, int64: 8, uint8: 1, bool: 1,
};
// Valid in the format but without a tessera dtype: named so the error says so.
const OTHER_ST = new Set(['I8', 'I16', 'U16', 'U32', 'U64', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2', 'C64']);

/** The format's limit on the JSON header (the reference implementation's). */
export const MAX_HEADER_BYTES = 100_000_000;
const MAX_RANK = 16;
/** Tensors larger than this are read and written in pieces of this size. */
const DEFAULT_CHUNK_BYTES = 64 << 20;

export interface SafetensorsEntry {
  dtype: DType;
  shape: number[];
  /** Byte offsets into the data section (after the header). */
  dataOffsets: [number, number];
}
export interface SafetensorsHeader {
  tensors: Record<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** File offset of the data section: 8 + header length. */
  dataStart: number;
  fileSize: number;
}
export interface Safetensors {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
const offsetsStr = (o: readonly number[]): string => `[${o.join(', ')}]`;
/** An empty record without a prototype, so a tensor may be named '__proto__'. */
const dict = <T>(): Record<string, T> => Object.create(null) as Record<string, T>;

/** Validates the header bytes of a file of `fileSize` bytes whose header is `headerLen` long. */
function parseHeader(bytes: Uint8Array, headerLen: number, fileSize: number): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new Error('the header is not valid UTF-8');
  }
  if (!text.startsWith('{')) throw new Error(`the header must be a JSON object starting with '{', got ${JSON.stringify(text.slice(0, 16))}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`the header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(json)) throw new Error(`the header must be a JSON object, got ${typeName(json)}`);
  const dataStart = 8 + headerLen;
  const dataLen = fileSize - dataStart;
  const metadata = dict<string>();
  const tensors = dict<SafetensorsEntry>();
  for (const [name, info] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isPlainObject(info)) throw new Error(`__metadata__ must be an object of strings, got ${typeName(info)}`);
      for (const [k, v] of Object.entries(info)) {
        if (typeof v !== 'string') throw new Error(`__metadata__ value of '${k}' must be a string, got ${typeName(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    const what = `tensor '${name}'`;
    if (!isPlainObject(info)) throw new Error(`${what}: expected {dtype, shape, data_offsets}, got ${typeName(info)}`);
    const { dtype: st, shape, data_offsets: offs } = info;
    if (typeof st !== 'string') throw new Error(`${what}: expected a dtype string, got ${typeName(st)}`);
    const dtype = FROM_ST[st];
    if (dtype === undefined) {
      if (OTHER_ST.has(st)) throw new Error(`${what}: dtype ${st} is not supported by tessera (supported: ${Object.keys(FROM_ST).join(', ')})`);
      throw new Error(`${what}: unknown dtype ${JSON.stringify(st)} (expected one of ${Object.keys(FROM_ST).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && s >= 0))
      throw new Error(`${what}: expected a shape of non-negative integers, got ${JSON.stringify(shape)}`);
    if (shape.length > MAX_RANK) throw new Error(`${what}: rank ${shape.length} exceeds tessera's limit of ${MAX_RANK} dimensions`);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0))
      throw new Error(`${what}: expected data_offsets [begin, end] of non-negative integers, got ${JSON.stringify(offs)}`);
    const [begin, end] = offs as number[];
    if (begin > end) throw new Error(`${what}: data_offsets ${offsetsStr(offs)} end before they begin`);
    if (end > dataLen)
      throw new Error(`${what}: data_offsets ${offsetsStr(offs)} are out of range (the data section has ${dataLen} bytes)`);
    const need = (shape as number[]).reduce((a, s) => a * BigInt(s), 1n) * BigInt(ITEMSIZE[dtype]);
    if (need !== BigInt(end - begin))
      throw new Error(`${what}: shape [${shape.join(', ')}] of ${st} needs ${need} bytes, data_offsets ${offsetsStr(offs)} hold ${end - begin}`);
    tensors[name] = { dtype, shape: shape as number[], dataOffsets: [begin, end] };
  }
  // The tensors must tile the data section exactly: sorted by offsets, each begins
  // where the previous ended, and the last ends at the end of the file.
  const order = Object.entries(tensors).sort(([, a], [, b]) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let at = 0;
  let prev = '';
  for (const [name, e] of order) {
    const [b] = e.dataOffsets;
    if (b < at)
      throw new Error(`tensors '${prev}' and '${name}' overlap (data_offsets ${offsetsStr(tensors[prev].dataOffsets)} and ${offsetsStr(e.dataOffsets)})`);
    if (b > at) throw new Error(`data bytes [${at}, ${b}) belong to no tensor (the tensors are not contiguous before '${name}')`);
    at = e.dataOffsets[1];
    prev = name;
  }
  if (at !== dataLen) throw new Error(`${dataLen - at} trailing bytes after the last tensor's data (the data section has ${dataLen} bytes, the tensors cover ${at})`);
  return { tensors, metadata, dataStart, fileSize };
}

function readHeaderFd(fd: number): SafetensorsHeader {
  const fileSize = fs.fstatSync(fd).size;
  if (fileSize < 8) throw new Error(`the file has ${fileSize} bytes, too few for the 8-byte header length`);
  const n = readExactly(fd, 0, 8, 'header length').readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new Error(`the header length ${n} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  const headerLen = Number(n);
  if (8 + headerLen > fileSize) throw new Error(`the header length ${headerLen} reaches beyond the end of the file (${fileSize} bytes)`);
  return parseHeader(readExactly(fd, 8, headerLen, 'header'), headerLen, fileSize);
}

function withFile<T>(op: string, file: string, fn: (fd: number) => T): T {
  if (typeof file !== 'string' || file === '') throw new TypeError(`${op}: expected a file path, got ${typeName(file)}`);
  // A FIFO or device would block the open (or the reads) forever: regular files only,
  // checked before opening.
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    throw new Error(`${op}: cannot open ${file}: ${(e as Error).message}`);
  }
  if (!st.isFile()) throw new Error(`${op}: ${file} is not a regular file (${st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : 'a device or socket'})`);
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new Error(`${op}: cannot open ${file}: ${(e as Error).message}`);
  }
  try {
    return fn(fd);
  } catch (e) {
    throw new Error(`${op}: ${file}: ${(e as Error).message}`);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads and validates only the header: names, dtypes, shapes, offsets and metadata. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  return withFile('readSafetensorsHeader', file, readHeaderFd);
}

// Words as the native side should read them: bool bytes go through uint8 so any
// non-zero byte becomes true.
const rawDtype = (d: DType): DType => (d === 'bool' ? 'uint8' : d);

function readTensor(fd: number, h: SafetensorsHeader, e: SafetensorsEntry, device: Device, chunk: number): Tensor {
  const [b, end] = e.dataOffsets;
  const len = end - b;
  if (len <= chunk) {
    const buf = readExactly(fd, h.dataStart + b, len, 'tensor data');
    return new Tensor(native.fromData(new Uint8Array(buf.buffer, buf.byteOffset, len), e.shape, e.dtype, device, rawDtype(e.dtype)));
  }
  // Large tensor: fill a flat tensor piece by piece, so the extra memory is one piece.
  const item = ITEMSIZE[e.dtype];
  const step = Math.max(item, chunk - (chunk % item));
  const numel = len / item;
  const flat = native.full([numel], 0, e.dtype, device);
  try {
    for (let at = 0; at < len; at += step) {
      const n = Math.min(step, len - at);
      const buf = readExactly(fd, h.dataStart + b + at, n, 'tensor data');
      const piece = native.fromData(new Uint8Array(buf.buffer, buf.byteOffset, n), [n / item], e.dtype, 'cpu', rawDtype(e.dtype));
      const view = native.slice(flat, 0, at / item, (at + n) / item, 1);
      try {
        native.copyInto(view, piece);
      } finally {
        native.dispose(view);
        native.dispose(piece);
      }
    }
    return new Tensor(native.reshape(flat, e.shape));
  } finally {
    native.dispose(flat);
  }
}

/**
 * Loads every tensor of a safetensors file (F32, F16, BF16, F64, I32, I64, U8, BOOL)
 * with its metadata. The file is validated first (clear errors for any malformed
 * header or layout); then each tensor's bytes are read from the file at its offset.
 */
export function loadSafetensors(file: string, opts: { device?: Device; chunkBytes?: number } = {}): Safetensors {
  const device = opts.device ?? 'cpu';
  const chunk = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isSafeInteger(chunk) || chunk < 8) throw new RangeError(`loadSafetensors: expected chunkBytes >= 8, got ${String(chunk)}`);
  return withFile('loadSafetensors', file, (fd) => {
    const h = readHeaderFd(fd);
    const tensors = dict<Tensor>();
    try {
      for (const [name, e] of Object.entries(h.tensors)) tensors[name] = readTensor(fd, h, e, device, chunk);
    } catch (err) {
      for (const t of Object.values(tensors)) t.dispose();
      throw err;
    }
    return { tensors, metadata: h.metadata };
  });
}

function entriesOf(op: string, tensors: unknown): [string, Tensor][] {
  const list: [string, unknown][] =
    tensors instanceof Map ? [...tensors.entries()] : isPlainObject(tensors) ? Object.entries(tensors) : [];
  if (!(tensors instanceof Map) && !isPlainObject(tensors))
    throw new TypeError(`${op}: expected an object (or Map) of name -> Tensor, got ${typeName(tensors)}`);
  for (const [name, t] of list) {
    if (typeof name !== 'string') throw new TypeError(`${op}: expected string tensor names, got ${typeName(name)}`);
    if (name === '__metadata__') throw new Error(`${op}: '__metadata__' is reserved and cannot name a tensor`);
    if (!(t instanceof Tensor)) throw new TypeError(`${op}: expected '${name}' to be a Tensor, got ${typeName(t)}`);
    if (t.isDisposed) throw new Error(`${op}: '${name}' is a disposed tensor`);
  }
  return list as [string, Tensor][];
}

/** Writes one tensor's bytes in C order, in pieces for large tensors. */
function writeTensor(fd: number, t: Tensor, chunk: number): void {
  const nbytes = t.numel * ITEMSIZE[t.dtype];
  if (nbytes <= chunk) {
    writeAll(fd, native.readRaw(t.h));
    return;
  }
  const item = ITEMSIZE[t.dtype];
  const step = Math.max(1, Math.floor(chunk / item));
  const flat = native.reshape(t.h, [-1]); // a copy only when t is not contiguous
  try {
    for (let at = 0; at < t.numel; at += step) {
      const view = native.slice(flat, 0, at, Math.min(at + step, t.numel), 1);
      try {
        writeAll(fd, native.readRaw(view));
      } finally {
        native.dispose(view);
      }
    }
  } finally {
    native.dispose(flat);
  }
}

/**
 * Writes tensors (and optional string metadata) as a safetensors file, atomically:
 * a temp file in the same directory is written, fsynced and renamed over `file`.
 * Tensors are laid out by descending item size, then name, so every tensor's data
 * is aligned to its item size. Device tensors are copied to the host piece by piece.
 */
export function saveSafetensors(
  file: string,
  tensors: Record<string, Tensor> | Map<string, Tensor>,
  metadata?: Record<string, string>,
  opts: { chunkBytes?: number } = {},
): void {
  const op = 'saveSafetensors';
  if (typeof file !== 'string' || file === '') throw new TypeError(`${op}: expected a file path, got ${typeName(file)}`);
  const list = entriesOf(op, tensors);
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) throw new TypeError(`${op}: expected metadata to be an object of strings, got ${typeName(metadata)}`);
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== 'string') throw new TypeError(`${op}: metadata value of '${k}' must be a string, got ${typeName(v)}`);
  }
  const chunk = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  list.sort(([na, a], [nb, b]) => ITEMSIZE[b.dtype] - ITEMSIZE[a.dtype] || (na < nb ? -1 : na > nb ? 1 : 0));
  const header = dict<unknown>();
  if (metadata !== undefined) header.__metadata__ = Object.assign(dict<string>(), metadata);
  let at = 0;
  for (const [name, t] of list) {
    const n = t.numel * ITEMSIZE[t.dtype];
    header[name] = { dtype: TO_ST[t.dtype], shape: [...t.shape], data_offsets: [at, at + n] };
    at += n;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  if (json.length > MAX_HEADER_BYTES) throw new Error(`${op}: the header would be ${json.length} bytes, over the format's limit of ${MAX_HEADER_BYTES}`);
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  try {
    writeFileAtomic(file, (fd) => {
      writeAll(fd, len);
      writeAll(fd, json);
      for (const [, t] of list) writeTensor(fd, t, chunk);
    });
  } catch (e) {
    throw new Error(`${op}: ${file}: ${(e as Error).message}`);
  }
}
