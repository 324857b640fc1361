#!/usr/bin/env node
// The docs figure of the DiT demo: the first columns of <dit>/heldout.gif (a row per
// held-out prompt, in HELD_OUT_PROMPTS order) as docs/dit-demo-heldout.gif, and the
// run's metrics as docs/dit-demo-metrics.json.
//   node scripts/docs-dit-grid.js [--dit out/dit-demo] [--columns 4]
const fs = require('fs');
const path = require('path');
const ts = require('../dist');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const dir = path.resolve(opt('dit', 'out/dit-demo'));
const cols = Number(opt('columns', 4));
const S = 64, PAD = 2;
ts.tidy(() => {
  const grid = ts.loadVideo(path.join(dir, 'heldout.gif'), { color: 'gray' }); // [1, T, H, W]
  const [, T, H] = grid.shape;
  const rows = Math.round((H + PAD) / (S + PAD));
  const clips = [];
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) clips.push(grid.slice(2, r * (S + PAD), r * (S + PAD) + S).slice(3, c * (S + PAD), c * (S + PAD) + S));
  ts.saveVideo(ts.stack(clips), path.resolve('docs/dit-demo-heldout.gif'), { columns: cols, fps: 8 });
  console.log(`docs/dit-demo-heldout.gif: ${rows} prompts x ${cols} samples, ${T} frames`);
});
fs.copyFileSync(path.join(dir, 'metrics.json'), path.resolve('docs/dit-demo-metrics.json'));
