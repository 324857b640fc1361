// Training checkpoints that survive a crash at any moment. Layout of `dir`:
//   latest                      {"path": "step-00000010", "step": 10}: the current one
//   step-00000010/
//     model.safetensors         the model's state dict (PyTorch names: loadable elsewhere)
//     optimizer.safetensors     optimizer state tensors (exp_avg, ...), if an optimizer
//     ema.safetensors           EMA shadow weights, if an EMA
//     checkpoint.json           step, config, RNG state, the optimizer's and EMA's
//                               non-tensor state, and the size of every file
// A save writes a hidden temp directory, fsyncs it, renames it to its step-* name,
// then atomically replaces `latest` (temp file + fsync + rename + directory fsync).
// Until that last rename, `latest` names the previous checkpoint, which a save never
// touches; old checkpoints are pruned only after the switch. So a process killed at
// any moment leaves a loadable checkpoint, and leftovers are cleaned at the next save.
import * as fs from 'fs';
import * as path from 'path';
import { getRngState, setRngState } from '../creation';
import { fsyncDir, writeAll, writeFileAtomic } from '../io/atomic';
import { loadSafetensors, saveSafetensors } from '../io/safetensors';
import { Module, StateDict } from '../nn/module';
import { EMA, EMAStateDict } from '../optim/ema';
import { Optimizer, OptimizerStateDict } from '../optim/optimizer';
import { Tensor, typeName } from '../tensor';

const FORMAT = 'tessera-checkpoint';
const VERSION = 1;
const STEP_DIR = /^step-(\d+)(?:-(\d+))?$/;

export interface RngState {
  seed: number;
  offset: number;
}

export interface CheckpointInput {
  model: Module;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  optimizer?: Optimizer<any>;
  ema?: EMA;
  /** Training steps done so far. */
  step: number;
  /** Any JSON-serializable settings (model config, data position, ...). */
  config?: unknown;
  /** The generator state to resume with (default: the current one, ts.getRngState()). */
  rng?: RngState;
}

export interface Checkpoint {
  step: number;
  config: unknown;
  rng: RngState;
  model: StateDict;
  optimizer: OptimizerStateDict | null;
  ema: EMAStateDict | null;
  /** The step directory it was read from. */
  path: string;
}

// ---- tensors <-> JSON ---------------------------------------------------------------------

/** Replaces each tensor in a state object by {"__tensor__": key}, collecting it in out. */
function splitTensors(v: unknown, key: string, out: Map<string, Tensor>): unknown {
  if (v instanceof Tensor) {
    if (out.has(key)) throw new Error(`two tensors map to the name '${key}'`);
    out.set(key, v);
    return { __tensor__: key };
  }
  if (typeof v === 'number' && !Number.isFinite(v)) return { __number__: String(v) }; // JSON has no NaN/Infinity
  if (Array.isArray(v)) return v.map((x, i) => splitTensors(x, `${key}.${i}`, out));
  if (v !== null && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = splitTensors(x, key ? `${key}.${k}` : k, out);
    return o;
  }
  return v;
}

function joinTensors(v: unknown, tensors: Record<string, Tensor>, file: string): unknown {
  if (Array.isArray(v)) return v.map((x) => joinTensors(x, tensors, file));
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0] === '__tensor__') {
      const t = tensors[o.__tensor__ as string];
      if (!t) throw new Error(`${file} lacks the tensor '${String(o.__tensor__)}' named in checkpoint.json`);
      return t;
    }
    if (keys.length === 1 && keys[0] === '__number__') return Number(o.__number__);
    const r: Record<string, unknown> = {};
    for (const k of keys) r[k] = joinTensors(o[k], tensors, file);
    return r;
  }
  return v;
}

// ---- saving -------------------------------------------------------------------------------

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return false; // ours: a save of this process that did not finish
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes temp and trash entries left by saves that were killed (their process is gone). */
function cleanLeftovers(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    const m = /^\.(?:tmp|trash)-(\d+)-/.exec(name) ?? /^\.latest\.tmp-(\d+)-/.exec(name);
    if (m && !pidAlive(Number(m[1]))) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
  }
}

function stepDirs(dir: string): { name: string; step: number; n: number }[] {
  return fs
    .readdirSync(dir)
    .map((name) => ({ name, m: STEP_DIR.exec(name) }))
    .filter((e) => e.m)
    .map(({ name, m }) => ({ name, step: Number(m![1]), n: Number(m![2] ?? 0) }))
    .sort((a, b) => a.step - b.step || a.n - b.n);
}

