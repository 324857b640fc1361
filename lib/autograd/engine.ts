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
 * Backpropagates `grads` (one per root; a one-element root may omit it) through
 * the graph. Leaves receive `.grad`; nothing is returned.
 */
export function backwardMany(roots: Tensor[], grads: (Tensor | undefined)[], opts: { retainGraph?: boolean } = {}): void {
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
    for (let k = order.length - 1; k >= 0; k--) {
      const node = order[k];
      const g = nodeGrads.get(node);
      nodeGrads.delete(node);
      if (!g) {
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
      if (!opts.retainGraph) node.release();
    }
    for (const g of nodeGrads.values()) g.dispose();
  });
}

export function backward(root: Tensor, grad?: Tensor, opts: { retainGraph?: boolean } = {}): void {
  backwardMany([root], [grad], opts);
}
