// ts.distributed: one process group per process. Tensors in host memory ('cpu',
// 'cpu:N') travel over MPI (Open MPI, linked into the addon when it was built with
// MPI); CUDA tensors over NCCL (libnccl loaded at run time), one communicator per
// process and GPU. Processes are started by a launcher (mpirun, srun); a process
// started without one is a world of size 1 and needs no MPI at all.
//
//   const dist = ts.distributed;
//   dist.init();                                 // reads the launcher's environment
//   const ddp = new dist.DistributedDataParallel(model);
//   dist.allReduce(loss, 'mean');                // in place, returns its argument
//   if (dist.rank() === 0) save(...);
//
// Collectives are not recorded by autograd. Every rank must call the same
// collectives in the same order with tensors of the same shape and dtype.
//
// Faults: with more than one rank, init() installs an 'uncaughtException' handler
// that prints the error and ends every rank (MPI_Abort, so mpirun stops the job),
// naming the failing rank; a collective that has not completed after
// timeoutSeconds (default 300, or TESSERA_DIST_TIMEOUT) ends the job the same way
// (a rank that hangs or stopped calling collectives); a rank killed outright is
// reported by mpirun, which then ends the others.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Handle, native } from '../native';
import { live } from '../ops/basic';
import { Tensor, typeName } from '../tensor';
import { launcherEnv, LauncherEnv } from './env';

export type ReduceOp = 'sum' | 'mean' | 'max';
const REDUCE_OPS: readonly string[] = ['sum', 'mean', 'max'];

export interface InitOptions {
  /** Seconds a collective may run before the job is ended (default TESSERA_DIST_TIMEOUT or 300). */
  timeoutSeconds?: number;
}

export interface ProcessGroupInfo {
  rank: number;
  worldSize: number;
  localRank: number;
  /** 'mpi' when MPI carries host tensors, 'none' for a world of one process without MPI. */
  backend: 'mpi' | 'none';
  /** What started this process ('openmpi', 'pmi', 'slurm' or null) and the variables read. */
  launcher: LauncherEnv['launcher'];
  source: string;
}

export interface Availability {
  /** The addon can carry host tensors between processes (built with MPI). */
  mpi: boolean;
  /** CUDA tensors can travel (CUDA backend built and libnccl loaded). */
  nccl: boolean;
  /** What is missing and why, one clause per engine; '' when both are available. */
  why: string;
  mpiVersion?: string;
  ncclLibrary?: string;
  ncclVersion?: string;
}

interface State extends ProcessGroupInfo {
  timeoutSeconds: number;
}

let state: State | null = null;
let finalized = false;
let onUncaught: ((err: unknown, origin: string) => void) | null = null;
let onExit: (() => void) | null = null;

function group(op: string): State {
  if (!state) throw new Error(`distributed.${op}: the process group is not initialized; call distributed.init() first`);
  return state;
}

// ---- NCCL: where libnccl may be -----------------------------------------------------

function pythonSiteDirs(): string[] {
  const bases = ['/usr/lib', '/usr/local/lib', path.join(os.homedir(), '.local', 'lib')];
  for (const v of ['VIRTUAL_ENV', 'CONDA_PREFIX']) if (process.env[v]) bases.push(path.join(process.env[v]!, 'lib'));
  const out: string[] = [];
  for (const base of bases) {
    let names: string[];
    try {
      names = fs.readdirSync(base);
    } catch {
      continue;
    }
    for (const n of names.filter((x) => /^python3(\.\d+)?$/.test(x)).sort())
      for (const sub of ['site-packages', 'dist-packages']) out.push(path.join(base, n, sub));
  }
  return out;
}

/**
 * Where libnccl is looked for, in order: TESSERA_NCCL_LIBRARY (a file), the dynamic
 * loader's search ('libnccl.so.2': LD_LIBRARY_PATH, ldconfig), the nvidia-nccl Python
 * wheels (<site-packages>/nvidia/nccl/lib), $CONDA_PREFIX/lib and /usr/local/cuda/lib64.
 */
export function ncclCandidates(): string[] {
  const c: string[] = [];
  if (process.env.TESSERA_NCCL_LIBRARY) c.push(process.env.TESSERA_NCCL_LIBRARY);
  c.push('libnccl.so.2');
  const files = pythonSiteDirs().flatMap((d) => [
    path.join(d, 'nvidia', 'nccl', 'lib', 'libnccl.so.2'),
    path.join(d, 'nvidia', 'cu13', 'lib', 'libnccl.so.2'),
  ]);
  if (process.env.CONDA_PREFIX) files.push(path.join(process.env.CONDA_PREFIX, 'lib', 'libnccl.so.2'));
  files.push('/usr/local/cuda/lib64/libnccl.so.2');
  for (const f of files) if (fs.existsSync(f) && !c.includes(f)) c.push(f);
  return c;
}

