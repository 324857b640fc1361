// backward(): walks the graph from a root in reverse topological order, calling
// each node's backward (native kernels) under noGrad and accumulating gradients.
// Leaf gradients accumulate into .grad across calls until zeroed; saved tensors
// are freed after the walk unless retainGraph is set.
import { native } from '../native';
import { Tensor, keep, tidy } from '../tensor';
import { Node, noGrad } from './node';

function shapeStr(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
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
    for (let k = order.length - 1; k >= 0; k--) {
      const node = order[k];
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
    for (const g of nodeGrads.values()) g.dispose();
    if (outermost) for (const h of hooks) h.end?.();
  });
}

export function backward(root: Tensor, grad?: Tensor, opts: { retainGraph?: boolean } = {}): void {
  backwardMany([root], [grad], opts);
}
