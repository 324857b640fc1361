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
    [['info', '--device', 'tpu'], /^tessera: --device expects cpu, cuda, cuda:N \(or cpu:N with TESSERA_HOST_DEVICES\), got 'tpu'\n$/],
    [['info', '--device', 'cpu:3'], /^tessera: --device cpu:3: simulated host devices cpu:1.. need TESSERA_HOST_DEVICES=4 \(or more\); (none are set|it is \d+)\n$/],
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

test('training commands: bad flags and files give one line and a non-zero exit', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-cli-'));
  const notVae = path.join(tmp, 'vae.safetensors');
  fs.writeFileSync(notVae, 'not a safetensors file');
  const noModel = { ...process.env, TESSERA_PRETRAINED: path.join(tmp, 'none') };
  const empty = path.join(tmp, 'empty');
  fs.mkdirSync(empty);
  for (const [args, pattern, env] of [
    [['sample', '--prompt', 'the digit 7 moves right', '--frames', '16'], /^tessera: --frames expects 1 \+ 4k frames \(1, 5, 9, 13, 17, \.\.\.\), got '16'\n$/],
    [['sample', '--prompt', 'x', '--size', '64y'], /^tessera: --size expects HEIGHTxWIDTH \(e.g. 64x64\) or one number, got '64y'\n$/],
    [['sample', '--prompt', 'x', '--cfg', '-1'], /^tessera: --cfg expects a positive number, got '-1'\n$/],
    [['sample', '--checkpoint', tmp], /^tessera: sample: give at least one --prompt, e.g. --prompt "the digit 7 moves right"\n$/],
    [['sample', '--prompt', 'x', '--out', path.join(tmp, 'x.txt')], /^tessera: --out .*x.txt: expected a .gif, .png, .mp4 or .webm file\n$/],
    [['sample', '--prompt', 'x', '--checkpoint', '/no/such/dir'], /^tessera: --checkpoint \/no\/such\/dir: no such directory\n$/],
    [['sample', '--prompt', 'x', '--checkpoint', empty], /^tessera: --checkpoint .*empty: no vae.safetensors in .* \(expected a 'tessera demo' output or assets\/pretrained\/\)\n$/],
    [['sample', '--prompt', 'x'], /^tessera: TESSERA_PRETRAINED=.*none: no such directory\n$/, noModel], // (the variable the user set, named)
    [['eval'], /^tessera: TESSERA_PRETRAINED=.*none: no such directory\n$/, noModel],
    [['demo', '--budget', '0'], /^tessera: --budget expects a positive number, got '0'\n$/],
    [['train-vae', '--minutes', 'soon'], /^tessera: --minutes expects a positive number, got 'soon'\n$/],
    [['train-dit', '--vae', path.join(tmp, 'missing.safetensors')], /^tessera: --vae .*missing.safetensors: no such file \(train one with 'tessera train-vae' or 'tessera demo'\)\n$/],
    [['train-dit', '--vae', notVae], /^tessera: --vae .*vae.safetensors: /],
  ] as [string[], RegExp, NodeJS.ProcessEnv?][]) {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: env ?? process.env });
    expect([args, r.status]).toEqual([args, 1]);
    expect(r.stderr).toMatch(pattern);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('the package bin is an executable node script (npx tessera runs it directly)', () => {
  const bin = path.resolve(__dirname, '..', '..', 'dist', 'cli', 'main.js');
  expect(fs.readFileSync(bin, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  expect(fs.statSync(bin).mode & 0o111).toBe(0o111);
});

test('--config values go through the flags\' parsers; unknown keys name the nearest known one', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-cfg-'));
  try {
    for (const [cfg, pattern] of [
      [{ device: 'tpu' }, /^tessera: --config .*c0\.json: 'device': expects cpu, cuda, cuda:N/],
      [{ threads: 0 }, /^tessera: --config .*c1\.json: 'threads': expects a positive integer, got '0'\n$/],
      [{ cfg: -3 }, /^tessera: --config .*c2\.json: 'cfg': expects a positive number, got '-3'\n$/],
      [{ stepz: 3 }, /^tessera: --config .*c3\.json: unknown key 'stepz' for 'sample' \(did you mean 'steps'\?\); known: /],
      [{ size: '63y64' }, /^tessera: --config .*c4\.json: 'size': expects HEIGHTxWIDTH/],
      [{ frames: 16 }, /^tessera: --config .*c5\.json: 'frames': expects 1 \+ 4k frames/],
      [{ quick: 'yes' }, /^tessera: --config .*c6\.json: unknown key 'quick' for 'sample'/],
      [{ steps: { n: 3 } }, /^tessera: --config .*c7\.json: 'steps': expected a value, got \{"n":3\}\n$/],
    ] as [Record<string, unknown>, RegExp][]) {
      const file = path.join(tmp, `c${['device', 'threads', 'cfg', 'stepz', 'size', 'frames', 'quick', 'steps'].indexOf(Object.keys(cfg)[0])}.json`);
      fs.writeFileSync(file, JSON.stringify(cfg));
      const r = run('sample', '--config', file, '--prompt', 'x', '--out', path.join(tmp, 'x.gif'));
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(pattern);
    }
    // a train flag in a train command's config is parsed too; a boolean must be a boolean
    const q = path.join(tmp, 'q.json');
    fs.writeFileSync(q, JSON.stringify({ quick: 'yes' }));
    const r = run('train-vae', '--config', q, '--out', path.join(tmp, 'vae'));
    expect(r.stderr).toMatch(/^tessera: --config .*q\.json: 'quick': expected true or false, got "yes"\n$/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
