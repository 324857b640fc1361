// backward(): walks the graph from a root in reverse topological order, calling
// each node's backward (native kernels) under noGrad and accumulating gradients.
// Leaf gradients accumulate into .grad across calls until zeroed; saved tensors
// are freed after the walk unless retainGraph is set.
import { native } from '../native';
import { Tensor, keep, tidy } from '../tensor';
import { Node, SliceSpec, noGrad } from './node';

function shapeStr(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

function sliceShape(shape: readonly number[], s: SliceSpec): number[] {
  const out = [...shape];
  out[s.axis] = s.count;
  return out;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Topological order (roots last) of the nodes reachable from `roots`, without recursion. */
function topoOrder(roots: Tensor[]): Node[] {
  const order: Node[] = [];
  const visited = new Set<Node>();
  const stack: [Node, number][] = [];
  for (const r of roots) {
    if (!r._node || visited.has(r._node)) continue;
    visited.add(r._node);
    stack.push([r._node, 0]);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [node, i] = top;
      if (i < node.inputs.length) {
        top[1]++;
        const inp = node.inputs[i];
        const child = inp?._node;
        if (child && !visited.has(child)) {
          visited.add(child);
          stack.push([child, 0]);
        }
      } else {
        stack.pop();
        order.push(node);
      }
    }
  }
  return order;
}

function addInto<K>(map: Map<K, Tensor>, k: K, g: Tensor): void {
  const prev = map.get(k);
  if (!prev) {
    map.set(k, g);
    return;
  }
  map.set(k, new Tensor(native.binary('add', prev.h, g.h), true));
  prev.dispose();
  g.dispose();
}

/** Adds g into a leaf's .grad (gradients accumulate until zeroed). */
function accumulateLeaf(t: Tensor, g: Tensor): void {
  if (depth > 1) nestedLeaves?.add(t);
  if (t.grad && !t.grad.isDisposed) {
    const sum = keep(new Tensor(native.binary('add', t.grad.h, g.h), true));
    t.grad.dispose();
    g.dispose();
    t.grad = sum;
  } else {
    t.grad = keep(g);
  }
}

/** A gradient that reached a slice of a tensor: g for the part `spec` of a tensor of `shape`. */
interface SlicePart {
  spec: SliceSpec;
  shape: readonly number[];
  g: Tensor;
}

/**
 * The gradient of a tensor from the gradients of its slices (q, k and v of a fused
 * qkv, the chunks of an adaLN modulation), instead of, per slice, a zero tensor of the
 * full shape, a copy and an add. Slices that tile one axis in order become one cat;
 * otherwise one zero tensor takes every part: copied into its region when no earlier
 * part touched it, added there when one did (overlapping slices, or slices along
 * different axes).
 */
function gatherSlices(parts: SlicePart[]): Tensor {
  const { shape } = parts[0];
  const axis = parts[0].spec.axis;
  const sameAxis = parts.every((p) => p.spec.axis === axis);
  if (sameAxis && parts.every((p) => p.spec.step === 1 && p.g.dtype === 'float32')) {
    const sorted = [...parts].sort((p, q) => p.spec.start - q.spec.start);
    let at = 0; // the parts tile [0, n) in order when each starts where the last ended
    if (sorted.every((p) => p.spec.start === at && ((at += p.spec.count), true)) && at === shape[axis]) {
      const out = new Tensor(native.cat(sorted.map((p) => p.g.h), axis), true);
      for (const p of parts) p.g.dispose();
      return out;
    }
  }
  const z = new Tensor(native.full(shape as number[], 0, 'float32', parts[0].g.device), true);
  const taken = sameAxis ? new Uint8Array(shape[axis]) : null; // indices along axis written so far
  for (const { spec, g } of parts) {
    let fresh = taken !== null;
    for (let i = 0, j = spec.start; taken && i < spec.count; i++, j += spec.step) {
      if (taken[j]) fresh = false;
      taken[j] = 1;
    }
    const view = native.slice(z.h, spec.axis, spec.start, spec.start + (spec.count - 1) * spec.step + 1, spec.step);
    if (fresh) {
      native.copyInto(view, g.h); // converts a bf16 gradient, as a slice's own backward does
    } else {
      const g32 = g.dtype === 'float32' ? g.h : native.toDtype(g.h, 'float32');
      const sum = native.binary('add', view, g32);
      native.copyInto(view, sum);
      native.dispose(sum);
      if (g32 !== g.h) native.dispose(g32);
    }
    native.dispose(view);
    g.dispose();
  }
  return z;
}

const FREED =
  'backward: the graph was already freed by an earlier backward(); pass { retainGraph: true } to the first call';

/**
 * Backward hooks: how DistributedDataParallel learns, during backward, that a
 * parameter's gradient is final, so its bucket can be all-reduced while the rest
 * of backward runs. Only the outermost backward call reports:
 *  - leafReady(leaf): once per leaf that this call's graph reaches, as soon as no
 *    node left in the call can add to leaf.grad (the gradient of this call is then
 *    final; leaf.grad may still be null when no gradient reached it). Leaves that
 *    receive gradients inside a nested backward (checkpoint's recomputation, run by
 *    nodes named 'checkpoint') are reported once no checkpoint node is left, since
 *    any of them may add to any leaf.
 *  - end(): after the walk, before backward() returns; not when backward throws.
 * Hooks run under noGrad, in registration order; an exception from one ends the
 * backward call with it.
 */
export interface BackwardHooks {
  leafReady?(leaf: Tensor): void;
  end?(): void;
}

const hooks = new Set<BackwardHooks>();
let depth = 0; // nesting of backwardMany calls (checkpoint runs one inside a node)
let nestedLeaves: Set<Tensor> | null = null; // leaves given gradients by nested calls

/** Registers backward hooks; returns the function that removes them. */
export function addBackwardHooks(h: BackwardHooks): () => void {
  hooks.add(h);
  return () => {
    hooks.delete(h);
  };
}

const NESTED_BACKWARD_NODES: readonly string[] = ['checkpoint'];

/**
 * Tracks, for the outermost backward with hooks registered, how many node inputs
 * still point at each leaf; a leaf whose count reaches zero is final.
 */
class LeafTracker {
  private readonly pending = new Map<Tensor, number>();
  private readonly reported = new Set<Tensor>();
  private readonly deferred: Tensor[] = [];
  private nestedLeft = 0;

  constructor(order: Node[], roots: Tensor[]) {
    for (const node of order) {
      if (NESTED_BACKWARD_NODES.includes(node.name)) this.nestedLeft++;
      for (const inp of node.inputs) if (inp && !inp._node) this.pending.set(inp, (this.pending.get(inp) ?? 0) + 1);
    }
    for (const r of roots) if (!r._node && !this.pending.has(r)) this.ready(r);
  }

  /** Called after a node's backward has run (or been skipped for want of a gradient). */
  nodeDone(node: Node): void {
    for (const inp of node.inputs) {
      if (!inp || inp._node) continue;
      const n = (this.pending.get(inp) ?? 1) - 1;
      this.pending.set(inp, n);
      if (n === 0) this.ready(inp);
    }
    if (NESTED_BACKWARD_NODES.includes(node.name) && --this.nestedLeft === 0) {
      for (const t of this.deferred.splice(0)) this.fire(t);
      for (const t of nestedLeaves ?? []) if (!this.pending.get(t)) this.fire(t);
    }
  }

  private ready(t: Tensor): void {
    if (this.nestedLeft > 0) this.deferred.push(t);
    else this.fire(t);
  }

  private fire(t: Tensor): void {
    if (this.reported.has(t)) return;
    this.reported.add(t);
    for (const h of hooks) h.leafReady?.(t);
  }
}

/**
 * Backpropagates `grads` (one per root; a one-element root may omit it) through
 * the graph. Leaves receive `.grad`; nothing is returned.
 */
export function backwardMany(roots: Tensor[], grads: (Tensor | undefined)[], opts: { retainGraph?: boolean } = {}): void {
  depth++;
  const outermost = depth === 1 && hooks.size > 0;
  if (outermost) nestedLeaves = new Set();
  try {
    walk(roots, grads, opts, outermost);
  } finally {
    depth--;
    if (depth === 0) nestedLeaves = null;
  }
}

function walk(roots: Tensor[], grads: (Tensor | undefined)[], opts: { retainGraph?: boolean }, outermost: boolean): void {
  const nodeGrads = new Map<Node, Tensor>();
  noGrad(() => {
    roots.forEach((r, i) => {
      if (!(r instanceof Tensor)) throw new TypeError('backward: expected a Tensor');
      if (r.isDisposed) throw new Error('backward: the tensor was disposed');
      if (!r.requiresGrad)
        throw new Error('backward: the tensor does not require grad (no input had requiresGrad, or it was computed under noGrad)');
      if (r._node?.freed) throw new Error(FREED);
      let g = grads[i];
      if (g === undefined) {
        if (r.numel !== 1)
          throw new Error(`backward: a gradient can be implied only for a one-element output, got shape ${shapeStr(r.shape)}; pass grad`);
        g = new Tensor(native.full(r.shape as number[], 1, 'float32', r.device), true);
      } else {
        if (!(g instanceof Tensor) || g.isDisposed) throw new TypeError('backward: grad must be a live Tensor');
        if (!sameShape(g.shape, r.shape))
          throw new Error(`backward: expected grad of shape ${shapeStr(r.shape)}, got ${shapeStr(g.shape)}`);
        g = new Tensor(native.alias(g.h), true);
      }
      if (r._node) addInto(nodeGrads, r._node, g);
      else accumulateLeaf(r, g);
    });
    const order = topoOrder(roots);
    const tracker = outermost ? new LeafTracker(order, roots) : null;
    // Gradients of slices of a non-leaf tensor, gathered when its node's turn comes.
    const sliced = new Map<Node, SlicePart[]>();
    try {
      for (let k = order.length - 1; k >= 0; k--) {
        const node = order[k];
        const parts = sliced.get(node);
        if (parts) {
          sliced.delete(node);
          addInto(nodeGrads, node, gatherSlices(parts));
        }
        const g = nodeGrads.get(node);
        nodeGrads.delete(node);
        if (!g) {
          tracker?.nodeDone(node);
          if (!opts.retainGraph) node.release();
          continue;
        }
        if (node.freed || !node.backwardFn) {
          g.dispose();
          throw new Error(FREED);
        }
        const src = node.sliceOf ? node.inputs[0] : null;
        if (src?._node && node.sliceOf) {
          // A slice of a non-leaf: its gradient waits to be gathered with its siblings'.
          if (!sameShape(g.shape, sliceShape(src.shape, node.sliceOf)))
            throw new Error(`backward: slice got a gradient of shape ${shapeStr(g.shape)} for a slice of ${shapeStr(src.shape)}`);
          const list = sliced.get(src._node) ?? [];
          list.push({ spec: node.sliceOf, shape: src.shape, g });
          sliced.set(src._node, list);
          tracker?.nodeDone(node);
          if (!opts.retainGraph) node.release();
          continue;
        }
        const fn = node.backwardFn;
        const inGrads = tidy(() => fn(g));
        // A backward may hand its incoming gradient (or one tensor twice) straight
        // through: give each input its own handle so disposal stays per input.
        const seen = new Set<Tensor>([g]);
        for (let i = 0; i < inGrads.length; i++) {
          const gi = inGrads[i];
          if (!gi) continue;
          keep(gi);
          if (seen.has(gi)) inGrads[i] = new Tensor(native.alias(gi.h), true);
          seen.add(gi);
        }
        g.dispose();
        node.inputs.forEach((inp, i) => {
          const gi = inGrads[i];
          if (!gi) return;
          if (!inp) {
            gi.dispose();
            return;
          }
          if (!sameShape(gi.shape, inp.shape))
            throw new Error(`backward: ${node.name} produced a gradient of shape ${shapeStr(gi.shape)} for an input of shape ${shapeStr(inp.shape)}`);
          if (inp._node) addInto(nodeGrads, inp._node, gi);
          else accumulateLeaf(inp, gi);
        });
        tracker?.nodeDone(node);
        if (!opts.retainGraph) node.release();
      }
    } finally {
      for (const parts of sliced.values()) for (const p of parts) p.g.dispose();
    }
    for (const g of nodeGrads.values()) g.dispose();
    if (outermost) for (const h of hooks) h.end?.();
  });
}

export function backward(root: Tensor, grad?: Tensor, opts: { retainGraph?: boolean } = {}): void {
  backwardMany([root], [grad], opts);
}
