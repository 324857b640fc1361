// The CLI as a user runs it: one clear line and a non-zero exit for bad input.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const CLI = path.join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

test('tessera info prints version, backend, CPU features and CUDA status', () => {
  const r = run('info', '--threads', '1');
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/^tessera \d+\.\d+\.\d+\nbackend: (cpu|cuda)\ncpu: .*1 threads/);
  expect(r.stdout).toMatch(/cuda: /);
});

test('bad flags, commands and config files give one line and a non-zero exit', () => {
  for (const [args, pattern] of [
    [['info', '--threads', 'x'], /^tessera: --threads expects a positive integer, got 'x'\n$/],
    [['frobnicate'], /^error: unknown command 'frobnicate'\n$/],
    [['info', '--device', 'tpu'], /^error: option '--device <device>' argument 'tpu' is invalid. Allowed choices are cpu, cuda.\n$/],
    [['info', '--config', '/no/such.json'], /^tessera: --config \/no\/such.json: no such file\n$/],
  ] as [string[], RegExp][]) {
    const r = run(...args);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(pattern);
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/); // never a stack trace
  }
  const bad = path.join(os.tmpdir(), `tessera-bad-${process.pid}.json`);
  fs.writeFileSync(bad, '[1, 2]');
  const r = run('info', '--config', bad);
  fs.rmSync(bad);
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/--config .*: expected a JSON object/);
});
