// Small datasets the tests make themselves: smooth coloured blobs with a class-dependent hue, so a
// model has something learnable and every class looks different.
import { writeNpz, type NpzVariant } from '../../src/data/npz-writer.ts';

export interface TinyNpzOptions {
  train: number;
  val?: number;
  test?: number;
  size?: number;
  channels?: 1 | 3;
  classes?: number;
  /** Multi-hot labels of this width instead of class indices. */
  multilabel?: number;
  variant?: NpzVariant;
}

function images(n: number, size: number, channels: 1 | 3, labelOf: (i: number) => number, salt: number): Uint8Array {
  const out = new Uint8Array(n * size * size * channels);
  for (let i = 0; i < n; i++) {
    const cls = labelOf(i);
    const cx = ((i * 7 + salt) % size) / size;
    const cy = ((i * 13 + salt) % size) / size;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const d = Math.hypot(x / size - cx, y / size - cy);
        const v = Math.max(0, 1 - 2 * d);
        for (let c = 0; c < channels; c++) {
          const hue = channels === 1 ? 1 : [1, 0.3 + 0.15 * cls, 0.8 - 0.15 * cls][c]!;
          out[((i * size + y) * size + x) * channels + c] = Math.round(255 * v * hue);
        }
      }
    }
  }
  return out;
}

/** Writes a MedMNIST-layout npz: {split}_images N x S x S (x 3) uint8, {split}_labels N x L uint8. */
export function writeTinyNpz(file: string, o: TinyNpzOptions): void {
  const size = o.size ?? 28;
  const channels = o.channels ?? 3;
  const classes = o.classes ?? 5;
  const arrays: Parameters<typeof writeNpz>[1] = {};
  const splits: [string, number][] = [
    ['train', o.train],
    ['val', o.val ?? 8],
    ['test', o.test ?? 8],
  ];
  splits.forEach(([split, n], s) => {
    const labelOf = (i: number): number => (i + s) % classes;
    const shape = channels === 1 ? [n, size, size] : [n, size, size, 3];
    arrays[`${split}_images`] = { dtype: '|u1', shape, data: images(n, size, channels, labelOf, s * 5) };
    const width = o.multilabel ?? 1;
    const labels = new Uint8Array(n * width);
    for (let i = 0; i < n; i++) {
      if (o.multilabel) labels[i * width + (labelOf(i) % width)] = 1;
      else labels[i] = labelOf(i);
    }
    arrays[`${split}_labels`] = { dtype: '|u1', shape: [n, width], data: labels };
  });
  writeNpz(file, arrays, o.variant ?? 'deflated');
}

/** The flags of a quick test run on a tiny npz: the smoke config, the wasm backend, plain log lines. */
export function smokeFlags(data: string): string[] {
  return ['--config', 'configs/smoke.yaml', '--data', data, '--backend', 'wasm', '--log-format', 'plain'];
}