/** Loads libnccl (once per process) from ncclCandidates(); says which file, or why none. */
export function loadNccl(candidates: string[] = ncclCandidates()): { loaded: boolean; path: string; version: string; why: string } {
  const r = native.distNcclLoad(candidates);
  const v = r.version;
  const version = v ? `${Math.floor(v / 10000)}.${Math.floor(v / 100) % 100}.${v % 100}` : '';
  return { loaded: r.loaded, path: r.path, version, why: r.loaded ? '' : `libnccl was not found or not usable (${r.why})` };
}

/** What this build and machine offer for distributed training, and what is missing and why. */
export function available(): Availability {
  const info = native.distInfo();
  const why: string[] = [];
  const out: Availability = { mpi: info.mpiBuilt, nccl: false, why: '' };
  if (info.mpiBuilt) out.mpiVersion = info.mpiVersion;
  else
    why.push(
      'mpi: this tessera addon was built without MPI (mpi.h was not found when it was built); install Open MPI ' +
        '(apt-get install openmpi-bin libopenmpi-dev) and rebuild it (npm rebuild tessera)',
    );
  if (!info.cudaBuilt) {
    why.push('nccl: this addon was built without the CUDA backend (nvcc and cuBLAS are needed when it is built)');
  } else {
    const n = loadNccl();
    out.nccl = n.loaded;
    if (n.loaded) {
      out.ncclLibrary = n.path;
      out.ncclVersion = n.version;
    } else why.push(`nccl: ${n.why}; install it (pip install nvidia-nccl-cu12) or set TESSERA_NCCL_LIBRARY`);
  }
  out.why = why.join('; ');
  return out;
}

// ---- the process group --------------------------------------------------------------

/**
 * Joins the job the launcher started (idempotent). Without a launcher this process
 * is rank 0 of 1 and MPI is not touched. With more than one rank it installs the
 * fault handlers described at the top of this file, and destroys the group at exit.
 */
export function init(opts: InitOptions = {}): ProcessGroupInfo {
  if (state) return publicInfo(state);
  if (finalized) throw new Error('distributed.init: the process group was destroyed; MPI cannot be initialized again in this process');
  if (opts === null || typeof opts !== 'object') throw new TypeError(`distributed.init: expected an options object, got ${typeName(opts)}`);
  const envTimeout = process.env.TESSERA_DIST_TIMEOUT;
  const timeoutSeconds = opts.timeoutSeconds ?? (envTimeout !== undefined ? Number(envTimeout) : 300);
  if (typeof timeoutSeconds !== 'number' || !Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0)
    throw new RangeError(
      `distributed.init: expected timeoutSeconds (or TESSERA_DIST_TIMEOUT) to be a number > 0, got ${String(opts.timeoutSeconds ?? envTimeout)}`,
    );
  const env = launcherEnv();
  const info = native.distInfo();
  if (env.launcher === null || (env.worldSize === 1 && !info.mpiBuilt)) {
    if (info.cudaBuilt && native.info().cuda.available) loadNccl(); // a world-size-1 NCCL communicator
    state = { rank: 0, worldSize: 1, localRank: 0, backend: 'none', launcher: env.launcher, source: env.source, timeoutSeconds };
    return publicInfo(state);
  }
  if (!info.mpiBuilt)
    throw new Error(
      `distributed.init: launched as rank ${env.rank} of ${env.worldSize} (${env.source}), but this tessera addon was ` +
        'built without MPI (mpi.h was not found when it was built): install Open MPI (apt-get install openmpi-bin ' +
        'libopenmpi-dev) and rebuild it (npm rebuild tessera)',
    );
  const r = native.distInit(timeoutSeconds, env.rank, env.worldSize);
  if (info.cudaBuilt && native.info().cuda.available) loadNccl(); // CUDA tensors then travel; if not, the collective says why
  state = {
    rank: r.rank,
    worldSize: r.worldSize,
    localRank: env.localRank ?? r.localRank,
    backend: 'mpi',
    launcher: env.launcher,
    source: env.source,
    timeoutSeconds,
  };
  if (state.worldSize > 1) installFaultHandlers(state);
  onExit = () => destroy();
  process.on('exit', onExit);
  return publicInfo(state);
}

function publicInfo(s: State): ProcessGroupInfo {
  const { timeoutSeconds: _t, ...rest } = s;
  return rest;
}

