// Gradients of several objectives, each with respect to its own variables, from ONE forward pass.
//
// tf.variableGrads records a forward pass, backpropagates one scalar and throws the recording away,
// so a model with one objective per network (VAE-GAN: encoder, decoder, discriminator) would pay
// for a forward pass per objective. PyTorch keeps the graph (retain_graph=True); this module does
// the same for TF.js: it records the forward pass on the engine's tape once, then walks that tape
// backwards once per objective, only through the operations that lead from that objective's
// variables to it. The walk is reverse-mode differentiation as the engine itself does it, with the
// engine's own per-kernel gradient functions; what is ours is keeping the tape for several walks.
//
// The tape lives in TF.js's engine internals (`state.activeTape`, `startTape`/`endTape`), which are
// not public API: they are checked when used and the pinned version (package-lock.json) is tested.
import { tf } from '../util/tf.ts';

/** A recorded kernel call, as the engine's tape holds it. */
interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}

interface EngineTape {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  startTape(): void;
  endTape(): void;
}

export class ObjectiveGradsError extends Error {
  override name = 'ObjectiveGradsError';
}

function engineTape(): EngineTape {
  const engine = tf.engine() as unknown as Partial<EngineTape>;
  if (typeof engine.startTape !== 'function' || typeof engine.endTape !== 'function' || typeof engine.state?.gradientDepth !== 'number') {
    throw new ObjectiveGradsError(
      `this TensorFlow.js (${tf.version.tfjs}) has no engine tape where expected (engine.startTape/endTape/state): medvae is tested with 4.22`,
    );
  }
  return engine as EngineTape;
}

/**
 * The nodes on some path from one of `xs` to `y`, in tape order, each with its inputs cut down to
 * those that depend on `xs` (only their gradients are computed).
 */
function nodesBetween(tape: readonly TapeNode[], xs: readonly tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set<number>(xs.map((x) => x.id));
  const reachable = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      reachable.add(node.id);
      for (const out of node.outputs) fromX.add(out.id);
    }
  }
  const toY = new Set<number>([y.id]);
  const leading = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i]!;
    if (node.outputs.some((o) => toY.has(o.id))) {
      leading.add(node.id);
      for (const input of Object.values(node.inputs)) toY.add(input.id);
    }
  }
  return tape
    .filter((node) => reachable.has(node.id) && leading.has(node.id))
    .map((node) => ({ ...node, inputs: Object.fromEntries(Object.entries(node.inputs).filter(([, t]) => fromX.has(t.id))) }));
}

/**
 * The gradients held during a walk, by tensor id. A gradient function may hand back the very
 * tensor it was given (one object under two ids), so a tensor is disposed only when no id holds it.
 */
class GradientStore {
  private readonly byId = new Map<number, tf.Tensor>();
  private readonly holders = new Map<tf.Tensor, number>();

  get(id: number): tf.Tensor | undefined {
    return this.byId.get(id);
  }

  /** Adds `dx` to the gradient held for `id` (or holds `dx` itself when there is none). */
  accumulate(id: number, dx: tf.Tensor): void {
    const sum = this.byId.get(id);
    if (sum === undefined) {
      this.hold(id, dx);
      return;
    }
    const total = tf.add(sum, dx);
    this.release(id);
    if (!this.holders.has(dx)) dx.dispose();
    this.hold(id, total);
  }

  /** Drops the gradient of `id`, disposing it unless another id still holds the same tensor. */
  release(id: number): void {
    const t = this.byId.get(id);
    if (t === undefined) return;
    this.byId.delete(id);
    const left = this.holders.get(t)! - 1;
    if (left > 0) this.holders.set(t, left);
    else {
      this.holders.delete(t);
      t.dispose();
    }
  }

  /** Drops every gradient except those of `keep`, which are returned (undefined where none). */
  keepOnly(keep: readonly number[]): (tf.Tensor | undefined)[] {
    const kept = keep.map((id) => this.byId.get(id));
    const wanted = new Set(keep);
    for (const id of [...this.byId.keys()]) if (!wanted.has(id)) this.release(id);
    return kept;
  }

  private hold(id: number, t: tf.Tensor): void {
    this.byId.set(id, t);
    this.holders.set(t, (this.holders.get(t) ?? 0) + 1);
  }
}

/** Called with a variable's final gradient (still owned by the walk) as soon as the walk is past every use of it. */
export type GradientReady = (objective: string, index: number, grad: tf.Tensor) => void;

/**
 * d y / d x for every x, by walking `nodes` backwards from dy/dy = 1; zeros where y does not
 * depend on x. A node's output gradients are dropped once the node is done (every consumer of an
 * output comes later on the tape, so was walked before it): the walk holds only the gradients
 * still to be used, not every one it made. Yields after each node, so that a caller can let other
 * work (the all-reduce of gradients already final) run between kernels; each x is handed to
 * `onReady` once the walk is past its first use on the tape.
 */
