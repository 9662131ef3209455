// Adam (Kingma & Ba) with PyTorch's L2 weight decay, written out so that its whole state is three
// plain things: the step count and the two moments per variable. tfjs's AdamOptimizer rebuilds its
// bias-correction accumulators with pow() on restore, which differs in the last bit from the
// running product it keeps while training, so a resumed run would drift from an uninterrupted one.
// Here the correction is computed from the step count alone, identically before and after resume.
// The update itself is ../backend/adam-update.ts (one SIMD pass per variable on wasm).
import { tf } from '../util/tf.ts';
import { adamUpdate } from '../backend/adam-update.ts';

export interface AdamOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  weightDecay?: number;
}

export class Adam {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  /** Number of updates applied so far. */
  step = 0;
  private readonly moments = new Map<string, { m: tf.Variable; v: tf.Variable }>();

  constructor(opts: AdamOptions) {
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.epsilon = opts.epsilon ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
  }

  /** Applies one update. `variables` maps the same names as `grads` to the variables to change. */
  applyGradients(variables: Record<string, tf.Variable>, grads: tf.NamedTensorMap): void {
    this.step += 1;
    // Bias corrections in float64 on the host: the same numbers whatever the backend or history.
    const correction1 = 1 - this.beta1 ** this.step;
    const correction2 = 1 - this.beta2 ** this.step;
    const stepSize = (this.lr * Math.sqrt(correction2)) / correction1;
    const epsHat = this.epsilon * Math.sqrt(correction2);
    for (const name of Object.keys(grads).sort()) {
      const variable = variables[name];
      if (!variable) throw new Error(`Adam: gradient '${name}' has no variable`);
      const slot = this.slot(name, variable);
      tf.tidy(() => {
        const [p, m, v] = adamUpdate(variable, grads[name]!, slot.m, slot.v, {
          weightDecay: this.weightDecay,
          beta1: this.beta1,
          beta2: this.beta2,
          stepSize,
          epsHat,
        });
        slot.m.assign(m);
        slot.v.assign(v);
        variable.assign(p);
      });
    }
  }

  private slot(name: string, variable: tf.Variable): { m: tf.Variable; v: tf.Variable } {
    let slot = this.moments.get(name);
    if (!slot) {
      // Inside tidy the zero tensors are freed; variables are never tracked by tidy.
      slot = tf.tidy(() => ({
        m: tf.variable(tf.zerosLike(variable), false),
        v: tf.variable(tf.zerosLike(variable), false),
      }));
      this.moments.set(name, slot);
    }
    return slot;
  }

  /** The state as named tensors (views of the live variables: do not dispose). */
  state(): { step: number; tensors: tf.NamedTensorMap } {
    const tensors: tf.NamedTensorMap = {};
    for (const [name, { m, v }] of this.moments) {
      tensors[`${name}/m`] = m;
      tensors[`${name}/v`] = v;
    }
    return { step: this.step, tensors };
  }

  /** Restores a state saved by state(); the variables share the tensors' data, which the caller may dispose. */
  restore(step: number, tensors: tf.NamedTensorMap): void {
    this.dispose();
    this.step = step;
    const names = new Set(Object.keys(tensors).map((k) => k.replace(/\/[mv]$/, '')));
    for (const name of names) {
      const m = tensors[`${name}/m`];
      const v = tensors[`${name}/v`];
      if (!m || !v) throw new Error(`Adam state: '${name}' lacks its first or second moment`);
      this.moments.set(name, { m: tf.variable(m, false), v: tf.variable(v, false) });
    }
  }

  dispose(): void {
    for (const { m, v } of this.moments.values()) {
      m.dispose();
      v.dispose();
    }
    this.moments.clear();
  }
}
