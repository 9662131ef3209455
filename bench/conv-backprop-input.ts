// Conv2DBackpropInput on wasm: TF.js's stock kernel (a plain C++ loop) against this project's
// (for these strided layers one XNNPACK GEMM and a SIMD col2im), on the conv2dTranspose layers of
// a 64x64 VAE decoder (hidden dims 512..32, 3x3 kernels, stride 2, 'same') and one encoder
// input-gradient.
// Usage: node --import tsx bench/conv-backprop-input.ts [batch=16] [repeats=5]
import { tf } from '../src/util/tf.ts';
import { initBackend } from '../src/backend/index.ts';
import { stockWasmKernel } from '../src/backend/wasm-kernels/register-all.ts';

interface Layer {
  name: string;
  /** the forward conv's input, i.e. the transpose conv's output: [H, W, C] */
  input: [number, number, number];
  /** the forward conv's output channels, i.e. the transpose conv's input channels */
  outChannels: number;
}

const layers: Layer[] = [
  { name: 'decoder 2->4, 512->256', input: [4, 4, 256], outChannels: 512 },
  { name: 'decoder 4->8, 256->128', input: [8, 8, 128], outChannels: 256 },
  { name: 'decoder 8->16, 128->64', input: [16, 16, 64], outChannels: 128 },
  { name: 'decoder 16->32, 64->32', input: [32, 32, 32], outChannels: 64 },
  { name: 'decoder 32->64, 32->32', input: [64, 64, 32], outChannels: 32 },
  { name: 'encoder dx 64->32, 32->64', input: [64, 64, 32], outChannels: 64 },
];

/** The fastest run: on a shared machine, slower runs measure the neighbours, not the kernel. */
function statistic(values: number[]): number {
  return Math.min(...values);
}

async function main(): Promise<void> {
  const batch = Number(process.argv[2] ?? 16);
  const repeats = Number(process.argv[3] ?? 5);
  await initBackend('wasm');
  const stock = stockWasmKernel(tf.Conv2DBackpropInput);
  const ours = tf.getKernel(tf.Conv2DBackpropInput, 'wasm');
  if (stock === undefined || ours === undefined) throw new Error('Conv2DBackpropInput kernels not registered');
  console.log(`batch ${batch}, fastest of ${repeats} runs each (ms)`);
  console.log('layer'.padEnd(28), 'stock'.padStart(9), 'ours'.padStart(9), 'speed-up'.padStart(9), 'max|diff|'.padStart(10));
  let stockTotal = 0;
  let oursTotal = 0;
  for (const layer of layers) {
    const [h, w, c] = layer.input;
    const inputShape: [number, number, number, number] = [batch, h, w, c];
    const dy = tf.randomNormal([batch, h / 2, w / 2, layer.outChannels]);
    const filter = tf.randomNormal([3, 3, c, layer.outChannels]);
    const attrs = { strides: [2, 2], pad: 'same', dataFormat: 'NHWC', inputShape } as unknown as tf.NamedAttrMap;
    const runOnce = async (kernel: tf.KernelConfig): Promise<{ ms: number; out: Float32Array }> => {
      const start = performance.now();
      const info = kernel.kernelFunc({ inputs: { dy, filter }, backend: tf.backend(), attrs }) as tf.TensorInfo;
      const result = tf.engine().makeTensorFromTensorInfo(info);
      const out = (await result.data()) as Float32Array;
      const ms = performance.now() - start;
      result.dispose();
      return { ms, out };
    };
    // Alternate the two kernels so background load hits both alike; run 0 warms caches.
    const stockMs: number[] = [];
    const oursMs: number[] = [];
    let before = await runOnce(stock);
    let after = await runOnce(ours);
    for (let i = 0; i < repeats; i++) {
      before = await runOnce(stock);
      after = await runOnce(ours);
      stockMs.push(before.ms);
      oursMs.push(after.ms);
    }
    let diff = 0;
    for (let i = 0; i < before.out.length; i++) diff = Math.max(diff, Math.abs(before.out[i] - after.out[i]));
    const [stockBest, oursBest] = [statistic(stockMs), statistic(oursMs)];
    stockTotal += stockBest;
    oursTotal += oursBest;
    console.log(
      layer.name.padEnd(28),
      stockBest.toFixed(1).padStart(9),
      oursBest.toFixed(1).padStart(9),
      `${(stockBest / oursBest).toFixed(1)}x`.padStart(9),
      diff.toExponential(1).padStart(10),
    );
    tf.dispose([dy, filter]);
  }
  console.log(
    'total'.padEnd(28),
    stockTotal.toFixed(1).padStart(9),
    oursTotal.toFixed(1).padStart(9),
    `${(stockTotal / oursTotal).toFixed(1)}x`.padStart(9),
  );
}

await main();
