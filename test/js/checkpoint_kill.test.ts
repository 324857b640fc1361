// Crash safety: a child process saves checkpoints in a loop and is killed with
// SIGKILL at random moments, many times. After every kill the latest checkpoint
// must load and be consistent (every tensor from the same step), and no save that
// had returned may be lost.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../../lib';
import { childEnv, startChild } from './child_lib';

const RUNS = 30;
const MAX_DELAY_MS = 250;

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every tensor equals `v` (min == max == v). */
function allEqual(t: ts.Tensor, v: number, what: string): void {
  const [lo, hi] = ts.tidy(() => [t.min().item(), t.max().item()]);
  if (lo !== v || hi !== v) throw new Error(`${what}: values in [${lo}, ${hi}], expected all ${v} (a torn checkpoint)`);
}

test('SIGKILL at random moments during saves always leaves the previous checkpoint loadable', async () => {
  const env = childEnv();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-kill-'));
  const r = rng(77);
  let next = 0, lastSaved = -1, interrupted = 0, saves = 0;
  try {
    for (let run = 0; run < RUNS; run++) {
      // The first run waits for one completed save, so a previous checkpoint always exists.
      const c = await startChild('save_loop.js', [dir, String(next)], env, run === 0 ? 'saved' : 'ready');
      await new Promise((res) => setTimeout(res, r() * MAX_DELAY_MS));
      c.child.kill('SIGKILL');
      expect(await c.exited).toBe('SIGKILL');
      const saved = [...c.output().matchAll(/saved (\d+)/g)].map((m) => Number(m[1]));
      saves += saved.length;
      if (saved.length) lastSaved = Math.max(lastSaved, ...saved);
      if (fs.readdirSync(dir).some((n) => n.startsWith('.'))) interrupted++; // a save was cut short
      const ck = ts.loadCheckpoint(dir);
      try {
        const s = ck.step;
        expect(s).toBeGreaterThanOrEqual(lastSaved); // a save that returned is never lost
        expect(ck.config).toEqual({ step: s });
        for (const [k, t] of Object.entries(ck.model)) allEqual(t, s, `run ${run}: model ${k}`);
        for (const [i, st] of Object.entries(ck.optimizer!.state)) {
          expect(st.step).toBe(s);
          allEqual(st.exp_avg as ts.Tensor, s + 0.25, `run ${run}: exp_avg ${i}`);
          allEqual(st.exp_avg_sq as ts.Tensor, s + 0.5, `run ${run}: exp_avg_sq ${i}`);
        }
        for (const [k, t] of Object.entries(ck.ema!.shadow)) allEqual(t, s + 0.75, `run ${run}: ema ${k}`);
        next = Math.max(s, lastSaved) + 1;
      } finally {
        ts.disposeCheckpoint(ck);
      }
    }
    console.log(`kill test: ${RUNS} kills, ${saves} completed saves, ${interrupted} kills left a save unfinished`);
    expect(interrupted).toBeGreaterThan(RUNS / 5); // the kills really hit saves in progress
    // The next save cleans what the killed ones left; pruning keeps 2 checkpoints.
    const m = new ts.nn.Linear(2, 2);
    ts.saveCheckpoint(dir, { model: m, step: next }, { keep: 2 });
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('step-')).length).toBe(2);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 120000);
