// This project's wasm kernels against TF.js's own, on the shapes of a 64x64, batch 64 training step:
//   node --import tsx bench/kernels.ts [repeats=5]
// prints one JSON line per case {"case","shape","ours_ms","stock_ms"}: the fastest of `repeats`
// runs, the two alternated so that background load hits both alike. stock_ms is null where TF.js
// has no wasm kernel (Conv2DBackpropFilter). The batch-norm case times forward + backward of the
// BatchNormalization layer, ours against tf.layers.batchNormalization.
import { tf } from '../src/util/tf.ts';
import { initBackend } from '../src/backend/index.ts';
import { stockWasmKernel } from '../src/backend/wasm-kernels/register-all.ts';
import { BatchNorm } from '../src/models/batch-norm.ts';

const repeats = Number(process.argv[2] ?? 5);
await initBackend('wasm');

/** Appends to `runs` the milliseconds of one run of f (its result disposed). */
function timeOnce(runs: number[], f: () => tf.TensorContainer): void {
  const start = performance.now();
  tf.dispose(f());
  runs.push(performance.now() - start);
}

/** One JSON line for a case: the fastest of `repeats` runs of ours (and stock), after a warm-up run each. */
function report(
  name: string,
  shape: number[] | Record<string, number[]>,
  ours: () => tf.TensorContainer,
  stock?: () => tf.TensorContainer,
): void {
  tf.dispose(ours());
  if (stock) tf.dispose(stock());
  const [oursMs, stockMs]: number[][] = [[], []];
  for (let i = 0; i < repeats; i++) {
    timeOnce(oursMs, ours);
    if (stock) timeOnce(stockMs, stock);
  }
  const round = (ms: number[]): number => Number(Math.min(...ms).toFixed(1));
  console.log(JSON.stringify({ case: name, shape, ours_ms: round(oursMs), stock_ms: stock ? round(stockMs) : null }));
}

/** A kernel call: ours as registered, or TF.js's own through the kept stock config. */
function kernel(name: string, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap, which: 'ours' | 'stock'): tf.Tensor {
  const config = which === 'ours' ? tf.getKernel(name, 'wasm') : stockWasmKernel(name);
  if (config === undefined) throw new Error(`no ${which} wasm kernel ${name}`);
  const info = config.kernelFunc({ inputs, backend: tf.backend(), attrs }) as tf.TensorInfo;
  return tf.engine().makeTensorFromTensorInfo(info);
}

function stockComparison(name: string, shape: number[], inputs: Record<string, tf.Tensor>, attrs: object): void {
  const a = attrs as tf.NamedAttrMap;
  report(
    name,
    shape,
    () => kernel(name, inputs, a, 'ours'),
    () => kernel(name, inputs, a, 'stock'),
  );
}

const activation = tf.randomNormal([64, 64, 64, 32]);
const output = tf.randomNormal([64, 64, 64, 3]);
stockComparison(tf.LeakyRelu, activation.shape, { x: activation }, { alpha: 0.01 });
stockComparison(tf.Identity, activation.shape, { x: activation }, {});
stockComparison(tf.Tanh, output.shape, { x: output }, {});
for (const [x, bias] of [
  [activation, tf.randomNormal([1, 1, 1, 32])],
  [output, tf.randomNormal([3])],
] as const) {
  stockComparison(tf.Add, x.shape, { a: x, b: bias }, {});
  bias.dispose();
}
const wide = tf.randomNormal([64, 131072]);
stockComparison(tf.Transpose, wide.shape, { x: wide }, { perm: [1, 0] });

const dy = tf.randomNormal([64, 2, 2, 512]);
const filter = tf.randomNormal([3, 3, 256, 512]);
stockComparison(
  tf.Conv2DBackpropInput,
  dy.shape,
  { dy, filter },
  { strides: [2, 2], pad: 'same', dataFormat: 'NHWC', inputShape: [64, 4, 4, 256] },
);

const filterCases: { x: number[]; dy: number[]; strides: number; filterShape: number[] }[] = [
  { x: [64, 64, 64, 3], dy: [64, 32, 32, 32], strides: 2, filterShape: [3, 3, 3, 32] },
  { x: [64, 64, 64, 32], dy: [64, 64, 64, 3], strides: 1, filterShape: [3, 3, 32, 3] },
  { x: [64, 64, 64, 32], dy: [64, 32, 32, 32], strides: 2, filterShape: [3, 3, 32, 32] },
  { x: [64, 16, 16, 64], dy: [64, 8, 8, 128], strides: 2, filterShape: [3, 3, 64, 128] },
];
for (const c of filterCases) {
  const [x, g] = [tf.randomNormal(c.x), tf.randomNormal(c.dy)];
  const attrs = { strides: c.strides, pad: 'same', dataFormat: 'NHWC', filterShape: c.filterShape } as unknown as tf.NamedAttrMap;
  report(tf.Conv2DBackpropFilter, { x: c.x, dy: c.dy }, () => kernel(tf.Conv2DBackpropFilter, { x, dy: g }, attrs, 'ours'));
  tf.dispose([x, g]);
}

const weights = tf.randomNormal(activation.shape);
const forwardBackward = (layer: tf.layers.Layer) => (): tf.Tensor =>
  tf.grad((v: tf.Tensor) => tf.sum(tf.mul(layer.apply(v, { training: true }) as tf.Tensor, weights)))(activation);
report(
  'BatchNormalization forward + backward',
  activation.shape,
  forwardBackward(new BatchNorm({ momentum: 0.9, epsilon: 1e-5 })),
  forwardBackward(tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5 })),
);
tf.dispose([activation, output, wide, dy, filter, weights]);
