// Progress lines that tell the truth: a total that moves (a time budget's steps follow the
// pace) is the one shown, the last line is not printed twice, and no ETA before a rate.
import { lazyProgress, progress } from '../../lib/cli/progress';

function stream(): { isTTY: boolean; write: (s: string) => boolean; text: () => string } {
  let text = '';
  return { isTTY: false, write: (s) => ((text += s), true), text: () => text };
}

test('the total follows the updates: a budget re-estimated at step 5923 shows 5923/5950, not the first estimate', () => {
  const s = stream();
  const p = lazyProgress('DiT', (label, total) => progress(label, total, s));
  p.update(1, 2765, { loss: 1 }); // the first step's estimate
  p.update(5923, 5950, { loss: 0.5 });
  p.stop();
  const lines = s.text().trim().split('\n');
  expect(lines[0]).toBe('DiT 1/2765 loss 1.000 0.00 it/s ETA ?');
  expect(lines[lines.length - 1]).toMatch(/^DiT 5923\/5950 loss 0\.5000 [\d.]+ it\/s ETA \d+ s$/);
  for (const l of lines) {
    const [step, total] = /^DiT (\d+)\/(\d+)/.exec(l)!.slice(1).map(Number);
    expect(step).toBeLessThanOrEqual(total);
  }
});

test('a display stopped right after its last update prints that line once', () => {
  const s = stream();
  const p = lazyProgress('latents', (label, total) => progress(label, total, s));
  p.update(16, 16);
  p.stop();
  p.stop();
  expect(s.text()).toBe('latents 16/16 0.00 it/s ETA 0 s\n');
});
