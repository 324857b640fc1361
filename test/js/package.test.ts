// The package as users consume it: require of the clone directory, require and
// import of 'tessera' from a dependent project, and its type declarations.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');
const node = (args: string[], cwd: string): string => execFileSync(process.execPath, args, { cwd, encoding: 'utf8' }).trim();

let dep: string;
beforeAll(() => {
  dep = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-dep-'));
  fs.writeFileSync(path.join(dep, 'package.json'), JSON.stringify({ name: 'dep', version: '1.0.0', private: true }));
  fs.mkdirSync(path.join(dep, 'node_modules'));
  fs.symlinkSync(ROOT, path.join(dep, 'node_modules', 'tessera'), 'dir');
});
afterAll(() => fs.rmSync(dep, { recursive: true, force: true }));

test('require(<clone dir>) works', () => {
  expect(node(['-e', `const ts = require(${JSON.stringify(ROOT)}); console.log(ts.ones([2]).sum().item())`], os.tmpdir())).toBe('2');
});

test("require('tessera') from a dependent project", () => {
  expect(node(['-e', "const ts = require('tessera'); console.log(ts.info().cpu.threads > 0)"], dep)).toBe('true');
});

test("import ... from 'tessera' (ESM) from a dependent project", () => {
  const out = node(['--input-type=module', '-e', "import * as ts from 'tessera'; import def from 'tessera'; console.log(ts.zeros([3]).numel + def.ones([2]).numel, typeof ts.F.linear)"], dep);
  expect(out).toBe('5 function');
});

test('type declarations resolve for a TypeScript user', () => {
  fs.writeFileSync(
    path.join(dep, 'main.ts'),
    [
      "import * as ts from 'tessera';",
      "const x: ts.Tensor = ts.randn([2, 3], { requiresGrad: true });",
      "const y = ts.F.linear(x, ts.randn([4, 3])).sum();",
      'y.backward();',
      "const n: number = ts.memory().tensors;",
      "// @ts-expect-error: dtype names are checked",
      "ts.zeros([1], { dtype: 'float8' });",
      'export { n };',
    ].join('\n'),
  );
  fs.writeFileSync(
    path.join(dep, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { strict: true, module: 'commonjs', target: 'ES2022', noEmit: true, moduleResolution: 'node', skipLibCheck: false, types: [] }, files: ['main.ts'] }),
  );
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  expect(node([tsc, '-p', dep], dep)).toBe('');
});

test("'tessera' exports no demo names; 'tessera/demo' has the demo", () => {
  const script = [
    "const ts = require('tessera'), demo = require('tessera/demo');",
    "const demoNames = ['runDemo', 'trainDemoDiT', 'trainDemoVAE', 'DEMO_BUDGETS', 'encodeLatentsUntil', 'lossCurveSvg', 'REPORT_FIGURES', 'savePretrained', 'loadPretrained', 'DigitClassifier', 'evaluatePromptAdherence'];",
    'const leaked = demoNames.filter((n) => n in ts);',
    "const missing = demoNames.filter((n) => typeof demo[n] === 'undefined');",
    "console.log(JSON.stringify({ leaked, missing, lib: ['trainDiT', 'trainVAE', 'encodeDataset', 'DiT', 'VideoVAE', 'GaussianDiffusion'].every((n) => n in ts) }));",
  ].join('\n');
  expect(JSON.parse(node(['-e', script], dep))).toEqual({ leaked: [], missing: [], lib: true });
});

test('nothing inside lib/ imports lib/index.ts, and lib/data imports nothing from lib/models', () => {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts')) files.push(p);
    }
  };
  walk(path.join(ROOT, 'lib'));
  const bad: string[] = [];
  for (const f of files) {
    const src = fs.readFileSync(f, 'utf8');
    for (const m of src.matchAll(/from '([^']+)'/g)) {
      if (!m[1].startsWith('.')) continue;
      const target = path.resolve(path.dirname(f), m[1]);
      if (target === path.join(ROOT, 'lib', 'index') || target === path.join(ROOT, 'lib')) bad.push(`${path.relative(ROOT, f)} imports lib/index`);
      if (f.includes(`${path.sep}lib${path.sep}data${path.sep}`) && target.startsWith(path.join(ROOT, 'lib', 'models'))) bad.push(`${path.relative(ROOT, f)} imports ${m[1]}`);
    }
  }
  expect(bad).toEqual([]);
});
