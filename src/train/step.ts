// The single-device training step that the trainer, the distributed worker and the benchmark all
// use: gradients of each param group's objective w.r.t. that group's variables, then one Adam
// update per group (the trainer averages gradients across micro-batches and workers in between). Gradients are keyed by stable variable names (`encoder/conv0/kernel`), so the
// all-reduce can flatten them in a fixed order and every process agrees on what a key means.
import * as tf from '@tensorflow/tfjs';
import type { TrainConfig } from '../config/schema.ts';
import type { LossContext, ModelBatch, StepNoise, VaeModel } from '../models/base.ts';
import { setMovingStatisticsFrozen } from '../models/batch-norm.ts';
import { trainableVariables } from '../models/blocks.ts';
import { Adam } from './adam.ts';

/** Gradients per param group (stable variable name -> gradient) and the step's logged terms. Caller disposes. */
export interface StepGradients {
  groups: Record<string, tf.NamedTensorMap>;
  terms: Record<string, tf.Scalar>;
}

export class StepError extends Error {
  override name = 'StepError';
}

/**
 * Noise for a step that runs one forward pass per objective: the first pass draws from the step's
 * noise and records; the later passes replay the same tensors in the same order, so that every
 * objective is evaluated on the same sample of the latent.
 */
class ReplayNoise implements StepNoise {
  private readonly drawn: tf.Tensor[] = [];
  private cursor: number | undefined;

  constructor(private readonly source: StepNoise) {}

  normal(shape: number[]): tf.Tensor {
    return this.draw(shape, () => this.source.normal(shape));
  }

  uniform(shape: number[]): tf.Tensor {
    return this.draw(shape, () => this.source.uniform(shape));
  }

  private draw(shape: number[], make: () => tf.Tensor): tf.Tensor {
    if (this.cursor === undefined) {
      const t = tf.keep(make());
      this.drawn.push(t);
      return t;
    }
    const t = this.drawn[this.cursor++];
    if (t === undefined || !tf.util.arraysEqual(t.shape, shape)) {
      throw new StepError(`a later objective pass drew noise [${shape}] where the first drew [${t?.shape ?? 'nothing'}]: models must draw all noise in a fixed order`);
    }
    return t;
  }

  rewind(): void {
    this.cursor = 0;
  }

  dispose(): void {
    for (const t of this.drawn) t.dispose();
  }
}

function groupVariables(model: VaeModel, networks: readonly string[]): Map<string, tf.Variable> {
  return trainableVariables(
    networks.map((name) => {
      const network = model.networks[name];
      if (!network) throw new StepError(`model '${model.kind}' has no network '${name}' (it has ${Object.keys(model.networks).join(', ')})`);
      return network;
    }),
  );
}

/**
 * For each param group, the gradient of its objective w.r.t. its networks' trainable variables.
 * One group (every model but VAE-GAN): one forward and backward pass. Several groups: one pass per
 * group, with the same noise (replayed), a scratch map the passes share (ctx.scratch) and BatchNorm
 * moving statistics updated by the first pass only. Terms are the union over passes (first value wins). Variables without a gradient
 * get zeros, so every group always has the same keys in the same order.
 */
export function computeGradients(model: VaeModel, batch: ModelBatch, ctx: LossContext): StepGradients {
  const groups = model.paramGroups();
  const replay = groups.length > 1 ? new ReplayNoise(ctx.noise) : undefined;
  const networks = Object.values(model.networks);
  const scratch = replay ? new Map<string, tf.Tensor>() : undefined;
  const result: StepGradients = { groups: {}, terms: {} };
  try {
    groups.forEach((group, pass) => {
      const variables = groupVariables(model, group.networks);
      if (pass > 0) {
        setMovingStatisticsFrozen(networks, true);
        replay?.rewind();
      }
      const passCtx: LossContext = replay ? { ...ctx, noise: replay, objective: group.name, scratch } : ctx;
      const { value, grads } = tf.variableGrads(() => {
        const losses = model.losses(batch, passCtx);
        const objective = losses.objectives[group.name];
        if (objective === undefined) {
          throw new StepError(`model '${model.kind}' returned no objective for param group '${group.name}' (got ${Object.keys(losses.objectives).join(', ')})`);
        }
        for (const [name, term] of Object.entries(losses.terms)) {
          // A clone, because the objective itself (often also a term) is disposed below.
          if (!(name in result.terms)) result.terms[name] = tf.keep(tf.clone(term));
        }
        return objective;
      }, [...variables.values()]);
      value.dispose();
      const named: tf.NamedTensorMap = {};
      for (const [stable, variable] of variables) named[stable] = grads[variable.name] ?? tf.zerosLike(variable);
      result.groups[group.name] = named;
    });
  } catch (e) {
    try {
      disposeGradients(result);
    } catch {
      // A backend that trapped mid-step may not free memory any more: the trap is what to report.
    }
    throw e;
  } finally {
    if (replay) {
      setMovingStatisticsFrozen(networks, false);
      replay.dispose();
      for (const t of scratch?.values() ?? []) t.dispose();
    }
  }
  return result;
}

export function disposeGradients(gradients: StepGradients): void {
  for (const group of Object.values(gradients.groups)) tf.dispose(group);
  tf.dispose(gradients.terms);
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
  ) {}

  get lr(): number {
    return this.adam.lr;
  }

  applyGradients(gradients: tf.NamedTensorMap): void {
    this.adam.applyGradients(this.variables, gradients);
  }

  dispose(): void {
    this.adam.dispose();
  }
}

/** One Adam per param group: lr for all, lr_discriminator for the 'discriminator' group. */
export function createOptimizers(model: VaeModel, train: TrainConfig): Record<string, GroupOptimizer> {
  const optimizers: Record<string, GroupOptimizer> = {};
  for (const group of model.paramGroups()) {
    const lr = group.name === 'discriminator' ? train.lr_discriminator : train.lr;
    const variables = Object.fromEntries(groupVariables(model, group.networks));
    optimizers[group.name] = new GroupOptimizer(new Adam({ lr, weightDecay: train.weight_decay }), variables);
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
