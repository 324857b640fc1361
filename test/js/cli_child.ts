// The CLI in child processes for the long-run tests (faults, reruns): start one, wait for
// what it prints or for a file, run one to its end, read a checkpoint directory.
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

export const CLI = path.join(__dirname, '..', '..', 'dist', 'cli', 'main.js');

export interface Running {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | string>;
}

/** Starts the CLI with one compute thread. */
export function start(args: string[], env: NodeJS.ProcessEnv = process.env): Running {
  const child = spawn(process.execPath, [CLI, ...args, '--threads', '1'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '', err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code ?? -1)));
  return { child, out: () => out, err: () => err, exited };
}

/** Runs the CLI (one thread) to its end. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = process.env): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args, '--threads', '1'], { encoding: 'utf8', env, timeout: 300000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

/** Resolves once the child's stdout + stderr match `re` (throws if it exits first or after `ms`). */
export async function waitFor(r: Running, re: RegExp, ms = 60000): Promise<RegExpMatchArray> {
  const t0 = Date.now();
  let done = false;
  r.exited.then(() => (done = true));
  for (;;) {
    const m = (r.out() + r.err()).match(re);
    if (m) return m;
    if (done || Date.now() - t0 > ms) {
      r.child.kill('SIGKILL');
      throw new Error(`never printed ${re}:\n${r.out()}\n${r.err()}`);
    }
    await sleep(20);
  }
}

/** Polls `read` until `ok` holds for its value (every 10 ms; throws after `ms`). */
export async function waitUntil<T>(read: () => T, ok: (v: T) => boolean, ms = 60000, what = 'a condition'): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = read();
    if (ok(v)) return v;
    if (Date.now() - t0 > ms) throw new Error(`waited ${ms} ms for ${what}; last value ${JSON.stringify(v)}`);
    await sleep(10);
  }
}

/** The step `latest` names in a checkpoint directory (0 when there is none or it is being replaced). */
export function latestStep(ckDir: string): number {
  try {
    return JSON.parse(fs.readFileSync(path.join(ckDir, 'latest'), 'utf8')).step;
  } catch {
    return 0;
  }
}

/** The step directory `latest` names. */
export function latestDir(ckDir: string): string {
  return path.join(ckDir, JSON.parse(fs.readFileSync(path.join(ckDir, 'latest'), 'utf8')).path);
}

/** The step directories of a checkpoint directory, and its hidden leftovers. */
export function stepDirs(ckDir: string): { steps: string[]; hidden: string[] } {
  const names = fs.readdirSync(ckDir);
  return { steps: names.filter((n) => n.startsWith('step-')).sort(), hidden: names.filter((n) => n.startsWith('.')) };
}

/** Every file under dir (relative path -> bytes), for "left exactly as it was". */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = fs.readFileSync(p).toString('base64');
    }
  };
  walk(dir);
  return out;
}
