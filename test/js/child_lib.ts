// Runs tessera in fresh node processes (for the kill-during-save and exact-resume
// tests): lib/ is transpiled once to plain JS in a temp dir (keyed by a hash of its
// sources), and children find it through TESSERA_LIB, the addon through TESSERA_ADDON.
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as typescript from 'typescript';

const ROOT = path.resolve(__dirname, '..', '..');

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Transpiles lib/ (no type check) and returns the env children need. */
export function childEnv(): NodeJS.ProcessEnv {
  const files = sources(path.join(ROOT, 'lib')).sort();
  const hash = crypto.createHash('sha256');
  for (const f of files) hash.update(f).update(fs.readFileSync(f));
  const out = path.join(os.tmpdir(), `tessera-lib-${hash.digest('hex').slice(0, 16)}`);
  if (!fs.existsSync(out)) {
    const tmp = `${out}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    for (const f of files) {
      const js = typescript.transpileModule(fs.readFileSync(f, 'utf8'), {
        compilerOptions: { module: typescript.ModuleKind.CommonJS, target: typescript.ScriptTarget.ES2022, esModuleInterop: true },
        fileName: f,
      }).outputText;
      const dst = path.join(tmp, 'lib', path.relative(path.join(ROOT, 'lib'), f)).replace(/\.ts$/, '.js');
      fs.mkdirSync(path.dirname(dst), { recursive: true });
      fs.writeFileSync(dst, js);
    }
    try {
      fs.renameSync(tmp, out);
    } catch {
      fs.rmSync(tmp, { recursive: true, force: true }); // another worker won the race
    }
  }
  const addon = [path.join(ROOT, 'build', 'Release', 'tessera.node'), path.join(ROOT, 'build', 'Debug', 'tessera.node')].find((f) =>
    fs.existsSync(f),
  );
  return { ...process.env, TESSERA_LIB: path.join(out, 'lib', 'index.js'), TESSERA_ADDON: addon };
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
