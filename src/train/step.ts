// The single-device training step that the trainer, the distributed worker and the benchmark all
// use: gradients of each param group's objective w.r.t. that group's variables, then one Adam
// update per group (the trainer averages gradients across micro-batches and workers in between). Gradients are keyed by stable variable names (`encoder/conv0/kernel`), so the
// all-reduce can flatten them in a fixed order and every process agrees on what a key means.
import { tf } from '../util/tf.ts';
import type { TrainConfig } from '../config/schema.ts';
import type { LossContext, ModelBatch, VaeModel } from '../models/base.ts';
import { biasesCancelledByBatchNorm, trainableVariables } from '../models/blocks.ts';
import { Adam } from '../optim/adam.ts';
import { clipByGlobalNorm } from '../optim/clip.ts';
import { objectiveGradientWalk, runToEnd } from './objective-grads.ts';

/** Gradients per param group (stable variable name -> gradient), the logged terms and each group's objective. Caller disposes. */
export interface StepGradients {
  groups: Record<string, tf.NamedTensorMap>;
  terms: Record<string, tf.Scalar>;
  objectives: Record<string, tf.Scalar>;
}

export class StepError extends Error {
  override name = 'StepError';
}

function groupVariables(model: VaeModel, networks: readonly string[]): Map<string, tf.Variable> {
  return trainableVariables(
    networks.map((name) => {
      const network = model.networks[name];
      if (!network)
        throw new StepError(`model '${model.kind}' has no network '${name}' (it has ${Object.keys(model.networks).join(', ')})`);
      return network;
    }),
  );
}

/** Called with one variable's final gradient (owned by the walk: read it, do not dispose it). */
export type OnGradient = (group: string, name: string, grad: tf.Tensor) => void;

/**
 * For each param group, the gradient of its objective w.r.t. its networks' trainable variables,
 * all from one forward pass (./objective-grads.ts): every objective sees the same noise and the
 * same activations, and BatchNorm moving statistics move once per step. Variables an objective
 * does not reach, and biases that BatchNorm cancels (models/blocks.ts), get zeros, so every group
 * always has the same keys. A walk that yields between backward kernels and hands each gradient to
 * `onGradient` once final, in the same order in every process (the tape's): what lets the
 * all-reduce of the first gradients run behind the rest of the backward pass.
 */
export function* gradientWalk(
  model: VaeModel,
  batch: ModelBatch,
  ctx: LossContext,
  onGradient: OnGradient = () => {},
): Generator<void, StepGradients> {
  const cancelled = biasesCancelledByBatchNorm(Object.values(model.networks));
  const groups = model.paramGroups().map((group) => {
    const variables = groupVariables(model, group.networks);
    return { name: group.name, variables, differentiated: [...variables].filter(([stable]) => !cancelled.has(stable)) };
  });
  const differentiated = new Map(groups.map((g) => [g.name, g.differentiated]));
  const { outputs, grads } = yield* objectiveGradientWalk(
    () => model.losses(batch, ctx),
    Object.fromEntries(groups.map((g) => [g.name, g.differentiated.map(([, variable]) => variable)])),
    (group, index, grad) => onGradient(group, differentiated.get(group)![index]![0], grad),
  );
  const result: StepGradients = { groups: {}, terms: outputs.terms, objectives: outputs.objectives };
  for (const group of groups) {
    const computed = new Map(group.differentiated.map(([stable], i) => [stable, grads[group.name]![i]!]));
    const named: tf.NamedTensorMap = {};
    for (const [stable, variable] of group.variables) {
      const grad = computed.get(stable);
      named[stable] = grad ?? tf.zerosLike(variable);
      if (!grad) onGradient(group.name, stable, named[stable]);
    }
    result.groups[group.name] = named;
  }
  return result;
}

/** gradientWalk run to the end at once (one process, earlier micro-batches, benchmarks). */
export function computeGradients(model: VaeModel, batch: ModelBatch, ctx: LossContext): StepGradients {
  return runToEnd(gradientWalk(model, batch, ctx));
}

/** old + weight * g as a new tensor (caller disposes); weight * g when there is no old sum yet. */
export function addWeighted(old: tf.Tensor | undefined, g: tf.Tensor, weight: number): tf.Tensor {
  return tf.tidy(() => (old ? old.add(g.mul(weight)) : g.mul(weight)));
}

/** Adds `weight * g` into the running sum `acc` (created on first use), disposing what it replaces. */
export function accumulateGradients(
  acc: Record<string, tf.NamedTensorMap>,
  grads: Record<string, tf.NamedTensorMap>,
  weight: number,
): void {
  for (const [group, map] of Object.entries(grads)) {
    const target = (acc[group] ??= {});
    for (const [name, g] of Object.entries(map)) {
      const old = target[name];
      target[name] = addWeighted(old, g, weight);
      old?.dispose();
    }
  }
}

/** Disposes everything a gradient walk returned (an objective may be the same tensor as a term). */
export function disposeGradients(gradients: StepGradients): void {
  for (const group of Object.values(gradients.groups)) tf.dispose(group);
  tf.dispose([...new Set([...Object.values(gradients.terms), ...Object.values(gradients.objectives)])]);
}

/**
 * One param group's optimizer: the trainer's Adam (./adam.ts: exact resume, weight decay as L2
 * added to the gradient as in PyTorch's Adam(weight_decay=...), not AdamW) bound to the group's
 * variables under their stable names.
 */
export class GroupOptimizer {
  constructor(
    readonly adam: Adam,
    readonly variables: Record<string, tf.Variable>,
    /** The group's learning rate before the schedule (train.lr or train.lr_discriminator, as its ParamGroup says). */
    readonly baseLr: number,
    /** train.grad_clip_norm: the group's gradients are scaled to at most this global norm (0: not clipped). */
    readonly clipNorm = 0,
  ) {}

  get lr(): number {
    return this.adam.lr;
  }

  /** The exponential schedule: baseLr x gamma^epoch for the whole epoch (PyTorch's ExponentialLR). */
  scheduleEpoch(gamma: number, epoch: number): void {
    this.adam.lr = this.baseLr * gamma ** epoch;
  }

  applyGradients(gradients: tf.NamedTensorMap): void {
    if (this.clipNorm <= 0) {
      this.adam.applyGradients(this.variables, gradients);
      return;
    }
    const clipped = clipByGlobalNorm(gradients, this.clipNorm);
    try {
      this.adam.applyGradients(this.variables, clipped);
    } finally {
      tf.dispose(clipped);
    }
  }

  dispose(): void {
    this.adam.dispose();
  }
}

/** One Adam per param group, at the learning rate its ParamGroup names. */
export function createOptimizers(model: VaeModel, train: TrainConfig): Record<string, GroupOptimizer> {
  const optimizers: Record<string, GroupOptimizer> = {};
  for (const group of model.paramGroups()) {
    const lr = train[group.learningRate];
    const variables = Object.fromEntries(groupVariables(model, group.networks));
    optimizers[group.name] = new GroupOptimizer(new Adam({ lr, weightDecay: train.weight_decay }), variables, lr, train.grad_clip_norm);
  }
  return optimizers;
}

export function applyGradients(optimizers: Record<string, GroupOptimizer>, groups: Record<string, tf.NamedTensorMap>): void {
  for (const [name, grads] of Object.entries(groups)) {
    const optimizer = optimizers[name];
    if (!optimizer) throw new StepError(`no optimizer for param group '${name}' (have ${Object.keys(optimizers).join(', ')})`);
    optimizer.applyGradients(grads);
  }
}