function readLatest(dir: string): string | null {
  const file = path.join(dir, 'latest');
  if (!fs.existsSync(file)) return null;
  let p: unknown;
  try {
    p = JSON.parse(fs.readFileSync(file, 'utf8')).path;
  } catch (e) {
    throw new Error(`${file} is not valid JSON (${(e as Error).message})`);
  }
  if (typeof p !== 'string' || !STEP_DIR.test(p)) throw new Error(`${file} names '${String(p)}', not a step directory`);
  return p;
}

function writeJson(file: string, value: unknown): number {
  const buf = Buffer.from(`${JSON.stringify(value, null, 1)}\n`, 'utf8');
  writeFileAtomic(file, (fd) => writeAll(fd, buf));
  return buf.length;
}

/**
 * Saves a checkpoint under dir (created if needed) and makes it the latest;
 * returns its step directory. keep > 0 prunes all but the newest `keep` step
 * directories afterwards.
 */
export function saveCheckpoint(dir: string, ck: CheckpointInput, opts: { keep?: number } = {}): string {
  const op = 'saveCheckpoint';
  if (typeof dir !== 'string' || dir === '') throw new TypeError(`${op}: expected a directory path, got ${typeName(dir)}`);
  if (ck === null || typeof ck !== 'object') throw new TypeError(`${op}: expected { model, optimizer?, ema?, step, config?, rng? }, got ${typeName(ck)}`);
  if (!(ck.model instanceof Module)) throw new TypeError(`${op}: expected model to be a Module, got ${typeName(ck.model)}`);
  if (ck.optimizer !== undefined && !(ck.optimizer instanceof Optimizer))
    throw new TypeError(`${op}: expected optimizer to be an Optimizer, got ${typeName(ck.optimizer)}`);
  if (ck.ema !== undefined && !(ck.ema instanceof EMA)) throw new TypeError(`${op}: expected ema to be an EMA, got ${typeName(ck.ema)}`);
  if (!Number.isSafeInteger(ck.step) || ck.step < 0) throw new RangeError(`${op}: expected step to be an integer >= 0, got ${String(ck.step)}`);
  const keep = opts.keep ?? 0;
  if (!Number.isInteger(keep) || keep < 0) throw new RangeError(`${op}: expected keep to be an integer >= 0, got ${String(keep)}`);
  const rng = ck.rng ?? getRngState();
  if (!rng || !Number.isSafeInteger(rng.seed) || !Number.isSafeInteger(rng.offset))
    throw new TypeError(`${op}: expected rng to be { seed, offset } integers, got ${JSON.stringify(rng)}`);
  let config: unknown;
  try {
    config = ck.config === undefined ? null : JSON.parse(JSON.stringify(ck.config));
  } catch (e) {
    throw new TypeError(`${op}: config is not JSON-serializable (${(e as Error).message})`);
  }

  const root = path.resolve(dir);
  fs.mkdirSync(root, { recursive: true });
  cleanLeftovers(root);
  const base = `step-${String(ck.step).padStart(8, '0')}`;
  let name = base;
  for (let n = 1; fs.existsSync(path.join(root, name)); n++) name = `${base}-${n}`;
  const tmp = path.join(root, `.tmp-${process.pid}-${Math.floor(Math.random() * 0x7fffffff).toString(16)}-${name}`);
  const final = path.join(root, name);
  fs.mkdirSync(tmp);
  try {
    const files: Record<string, number> = {};
    const put = (file: string, tensors: Map<string, Tensor> | StateDict, meta?: Record<string, string>): void => {
      saveSafetensors(path.join(tmp, file), tensors, meta);
      files[file] = fs.statSync(path.join(tmp, file)).size;
    };
    put('model.safetensors', ck.model.stateDict(), { format: 'pt' });
    let optJson: unknown = null;
    if (ck.optimizer) {
      const t = new Map<string, Tensor>();
      optJson = splitTensors(ck.optimizer.stateDict(), '', t);
      put('optimizer.safetensors', t);
    }
    let emaJson: unknown = null;
    if (ck.ema) {
      const t = new Map<string, Tensor>();
      emaJson = splitTensors(ck.ema.stateDict(), '', t);
      put('ema.safetensors', t);
    }
    const meta = { format: FORMAT, version: VERSION, step: ck.step, config, rng: { seed: rng.seed, offset: rng.offset }, optimizer: optJson, ema: emaJson, files };
    writeJson(path.join(tmp, 'checkpoint.json'), meta);
    fsyncDir(tmp);
    fs.renameSync(tmp, final);
    fsyncDir(root);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw new Error(`${op}: ${root}: ${(e as Error).message}`);
  }
  // The commit point: from here on `latest` names the new checkpoint.
  writeJson(path.join(root, 'latest'), { path: name, step: ck.step });
  if (keep > 0) {
    const current = readLatest(root);
    const dirs = stepDirs(root).filter((d) => d.name !== current);
    for (const d of dirs.slice(0, Math.max(0, dirs.length - (keep - 1)))) {
      // Rename first (atomic), so a kill mid-delete leaves only a hidden trash entry.
      const trash = path.join(root, `.trash-${process.pid}-${Math.floor(Math.random() * 0x7fffffff).toString(16)}-${d.name}`);
      fs.renameSync(path.join(root, d.name), trash);
      fs.rmSync(trash, { recursive: true, force: true });
    }
  }
  return final;
}

