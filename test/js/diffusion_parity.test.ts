// Parity of lib/diffusion with an independent float64 PyTorch reference
// (test/fixtures/gen_diffusion.py): schedules, 10-step trajectories of every sampler
// from the same fake model and noise, and the training losses.
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { GaussianDiffusion, RectifiedFlow, ModelFn } from '../../lib/diffusion';
import { loadFixture, nmse } from './helpers';

const fx = loadFixture('diffusion').tensors;
const SHAPE = [2, 2, 3, 4, 4];
const TOL = 1e-5;

/** The fixture's fake model (see gen_diffusion.py), with tessera's ops. cond: [B]. */
function fake(learnSigma: boolean): ModelFn<Tensor> {
  return (x, t, cond) => {
    const B = x.shape[0];
    const tb = t.rank === 1 ? t.reshape([B, 1, 1, 1, 1]) : t.reshape([B, 1, t.shape[1], 1, 1]);
    const pred = x.mul(ts.cos(tb.mul(1 / 300)).mul(0.1).add(0.8)).add(ts.sin(tb.mul(1 / 150)).mul(0.05)).add(cond.reshape([B, 1, 1, 1, 1]).mul(0.1));
    if (!learnSigma) return pred;
    return ts.cat([pred, x.mul(0.5).add(tb.mul(0.001)).sub(0.3).tanh()], 1);
  };
}

/** Noise source handing out noise[0], noise[1], ... (fresh tensors the sampler owns). */
function noiseFrom(): (shape: number[]) => Tensor {
  let k = 0;
  return (shape) => {
    expect(shape).toEqual(SHAPE);
    const n = fx.noise.slice(0, k, k + 1).reshape(SHAPE).contiguous();
    k++;
    return n;
  };
}

function trajectory(run: (onStep: (i: number, x: Tensor) => void) => Tensor): Float32Array[] {
  const out: Float32Array[] = [];
  const before = ts.memory().tensors;
  const final = run((i, x) => {
    expect(i).toBe(out.length);
    out.push(x.toFloat32Array());
  });
  expect(Array.from(final.toFloat32Array())).toEqual(Array.from(out[out.length - 1]));
  final.dispose();
  expect(ts.memory().tensors).toBe(before);
  return out;
}

function expectTrajectory(got: Float32Array[], key: string): void {
  const want = fx[key];
  expect(got.length).toBe(want.shape[0]);
  got.forEach((g, i) => {
    const w = ts.tidy(() => want.slice(0, i, i + 1).contiguous().toFloat32Array());
    const e = nmse(g, w);
    if (!(e < TOL)) throw new Error(`${key}: step ${i}: normalized error ${e.toExponential(3)} >= ${TOL}`);
  });
}

const uncond = ts.keep(ts.zeros([2]));

describe('schedules', () => {
  test.each(['linear', 'cosine'] as const)('alphas_cumprod (%s) match the reference', (kind) => {
    const d = new GaussianDiffusion({ betaSchedule: kind, timesteps: 1000 });
    expect(nmse(d.alphasCumprod, fx[`acp_${kind}`].toFloat32Array())).toBeLessThan(1e-12);
    expect(d.alphasCumprod[999]).toBeLessThan(kind === 'linear' ? 5e-5 : 1e-6);
  });

  test('respacing to 10 steps: betas and clipped posterior log variance', () => {
    const d = new GaussianDiffusion({ betaSchedule: 'linear' });
    const s = d.schedule.respaced([0, 111, 222, 333, 444, 555, 666, 777, 888, 999]);
    expect(nmse(s.betas, fx.respaced_linear_betas.toFloat32Array())).toBeLessThan(1e-12);
    expect(nmse(s.posteriorLogVarianceClipped, fx.respaced_linear_post_logvar.toFloat32Array())).toBeLessThan(1e-12);
  });
});

