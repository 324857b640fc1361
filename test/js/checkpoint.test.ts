// Checkpoints: contents and layout, restore, pruning and leftovers, errors, and
// exact resume across processes (20 steps straight == 10 + save + new process + 10).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../../lib';
import { childEnv, runChild } from './child_lib';

const { nn, optim } = ts;
let dir: string;
beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-ckpt-'))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function trained(): { model: ts.nn.MLP; optimizer: ts.optim.AdamW; ema: ts.optim.EMA } {
  ts.manualSeed(11);
  const model = new nn.MLP(4, { hiddenFeatures: 8, outFeatures: 2 });
  const optimizer = new optim.AdamW(
    [{ params: [model.fc1.weight, model.fc2.weight], weightDecay: 0.1 }, { params: [model.fc1.bias!, model.fc2.bias!], weightDecay: 0 }],
    { lr: 1e-2 },
  );
  const ema = new optim.EMA(model, 0.8);
  for (let i = 0; i < 3; i++) {
    optimizer.zeroGrad();
    ts.tidy(() => model.forward(ts.randn([3, 4])).square().mean().backward());
    optimizer.step();
    ema.update();
  }
  return { model, optimizer, ema };
}

test('a checkpoint holds weights, optimizer state and EMA in safetensors, the rest in JSON', () => {
  const t = trained();
  const rng = ts.getRngState();
  const stepDir = ts.saveCheckpoint(dir, { ...t, step: 3, config: { name: 'tiny', dims: [4, 8, 2], lr: 1e-2 } });
  expect(path.basename(stepDir)).toBe('step-00000003');
  expect(fs.readdirSync(stepDir).sort()).toEqual(['checkpoint.json', 'ema.safetensors', 'model.safetensors', 'optimizer.safetensors']);
  expect(JSON.parse(fs.readFileSync(path.join(dir, 'latest'), 'utf8'))).toEqual({ path: 'step-00000003', step: 3 });
  // model.safetensors is a plain PyTorch-named state dict.
  const weights = ts.loadSafetensors(path.join(stepDir, 'model.safetensors'));
  expect(Object.keys(weights.tensors).sort()).toEqual(['fc1.bias', 'fc1.weight', 'fc2.bias', 'fc2.weight']);
  expect(weights.metadata.format).toBe('pt');

  const ck = ts.loadCheckpoint(dir);
  expect([ck.step, ck.config, ck.rng, ck.path]).toEqual([3, { name: 'tiny', dims: [4, 8, 2], lr: 1e-2 }, rng, stepDir]);
  for (const [k, v] of Object.entries(t.model.stateDict())) expect(ck.model[k].toFloat32Array()).toEqual(v.toFloat32Array());
  const osd = t.optimizer.stateDict();
  expect(ck.optimizer!.paramGroups).toEqual(JSON.parse(JSON.stringify(osd.paramGroups)));
  for (const [i, s] of Object.entries(osd.state)) {
    expect(ck.optimizer!.state[i].step).toBe(3);
    expect((ck.optimizer!.state[i].exp_avg_sq as ts.Tensor).toFloat32Array()).toEqual((s.exp_avg_sq as ts.Tensor).toFloat32Array());
  }
  expect(ck.ema!.numUpdates).toBe(3);
  expect(ck.ema!.shadow['fc2.weight'].toFloat32Array()).toEqual(t.ema.stateDict().shadow['fc2.weight'].toFloat32Array());
  ts.disposeCheckpoint(ck);

  // restoreCheckpoint loads into fresh objects, restores the generator, and leaks nothing.
  const before = ts.memory().tensors;
  ts.manualSeed(99);
  const m2 = new nn.MLP(4, { hiddenFeatures: 8, outFeatures: 2 });
  const o2 = new optim.AdamW([{ params: [m2.fc1.weight, m2.fc2.weight] }, { params: [m2.fc1.bias!, m2.fc2.bias!] }]);
  const e2 = new optim.EMA(m2);
  const info = ts.restoreCheckpoint(dir, { model: m2, optimizer: o2, ema: e2 });
  expect(info.step).toBe(3);
  expect(ts.getRngState()).toEqual(rng);
  expect(o2.paramGroups.map((g) => g.weightDecay)).toEqual([0.1, 0]);
  expect(e2.decay).toBe(0.8);
  expect(m2.fc1.weight.toFloat32Array()).toEqual(t.model.fc1.weight.toFloat32Array());
  o2.dispose();
  e2.dispose();
  m2.dispose();
  expect(ts.memory().tensors).toBe(before);
});

