// ts.distributed in one process (world size 1, no launcher): every call's
// semantics, the launcher environment table, what available() reports, the NCCL
// loader, the autograd backward hooks DDP relies on, and DDP as a no-op wrapper.
// The multi-process checks (mpirun) are in distributed_mpi.test.ts.
import * as ts from '../../lib';
import { addBackwardHooks } from '../../lib/autograd/engine';
import * as dist from '../../lib/distributed';
import { native } from '../../lib/native';

const { nn, optim, F } = ts;

describe('launcherEnv', () => {
  test('reads Open MPI, PMI and Slurm variables, Open MPI first', () => {
    expect(dist.launcherEnv({})).toMatchObject({ launcher: null, rank: 0, worldSize: 1, localRank: 0 });
    expect(
      dist.launcherEnv({ OMPI_COMM_WORLD_RANK: '3', OMPI_COMM_WORLD_SIZE: '8', OMPI_COMM_WORLD_LOCAL_RANK: '1', SLURM_PROCID: '0', SLURM_NTASKS: '2' }),
    ).toEqual({
      launcher: 'openmpi', rank: 3, worldSize: 8, localRank: 1,
      source: 'OMPI_COMM_WORLD_RANK=3, OMPI_COMM_WORLD_SIZE=8, OMPI_COMM_WORLD_LOCAL_RANK=1',
    });
    expect(dist.launcherEnv({ PMI_RANK: '1', PMI_SIZE: '4' })).toMatchObject({ launcher: 'pmi', rank: 1, worldSize: 4, localRank: null });
    expect(dist.launcherEnv({ SLURM_PROCID: '2', SLURM_NTASKS: '4', SLURM_LOCALID: '0' })).toMatchObject({
      launcher: 'slurm', rank: 2, worldSize: 4, localRank: 0,
    });
    // a job step's own task count wins over the allocation's
    expect(dist.launcherEnv({ SLURM_PROCID: '1', SLURM_STEP_NUM_TASKS: '2', SLURM_NTASKS: '8' })).toMatchObject({ worldSize: 2 });
  });

  test('inconsistent variables are errors that name them', () => {
    expect(() => dist.launcherEnv({ OMPI_COMM_WORLD_RANK: '2', OMPI_COMM_WORLD_SIZE: '2' })).toThrow(
      'OMPI_COMM_WORLD_RANK=2 is not below OMPI_COMM_WORLD_SIZE=2',
    );
    expect(() => dist.launcherEnv({ PMI_RANK: '0' })).toThrow('PMI_RANK=0 is set but PMI_SIZE is not');
    expect(() => dist.launcherEnv({ SLURM_PROCID: 'x', SLURM_NTASKS: '2' })).toThrow("expected SLURM_PROCID to be a non-negative integer, got 'x'");
  });
});

describe('world size 1 (no launcher)', () => {
  afterAll(() => dist.destroy());

  test('before init, calls say to call init()', () => {
    expect(dist.isInitialized()).toBe(false);
    expect(() => dist.rank()).toThrow('distributed.rank: the process group is not initialized; call distributed.init() first');
    expect(() => dist.allReduce(ts.zeros([1]))).toThrow('distributed.allReduce: the process group is not initialized');
    expect(() => new dist.DistributedDataParallel(new nn.Linear(2, 2))).toThrow('call distributed.init() first');
  });

  test('init is rank 0 of 1 without MPI, and idempotent', () => {
    const info = dist.init();
    expect(info).toMatchObject({ rank: 0, worldSize: 1, localRank: 0, backend: 'none', launcher: null });
    expect(dist.init()).toEqual(info);
    expect([dist.rank(), dist.worldSize(), dist.localRank()]).toEqual([0, 1, 0]);
    expect(native.distInfo().initialized).toBe(false); // MPI untouched
  });

  test('collectives are the identity, in place, with their argument checks', () => {
    const t = ts.tensor([1, -2, 3]);
    for (const op of ['sum', 'mean', 'max'] as const) {
      expect(dist.allReduce(t, op)).toBe(t);
      expect(Array.from(t.toFloat32Array())).toEqual([1, -2, 3]);
    }
    expect(dist.broadcast(t, 0)).toBe(t);
    expect(() => dist.broadcast(t, 1)).toThrow('distributed.broadcast: expected a root rank in [0, 0], got 1');
    expect(() => dist.allReduce(t, 'min' as 'sum')).toThrow("expected op 'sum', 'mean' or 'max', got 'min'");
    const d = ts.zeros([2]);
    d.dispose();
    expect(() => dist.allReduce(d)).toThrow('distributed.allReduce: the tensor is a disposed tensor');
    dist.barrier();
  });

  test('allGather returns a new [1, ...shape] tensor', () => {
    const t = ts.tensor([[1, 2], [3, 4]]);
    const g = dist.allGather(t);
    expect(g).not.toBe(t);
    expect(g.shape).toEqual([1, 2, 2]);
    expect(g.toArray()).toEqual([[[1, 2], [3, 4]]]);
    t.copy_(ts.zeros([2, 2])); // a copy, not a view
    expect(g.toArray()).toEqual([[[1, 2], [3, 4]]]);
  });

  test('destroy, then init again (no MPI was involved)', () => {
    dist.destroy();
    expect(dist.isInitialized()).toBe(false);
    expect(dist.init().worldSize).toBe(1);
  });
});