describe('10-step trajectories match the PyTorch reference (normalized error < 1e-5)', () => {
  const cases: [string, ConstructorParameters<typeof GaussianDiffusion>[0], Record<string, unknown>][] = [
    ['ddpm_eps_linear_learned_cfg', { betaSchedule: 'linear', prediction: 'eps', learnSigma: true }, { sampler: 'ddpm', cfgScale: 2.5 }],
    ['ddpm_v_cosine_fixed', { betaSchedule: 'cosine', prediction: 'v' }, { sampler: 'ddpm' }],
    ['ddpm_eps_linear_learned_frames', { betaSchedule: 'linear', prediction: 'eps', learnSigma: true }, { sampler: 'ddpm', frames: true }],
    ['ddim0_eps_linear_cfg', { betaSchedule: 'linear', prediction: 'eps', learnSigma: true }, { sampler: 'ddim', cfgScale: 1.5, eta: 0 }],
    ['ddim05_v_cosine', { betaSchedule: 'cosine', prediction: 'v' }, { sampler: 'ddim', eta: 0.5 }],
    ['dpm_eps_linear_cfg', { betaSchedule: 'linear', prediction: 'eps' }, { sampler: 'dpm++2m', cfgScale: 3 }],
    ['dpm_v_cosine', { betaSchedule: 'cosine', prediction: 'v', learnSigma: true }, { sampler: 'dpm++2m' }],
  ];
  test.each(cases)('%s', (key, dopts, s) => {
    const d = new GaussianDiffusion(dopts);
    const frames = s.frames ? { latents: fx.clean, indices: [0, 2] } : undefined;
    const got = trajectory((onStep) =>
      d.sample(fake(d.learnSigma), {
        shape: SHAPE, steps: 10, cond: fx.cond, uncond, noise: noiseFrom(), onStep, conditionFrames: frames,
        sampler: s.sampler as 'ddpm', cfgScale: s.cfgScale as number | undefined, eta: s.eta as number | undefined,
      }),
    );
    expectTrajectory(got, key);
    if (frames) {
      // the given frames are exactly the clean latents at every step
      const last = got[got.length - 1];
      const clean = fx.clean.toFloat32Array();
      for (let b = 0; b < 2; b++)
        for (let c = 0; c < 2; c++)
          for (const [k, f] of [[0, 0], [1, 2]])
            for (let p = 0; p < 16; p++) expect(last[((b * 2 + c) * 3 + f) * 16 + p]).toBe(clean[(c * 2 + k) * 16 + p]);
    }
  });

  test('flow Euler with shift 3 and guidance', () => {
    const f = new RectifiedFlow({ shift: 3 });
    const got = trajectory((onStep) => f.sample(fake(false), { shape: SHAPE, steps: 10, cond: fx.cond, uncond, cfgScale: 2, noise: noiseFrom(), onStep }));
    expectTrajectory(got, 'flow_shift3_cfg');
  });

  test('flow Euler with conditioning frames and a token-dependent shift (1.5 * sqrt(48 / 12) = 3)', () => {
    const f = new RectifiedFlow({ shift: 1.5, shiftBaseTokens: 12 });
    expect(f.shiftFor(48)).toBeCloseTo(3, 12);
    const got = trajectory((onStep) =>
      f.sample(fake(false), { shape: SHAPE, steps: 10, cond: fx.cond, noise: noiseFrom(), onStep, conditionFrames: { latents: fx.clean, indices: [0, 2] } }),
    );
    expectTrajectory(got, 'flow_frames_auto_shift');
  });

  test("cfgMode 'twice' gives the same trajectory as the doubled batch", () => {
    const d = new GaussianDiffusion({ learnSigma: true });
    const got = trajectory((onStep) =>
      d.sample(fake(true), { shape: SHAPE, steps: 10, cond: fx.cond, uncond, cfgScale: 2.5, cfgMode: 'twice', noise: noiseFrom(), onStep }),
    );
    expectTrajectory(got, 'ddpm_eps_linear_learned_cfg');
  });
});

describe('training losses match the reference', () => {
  const gaussian = (key: string, o: ConstructorParameters<typeof GaussianDiffusion>[0], t: number[], frames?: number[][]): void => {
    const d = new GaussianDiffusion(o);
    const r = d.trainingLoss(fake(d.learnSigma), fx.x0, { cond: fx.cond, t, noise: fx.loss_noise, conditionFrames: frames });
    const want = fx[key].toFloat32Array(); // [loss, mse, vb]
    expect(r.loss.item()).toBeCloseTo(want[0], 4);
    expect(Math.abs(r.loss.item() - want[0]) / Math.abs(want[0])).toBeLessThan(1e-5);
    expect(Math.abs(r.mse.item() - want[1]) / Math.abs(want[1])).toBeLessThan(1e-5);
    if (d.learnSigma) expect(Math.abs(r.vb!.item() - want[2]) / Math.abs(want[2])).toBeLessThan(1e-5);
    else expect(r.vb).toBeNull();
    expect(Array.from(r.t.toFloat32Array())).toEqual(t);
  };
  test('hybrid loss, eps, linear, with a t = 0 sample (decoder NLL)', () => gaussian('loss_eps_linear_t0', { learnSigma: true }, [0, 37]));
  test('hybrid loss, v, cosine', () => gaussian('loss_v_cosine', { betaSchedule: 'cosine', prediction: 'v', learnSigma: true }, [500, 999]));
  test('mse loss with conditioning frames masked out', () => gaussian('loss_eps_fixed_frames', {}, [250, 700], [[0], []]));
  test('hybrid loss with conditioning frames', () => gaussian('loss_eps_learned_frames', { learnSigma: true }, [0, 420], [[1, 2], [0]]));

  test.each([
    ['loss_flow', [0.3, 0.8], undefined],
    ['loss_flow_frames', [0.6, 0.1], [[], [0, 1]]],
  ] as const)('flow velocity loss (%s)', (key, t, frames) => {
    const f = new RectifiedFlow();
    const r = f.trainingLoss(fake(false), fx.x0, { cond: fx.cond, t: [...t], noise: fx.loss_noise, conditionFrames: frames?.map((l) => [...l]) });
    const want = fx[key].item();
    expect(Math.abs(r.loss.item() - want) / want).toBeLessThan(1e-5);
  });
});
