// The loops' data-parallel helper (lib/train/distributed.ts) in one process: how a batch
// is split over ranks, the loss weights, the per-rank generator fork, and the option's
// checks. (The loops themselves on 2 ranks: distributed_train.test.ts.)
import * as ts from '../../lib';
import { DataParallel, dataParallel } from '../../lib/train/distributed';

test('part(): contiguous, disjoint slices that cover the batch, sizes within 1; loss weights average to the global mean', () => {
  for (const world of [1, 2, 3, 4])
    for (let n = world; n <= 13; n++) {
      const parts = Array.from({ length: world }, (_, r) => new DataParallel(r, world, {}).part(n));
      expect(parts[0][0]).toBe(0);
      expect(parts[world - 1][1]).toBe(n);
      parts.forEach(([a, b], r) => {
        if (r > 0) expect(a).toBe(parts[r - 1][1]);
        expect(b - a).toBeGreaterThanOrEqual(Math.floor(n / world));
        expect(b - a).toBeLessThanOrEqual(Math.ceil(n / world));
      });
      // DDP averages the ranks' gradients: sum_r w_r * mean_r / world must be the global mean (per-sample weights 1/n)
      const perSample = parts.map(([a, b], r) => new DataParallel(r, world, {}).lossWeight(b - a, n) / (b - a) / world);
      for (const w of perSample) expect(w).toBeCloseTo(1 / n, 12);
    }
});

test('perRank(): each rank draws its own numbers, and the shared stream goes on as if nothing was drawn', () => {
  const drawn = (dp: DataParallel): { inside: number[]; after: number[] } => {
    ts.manualSeed(5);
    ts.randn([3]).dispose(); // the shared stream moves on
    const inside = dp.perRank(() => Array.from(ts.randn([4]).toFloat32Array()));
    return { inside, after: Array.from(ts.randn([4]).toFloat32Array()) };
  };
  const r0 = drawn(new DataParallel(0, 2, {})), r1 = drawn(new DataParallel(1, 2, {})), alone = drawn(new DataParallel(0, 1, {}));
  expect(r0.inside).not.toEqual(r1.inside);
  expect(r0.inside).not.toEqual(alone.inside);
  expect(r0.after).toEqual(r1.after);
  // one process draws on the shared stream itself: its 'after' is the shared stream's next draw
  ts.manualSeed(5);
  ts.randn([3]).dispose();
  const shared = Array.from(ts.randn([4]).toFloat32Array());
  expect(alone.inside).toEqual(shared);
  expect(r0.after).toEqual(shared);
});

test('without an initialized group the loops run alone; the option is checked', () => {
  const dp = dataParallel('trainDiT', 'auto');
  expect([dp.rank, dp.world, dp.active, dp.isMain]).toEqual([0, 1, false, true]);
  expect(dp.part(7)).toEqual([0, 7]);
  expect(dp.control(true, 0.5)).toEqual({ stop: true, progress: 0.5 });
  expect(dp.fromRank0(() => 42)).toBe(42);
  expect(dp.takeCommMs()).toBe(0);
  expect(dataParallel('trainVAE', false).world).toBe(1);
  expect(() => dataParallel('trainVAE', 'yes')).toThrow(
    "trainVAE: expected distributed to be 'auto', true, false or { bucketCapMB, findUnusedParameters }, got string",
  );
});
