// Gumbel-softmax (concrete) relaxation of categorical samples (Jang et al. 2017).
import { tf } from '../util/tf.ts';

/** Keeps log() away from 0 for uniform draws at the ends of [0, 1). */
const EPS = 1e-10;

/**
 * softmax((logits + g) / temperature) with g = -log(-log(u)), u ~ U[0, 1) given by the caller
 * (from the step's noise, so a step stays a pure function of its inputs).
 */
export function gumbelSoftmax(logits: tf.Tensor2D, uniform: tf.Tensor, temperature: number): tf.Tensor2D {
  return tf.tidy(() => {
    const gumbel = tf.neg(tf.log(tf.add(tf.neg(tf.log(tf.add(uniform, EPS))), EPS)));
    return tf.softmax(tf.div(tf.add(logits, gumbel), temperature)) as tf.Tensor2D;
  });
}

/**
 * Temperature after `step` optimiser steps: t0 * exp(-rate * s), s = step rounded down to a
 * multiple of `every` (annealed in stages), never below `min`.
 */
export function annealedTemperature(step: number, t0: number, rate: number, every: number, min: number): number {
  const stage = Math.floor(step / every) * every;
  return Math.max(t0 * Math.exp(-rate * stage), min);
}
