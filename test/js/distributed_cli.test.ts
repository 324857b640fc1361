// The CLI under a launcher: `mpirun --oversubscribe -np 2 node dist/cli/main.js ...`
// runs train-vae, train-dit and demo --quick on 2 ranks (rank 0 alone prints and
// writes), ends every rank with the message of a failing command, and says clearly
// when a build without MPI is started by mpirun. The mpirun cases are skipped, saying
// so, only where mpirun is absent; CI installs Open MPI (.ci/run).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { MPIRUN, mpirunChild, MpiRun } from './child_lib';

const CLI = path.join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const suite = MPIRUN ? describe : describe.skip;
if (!MPIRUN) console.log('distributed_cli.test.ts: skipped the mpirun cases: mpirun is not on PATH (apt-get install openmpi-bin libopenmpi-dev)');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-dist-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const cli = (args: string[], timeoutMs = 90000): MpiRun => mpirunChild(CLI, [...args, '--threads', '1'], {}, timeoutMs);
const count = (text: string, s: string): number => text.split(s).length - 1;
function expectOk(r: MpiRun): void {
  if (r.status !== 0) throw new Error(`mpirun exited ${r.status ?? r.signal}:\n${r.out}`);
}

suite('tessera on mpirun -np 2', () => {
  test('train-vae then train-dit: rank 0 alone prints and writes; the log has one line per step with its communication time', () => {
    const out = path.join(tmp, 'run');
    const vae = cli(['train-vae', '--quick', '--minutes', '0.05', '--out', path.join(out, 'vae')]);
    expectOk(vae);
    expect(count(vae.out, `wrote ${path.join(out, 'vae', 'vae.safetensors')}`)).toBe(1);
    expect(count(vae.out, 'VAE: held-out PSNR')).toBe(1);
    const vaeLog = fs.readFileSync(path.join(out, 'vae', 'checkpoint', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const steps = vaeLog.filter((l) => l.event === undefined);
    expect(steps.map((l) => l.step)).toEqual(steps.map((_, i) => i + 1));
    expect(steps.every((l) => l.commMs > 0)).toBe(true);

    const dit = cli(['train-dit', '--quick', '--minutes', '0.05', '--vae', path.join(out, 'vae', 'vae.safetensors'), '--out', out]);
    expectOk(dit);
    expect(count(dit.out, 'trained ')).toBe(1);
    expect(fs.existsSync(path.join(out, 'dit.safetensors'))).toBe(true);
    const ditLog = fs.readFileSync(path.join(out, 'dit', 'checkpoint', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(ditLog.map((l) => l.step)).toEqual(ditLog.map((_, i) => i + 1));
    expect(ditLog.every((l) => l.commMs > 0 && l.samples === 2)).toBe(true); // the global batch of 2: one sample per rank
  }, 100000);

  test('demo --quick on 2 ranks: every stage, one report', () => {
    const out = path.join(tmp, 'demo');
    const r = cli(['demo', '--quick', '--budget', '0.2', '--out', out]);
    expectOk(r);
    for (const line of ['VAE: held-out PSNR', 'latents: 16 clips', 'DiT: trained', 'eval: digit right', 'wrote ']) expect(count(r.out, line)).toBe(1);
    const state = JSON.parse(fs.readFileSync(path.join(out, 'state.json'), 'utf8'));
    expect(Object.keys(state.stages)).toEqual(['data', 'vae', 'latents', 'dit', 'eval', 'report']);
    const evaluation = JSON.parse(fs.readFileSync(path.join(out, 'eval.json'), 'utf8'));
    expect(evaluation.samples).toBe(10); // the held-out prompts, gathered from both ranks
    for (const f of ['report.html', 'samples.gif', 'grid.png', 'vae.safetensors', 'dit.safetensors']) expect(fs.existsSync(path.join(out, f))).toBe(true);
  }, 100000);

  test('a command failing on the ranks ends them all, non-zero, with its message', () => {
    const r = cli(['train-dit', '--quick', '--vae', path.join(tmp, 'none.safetensors'), '--out', tmp], 45000);
    expect(r.signal).toBeNull();
    expect(r.status).not.toBe(0);
    expect(r.seconds).toBeLessThan(30);
    expect(r.out).toMatch(/tessera\.distributed: rank [01] of 2: tessera: --vae .*none\.safetensors: no such file/);
  }, 60000);
});

describe('joinLauncherJob', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const k of ['OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK']) delete process.env[k];
    Object.assign(process.env, saved);
  });

  test('started by mpirun with a build without MPI: one clear line saying why', () => {
    Object.assign(process.env, { OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_LOCAL_RANK: '1' });
    const why =
      'mpi: this tessera addon was built without MPI (mpi.h was not found when it was built); install Open MPI (apt-get install openmpi-bin libopenmpi-dev) and rebuild it (npm rebuild tessera); nccl: this addon was built without the CUDA backend';
    jest.isolateModules(() => {
      jest.doMock('../../lib/distributed/group', () => ({ ...jest.requireActual('../../lib/distributed/group'), available: () => ({ mpi: false, nccl: false, why }) }));
      const { joinLauncherJob } = require('../../lib/cli/distributed');
      expect(() => joinLauncherJob()).toThrow(
        /^started by openmpi as rank 1 of 2 \(OMPI_COMM_WORLD_RANK=1, OMPI_COMM_WORLD_SIZE=2, OMPI_COMM_WORLD_LOCAL_RANK=1\), but this build cannot train on several processes: mpi: this tessera addon was built without MPI .*rebuild it \(npm rebuild tessera\)$/,
      );
    });
  });

  test('no launcher, or a world of one: nothing to join; --device cuda:local names the local rank', () => {
    const { joinLauncherJob } = require('../../lib/cli/distributed');
    const { deviceName } = require('../../lib/cli/options');
    const { isInitialized } = require('../../lib/distributed/group');
    expect(() => joinLauncherJob()).not.toThrow();
    expect(isInitialized()).toBe(false);
    expect(deviceName('cuda:local')).toBe('cuda:0');
    Object.assign(process.env, { OMPI_COMM_WORLD_RANK: '3', OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_LOCAL_RANK: '1' });
    expect(deviceName('cuda:local')).toBe('cuda:1');
  });
});
