// Child process for the kill-during-save test: saves checkpoints of steps
// FIRST, FIRST+1, ... into DIR as fast as it can (keeping 2), until killed. Every
// tensor of the checkpoint of step s holds a value derived from s, so a reader can
// tell a consistent checkpoint from a torn one. Prints "ready" before the first save
// and "saved s" after each.
const ts = require(process.env.TESSERA_LIB);
const { nn, optim } = ts;

const [dir, first] = [process.argv[2], Number(process.argv[3])];
const model = new nn.MLP(256, { hiddenFeatures: 1024 }); // ~0.5M parameters: ~8 MB per checkpoint with state
const opt = new optim.AdamW(model);
const ema = new optim.EMA(model);
ts.tidy(() => model.forward(ts.ones([1, 256])).sum().backward());
opt.step(); // creates the optimizer state

function fill(step) {
  ts.tidy(() => {
    for (const p of model.parameters()) p.copy_(ts.full(p.shape, step));
    for (const s of opt.state.values()) {
      s.step = step;
      s.exp_avg.copy_(ts.full(s.exp_avg.shape, step + 0.25));
      s.exp_avg_sq.copy_(ts.full(s.exp_avg_sq.shape, step + 0.5));
    }
    for (const t of Object.values(ema.stateDict().shadow)) t.copy_(ts.full(t.shape, step + 0.75));
  });
}

process.stdout.write('ready\n');
for (let step = first; ; step++) {
  fill(step);
  ts.saveCheckpoint(dir, { model, optimizer: opt, ema, step, config: { step } }, { keep: 2 });
  process.stdout.write(`saved ${step}\n`);
}