function installFaultHandlers(s: State): void {
  onUncaught = (err: unknown, origin: string) => {
    const text = err instanceof Error ? (err.stack ?? String(err)) : String(err);
    const first = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    // Synchronous: the process ends right after, and a pipe's stderr is asynchronous.
    fs.writeSync(2, `${text}\n`);
    const what = origin === 'unhandledRejection' ? 'an unhandled promise rejection' : 'an uncaught exception';
    native.distAbort(`failed with ${what} (${first.split('\n')[0]}); ending all ${s.worldSize} ranks`, 1);
  };
  process.on('uncaughtException', onUncaught);
}

export function isInitialized(): boolean {
  return state !== null;
}
/** This process's rank in [0, worldSize). */
export function rank(): number {
  return group('rank').rank;
}
export function worldSize(): number {
  return group('worldSize').worldSize;
}
/** This process's rank among the processes of its machine (the GPU to use: cuda:<localRank>). */
export function localRank(): number {
  return group('localRank').localRank;
}

/**
 * Ends every rank of the job now: prints "tessera.distributed: rank R of N: <message>"
 * and aborts MPI (mpirun then stops the others). For failures a rank cannot recover
 * from alone, e.g. a NaN loss that the other ranks would not see.
 */
export function abort(message: string, code = 1): never {
  if (typeof message !== 'string') throw new TypeError(`distributed.abort: expected a message string, got ${typeName(message)}`);
  if (!Number.isInteger(code) || code < 1 || code > 255) throw new RangeError(`distributed.abort: expected an exit code in [1, 255], got ${code}`);
  return native.distAbort(message, code);
}

/** Waits for every pending collective, finalizes MPI and NCCL, removes the handlers. */
export function destroy(): void {
  if (!state) return;
  const wasMpi = state.backend === 'mpi';
  state = null;
  if (onUncaught) process.removeListener('uncaughtException', onUncaught);
  if (onExit) process.removeListener('exit', onExit);
  onUncaught = onExit = null;
  native.distFinalize();
  if (wasMpi) finalized = true;
}

// ---- collectives -------------------------------------------------------------------

function isCuda(t: Tensor): boolean {
  return t.device.startsWith('cuda');
}

/** Whether t must travel: more than one rank, or a CUDA tensor with NCCL loaded (a world of one GPU). */
function needsTransport(s: State, t: Tensor): boolean {
  return s.worldSize > 1 || (isCuda(t) && native.distInfo().ncclLoaded);
}

function checkOp(op: unknown): ReduceOp {
  if (typeof op !== 'string' || !REDUCE_OPS.includes(op))
    throw new TypeError(`distributed.allReduce: expected op 'sum', 'mean' or 'max', got ${typeof op === 'string' ? `'${op}'` : typeName(op)}`);
  return op as ReduceOp;
}

/** In place: every rank's t becomes the sum / mean / max over the ranks. Returns t. */
export function allReduce(t: Tensor, op: ReduceOp = 'sum'): Tensor {
  const s = group('allReduce');
  live(t, 'distributed.allReduce', 'the tensor');
  checkOp(op);
  if (needsTransport(s, t)) native.distWait(native.distAllReduce(t.h, op));
  return t;
}

/** In place: every rank's t becomes root's. Returns t. */
export function broadcast(t: Tensor, root = 0): Tensor {
  const s = group('broadcast');
  live(t, 'distributed.broadcast', 'the tensor');
  if (!Number.isInteger(root) || root < 0 || root >= s.worldSize)
    throw new RangeError(`distributed.broadcast: expected a root rank in [0, ${s.worldSize - 1}], got ${root}`);
  if (needsTransport(s, t)) native.distWait(native.distBroadcast(t.h, root));
  return t;
}

/** A new tensor [worldSize, ...t.shape] whose row r is rank r's t (same dtype and device). */
export function allGather(t: Tensor): Tensor {
  const s = group('allGather');
  live(t, 'distributed.allGather', 'the tensor');
  if (!needsTransport(s, t)) {
    const c = native.clone(t.h);
    const out = native.reshape(c, [1, ...t.shape]);
    native.dispose(c);
    return new Tensor(out);
  }
  const [work, out] = native.distAllGather(t.h);
  const result = new Tensor(out);
  native.distWait(work);
  return result;
}

/** Returns once every rank has called barrier(). */
export function barrier(): void {
  const s = group('barrier');
  if (s.worldSize > 1) native.distWait(native.distBarrier());
}

/** @internal For DDP: enqueue a coalesced all-reduce without waiting. */
export function _allReduceCoalescedStart(hs: Handle[], op: ReduceOp): [number, Handle] {
  return native.distAllReduceCoalesced(hs, op);
}
