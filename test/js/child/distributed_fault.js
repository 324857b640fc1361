// Run under `mpirun -np 2` by test/js/distributed_mpi.test.ts: both ranks train a
// small DDP model in an endless loop, printing "rank R step S"; at step 5 rank 1
// fails the way argv[2] says:
//   kill   SIGKILL itself             (mpirun reports the lost rank and ends the job)
//   throw  an uncaught exception      (init()'s handler aborts the job naming rank 1)
//   hang   stop calling collectives   (rank 0's collective times out: TESSERA_DIST_TIMEOUT)
// Nothing here ends rank 0: it must be ended within bounded time by the machinery.
const path = require('path');
const ts = require(process.env.TESSERA_LIB);
const dist = require(path.join(path.dirname(process.env.TESSERA_LIB), 'distributed'));
const { nn, optim, F } = ts;

const mode = process.argv[2];
const { rank: r } = dist.init();
ts.manualSeed(3);
const model = new nn.MLP(16, { hiddenFeatures: 64 });
const ddp = new dist.DistributedDataParallel(model);
const opt = new optim.AdamW(model.parameters());
for (let step = 0; ; step++) {
  if (r === 1 && step === 5) {
    if (mode === 'kill') process.kill(process.pid, 'SIGKILL');
    if (mode === 'throw') throw new Error('simulated failure on rank 1');
    if (mode === 'hang') for (;;);
  }
  ts.tidy(() => {
    opt.zeroGrad();
    F.mseLoss(ddp.forward(ts.randn([8, 16])), ts.zeros([8, 16])).backward();
    opt.step();
  });
  process.stdout.write(`rank ${r} step ${step}\n`);
}
