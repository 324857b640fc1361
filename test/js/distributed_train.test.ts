// The training loops on 2 ranks (`mpirun --oversubscribe -np 2`, test/js/child/
// distributed_train*.js): exactness against one process with the whole batch (trainDiT
// bucketed and packed, trainVAE, encodeDataset, evaluateVAE), a rank killed mid-training
// (the job ends, the checkpoint resumes at world size 1 and 2), and a NaN on one rank.
// Skipped, saying so, only where mpirun is absent; CI installs Open MPI (.ci/run).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadCheckpoint, disposeCheckpoint } from '../../lib/train/checkpoint';
import { childEnv, MPIRUN, mpirunChild, MpiRun, runChild } from './child_lib';

const suite = MPIRUN ? describe : describe.skip;
if (!MPIRUN) console.log('distributed_train.test.ts: skipped: mpirun is not on PATH (apt-get install openmpi-bin libopenmpi-dev)');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-dist-train-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function expectOk(r: MpiRun, lines: string[]): void {
  if (r.status !== 0) throw new Error(`mpirun exited ${r.status ?? r.signal}:\n${r.out}`);
  for (const l of lines) expect(r.out).toContain(l);
}

suite('training loops on mpirun -np 2', () => {
  test('2 ranks x batch B = 1 process x 2B after 20 AdamW steps: trainDiT (bucketed, packed), trainVAE; encodeDataset, evaluateVAE', () => {
    const r = mpirunChild('distributed_train.js', [], {}, 120000);
    expectOk(r, ['rank 0: dit OK', 'rank 1: dit OK', 'rank 0: pack OK', 'rank 0: vae OK', 'rank 1: vae OK', 'rank 0: encode OK', 'rank 0: evalvae OK', 'rank 1: evalvae OK']);
    console.log(`${r.out.split('\n').filter((l) => l.startsWith('rank 0:')).join('\n')}\n(${r.seconds.toFixed(1)} s)`);
  }, 130000);

  test('kill -9 of rank 1 mid-training: the job ends naming it; the last checkpoint is intact and resumes at world size 1 and 2', () => {
    const dir = path.join(tmp, 'kill');
    const r = mpirunChild('distributed_train_fault.js', ['kill', dir], {}, 45000);
    expect(r.signal).toBeNull(); // mpirun itself ended, not our timeout
    expect(r.status).not.toBe(0);
    expect(r.seconds).toBeLessThan(30);
    expect(r.out).toMatch(/rank 0 step [5-9]/); // rank 0 was training alongside
    expect(r.out).toMatch(/process rank 1 .*exited on signal 9/);
    const latest = JSON.parse(fs.readFileSync(path.join(dir, 'latest'), 'utf8')).step as number;
    expect([6, 8]).toContain(latest);
    const ck = loadCheckpoint(dir); // intact: every file present at its recorded size
    expect(ck.step).toBe(latest);
    expect(ck.optimizer).not.toBeNull();
    disposeCheckpoint(ck);
    const log = fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(log[0].step).toBe(1); // rank 0 alone wrote the log: one line per step
    expect(new Set(log.map((l) => l.step)).size).toBe(log.length);

    // the same checkpoint, resumed by one process and by two
    const dir2 = path.join(tmp, 'kill2');
    fs.cpSync(dir, dir2, { recursive: true });
    const one = runChild('distributed_train_fault.js', ['resume', dir], childEnv());
    expect(one).toContain(`rank 0 resumed at ${latest}`);
    expect(one).toContain(`rank 0 step ${latest + 1}`);
    expect(one).toContain('rank 0 done 12');
    const two = mpirunChild('distributed_train_fault.js', ['resume', dir2], {}, 45000);
    expectOk(two, [`rank 1 resumed at ${latest}`, `rank 1 step ${latest + 1}`, 'rank 0 done 12', 'rank 1 done 12']);
    const a = loadCheckpoint(dir), b = loadCheckpoint(dir2);
    try {
      expect(a.step).toBe(12);
      expect(b.step).toBe(12);
      // world size 1 and 2 continue the same run (to rounding)
      let d2 = 0, n2 = 0;
      for (const [k, t] of Object.entries(a.model)) {
        const x = t.toFloat32Array(), y = b.model[k].toFloat32Array();
        for (let i = 0; i < x.length; i++) (d2 += (x[i] - y[i]) ** 2), (n2 += x[i] ** 2);
      }
      expect(Math.sqrt(d2 / n2)).toBeLessThan(1e-5);
    } finally {
      disposeCheckpoint(a);
      disposeCheckpoint(b);
    }
  }, 120000);

  test('a NaN on one rank stops both, at the same step (trainDiT returns nan, trainVAE throws)', () => {
    const r = mpirunChild('distributed_train_fault.js', ['nan'], {}, 45000);
    expectOk(r, [
      'rank 0: trainDiT stopped nan at 3', 'rank 1: trainDiT stopped nan at 3',
      'rank 0: trainVAE stopped by an error at 4', 'rank 1: trainVAE stopped by an error at 4',
      'trainDiT: the loss became NaN at step 4 (mean over 2 ranks)',
    ]);
    expect(r.out.match(/trainDiT: the loss became/g)).toHaveLength(1); // rank 0 alone reports
    expect(r.seconds).toBeLessThan(30);
  }, 60000);
});