/**
 * Removes every step directory of `dir` but the one `latest` names: what a run that
 * started over (resume: false) leaves of the run before it, once its own first checkpoint
 * is the latest. Each is renamed to a hidden trash entry first, as pruning does.
 */
export function removeOtherCheckpoints(dir: string): void {
  const root = path.resolve(dir);
  const current = readLatest(root);
  if (!current) return;
  for (const d of stepDirs(root)) {
    if (d.name === current) continue;
    const trash = path.join(root, `.trash-${process.pid}-${Math.floor(Math.random() * 0x7fffffff).toString(16)}-${d.name}`);
    fs.renameSync(path.join(root, d.name), trash);
    fs.rmSync(trash, { recursive: true, force: true });
  }
}

// ---- loading ------------------------------------------------------------------------------

/** The step directory `dir`'s `latest` names, or null when dir holds no checkpoint yet. */
export function latestCheckpoint(dir: string): string | null {
  const root = path.resolve(dir);
  if (!fs.existsSync(root)) return null;
  let latest: string | null;
  try {
    latest = readLatest(root);
  } catch (e) {
    throw new Error(`latestCheckpoint: ${(e as Error).message}`);
  }
  return latest === null ? null : path.join(root, latest);
}

/**
 * The step and config of the checkpoint `dir`'s `latest` names (checkpoint.json alone:
 * no tensor is read), or null when dir holds no checkpoint yet.
 */
export function checkpointInfo(dir: string): { step: number; config: unknown; path: string } | null {
  const stepDir = latestCheckpoint(dir);
  if (!stepDir) return null;
  let meta: { step?: unknown; config?: unknown };
  try {
    meta = JSON.parse(fs.readFileSync(path.join(stepDir, 'checkpoint.json'), 'utf8'));
  } catch (e) {
    throw new Error(`checkpointInfo: ${stepDir}: cannot read checkpoint.json (${(e as Error).message})`);
  }
  if (typeof meta?.step !== 'number') throw new Error(`checkpointInfo: ${stepDir}: checkpoint.json has no step`);
  return { step: meta.step, config: meta.config ?? null, path: stepDir };
}

/** Milliseconds between a loop's time-based checkpoints: `minutes` (default 2) > 0, Infinity for none. */
export function checkpointInterval(op: string, minutes: number | undefined): number {
  const m = minutes ?? 2;
  if (typeof m !== 'number' || !(m > 0)) throw new RangeError(`${op}: expected checkpointMinutes > 0 (Infinity: by steps only), got ${String(minutes)}`);
  return m * 60000;
}

/** One difference between two configs: the key path, the saved value and the wanted one. */
export interface ConfigDifference {
  key: string;
  saved: unknown;
  wanted: unknown;
}

/**
 * Where two JSON configs differ, key by key (objects recursed, arrays and other values
 * compared whole); keys only `wanted` has are differences too, keys only `saved` has are not.
 */
export function configDifferences(saved: unknown, wanted: unknown, prefix = ''): ConfigDifference[] {
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(saved) && isObj(wanted))
    return Object.keys(wanted).flatMap((k) => configDifferences(saved[k], wanted[k], prefix ? `${prefix}.${k}` : k));
  if (wanted === undefined || JSON.stringify(saved) === JSON.stringify(wanted)) return [];
  return [{ key: prefix, saved, wanted }];
}

/** A loop was asked to resume a checkpoint of another model or run (the differences name what). */
export class CheckpointMismatchError extends Error {
  constructor(op: string, readonly checkpoint: string, readonly differences: ConfigDifference[]) {
    super(`${op}: the checkpoint ${checkpoint} is of another model or run: ${describeDifferences(differences)}`);
  }
}