test('saves of the same step get distinct directories; keep prunes old ones; a step dir loads directly', () => {
  const t = trained();
  ts.saveCheckpoint(dir, { model: t.model, step: 5 });
  ts.saveCheckpoint(dir, { model: t.model, step: 5 });
  expect(JSON.parse(fs.readFileSync(path.join(dir, 'latest'), 'utf8')).path).toBe('step-00000005-1');
  ts.saveCheckpoint(dir, { model: t.model, step: 6 }, { keep: 2 });
  expect(fs.readdirSync(dir).sort()).toEqual(['latest', 'step-00000005-1', 'step-00000006']);
  const ck = ts.loadCheckpoint(path.join(dir, 'step-00000005-1'));
  expect([ck.step, ck.optimizer, ck.ema]).toEqual([5, null, null]);
  ts.disposeCheckpoint(ck);
  // Leftovers of killed saves (their process is gone) are removed by the next save.
  fs.mkdirSync(path.join(dir, '.tmp-999999999-abc-step-00000007'));
  fs.writeFileSync(path.join(dir, '.latest.tmp-999999999-abc'), 'x');
  ts.saveCheckpoint(dir, { model: t.model, step: 7 }, { keep: 1 });
  expect(fs.readdirSync(dir).sort()).toEqual(['latest', 'step-00000007']);
});

test('errors are clear', () => {
  const t = trained();
  expect(() => ts.loadCheckpoint(dir)).toThrow(`loadCheckpoint: ${dir}: no checkpoint here (neither 'latest' nor 'checkpoint.json' exists)`);
  expect(() => ts.saveCheckpoint(dir, { model: {} as any, step: 1 })).toThrow('saveCheckpoint: expected model to be a Module, got object');
  expect(() => ts.saveCheckpoint(dir, { model: t.model, step: -1 })).toThrow('saveCheckpoint: expected step to be an integer >= 0, got -1');
  const cyclic: any = {};
  cyclic.self = cyclic;
  expect(() => ts.saveCheckpoint(dir, { model: t.model, step: 1, config: cyclic })).toThrow(/saveCheckpoint: config is not JSON-serializable/);
  const stepDir = ts.saveCheckpoint(dir, { ...t, step: 1 });
  fs.truncateSync(path.join(stepDir, 'optimizer.safetensors'), 100);
  expect(() => ts.loadCheckpoint(dir)).toThrow(`loadCheckpoint: ${stepDir}: optimizer.safetensors has 100 bytes, expected`);
  ts.saveCheckpoint(dir, { model: t.model, step: 2 });
  expect(() => ts.restoreCheckpoint(dir, { model: t.model, optimizer: t.optimizer })).toThrow(/has no optimizer state/);
  const other = new nn.MLP(4);
  expect(() => ts.restoreCheckpoint(dir, { model: other })).toThrow(/MLP.loadStateDict: cannot load the state dict:\n {2}shape mismatches \(4\): fc1.weight: expected \[4, 4\], got \[8, 4\]/);
  fs.writeFileSync(path.join(dir, 'latest'), '{"path": "../elsewhere"}');
  expect(() => ts.loadCheckpoint(dir)).toThrow("names '../elsewhere', not a step directory");
});

test('resume is exact: 20 steps straight == 10 steps, save, new process, 10 steps', () => {
  const env = childEnv();
  const straight = JSON.parse(runChild('train_resume.js', ['straight'], env));
  const first = JSON.parse(runChild('train_resume.js', ['first', dir], env));
  const resumed = JSON.parse(runChild('train_resume.js', ['resume', dir], env));
  expect(straight.losses).toHaveLength(20);
  expect([...first.losses, ...resumed.losses]).toEqual(straight.losses); // bit-identical numbers
  expect(Object.keys(resumed.weights).sort()).toEqual(Object.keys(straight.weights).sort());
  expect(Object.keys(straight.weights).filter((k) => k.startsWith('ema.'))).toHaveLength(4);
  for (const [k, v] of Object.entries(straight.weights)) expect([k, resumed.weights[k]]).toEqual([k, v]);
  // The weights did move (the comparison is not of untouched initial values).
  expect(first.weights['fc1.weight']).not.toEqual(straight.weights['fc1.weight']);
}, 60000);
