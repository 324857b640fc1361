// 10,000 iterations of create / compute / dispose inside tidy leave the live
// tensor count and the process RSS flat.
import * as ts from '../../lib';

test('10,000 tidy iterations do not leak tensors or memory', () => {
  const x = ts.keep(ts.randn([64, 64], { requiresGrad: true }));
  const iteration = (): void => {
    ts.tidy(() => {
      const a = ts.randn([64, 64]);
      const b = a.matmul(x).tanh().add(1).mul(a.slice(0, 0, 64));
      const parts = ts.cat(b.chunk(4, 1), 0);
      parts.sum().backward();
      return ts.noGrad(() => parts.mean());
    }).dispose();
    x.grad?.dispose();
    x.grad = null;
  };
  for (let i = 0; i < 1000; i++) iteration(); // warm up allocator and JIT
  const m0 = ts.memory();
  const rss0 = process.memoryUsage().rss;
  for (let i = 0; i < 10000; i++) iteration();
  const m1 = ts.memory();
  const rss1 = process.memoryUsage().rss;
  expect(m1.tensors).toBe(m0.tensors);
  expect(m1.storages).toBe(m0.storages);
  expect(m1.bytes.cpu).toBe(m0.bytes.cpu);
  // JS garbage (handles awaiting GC) may move RSS a little; native leaks of this
  // loop would add > 10,000 * 16 KB = 160 MB.
  expect(rss1 - rss0).toBeLessThan(48 * 1024 * 1024);
});

test('the CPU block cache keeps freed large blocks, reports them, empties, and obeys its limit', () => {
  const limit0 = ts.cpuCache.limit();
  try {
    expect(limit0).toBeGreaterThan(0);
    ts.cpuCache.empty();
    expect(ts.memory().cpuCachedBytes).toBe(0);
    ts.zeros([1 << 20]).dispose(); // 4 MiB
    expect(ts.memory().cpuCachedBytes).toBeGreaterThanOrEqual(4 << 20);
    const live = ts.memory().bytes.cpu;
    const y = ts.zeros([1 << 20]); // the cached block comes back: the cache is empty again
    expect(ts.memory().cpuCachedBytes).toBe(0);
    expect(ts.memory().bytes.cpu).toBe(live + (4 << 20));
    y.dispose();
    ts.cpuCache.setLimit(1 << 20); // below the block: dropped now, and new ones not kept
    expect(ts.memory().cpuCachedBytes).toBe(0);
    ts.zeros([1 << 20]).dispose();
    expect(ts.memory().cpuCachedBytes).toBe(0);
    expect(() => ts.cpuCache.setLimit(-1)).toThrow(/cpuCache.setLimit: expected a whole number of bytes >= 0, got -1/);
  } finally {
    ts.cpuCache.setLimit(limit0);
  }
});
