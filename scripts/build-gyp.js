#!/usr/bin/env node
// Builds the CPU addon with node-gyp from binding.gyp, in build-gyp/ so that it does
// not clobber build/ (cmake-js's output). The staging dir links native/ and
// node_modules/ and holds a copy of binding.gyp, so node-gyp sees the same tree.
// Offline: headers come from --nodedir (default /usr, where Debian's Node keeps them).
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const stage = path.join(root, 'build-gyp');
fs.mkdirSync(stage, { recursive: true });
for (const name of ['native', 'node_modules']) {
  const link = path.join(stage, name);
  if (!fs.existsSync(link)) fs.symlinkSync(path.join(root, name), link, 'dir');
}
fs.copyFileSync(path.join(root, 'binding.gyp'), path.join(stage, 'binding.gyp'));
const nodedir = process.env.TESSERA_NODEDIR || (fs.existsSync('/usr/include/node/node.h') ? '/usr' : undefined);
const gyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] });
const args = [gyp, 'rebuild', '-j', String(require('os').cpus().length)];
if (nodedir) args.push(`--nodedir=${nodedir}`);
const r = spawnSync(process.execPath, args, { cwd: stage, stdio: 'inherit' });
if (r.status !== 0) {
  console.error(`build:gyp: node-gyp failed (exit ${r.status}); see the output above`);
  process.exit(r.status || 1);
}
const out = path.join(stage, 'build', 'Release', 'tessera.node');
console.log(`build:gyp: built ${path.relative(root, out)}`);
