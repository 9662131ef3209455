// Per-shape timing of the native kernels' graphs against the wasm kernels, on the convolutions of
// a 64x64 VAE step at batch 64:
//   node --import tsx bench/native-kernels.ts [--batch 64] [--threads N] [--reps 5]
// prints one JSON line per kernel and shape: the median ms of each graph the native kernel offers
// and of the wasm kernel.
import { parseArgs } from 'node:util';
import { tf } from '../src/util/tf.ts';
import { initBackend } from '../src/backend/index.ts';
import { forceCandidate } from '../src/backend/native/kernels.ts';

const { values } = parseArgs({
  strict: false,
  options: { batch: { type: 'string', default: '64' }, threads: { type: 'string', default: '0' }, reps: { type: 'string', default: '5' } },
});
const batch = Number(values.batch);
const reps = Number(values.reps);
const threads = Number(values.threads);

// [side, in channels, out channels, stride] of each conv in the Vanilla VAE at 64x64.
const convs: [number, number, number, 1 | 2][] = [
  [64, 3, 32, 2],
  [32, 32, 64, 2],
  [16, 64, 128, 2],
  [8, 128, 256, 2],
  [4, 256, 512, 2],
  [64, 32, 32, 2],
  [64, 32, 3, 1],
];
const graphs: Record<string, string[]> = {
  Conv2D: ['conv', 'nchwc', 'im2col-matmul'],
  Conv2DBackpropInput: ['conv-transpose', 'phase-gemm', 'phase-nchwc'],
  Conv2DBackpropFilter: ['im2col-gemm', 'conv'],
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function timeKernel(kernel: string, side: number, ci: number, co: number, stride: number): number {
  const out = Math.ceil(side / stride);
  const x = tf.randomUniform([batch, side, side, ci]);
  const w = tf.randomUniform([3, 3, ci, co]);
  const dy = tf.randomUniform([batch, out, out, co]);
  const attrs = {
    strides: stride,
    pad: 'same',
    dataFormat: 'NHWC',
    dilations: 1,
    inputShape: [batch, side, side, ci],
    filterShape: [3, 3, ci, co],
  };
  const inputs: tf.NamedTensorMap =
    kernel === 'Conv2D' ? { x, filter: w } : kernel === 'Conv2DBackpropInput' ? { dy, filter: w } : { x, dy };
  const once = (): number => {
    const t0 = performance.now();
    const y = tf.engine().runKernel(kernel, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
    y.dataSync();
    const ms = performance.now() - t0;
    y.dispose();
    return ms;
  };
  once();
  const ms = median(Array.from({ length: reps }, once));
  tf.dispose([x, w, dy]);
  return ms;
}

const only = process.argv
  .slice(2)
  .find((a) => a.startsWith('--kernel='))
  ?.slice('--kernel='.length);
for (const [side, ci, co, stride] of convs) {
  for (const kernel of Object.keys(graphs).filter((k) => only === undefined || k === only)) {
    const row: Record<string, number | string> = { kernel, x: `[${batch},${side},${side},${ci}]`, out: co, stride };
    for (const graph of graphs[kernel]!) {
      forceCandidate(graph);
      await initBackend('native', undefined, { threads });
      row[graph] = Number(timeKernel(kernel, side, ci, co, stride).toFixed(2));
    }
    await initBackend('wasm');
    row['wasm'] = Number(timeKernel(kernel, side, ci, co, stride).toFixed(2));
    console.log(JSON.stringify(row));
  }
}
