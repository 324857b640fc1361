// Learning-rate schedules: functions of the 0-based step about to be taken that
// return a multiplier of each group's initial lr (optimizer.setLRScale(f(step))).
export type Schedule = (step: number) => number;

function count(v: unknown, fn: string, what: string, min = 0): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    throw new RangeError(`${fn}: expected ${what} to be an integer >= ${min}, got ${String(v)}`);
  return v;
}
function factor(v: unknown, fn: string): number {
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new RangeError(`${fn}: expected minFactor in [0, 1], got ${String(v)}`);
  return v;
}
function stepArg(step: number, fn: string): number {
  if (typeof step !== 'number' || !Number.isFinite(step) || step < 0) throw new RangeError(`${fn}: expected a step >= 0, got ${String(step)}`);
  return step;
}

/** Always 1. */
export function constantLR(): Schedule {
  return (step) => (stepArg(step, 'constantLR'), 1);
}

/** Ramps linearly over warmupSteps: (step + 1) / warmupSteps, then 1. */
export function linearWarmup(warmupSteps: number): Schedule {
  const w = count(warmupSteps, 'linearWarmup', 'warmupSteps');
  return (step) => Math.min(1, (stepArg(step, 'linearWarmup') + 1) / Math.max(1, w));
}

/** Half a cosine from 1 at step 0 down to minFactor at totalSteps (and after). */
export function cosineDecay(totalSteps: number, opts: { minFactor?: number } = {}): Schedule {
  const total = count(totalSteps, 'cosineDecay', 'totalSteps', 1);
  const lo = factor(opts.minFactor ?? 0, 'cosineDecay');
  return (step) => {
    const t = Math.min(stepArg(step, 'cosineDecay'), total) / total;
    return lo + (1 - lo) * 0.5 * (1 + Math.cos(Math.PI * t));
  };
}

/** linearWarmup for warmupSteps, then cosineDecay over the remaining steps to totalSteps. */
export function warmupCosine(warmupSteps: number, totalSteps: number, opts: { minFactor?: number } = {}): Schedule {
  const w = count(warmupSteps, 'warmupCosine', 'warmupSteps');
  const total = count(totalSteps, 'warmupCosine', 'totalSteps', 1);
  if (w >= total) throw new RangeError(`warmupCosine: expected warmupSteps (${w}) < totalSteps (${total})`);
  const warm = linearWarmup(w);
  const cos = cosineDecay(total - w, opts);
  return (step) => (stepArg(step, 'warmupCosine') < w ? warm(step) : cos(step - w));
}