function* backpropagate(
  nodes: readonly TapeNode[],
  xs: readonly tf.Tensor[],
  y: tf.Scalar,
  onReady: (index: number, grad: tf.Tensor) => void,
): Generator<void, tf.Tensor[]> {
  const xIds = new Set(xs.map((x) => x.id));
  const finalAt = new Map<number, number[]>();
  xs.forEach((x, i) => {
    const first = nodes.findIndex((node) => Object.values(node.inputs).some((t) => t.id === x.id));
    finalAt.set(first, [...(finalAt.get(first) ?? []), i]);
  });
  const grads = new GradientStore();
  let done = false;
  try {
    grads.accumulate(y.id, tf.onesLike(y));
    for (let i = nodes.length - 1; i >= 0; i--) {
      const node = nodes[i]!;
      const gradient = node.gradient;
      if (!gradient) throw new ObjectiveGradsError(`no gradient is registered for kernel ${node.kernelName}`);
      const inputs = Object.entries(node.inputs);
      // One scope per node: what a gradient function makes besides the input gradients is freed here.
      const inputGrads = tf.tidy(() => {
        const thunks = gradient(node.outputs.map((o) => grads.get(o.id) ?? null));
        return inputs.map(([name]) => {
          const thunk = thunks[name];
          if (!thunk) throw new ObjectiveGradsError(`kernel ${node.kernelName} gives no gradient for its input '${name}'`);
          return thunk();
        });
      });
      inputs.forEach(([, input], k) => grads.accumulate(input.id, inputGrads[k]!));
      for (const o of node.outputs) if (!xIds.has(o.id)) grads.release(o.id);
      for (const index of finalAt.get(i) ?? []) onReady(index, grads.get(xs[index]!.id)!);
      yield;
    }
    const result = grads.keepOnly(xs.map((x) => x.id)).map((g, index) => {
      if (g) return g;
      const zeros = tf.zerosLike(xs[index]!);
      onReady(index, zeros);
      return zeros;
    });
    done = true;
    return result;
  } finally {
    if (!done) grads.keepOnly([]);
  }
}

export interface ObjectiveGradients<T> {
  /** What the forward pass returned (kept: the caller disposes). */
  outputs: T;
  /** Per objective, the gradient of each of its variables, in the order given. */
  grads: Record<string, tf.Tensor[]>;
}

/**
 * Runs `forward` once with the tape on, then for each objective name in `variables` the gradient
 * of `outputs.objectives[name]` with respect to `variables[name]`. Equal to one
 * tf.variableGrads call per objective on the same forward pass, at the cost of one forward pass.
 * A walk: it yields between kernels of the backward passes (see backpropagate); runToEnd runs it
 * without pauses. Stopped early (return()), it frees everything it holds.
 */
export function* objectiveGradientWalk<T extends tf.TensorContainerObject & { objectives: Record<string, tf.Scalar> }>(
  forward: () => T,
  variables: Record<string, readonly tf.Variable[]>,
  onReady: GradientReady = () => {},
): Generator<void, ObjectiveGradients<T>> {
  const engine = engineTape();
  if (engine.state.gradientDepth !== 0)
    throw new ObjectiveGradsError('objectiveGradientWalk cannot run inside another gradient computation');
  engine.startTape();
  let outputs: T | undefined;
  let failure: unknown;
  try {
    outputs = tf.tidy(forward);
  } catch (e) {
    failure = e;
  }
  engine.endTape();
  const tape = engine.state.activeTape ?? [];
  engine.state.activeTape = null;
  const grads: Record<string, tf.Tensor[]> = {};
  let done = false;
  try {
    if (outputs === undefined) throw failure;
    for (const [name, xs] of Object.entries(variables)) {
      const y = outputs.objectives[name];
      if (!y)
        throw new ObjectiveGradsError(
          `the forward pass returned no objective '${name}' (got ${Object.keys(outputs.objectives).join(', ')})`,
        );
      grads[name] = yield* backpropagate(nodesBetween(tape, xs, y), xs, y, (index, grad) => onReady(name, index, grad));
    }
    done = true;
    return { outputs, grads };
  } finally {
    try {
      // What the kernels saved for their backward passes, once no walk needs it any more.
      for (const node of tape) for (const t of node.saved ?? []) t.dispose();
      if (!done) {
        if (outputs !== undefined) tf.dispose(outputs);
        tf.dispose(Object.values(grads));
      }
    } catch {
      // A backend that trapped mid-step may not free memory any more: the trap is what to report.
    }
  }
}

/** The value of a walk run without pauses. */
export function runToEnd<T>(walk: Generator<void, T>): T {
  for (;;) {
    const next = walk.next();
    if (next.done) return next.value;
  }
}
