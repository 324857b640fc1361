// ts.distributed across processes: `mpirun --oversubscribe -np 2 node <script>` runs
// the scripts in test/js/child/distributed_*.js (collectives, DDP exactness against
// one process, noSync, unused parameters, and faults). Skipped, saying so, only
// where mpirun is absent; CI installs Open MPI (.ci/run).
import { MPIRUN, mpirunChild as mpirun, MpiRun as Run } from './child_lib';

const suite = MPIRUN ? describe : describe.skip;
if (!MPIRUN) console.log('distributed_mpi.test.ts: skipped: mpirun is not on PATH (apt-get install openmpi-bin libopenmpi-dev)');

function expectOk(r: Run, lines: string[]): void {
  if (r.status !== 0) throw new Error(`mpirun exited ${r.status ?? r.signal}:\n${r.out}`);
  for (const l of lines) expect(r.out).toContain(l);
}

suite('mpirun -np 2', () => {
  test('collectives: allReduce sum/mean/max, broadcast, allGather, barrier, errors', () => {
    expectOk(mpirun('distributed_collectives.js', [], { TESSERA_HOST_DEVICES: '2' }), [
      'rank 0: collectives OK',
      'rank 1: collectives OK',
    ]);
  });

  test('DDP: 2 ranks x B = 1 process x 2B (gradients, 20 AdamW steps), noSync, unused parameters', () => {
    const r = mpirun('distributed_ddp.js');
    expectOk(r, [
      'rank 0: exactness OK',
      'rank 1: exactness OK',
      'rank 0: noSync OK',
      'rank 0: unused parameters OK (findUnusedParameters false)',
      'rank 1: unused parameters OK (findUnusedParameters true)',
    ]);
    console.log(r.out.split('\n').filter((l) => l.startsWith('rank 0: exactness')).join('\n'));
  });

  // A failing rank ends the job, non-zero, with a message naming the failed rank,
  // well within 30 s, and the other rank had been training (it did not just exit).
  const trained = (r: Run): boolean => /rank 0 step [1-9]/.test(r.out);

  test('kill -9 of rank 1: mpirun ends rank 0 and names rank 1', () => {
    const r = mpirun('distributed_fault.js', ['kill'], {}, 45000);
    expect(r.signal).toBeNull(); // mpirun itself ended, not our timeout
    expect(r.status).not.toBe(0);
    expect(r.seconds).toBeLessThan(30);
    expect(trained(r)).toBe(true);
    expect(r.out).toMatch(/process rank 1 .*exited on signal 9/);
  });

  test('an uncaught exception on rank 1 aborts every rank, naming it', () => {
    const r = mpirun('distributed_fault.js', ['throw'], {}, 45000);
    expect(r.status).not.toBe(0);
    expect(r.seconds).toBeLessThan(30);
    expect(trained(r)).toBe(true);
    expect(r.out).toContain('Error: simulated failure on rank 1');
    expect(r.out).toContain(
      'tessera.distributed: rank 1 of 2: failed with an uncaught exception (Error: simulated failure on rank 1); ending all 2 ranks',
    );
  });

  test('a rank that stops calling collectives: the other times out and ends the job', () => {
    const r = mpirun('distributed_fault.js', ['hang'], { TESSERA_DIST_TIMEOUT: '3' }, 45000);
    expect(r.status).not.toBe(0);
    expect(r.seconds).toBeLessThan(30);
    expect(trained(r)).toBe(true);
    expect(r.out).toMatch(/tessera\.distributed: rank 0 of 2: allReduceCoalesced of .* has not completed after 3 s/);
  });
});
