// Autograd graph nodes. Each differentiable op that sees an input requiring grad
// records a Node on its output: the inputs to send gradients to, a backward
// function (calling native backward kernels), and the tensors it saved. Saved
// tensors are untracked aliases, so a tidy that disposes the user-visible tensor
// does not free what backward needs; they are freed when backward has run.
import { Handle, native } from '../native';
import type { Tensor } from '../tensor';

export type BackwardFn = (grad: Tensor) => (Tensor | null)[];

/** What a 'slice' node cut from its input (the engine gathers slice gradients; see engine.ts). */
export interface SliceSpec {
  readonly axis: number;
  readonly start: number; // normalized: 0 <= start <= the input's extent
  readonly count: number; // the output's extent along axis
  readonly step: number;
}

export class Node {
  freed = false;
  readonly saved: Tensor[] = [];
  backwardFn: BackwardFn | null = null;
  /** Set on 'slice' nodes: the part of the input the output is. */
  sliceOf: SliceSpec | null = null;
  constructor(
    readonly name: string,
    readonly inputs: (Tensor | null)[],
  ) {}

  release(): void {
    for (const t of this.saved) t.dispose();
    this.saved.length = 0;
    this.backwardFn = null;
    this.freed = true;
  }
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn with gradient recording off (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Runs fn with gradient recording on (used by checkpoint's recomputation). */
export function enableGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

export type { Handle };
export { native };
