// Runs tessera in fresh node processes (for the kill-during-save and exact-resume
// tests). Children load the compiled library in dist/ (npm test compiles lib/ first)
// through TESSERA_LIB, and the addon through TESSERA_ADDON.
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');

/** The env children need: where the compiled library and the addon are. */
export function childEnv(): NodeJS.ProcessEnv {
  const lib = path.join(ROOT, 'dist', 'index.js');
  if (!fs.existsSync(lib)) throw new Error(`child tests need the compiled library (${lib}); run 'npm run build:ts'`);
  const addon = [path.join(ROOT, 'build', 'Release', 'tessera.node'), path.join(ROOT, 'build', 'Debug', 'tessera.node')].find((f) =>
    fs.existsSync(f),
  );
  return { ...process.env, TESSERA_LIB: lib, TESSERA_ADDON: addon };
}

export const childScript = (name: string): string => path.join(__dirname, 'child', name);

/** Runs a child script to completion; returns its stdout, throws with its stderr on failure. */
export function runChild(script: string, args: string[], env: NodeJS.ProcessEnv): string {
  const r = spawnSync(process.execPath, [childScript(script), ...args], { env, encoding: 'utf8', timeout: 60000 });
  if (r.status !== 0) throw new Error(`${script} ${args.join(' ')} failed (status ${r.status}, signal ${r.signal}):\n${r.stderr}`);
  return r.stdout;
}

export interface RunningChild {
  child: ChildProcess;
  /** Everything the child printed so far. */
  output(): string;
  /** Resolves with the exit code or signal once the child is gone. */
  exited: Promise<number | string>;
}

/** Starts a child script; resolves once it prints a line containing `marker`. */
export function startChild(script: string, args: string[], env: NodeJS.ProcessEnv, marker: string): Promise<RunningChild> {
  const child = spawn(process.execPath, [childScript(script), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code ?? -1)));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes(marker)) resolve({ child, output: () => out, exited });
    });
    child.stderr!.on('data', (d) => (err += d));
    child.on('exit', (code) => reject(new Error(`${script} exited (${code}) before printing '${marker}':\n${err}`)));
  });
}

/** mpirun on PATH (null when Open MPI is not installed). */
export const MPIRUN: string | null =
  (process.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, 'mpirun')).find((f) => f !== 'mpirun' && fs.existsSync(f)) ?? null;

export interface MpiRun {
  status: number | null;
  signal: string | null;
  out: string;
  seconds: number;
}

/**
 * Runs `mpirun --oversubscribe -np <np> node <script> <args>` to completion (np 2 by
 * default; script: a name in test/js/child/ or an absolute path); TESSERA_ADDON from this
 * process wins over the default build; root may run it.
 */
export function mpirunChild(script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}, timeoutMs = 60000, np = 2): MpiRun {
  if (!MPIRUN) throw new Error('mpirunChild: mpirun is not on PATH');
  const base = childEnv();
  const e: NodeJS.ProcessEnv = { ...base, TESSERA_ADDON: process.env.TESSERA_ADDON ?? base.TESSERA_ADDON, ...env };
  if (process.getuid?.() === 0) Object.assign(e, { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' });
  const t0 = Date.now();
  const file = path.isAbsolute(script) ? script : childScript(script);
  const r = spawnSync(MPIRUN, ['--oversubscribe', '-np', String(np), process.execPath, file, ...args], { env: e, encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, signal: r.signal, out: `${r.stdout}${r.stderr}`, seconds: (Date.now() - t0) / 1000 };
}