describe('available() and the NCCL loader', () => {
  test('available() says what the addon has and why the rest is missing', () => {
    const a = dist.available();
    const info = native.distInfo();
    expect(a.mpi).toBe(info.mpiBuilt);
    if (a.mpi) expect(a.mpiVersion).toMatch(/MPI/);
    else expect(a.why).toMatch(/mpi: this tessera addon was built without MPI \(mpi\.h was not found/);
    if (!a.nccl) expect(a.why).toMatch(/nccl: (this addon was built without the CUDA backend|libnccl was not found or not usable)/);
    else expect(a.ncclVersion).toMatch(/^2\.\d+\.\d+$/);
    expect(a.why === '').toBe(a.mpi && a.nccl);
  });

  test('the loader tries each candidate and says why each failed', () => {
    if (native.distInfo().ncclLoaded) return; // a GPU machine: NCCL loaded for good, candidates are not tried again
    const r = dist.loadNccl(['/nonexistent/libnccl.so.2', 'libm.so.6', __filename]);
    expect(r.loaded).toBe(false);
    expect(r.why).toContain('libnccl was not found or not usable');
    expect(r.why).toContain('/nonexistent/libnccl.so.2: cannot open shared object file');
    expect(r.why).toContain('libm.so.6: opened, but it does not export ncclGetVersion (not NCCL?)');
    expect(r.why).toMatch(/distributed\.test\.ts: .*(invalid ELF header|too short)/);
  });

  test('the default search (system, wheel paths) reports libnccl as found or not found', () => {
    const c = dist.ncclCandidates();
    expect(c).toContain('libnccl.so.2');
    const r = dist.loadNccl();
    if (r.loaded) {
      expect(r.version).toMatch(/^2\.\d+\.\d+$/);
      console.log(`NCCL ${r.version} loaded from ${r.path}`);
    } else {
      expect(r.why).toContain('libnccl.so.2: cannot open shared object file');
      console.log(`NCCL not found (as expected without it): ${r.why}`);
    }
  });
});

describe('backward hooks (autograd/engine.ts)', () => {
  test('leaves are reported once, when final, last layer first, then end', () => {
    ts.manualSeed(1);
    const mlp = new nn.MLP(4, { hiddenFeatures: 6, outFeatures: 2 });
    const x = ts.randn([3, 4]);
    const names = new Map<ts.Tensor, string>(mlp.namedParameters().map(([n, p]) => [p as ts.Tensor, n]));
    const events: string[] = [];
    const atReady = new Map<ts.Tensor, number>();
    const unhook = addBackwardHooks({
      leafReady: (t) => {
        events.push(names.get(t) ?? 'other');
        atReady.set(t, t.grad!.sum().item());
      },
      end: () => events.push('end'),
    });
    try {
      ts.tidy(() => mlp.forward(x).square().sum().backward());
    } finally {
      unhook();
    }
    expect(events.slice(-1)).toEqual(['end']);
    expect(events.filter((e) => e !== 'end').sort()).toEqual(['fc1.bias', 'fc1.weight', 'fc2.bias', 'fc2.weight']);
    expect(events.indexOf('fc2.weight')).toBeLessThan(events.indexOf('fc1.weight'));
    for (const p of mlp.parameters()) expect(atReady.get(p)).toBe(p.grad!.sum().item()); // final when reported
  });

  test('a leaf used twice is reported only after its last use', () => {
    const w = ts.tensor([2, 3]).requiresGrad_();
    const x = ts.tensor([1, 1]);
    let seen = NaN;
    const unhook = addBackwardHooks({ leafReady: (t) => t === w && (seen = t.grad!.sum().item()) });
    try {
      // w feeds two branches far apart in the graph: w*x early, and w again at the end
      ts.tidy(() => w.mul(x).exp().sum().add(w.sum().mul(3)).backward());
    } finally {
      unhook();
    }
    expect(seen).toBeCloseTo(w.grad!.sum().item(), 5);
    expect(seen).toBeCloseTo(Math.exp(2) + Math.exp(3) + 6, 4);
  });

  test('with checkpoint, leaves are reported after it, and its nested backward fires no end', () => {
    ts.manualSeed(2);
    const inner = new nn.Linear(3, 3);
    const outer = new nn.Linear(3, 1);
    const x = ts.randn([2, 3]);
    const events: string[] = [];
    const atReady = new Map<ts.Tensor, number>();
    const unhook = addBackwardHooks({
      leafReady: (t) => {
        if (t === inner.weight || t === outer.weight) {
          events.push(t === inner.weight ? 'inner' : 'outer');
          atReady.set(t, t.grad!.sum().item());
        }
      },
      end: () => events.push('end'),
    });
    try {
      // inner.weight is used inside the checkpoint and again outside it
      ts.tidy(() => outer.forward(ts.checkpoint((h) => inner.forward(h).tanh(), x)).sum().add(inner.weight.sum()).backward());
    } finally {
      unhook();
    }
    // Leaves final while a checkpoint node is still ahead wait for it (it may add to any leaf).
    expect(events.slice(0, 2).sort()).toEqual(['inner', 'outer']);
    expect(events[2]).toBe('end');
    // inner.weight's value when reported includes the nested backward's contribution
    expect(atReady.get(inner.weight)).toBe(inner.weight.grad!.sum().item());
    expect(atReady.get(outer.weight)).toBe(outer.weight.grad!.sum().item());
  });

  test('no hooks registered: backward behaves as before (no tracking)', () => {
    const w = ts.tensor([1, 2]).requiresGrad_();
    ts.tidy(() => w.square().sum().backward());
    expect(Array.from(w.grad!.toFloat32Array())).toEqual([2, 4]);
  });
});

describe('DistributedDataParallel at world size 1', () => {
  beforeAll(() => dist.init());

  test('buckets: parameters in reverse registration order, cut at the cap', () => {
    const mlp = new nn.MLP(8, { hiddenFeatures: 16, outFeatures: 3 }); // fc1 512 + 64 bytes, fc2 192 + 12 bytes
    const names = new Map(mlp.namedParameters().map(([n, p]) => [p, n]));
    const one = new dist.DistributedDataParallel(mlp);
    expect(one.buckets.map((b) => b.map((p) => names.get(p)))).toEqual([['fc2.bias', 'fc2.weight', 'fc1.bias', 'fc1.weight']]);
    const small = new dist.DistributedDataParallel(mlp, { bucketCapMB: 320 / 2 ** 20 });
    expect(small.buckets.map((b) => b.map((p) => names.get(p)))).toEqual([['fc2.bias', 'fc2.weight', 'fc1.bias'], ['fc1.weight']]);
    expect(() => new dist.DistributedDataParallel(mlp, { bucketCapMB: 0 })).toThrow('expected bucketCapMB to be a number > 0, got 0');
    expect(() => new dist.DistributedDataParallel({} as ts.nn.Module)).toThrow('DistributedDataParallel: expected a Module to wrap');
    expect(Object.keys(one.stateDict())).toEqual(['module.fc1.weight', 'module.fc1.bias', 'module.fc2.weight', 'module.fc2.bias']);
  });

  test('trains exactly as the unwrapped module (nothing to communicate)', () => {
    ts.manualSeed(5);
    const a = new nn.MLP(4, { hiddenFeatures: 8 });
    const b = new nn.MLP(4, { hiddenFeatures: 8 });
    b.loadStateDict(a.stateDict());
    const ddp = new dist.DistributedDataParallel(a);
    const oa = new optim.AdamW(a.parameters()), ob = new optim.AdamW(b.parameters());
    for (let s = 0; s < 3; s++) {
      ts.tidy(() => {
        const x = ts.randn([5, 4]);
        oa.zeroGrad();
        ob.zeroGrad();
        F.mseLoss(ddp.forward(x), x).backward();
        F.mseLoss(b.forward(x), x).backward();
        oa.step();
        ob.step();
      });
    }
    a.parameters().forEach((p, i) => expect(Array.from(p.toFloat32Array())).toEqual(Array.from(b.parameters()[i].toFloat32Array())));
    expect(ddp.lastSync).toBeNull();
    expect(ddp.noSync(() => 42)).toBe(42);
    expect(ddp.unwrap()).toBe(a);
  });
});
