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
