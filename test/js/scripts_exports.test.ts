// The scripts (scripts/*.js) and examples run against the compiled library and are too long
// for CI; this holds every name they take from the library to an export that exists:
// `ts.<name>` from 'tessera' (lib/index.ts) and `demo.<name>` from 'tessera/demo'
// (lib/demo/index.ts). (scripts/train-vae-demo.js read ts.demoVAESettings after the demo
// moved to its own subpath, and failed at its first line.)
import * as fs from 'fs';
import * as path from 'path';
import * as ts from '../../lib';
import * as demo from '../../lib/demo';

const ROOT = path.resolve(__dirname, '..', '..');
const files = [
  ...fs.readdirSync(path.join(ROOT, 'scripts')).filter((f) => f.endsWith('.js')).map((f) => path.join('scripts', f)),
  ...fs.readdirSync(path.join(ROOT, 'examples')).filter((f) => /\.(js|ts)$/.test(f)).map((f) => path.join('examples', f)),
  ...fs.readdirSync(path.join(ROOT, 'benchmarks')).filter((f) => f.endsWith('.js')).map((f) => path.join('benchmarks', f)),
];

/** Names used as `<binding>.<name>` where binding is bound to require/import of `module`. */
function usedNames(src: string, binding: string): string[] {
  return [...new Set([...src.matchAll(new RegExp(`(?<![\\w.\\-/$])${binding}\\.([A-Za-z_$][\\w$]*)`, 'g'))].map((m) => m[1]))];
}

test('the scripts, examples and benchmarks exist', () => {
  expect(files.length).toBeGreaterThan(10);
});

test.each(files)('%s uses only exported names', (file) => {
  const src = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const missing: string[] = [];
  // ts = require('../dist') / import * as ts from 'tessera' (or '../dist', '../lib')
  if (/\bts\s*=\s*require\(['"](\.\.\/dist|tessera)['"]\)|import \* as ts from ['"](tessera|\.\.\/dist|\.\.\/lib)['"]/.test(src))
    for (const n of usedNames(src, 'ts')) if (!(n in ts)) missing.push(`ts.${n}`);
  if (/\bdemo\s*=\s*require\(['"](\.\.\/dist\/demo|tessera\/demo)['"]\)|import \* as demo from ['"](tessera\/demo|\.\.\/dist\/demo|\.\.\/lib\/demo)['"]/.test(src))
    for (const n of usedNames(src, 'demo')) if (!(n in demo)) missing.push(`demo.${n}`);
  expect(missing).toEqual([]);
});