/** Differences as text: "latentChannels 4 (checkpoint) vs 16, batchSize ..." (the first `max`). */
export function describeDifferences(d: ConfigDifference[], max = 4): string {
  const v = (x: unknown): string => (x === undefined ? 'none' : typeof x === 'string' ? x : JSON.stringify(x));
  const shown = d.slice(0, max).map((x) => {
    const a = v(x.saved), b = v(x.wanted);
    return a.length + b.length > 60 ? `${x.key} differs` : `${x.key} ${a} (checkpoint) vs ${b}`; // (a vocabulary, say)
  });
  return shown.join(', ') + (d.length > max ? `, and ${d.length - max} more` : '');
}

/**
 * Reads a checkpoint: `dir` is a checkpoint root (its `latest` is followed) or a
 * step directory. The returned tensors belong to the caller.
 */
export function loadCheckpoint(dir: string): Checkpoint {
  const op = 'loadCheckpoint';
  if (typeof dir !== 'string' || dir === '') throw new TypeError(`${op}: expected a directory path, got ${typeName(dir)}`);
  const root = path.resolve(dir);
  let stepDir: string;
  try {
    const latest = readLatest(root);
    if (latest) stepDir = path.join(root, latest);
    else if (fs.existsSync(path.join(root, 'checkpoint.json'))) stepDir = root;
    else throw new Error(`no checkpoint here (neither 'latest' nor 'checkpoint.json' exists)`);
  } catch (e) {
    throw new Error(`${op}: ${root}: ${(e as Error).message}`);
  }
  const fail = (msg: string): never => {
    throw new Error(`${op}: ${stepDir}: ${msg}`);
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let meta: any;
  try {
    meta = JSON.parse(fs.readFileSync(path.join(stepDir, 'checkpoint.json'), 'utf8'));
  } catch (e) {
    return fail(`cannot read checkpoint.json (${(e as Error).message})`);
  }
  if (meta?.format !== FORMAT) fail(`checkpoint.json is not a ${FORMAT} file`);
  if (meta.version !== VERSION) fail(`checkpoint version ${String(meta.version)} is not supported (expected ${VERSION})`);
  for (const [file, size] of Object.entries(meta.files ?? {})) {
    const f = path.join(stepDir, file);
    const got = fs.existsSync(f) ? fs.statSync(f).size : -1;
    if (got !== size) fail(got < 0 ? `${file} is missing` : `${file} has ${got} bytes, expected ${String(size)}`);
  }
  const loaded: Tensor[] = [];
  const tensorsOf = (file: string): Record<string, Tensor> => {
    const t = loadSafetensors(path.join(stepDir, file)).tensors;
    loaded.push(...Object.values(t));
    return t;
  };
  try {
    const model = tensorsOf('model.safetensors');
    const optimizer = meta.optimizer ? (joinTensors(meta.optimizer, tensorsOf('optimizer.safetensors'), 'optimizer.safetensors') as OptimizerStateDict) : null;
    const ema = meta.ema ? (joinTensors(meta.ema, tensorsOf('ema.safetensors'), 'ema.safetensors') as EMAStateDict) : null;
    return { step: meta.step, config: meta.config, rng: meta.rng, model, optimizer, ema, path: stepDir };
  } catch (e) {
    for (const t of loaded) t.dispose();
    return fail((e as Error).message);
  }
}

/** Frees the tensors of a loaded checkpoint. */
export function disposeCheckpoint(ck: Checkpoint): void {
  for (const t of Object.values(ck.model)) t.dispose();
  for (const s of Object.values(ck.optimizer?.state ?? {})) for (const v of Object.values(s)) if (v instanceof Tensor) v.dispose();
  for (const t of Object.values(ck.ema?.shadow ?? {})) t.dispose();
}

/**
 * Loads a checkpoint into a model (and optimizer, EMA), restores the generator
 * state (unless restoreRng is false), frees the loaded tensors, and returns the
 * step, config and RNG state.
 */
export function restoreCheckpoint(
  dir: string,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  into: { model: Module; optimizer?: Optimizer<any>; ema?: EMA; restoreRng?: boolean },
): { step: number; config: unknown; rng: RngState; path: string } {
  const ck = loadCheckpoint(dir);
  try {
    into.model.loadStateDict(ck.model);
    if (into.optimizer) {
      if (!ck.optimizer) throw new Error(`restoreCheckpoint: ${ck.path} has no optimizer state`);
      into.optimizer.loadStateDict(ck.optimizer);
    }
    if (into.ema) {
      if (!ck.ema) throw new Error(`restoreCheckpoint: ${ck.path} has no EMA state`);
      into.ema.loadStateDict(ck.ema);
    }
    if (into.restoreRng !== false) setRngState(ck.rng);
  } finally {
    disposeCheckpoint(ck);
  }
  return { step: ck.step, config: ck.config, rng: ck.rng, path: ck.path };
}
