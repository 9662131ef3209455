// The kernels the backends compute with: the wasm training kernels against the cpu backend (the
// filter gradient against its definition), the wasm kernel registry, the SIMD kernels and the
// layers built on them, reading tensors into reusable arrays, and the native backend's threads and
// run plan. One process for all, as a process costs about a second to start: each describe block
// below sets the backend it computes on in its own before() (initBackend('wasm') takes the native
// kernels off again after the native block), and keeps its hooks, environment and state to itself.
import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { tf } from '../../src/util/tf.ts';
import { initBackend, useNativePlan } from '../../src/backend/index.ts';
import {
  registerWasmTrainingKernels,
  stockWasmKernel,
  wasmKernelAdditions,
  wasmKernelOverrides,
} from '../../src/backend/wasm-kernels/register-all.ts';
import { CHANNEL_SCALE_SHIFT } from '../../src/backend/wasm-kernels/kernel-names.ts';
import { axisSwap } from '../../src/backend/wasm-kernels/transpose.ts';
import { mulberry32 } from '../../src/util/rng.ts';
import { adamUpdate } from '../../src/backend/adam-update.ts';
import { channelAffine, channelSquaredDeviationSum, channelSum, channelSumAndDot, leakyReluGrad } from '../../src/backend/channel-ops.ts';
import { SimdKernelError } from '../../src/backend/simd/module.ts';
import { BatchNorm } from '../../src/models/batch-norm.ts';
import { LeakyRelu } from '../../src/models/leaky-relu.ts';
import { readInto, startReadInto, tensorsFrom, totalSize } from '../../src/backend/tensor-io.ts';
import { oversubscription, resolveThreads } from '../../src/backend/native/threads.ts';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/validate.ts';
import { configFromFlags } from '../../src/cli/train-options.ts';
import { GRAPH_SET } from '../../src/backend/native/choices.ts';
import { nchwcBlockSize } from '../../src/backend/native/nchwc.ts';
import { chosenGraphs, clearSessions, forceCandidate, loadBinding, setNativeThreads } from '../../src/backend/native/kernels.ts';
import {
  closeRunPlan,
  parsePlan,
  PLAN_FILE,
  planKey,
  type PlannedChoice,
  type RunPlan,
  serialisePlan,
} from '../../src/backend/native/run-plan.ts';
import { nativeUnavailable } from '../helpers/native.ts';
import { tempDir } from '../helpers/temp-dir.ts';

describe('backend-kernels: the wasm training kernels against the cpu backend', () => {
  // The wasm training kernels of src/backend/wasm-kernels, each checked on seeded random inputs against
  // the cpu backend's own implementation (the filter gradient: against its definition in plain loops),
  // directly and through tf.grad.

  type Shape4 = [number, number, number, number];

  interface HostTensor {
    shape: number[];
    dtype: 'float32' | 'int32';
    values: Float32Array | Int32Array;
  }

  function randomHost(shape: number[], seed: number): HostTensor {
    const next = mulberry32(seed);
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < values.length; i++) values[i] = next() * 2 - 1;
    return { shape, dtype: 'float32', values };
  }

  function toTensor(host: HostTensor): tf.Tensor {
    return tf.tensor(host.values, host.shape, host.dtype);
  }

  /**
   * Runs `compute` on `backend` with fresh tensors; asserts it leaves exactly its outputs behind,
   * both as tracked tensors and as buffers the backend holds (a stray incRef shows only there).
   */
  async function runOn(
    backend: 'wasm' | 'cpu',
    inputs: HostTensor[],
    compute: (tensors: tf.Tensor[]) => tf.Tensor | tf.Tensor[],
  ): Promise<HostTensor[]> {
    await tf.setBackend(backend);
    const buffersBefore = tf.backend().numDataIds();
    const tensors = inputs.map(toTensor);
    const tensorsBefore = tf.memory().numTensors;
    const produced = compute(tensors);
    const outputs = Array.isArray(produced) ? produced : [produced];
    assert.equal(tf.memory().numTensors, tensorsBefore + outputs.length, `${backend}: tensors leaked`);
    const hosts = await Promise.all(
      outputs.map(async (t) => ({
        shape: t.shape,
        dtype: t.dtype as HostTensor['dtype'],
        values: (await t.data()) as Float32Array | Int32Array,
      })),
    );
    tf.dispose([...outputs, ...tensors]);
    assert.equal(tf.backend().numDataIds(), buffersBefore, `${backend}: backend buffers leaked`);
    return hosts;
  }

  function assertClose(actual: HostTensor, expected: HostTensor, what: string): void {
    assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
    let scale = 1;
    for (const v of expected.values) scale = Math.max(scale, Math.abs(v));
    let worst = 0;
    for (let i = 0; i < expected.values.length; i++) {
      worst = Math.max(worst, Math.abs(actual.values[i] - expected.values[i]));
    }
    assert.ok(worst <= 1e-4 * scale, `${what}: max |wasm - reference| = ${worst} (scale ${scale})`);
  }

  /** Same computation on wasm and on cpu (or a cpu reference for it); every output must agree. */
  async function assertWasmMatchesCpu(
    what: string,
    inputs: HostTensor[],
    compute: (tensors: tf.Tensor[]) => tf.Tensor | tf.Tensor[],
    cpuReference = compute,
  ): Promise<void> {
    const wasm = await runOn('wasm', inputs, compute);
    const cpu = await runOn('cpu', inputs, cpuReference);
    assert.equal(wasm.length, cpu.length);
    wasm.forEach((out, i) => assertClose(out, cpu[i], `${what} output ${i}`));
  }

  type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;

  interface ConvCase {
    name: string;
    x: Shape4;
    filter: Shape4;
    strides: [number, number];
    pad: Pad;
    dilations?: [number, number];
  }

  const convCases: ConvCase[] = [
    { name: 'stride 1 same, odd, batch 1', x: [1, 7, 7, 3], filter: [3, 3, 3, 4], strides: [1, 1], pad: 'same' },
    { name: 'stride 2 same, even, batch 2', x: [2, 8, 8, 3], filter: [3, 3, 3, 5], strides: [2, 2], pad: 'same' },
    { name: 'stride 2 valid, odd/even', x: [2, 9, 8, 2], filter: [3, 3, 2, 3], strides: [2, 2], pad: 'valid' },
    {
      name: 'stride 2 explicit, even 4x3 filter, batch 3',
      x: [3, 8, 7, 2],
      filter: [4, 3, 2, 3],
      strides: [2, 2],
      pad: [
        [0, 0],
        [1, 2],
        [0, 1],
        [0, 0],
      ],
    },
    { name: 'stride 2 numeric pad', x: [2, 7, 7, 2], filter: [3, 3, 2, 2], strides: [2, 2], pad: 1 },
    { name: 'stride 2 valid, kernel = stride', x: [1, 6, 6, 2], filter: [2, 2, 2, 3], strides: [2, 2], pad: 'valid' },
    { name: 'stride 2 same, 1x1 filter', x: [2, 5, 5, 3], filter: [1, 1, 3, 2], strides: [2, 2], pad: 'same' },
    { name: 'strides 2x3 same, 5x5 filter', x: [2, 10, 11, 2], filter: [5, 5, 2, 3], strides: [2, 3], pad: 'same' },
    // stride 1 with fewer output than input channels: dW takes the dy-as-input route
    { name: 'stride 1 same, Co < Ci, batch 3', x: [3, 9, 8, 5], filter: [3, 3, 5, 2], strides: [1, 1], pad: 'same' },
    { name: 'stride 1 valid, Co < Ci, 2x3 filter', x: [2, 7, 6, 4], filter: [2, 3, 4, 1], strides: [1, 1], pad: 'valid' },
    // 32+ input channels: Conv2DBackpropInput runs one conv per (row, column) phase
    { name: 'stride 2 same, 32 channels, odd/even', x: [2, 5, 6, 32], filter: [3, 3, 32, 3], strides: [2, 2], pad: 'same' },
    { name: 'stride 2 same, 1x1 filter, 32 channels', x: [1, 6, 5, 32], filter: [1, 1, 32, 2], strides: [2, 2], pad: 'same' },
    {
      name: 'strides 2x3 explicit, 4x5 filter, 33 channels',
      x: [2, 7, 9, 33],
      filter: [4, 5, 33, 2],
      strides: [2, 3],
      pad: [
        [0, 0],
        [3, 1],
        [2, 4],
        [0, 0],
      ],
    },
    // padding of at least the stride: dx starts past whole phase rows
    { name: 'stride 1 same, 5x5 filter, Co < Ci', x: [1, 6, 7, 3], filter: [5, 5, 3, 2], strides: [1, 1], pad: 'same' },
    {
      name: 'stride 2 explicit pad 3/2 and 4/0, batch 2',
      x: [2, 7, 8, 2],
      filter: [5, 5, 2, 3],
      strides: [2, 2],
      pad: [
        [0, 0],
        [3, 2],
        [4, 0],
        [0, 0],
      ],
    },
  ];

  function convInfo(c: ConvCase, depthwise: boolean): tf.backend_util.Conv2DInfo {
    return tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, c.dilations ?? 1, c.pad, undefined, depthwise);
  }

  let seed = 1;
  const nextSeed = (): number => seed++;

  before(async () => {
    await initBackend('wasm');
  });

  /**
   * The filter gradient by its definition, in plain loops (float64 sums): dW[fy][fx][ci][co] is the sum
   * over n, oy, ox of x at the tap's input position times dy[n][oy][ox][co]. Independent of TF.js, and
   * far quicker than the cpu backend on the shapes that take the row chunks.
   */
  function backpropFilterByDefinition(x: HostTensor, dy: HostTensor, info: tf.backend_util.Conv2DInfo): HostTensor {
    const [n, h, w, ci] = x.shape as Shape4;
    const { outHeight, outWidth, outChannels: co, filterHeight, filterWidth, strideHeight, strideWidth } = info;
    const { dilationHeight, dilationWidth, padInfo } = info;
    const sums = new Float64Array(filterHeight * filterWidth * ci * co);
    for (let b = 0; b < n; b++) {
      for (let oy = 0; oy < outHeight; oy++) {
        for (let ox = 0; ox < outWidth; ox++) {
          const dyAt = ((b * outHeight + oy) * outWidth + ox) * co;
          for (let fy = 0; fy < filterHeight; fy++) {
            const iy = oy * strideHeight + fy * dilationHeight - padInfo.top;
            if (iy < 0 || iy >= h) continue;
            for (let fx = 0; fx < filterWidth; fx++) {
              const ix = ox * strideWidth + fx * dilationWidth - padInfo.left;
              if (ix < 0 || ix >= w) continue;
              const xAt = ((b * h + iy) * w + ix) * ci;
              const tapAt = (fy * filterWidth + fx) * ci * co;
              for (let c = 0; c < ci; c++) {
                const xv = x.values[xAt + c]!;
                const at = tapAt + c * co;
                for (let o = 0; o < co; o++) sums[at + o] += xv * dy.values[dyAt + o]!;
              }
            }
          }
        }
      }
    }
    return { shape: [filterHeight, filterWidth, ci, co], dtype: 'float32', values: Float32Array.from(sums) };
  }

  /** One test comparing wasm's Conv2DBackpropFilter with the gradient by definition for a case. */
  function backpropFilterTest(c: ConvCase): void {
    test(c.name, async () => {
      const info = convInfo(c, false);
      const x = randomHost(c.x, nextSeed());
      const dy = randomHost(info.outShape, nextSeed());
      const [wasm] = await runOn(
        'wasm',
        [x, dy],
        ([xT, dyT]) =>
          tf.engine().runKernel(tf.Conv2DBackpropFilter, { x: xT, dy: dyT }, {
            strides: c.strides,
            pad: c.pad,
            dataFormat: 'NHWC',
            filterShape: c.filter,
          } as unknown as tf.NamedAttrMap) as tf.Tensor,
      );
      assertClose(wasm!, backpropFilterByDefinition(x, dy, info), c.name);
    });
  }

  describe('Conv2DBackpropFilter on wasm', () => {
    for (const c of convCases) backpropFilterTest(c);
  });

  describe('Conv2DBackpropFilter on wasm, a filter (dy or x) large enough to be taken in row chunks', () => {
    const cases: ConvCase[] = [
      // (channels that are not whole vectors: the direct loop below does not take these)
      { name: 'stride 2 same, 16 rows in chunks of 7', x: [16, 32, 32, 6], filter: [3, 3, 6, 280], strides: [2, 2], pad: 'same' },
      // x is the filter here (stride 1, Co < Ci): 32 rows in chunks of 15
      { name: 'stride 1 same, Co < Ci, x in row chunks', x: [17, 32, 32, 62], filter: [3, 3, 62, 6], strides: [1, 1], pad: 'same' },
      {
        name: 'stride 2, padding 1 all round',
        x: [16, 31, 30, 6],
        filter: [3, 3, 6, 280],
        strides: [2, 2],
        pad: [
          [0, 0],
          [1, 1],
          [1, 1],
          [0, 0],
        ],
      },
    ];
    for (const c of cases) backpropFilterTest(c);
  });

  describe('Conv2DBackpropFilter on wasm, at most 4 channels on one side or output rows of 16+ (the direct SIMD loop)', () => {
    const cases: ConvCase[] = [
      { name: 'image layer 3 -> 32, stride 2 same', x: [4, 16, 16, 3], filter: [3, 3, 3, 32], strides: [2, 2], pad: 'same' },
      { name: 'output layer 32 -> 3, stride 1 same', x: [3, 9, 11, 32], filter: [3, 3, 32, 3], strides: [1, 1], pad: 'same' },
      {
        name: '1 -> 20 (one group of 16 lanes and one of 4), stride 2 valid, odd sizes',
        x: [2, 11, 9, 1],
        filter: [3, 3, 1, 20],
        strides: [2, 2],
        pad: 'valid',
      },
      {
        name: '8 -> 1, 4x2 filter, explicit padding',
        x: [2, 7, 8, 8],
        filter: [4, 2, 8, 1],
        strides: [1, 2],
        pad: [
          [0, 0],
          [2, 1],
          [0, 1],
          [0, 0],
        ],
      },
      {
        name: '4 -> 4, a 5x5 filter wider than the image with stride 1 same',
        x: [3, 4, 3, 4],
        filter: [5, 5, 4, 4],
        strides: [1, 1],
        pad: 'same',
      },
      { name: '8 -> 12, output rows of 17, stride 2 same', x: [2, 34, 34, 8], filter: [3, 3, 8, 12], strides: [2, 2], pad: 'same' },
      { name: '20 -> 5, output rows of 34, stride 1 valid', x: [1, 20, 36, 20], filter: [3, 3, 20, 5], strides: [1, 1], pad: 'valid' },
    ];
    for (const c of cases) backpropFilterTest(c);
    test('runs as one kernel: no convolution or transpose inside', async () => {
      await tf.setBackend('wasm');
      const x = tf.randomNormal([2, 8, 8, 3]);
      const dy = tf.randomNormal([2, 4, 4, 16]);
      const attrs = { strides: [2, 2], pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 3, 16] } as unknown as tf.NamedAttrMap;
      const { kernelNames, result } = await tf.profile(() => tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, attrs) as tf.Tensor);
      assert.deepEqual(kernelNames, [tf.Conv2DBackpropFilter]);
      tf.dispose([x, dy, result as tf.Tensor]);
    });
  });

  function backpropInputAttrs(c: ConvCase): tf.NamedAttrMap {
    return { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', inputShape: c.x } as unknown as tf.NamedAttrMap;
  }

  /** Conv2DBackpropInput of a case on the active backend. */
  function backpropInput(c: ConvCase, [dy, filter]: tf.Tensor[]): tf.Tensor {
    return tf.engine().runKernel(tf.Conv2DBackpropInput, { dy, filter }, backpropInputAttrs(c)) as tf.Tensor;
  }

  /**
   * One test comparing wasm's Conv2DBackpropInput with cpu's for a case; `kernelsRun`, when given,
   * checks the names of the kernels the wasm run used.
   */
  function backpropInputTest(c: ConvCase, kernelsRun?: (names: string[]) => void): void {
    test(c.name, async () => {
      const info = convInfo(c, false);
      const dy = randomHost(info.outShape, nextSeed());
      const filter = randomHost(c.filter, nextSeed());
      await assertWasmMatchesCpu(c.name, [dy, filter], (tensors) => backpropInput(c, tensors));
      if (kernelsRun === undefined) return;
      await tf.setBackend('wasm');
      const tensors = [toTensor(dy), toTensor(filter)];
      const { kernelNames, result } = await tf.profile(() => backpropInput(c, tensors));
      kernelsRun(kernelNames);
      tf.dispose([...tensors, result as tf.Tensor]);
    });
  }

  describe('Conv2DBackpropInput on wasm', () => {
    for (const c of convCases) backpropInputTest(c);

    test('replaces the stock wasm kernel, which it agrees with', async () => {
      const stock = stockWasmKernel(tf.Conv2DBackpropInput);
      assert.ok(stock, 'the stock Conv2DBackpropInput was kept');
      assert.notEqual(tf.getKernel(tf.Conv2DBackpropInput, 'wasm'), stock);
      const c = convCases[1];
      const info = convInfo(c, false);
      const [dy, filter] = [randomHost(info.outShape, nextSeed()), randomHost(c.filter, nextSeed())];
      const ours = await runOn('wasm', [dy, filter], (tensors) => backpropInput(c, tensors));
      const theirs = await runOn('wasm', [dy, filter], ([dyT, filterT]) => {
        const info = stock.kernelFunc({ inputs: { dy: dyT, filter: filterT }, backend: tf.backend(), attrs: backpropInputAttrs(c) });
        return tf.engine().makeTensorFromTensorInfo(info as tf.TensorInfo);
      });
      assertClose(ours[0], theirs[0], 'ours vs stock');
    });
  });

  describe('Conv2DBackpropInput on wasm, strided with 8+ dy channels (one GEMM and a col2im)', () => {
    const cases: ConvCase[] = [
      { name: 'stride 2 same, 8 <- 16 channels', x: [2, 8, 8, 8], filter: [3, 3, 8, 16], strides: [2, 2], pad: 'same' },
      { name: 'stride 2 valid, odd sizes, 4 <- 12', x: [3, 9, 7, 4], filter: [3, 3, 4, 12], strides: [2, 2], pad: 'valid' },
      {
        name: 'strides 2x3, 5x4 filter, explicit padding',
        x: [2, 10, 11, 12],
        filter: [5, 4, 12, 8],
        strides: [2, 3],
        pad: [
          [0, 0],
          [2, 1],
          [1, 2],
          [0, 0],
        ],
      },
      { name: 'stride 2 valid, kernel = stride', x: [1, 6, 6, 8], filter: [2, 2, 8, 8], strides: [2, 2], pad: 'valid' },
      {
        name: "a 2x2 image from 1x1, 16 <- 32 (the decoder's first layer, small)",
        x: [3, 2, 2, 16],
        filter: [3, 3, 16, 32],
        strides: [2, 2],
        pad: 'same',
      },
    ];
    for (const c of cases) {
      backpropInputTest(c, (names) => assert.ok(names.includes('MedvaeCol2Im') && !names.includes(tf.Conv2D), names.join(',')));
    }
  });

  const depthwiseCases: ConvCase[] = [
    { name: 'stride 1 same, odd, batch 1, M=1', x: [1, 7, 7, 3], filter: [3, 3, 3, 1], strides: [1, 1], pad: 'same' },
    { name: 'stride 2 same, even, batch 2, M=2', x: [2, 8, 8, 3], filter: [3, 3, 3, 2], strides: [2, 2], pad: 'same' },
    { name: 'stride 2 valid, odd/even, M=3', x: [2, 9, 8, 2], filter: [3, 3, 2, 3], strides: [2, 2], pad: 'valid' },
    {
      name: 'stride 2 explicit, 4x3 filter',
      x: [3, 8, 7, 2],
      filter: [4, 3, 2, 2],
      strides: [2, 2],
      pad: [
        [0, 0],
        [1, 2],
        [0, 1],
        [0, 0],
      ],
    },
    {
      name: 'stride 1 dilation 2 same, M=2',
      x: [2, 9, 8, 2],
      filter: [3, 3, 2, 2],
      strides: [1, 1],
      pad: 'same',
      dilations: [2, 2],
    },
    {
      name: 'stride 1 dilation 2x3 valid',
      x: [1, 10, 11, 2],
      filter: [3, 2, 2, 1],
      strides: [1, 1],
      pad: 'valid',
      dilations: [2, 3],
    },
  ];

  // The cpu backend's depthwise backprop kernels ignore `dilations` (TF.js only differentiates
  // dilation-1 depthwise convs), so dilated cases are checked against cpu on the equivalent
  // undilated filter: the taps spread d apart with zeros between them.
  function dilatedFilter(filter: tf.Tensor, [dh, dw]: [number, number]): tf.Tensor4D {
    const [kh, kw, channels, multiplier] = filter.shape;
    const taps = filter.arraySync() as number[][][][];
    const spread = tf.buffer([(kh - 1) * dh + 1, (kw - 1) * dw + 1, channels, multiplier]);
    for (let i = 0; i < kh; i++)
      for (let j = 0; j < kw; j++)
        for (let c = 0; c < channels; c++) for (let m = 0; m < multiplier; m++) spread.set(taps[i][j][c][m], i * dh, j * dw, c, m);
    return spread.toTensor() as tf.Tensor4D;
  }

  describe('DepthwiseConv2dNativeBackpropInput on wasm', () => {
    for (const c of depthwiseCases) {
      test(c.name, async () => {
        const info = convInfo(c, true);
        const dy = randomHost(info.outShape, nextSeed());
        const filter = randomHost(c.filter, nextSeed());
        const backpropInput = (dyT: tf.Tensor, filterT: tf.Tensor, dilations: [number, number] | 1) =>
          tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropInput, { dy: dyT, filter: filterT }, {
            strides: c.strides,
            dilations,
            pad: c.pad,
            inputShape: c.x,
          } as unknown as tf.NamedAttrMap) as tf.Tensor;
        const dilations = c.dilations;
        await assertWasmMatchesCpu(
          c.name,
          [dy, filter],
          ([dyT, filterT]) => backpropInput(dyT, filterT, dilations ?? 1),
          ([dyT, filterT]) =>
            dilations === undefined
              ? backpropInput(dyT, filterT, 1)
              : tf.tidy(() => backpropInput(dyT, dilatedFilter(filterT, dilations), 1)),
        );
      });
    }
  });

  describe('DepthwiseConv2dNativeBackpropFilter on wasm', () => {
    for (const c of depthwiseCases) {
      test(c.name, async () => {
        const info = convInfo(c, true);
        const x = randomHost(c.x, nextSeed());
        const dy = randomHost(info.outShape, nextSeed());
        const backpropFilter = (xT: tf.Tensor, dyT: tf.Tensor, dilations: [number, number] | 1, filterShape: Shape4) =>
          tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropFilter, { x: xT, dy: dyT }, {
            strides: c.strides,
            dilations,
            pad: c.pad,
            filterShape,
          } as unknown as tf.NamedAttrMap) as tf.Tensor;
        const dilations = c.dilations;
        const [kh, kw, channels, multiplier] = c.filter;
        await assertWasmMatchesCpu(
          c.name,
          [x, dy],
          ([xT, dyT]) => backpropFilter(xT, dyT, dilations ?? 1, c.filter),
          ([xT, dyT]) => {
            if (dilations === undefined) return backpropFilter(xT, dyT, 1, c.filter);
            const [dh, dw] = dilations;
            // the gradient of the spread filter, read at the taps that exist
            return tf.tidy(() => {
              const spreadShape: Shape4 = [(kh - 1) * dh + 1, (kw - 1) * dw + 1, channels, multiplier];
              const spread = backpropFilter(xT, dyT, 1, spreadShape);
              return tf.stridedSlice(spread, [0, 0, 0, 0], spreadShape, [dh, dw, 1, 1]);
            });
          },
        );
      });
    }
  });

  describe('UnsortedSegmentSum on wasm', () => {
    const ids = (values: number[]): HostTensor => ({ shape: [values.length], dtype: 'int32', values: Int32Array.from(values) });
    const segmentSum =
      (numSegments: number) =>
      ([x, segmentIds]: tf.Tensor[]) =>
        tf.unsortedSegmentSum(x, segmentIds as tf.Tensor1D, numSegments);

    test('rows with duplicate, negative and out-of-range ids', async () => {
      await assertWasmMatchesCpu('2d', [randomHost([6, 3], nextSeed()), ids([0, 2, 0, 5, -1, 1])], segmentSum(4));
    });
    test('1-d values and an empty segment', async () => {
      await assertWasmMatchesCpu('1d', [randomHost([5], nextSeed()), ids([3, 3, 0, 1, 3])], segmentSum(5));
    });
    test('rank-3 values', async () => {
      await assertWasmMatchesCpu('3d', [randomHost([4, 2, 3], nextSeed()), ids([1, 0, 1, 1])], segmentSum(2));
    });
    test('int32 values, checked by hand', async () => {
      const x: HostTensor = { shape: [4, 2], dtype: 'int32', values: Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]) };
      const [out] = await runOn('wasm', [x, ids([1, 0, 1, 9])], segmentSum(3));
      assert.equal(out.dtype, 'int32');
      assert.deepEqual(Array.from(out.values), [3, 4, 6, 8, 0, 0]);
    });
  });

  describe('Sum on wasm', () => {
    const cases: { name: string; shape: number[]; axis: number | number[]; keepDims: boolean }[] = [
      { name: 'leading axes of NHWC (a bias gradient)', shape: [3, 5, 4, 6], axis: [0, 1, 2], keepDims: false },
      { name: 'leading axes, keepDims, batch 1', shape: [1, 7, 5, 3], axis: [0, 1, 2], keepDims: true },
      { name: 'middle axes, unsorted and negative', shape: [2, 3, 5, 4], axis: [-2, 1], keepDims: false },
      { name: 'middle axes, keepDims', shape: [3, 4, 5, 2], axis: [1, 2], keepDims: true },
      { name: 'axis 0 of a matrix, odd sizes', shape: [37, 11], axis: 0, keepDims: false },
      { name: 'trailing axis (stock kernel)', shape: [4, 6, 5], axis: -1, keepDims: false },
      { name: 'non-contiguous axes (stock kernel)', shape: [3, 4, 5, 2], axis: [0, 2], keepDims: true },
      { name: 'all axes (stock kernel)', shape: [3, 4, 5], axis: [0, 1, 2], keepDims: false },
      { name: 'a reduced axis of size 1', shape: [1, 6, 3], axis: 0, keepDims: false },
      // XNNPACK's average pool over 8+ elements with 16384+ channels traps and corrupts the heap
      { name: 'leading axis, 8 x 32768 (the SIMD column sum)', shape: [8, 32768], axis: 0, keepDims: false },
      { name: 'middle axis over 16384 channels (stock kernel)', shape: [2, 8, 16384], axis: 1, keepDims: false },
    ];
    for (const c of cases) {
      test(c.name, async () => {
        await assertWasmMatchesCpu(c.name, [randomHost(c.shape, nextSeed())], ([x]) => tf.sum(x, c.axis, c.keepDims));
      });
    }
    test('a large leading reduction stays within 1e-4 of cpu', async () => {
      await assertWasmMatchesCpu('large', [randomHost([16, 32, 32, 8], nextSeed())], ([x]) => tf.sum(x, [0, 1, 2]));
    });
    test('int32 values, checked by hand', async () => {
      const x: HostTensor = { shape: [3, 2], dtype: 'int32', values: Int32Array.from([1, 2, 3, 4, 5, 6]) };
      const [out] = await runOn('wasm', [x], ([t]) => tf.sum(t, 0));
      assert.equal(out.dtype, 'int32');
      assert.deepEqual(Array.from(out.values), [9, 12]);
    });
    test('replaces the stock wasm kernel', () => {
      assert.ok(stockWasmKernel(tf.Sum), 'the stock Sum was kept');
      assert.notEqual(tf.getKernel(tf.Sum, 'wasm'), stockWasmKernel(tf.Sum));
    });
  });

  describe('Transpose on wasm', () => {
    test('permutations are read as axis swaps after dropping size-1 axes and merging neighbours', () => {
      assert.deepEqual(axisSwap([64, 131072], [1, 0]), { batch: 1, rows: 64, cols: 131072, block: 1 });
      assert.deepEqual(axisSwap([2, 3, 4, 5], [1, 2, 0, 3]), { batch: 1, rows: 2, cols: 12, block: 5 });
      assert.deepEqual(axisSwap([4, 5, 6], [0, 2, 1]), { batch: 4, rows: 5, cols: 6, block: 1 });
      assert.deepEqual(axisSwap([2, 3, 4, 5], [0, 2, 1, 3]), { batch: 2, rows: 3, cols: 4, block: 5 });
      // [2,3,4] -> [4,2,3] moves the block (2,3) past 4: a [6, 4] swap.
      assert.deepEqual(axisSwap([2, 3, 4], [2, 0, 1]), { batch: 1, rows: 6, cols: 4, block: 1 });
      // size-1 axes drop out: [1,5,1,3] -> [3,5,1,1] is a [5, 3] swap.
      assert.deepEqual(axisSwap([1, 5, 1, 3], [3, 1, 2, 0]), { batch: 1, rows: 5, cols: 3, block: 1 });
      assert.equal(axisSwap([2, 3, 4, 5], [3, 2, 1, 0]), undefined, 'a full reversal is not one swap');
      assert.equal(axisSwap([2, 3, 4], [0, 1, 2]), undefined, 'no permutation at all');
    });
    // Sizes past 65536 elements per slice take the SIMD path; odd sizes exercise the row and column
    // tails of the 4x4 blocks, 300 rows several 64-row tiles.
    const cases: { name: string; shape: number[]; perm: number[] }[] = [
      { name: '[300, 257] -> [257, 300]', shape: [300, 257], perm: [1, 0] },
      { name: '[67, 1031] -> [1031, 67]', shape: [67, 1031], perm: [1, 0] },
      { name: 'NHWC -> HWNC in blocks of 4 channels', shape: [5, 70, 66, 4], perm: [1, 2, 0, 3] },
      { name: 'NHWC -> HWNC in blocks of 3 channels', shape: [6, 61, 70, 3], perm: [1, 2, 0, 3] },
      { name: 'batched [0, 2, 1] swaps', shape: [3, 129, 515], perm: [0, 2, 1] },
      { name: 'batched blocks [0, 2, 1, 3]', shape: [2, 130, 170, 4], perm: [0, 2, 1, 3] },
      { name: 'small (stock kernel)', shape: [3, 5, 7], perm: [2, 0, 1] },
      { name: 'a full reversal (stock kernel)', shape: [4, 6, 5, 3], perm: [3, 2, 1, 0] },
    ];
    for (const c of cases) {
      test(c.name, async () => {
        await assertWasmMatchesCpu(c.name, [randomHost(c.shape, nextSeed())], ([x]) => tf.transpose(x, c.perm));
      });
    }
    test('int32 values move bit for bit', async () => {
      const values = Int32Array.from({ length: 260 * 300 }, (_, i) => i * 7 - 100000);
      const [out] = await runOn('wasm', [{ shape: [260, 300], dtype: 'int32', values }], ([t]) => tf.transpose(t));
      assert.equal(out.dtype, 'int32');
      for (const [r, c] of [
        [0, 0],
        [259, 299],
        [3, 17],
        [258, 1],
      ])
        assert.equal(out.values[c * 260 + r], values[r * 300 + c]);
    });
    test('replaces the stock wasm kernel', () => {
      assert.ok(stockWasmKernel(tf.Transpose), 'the stock Transpose was kept');
      assert.notEqual(tf.getKernel(tf.Transpose, 'wasm'), stockWasmKernel(tf.Transpose));
    });
  });

  describe('Tanh on wasm (2 sigmoid(2x) - 1)', () => {
    test('within 3e-7 of float64 tanh from -12 to 12, tiny values and zero included, and the same gradient as cpu', async () => {
      const xs = Float32Array.from({ length: 4001 }, (_, i) => (i - 2000) * 0.006);
      xs.set([0, 1e-30, -1e-7, 3e-5, 20, -20], 0);
      await tf.setBackend('wasm');
      const [ys, dxs] = tf.tidy(() => {
        const x = tf.tensor1d(xs);
        return [
          tf.tanh(x).dataSync(),
          tf
            .grad((v: tf.Tensor) => tf.sum(tf.tanh(v)))(x)
            .dataSync(),
        ];
      });
      xs.forEach((x, i) => assert.ok(Math.abs(ys[i] - Math.tanh(x)) <= 3e-7, `tanh(${x}) = ${ys[i]}, float64 ${Math.tanh(x)}`));
      await tf.setBackend('cpu');
      const cpuDx = tf.tidy(() =>
        tf
          .grad((v: tf.Tensor) => tf.sum(tf.tanh(v)))(tf.tensor1d(xs))
          .dataSync(),
      );
      await tf.setBackend('wasm');
      cpuDx.forEach((d, i) => assert.ok(Math.abs(dxs[i] - d) <= 1e-6, `dtanh at ${xs[i]}: ${dxs[i]} vs cpu ${d}`));
    });
  });

  describe('Add of a per-channel vector on wasm (a bias)', () => {
    // [activation, bias, whether the SIMD pass takes it]: channels in whole vectors, an image's 3
    // (rows of 12), and what stays with the stock kernel (too small; rows of 12 do not divide it).
    const cases: [number[], number[], boolean][] = [
      [[8, 16, 16, 32], [32], true],
      [[8, 16, 16, 32], [1, 1, 1, 32], true],
      [[8, 16, 16, 3], [3], true],
      [[2, 5, 5, 8], [8], false],
      [[1, 4097, 3], [1, 3], false],
    ];
    for (const [shape, biasShape, simd] of cases) {
      test(`[${shape}] + [${biasShape}] matches cpu, value and gradient${simd ? ', in one SIMD pass' : ', on the stock kernel'}`, async () => {
        const compute = ([x, b]: tf.Tensor[]): tf.Tensor[] => {
          const [dx, db] = tf.grads((u: tf.Tensor, v: tf.Tensor) => tf.sum(tf.mul(tf.add(u, v), u)))([x!, b!]);
          return [tf.add(x!, b!), dx!, db!];
        };
        await assertWasmMatchesCpu(`add ${shape}`, [randomHost(shape, nextSeed()), randomHost(biasShape, nextSeed())], compute);
        await tf.setBackend('wasm');
        const x = tf.zeros(shape);
        const b = tf.ones(biasShape);
        const profile = await tf.profile(() => tf.add(x, b));
        tf.dispose([x, b, profile.result as tf.Tensor]);
        assert.equal(profile.kernelNames.includes(CHANNEL_SCALE_SHIFT), simd, `kernels run: ${profile.kernelNames.join(', ')}`);
      });
    }
  });

  describe('Identity on wasm', () => {
    test('a clone shares the buffer and outlives the original', async () => {
      await tf.setBackend('wasm');
      const x = tf.tensor2d([1, -2, 3, 4.5], [2, 2]);
      const buffers = tf.backend().numDataIds();
      const y = tf.clone(x);
      assert.equal(tf.backend().numDataIds(), buffers, 'no new buffer');
      x.dispose();
      assert.deepEqual(Array.from(y.dataSync()), [1, -2, 3, 4.5]);
      y.dispose();
      assert.equal(tf.backend().numDataIds(), buffers - 1, 'the buffer is freed with its last tensor');
    });
  });

  describe('BatchMatMul on wasm', () => {
    const cases: { name: string; a: number[]; b: number[]; transposeA: boolean; transposeB: boolean }[] = [
      { name: 'transposeA, odd sizes', a: [7, 5], b: [7, 3], transposeA: true, transposeB: false },
      { name: 'transposeB', a: [4, 9], b: [6, 9], transposeA: false, transposeB: true },
      { name: 'both transposed', a: [5, 3], b: [8, 5], transposeA: true, transposeB: true },
      { name: 'transposeA, rank 3 with batch 1', a: [1, 6, 4], b: [1, 6, 5], transposeA: true, transposeB: false },
      { name: 'transposeB, batch 3 (stock kernel)', a: [3, 4, 5], b: [3, 2, 5], transposeA: false, transposeB: true },
      { name: 'no transpose', a: [4, 6], b: [6, 3], transposeA: false, transposeB: false },
    ];
    for (const c of cases) {
      test(c.name, async () => {
        await assertWasmMatchesCpu(c.name, [randomHost(c.a, nextSeed()), randomHost(c.b, nextSeed())], ([a, b]) =>
          tf.matMul(a, b, c.transposeA, c.transposeB),
        );
      });
    }
    test('Dense weight and input gradients through tf.grad', async () => {
      const inputs = [randomHost([5, 7], nextSeed()), randomHost([7, 3], nextSeed()), randomHost([5, 3], nextSeed())];
      await assertWasmMatchesCpu('dense grads', inputs, ([x, w, probe]) =>
        tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.matMul(a, b), probe)))([x, w]),
      );
    });
  });

  describe('Conv2D with one channel and a 1-D filter on wasm', () => {
    const cases: { name: string; x: Shape4; filter: Shape4; strides: number | [number, number]; pad: Pad; dilations?: [number, number] }[] =
      [
        { name: 'vertical 11x1 same, batch 3', x: [3, 13, 9, 1], filter: [11, 1, 1, 1], strides: 1, pad: 'same' },
        { name: 'horizontal 1x11 same, batch 2', x: [2, 7, 16, 1], filter: [1, 11, 1, 1], strides: 1, pad: 'same' },
        { name: 'horizontal 1x4 valid, batch 1', x: [1, 5, 9, 1], filter: [1, 4, 1, 1], strides: 1, pad: 'valid' },
        { name: 'vertical 4x1 valid, even filter', x: [2, 10, 3, 1], filter: [4, 1, 1, 1], strides: 1, pad: 'valid' },
        {
          name: 'horizontal explicit pad 3/1',
          x: [2, 4, 6, 1],
          filter: [1, 5, 1, 1],
          strides: 1,
          pad: [
            [0, 0],
            [0, 0],
            [3, 1],
            [0, 0],
          ],
        },
        { name: '1x1 filter', x: [2, 3, 4, 1], filter: [1, 1, 1, 1], strides: 1, pad: 'valid' },
        { name: '3x3 filter (stock kernel)', x: [2, 6, 5, 1], filter: [3, 3, 1, 1], strides: 1, pad: 'same' },
        // the stock kernel returns zeros here
        { name: 'vertical 5x1, stride 2 same', x: [2, 9, 6, 1], filter: [5, 1, 1, 1], strides: [2, 1], pad: 'same' },
        { name: 'horizontal 1x3, dilation 2 same', x: [2, 5, 11, 1], filter: [1, 3, 1, 1], strides: 1, pad: 'same', dilations: [1, 2] },
        { name: 'vertical, stride 2 both axes (stock kernel)', x: [1, 8, 6, 1], filter: [3, 1, 1, 1], strides: 2, pad: 'valid' },
        { name: 'two channels (stock kernel)', x: [2, 8, 6, 2], filter: [1, 5, 2, 1], strides: 1, pad: 'same' },
      ];
    for (const c of cases) {
      test(c.name, async () => {
        const inputs = [randomHost(c.x, nextSeed()), randomHost(c.filter, nextSeed())];
        await assertWasmMatchesCpu(c.name, inputs, ([x, w]) =>
          tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad, 'NHWC', c.dilations ?? 1),
        );
      });
    }
    test('a separable blur and its gradients', async () => {
      const inputs = [randomHost([2, 12, 10, 1], nextSeed()), randomHost([7, 1, 1, 1], nextSeed()), randomHost([1, 7, 1, 1], nextSeed())];
      await assertWasmMatchesCpu('blur grads', inputs, ([x, v, h]) =>
        tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
          tf.sum(tf.square(tf.conv2d(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'), c as tf.Tensor4D, 1, 'same'))),
        )([x, v, h]),
      );
    });
    test('replaces the stock wasm kernel', () => {
      assert.ok(stockWasmKernel(tf.Conv2D), 'the stock Conv2D was kept');
      assert.notEqual(tf.getKernel(tf.Conv2D, 'wasm'), stockWasmKernel(tf.Conv2D));
    });
  });

  describe('Slice on wasm', () => {
    const cases: { name: string; shape: number[]; begin: number[]; size: number[] }[] = [
      { name: 'leading rows (contiguous)', shape: [6, 5, 4], begin: [2, 0, 0], size: [3, 5, 4] },
      { name: 'rows of a batch-1 tensor (contiguous)', shape: [1, 7, 6, 3], begin: [0, 2, 0, 0], size: [1, 4, -1, -1] },
      { name: 'a middle crop', shape: [3, 9, 8, 2], begin: [0, 1, 1, 0], size: [3, 7, 6, 2] },
      { name: 'the last axis', shape: [4, 5, 7], begin: [1, 0, 2], size: [2, 5, 3] },
      { name: 'rank 1', shape: [11], begin: [3], size: [5] },
      { name: 'rank 5, every axis', shape: [2, 3, 4, 3, 5], begin: [1, 1, 0, 1, 2], size: [1, 2, 4, 2, 3] },
      { name: 'empty', shape: [4, 3], begin: [1, 0], size: [0, 3] },
    ];
    for (const c of cases) {
      test(c.name, async () => {
        await assertWasmMatchesCpu(c.name, [randomHost(c.shape, nextSeed())], ([x]) => tf.slice(x, c.begin, c.size));
      });
    }
    test('int32 and bool values, checked by hand', async () => {
      const x: HostTensor = { shape: [2, 3], dtype: 'int32', values: Int32Array.from([1, 2, 3, 4, 5, 6]) };
      const [ints, bools] = await runOn('wasm', [x], ([t]) =>
        tf.tidy(() => [tf.slice(t, [0, 1], [2, 2]), tf.slice(tf.greater(t, 3), [1, 0], [1, 3])]),
      );
      assert.equal(ints.dtype, 'int32');
      assert.deepEqual(Array.from(ints.values), [2, 3, 5, 6]);
      assert.deepEqual(Array.from(bools.values), [1, 1, 1]);
    });
  });

  describe('gradients through tf.grad on wasm equal cpu', () => {
    test('conv2d, stride 2 same', async () => {
      const inputs = [randomHost([2, 8, 8, 3], nextSeed()), randomHost([3, 3, 3, 4], nextSeed()), randomHost([2, 4, 4, 4], nextSeed())];
      await assertWasmMatchesCpu('conv2d grads', inputs, ([x, w, probe]) =>
        tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'), probe)))([x, w]),
      );
    });
    test('conv2dTranspose, stride 2 same', async () => {
      const inputs = [randomHost([2, 4, 4, 5], nextSeed()), randomHost([3, 3, 3, 5], nextSeed()), randomHost([2, 8, 8, 3], nextSeed())];
      await assertWasmMatchesCpu('conv2dTranspose grads', inputs, ([x, w, probe]) =>
        tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(tf.conv2dTranspose(a as tf.Tensor4D, b as tf.Tensor4D, [2, 8, 8, 3], 2, 'same'), probe)),
        )([x, w]),
      );
    });
    test('depthwiseConv2d, stride 2 valid', async () => {
      const inputs = [randomHost([2, 9, 9, 3], nextSeed()), randomHost([3, 3, 3, 2], nextSeed()), randomHost([2, 4, 4, 6], nextSeed())];
      await assertWasmMatchesCpu('depthwise grads', inputs, ([x, w, probe]) =>
        tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'valid'), probe)))(
          [x, w],
        ),
      );
    });
    test('gather on axis 0 and axis 1 with repeated indices', async () => {
      const table: HostTensor = randomHost([5, 5], nextSeed());
      const indices: HostTensor = { shape: [6], dtype: 'int32', values: Int32Array.from([4, 0, 4, 2, 0, 4]) };
      const probe0 = randomHost([6, 5], nextSeed());
      const probe1 = randomHost([5, 6], nextSeed());
      await assertWasmMatchesCpu('gather grads', [table, indices, probe0, probe1], ([t, idx, p0, p1]) => [
        tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.gather(a, idx, 0), p0)))(t),
        tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.gather(a, idx, 1), p1)))(t),
      ]);
    });

    test('a tiny conv encoder-decoder: every parameter gradient', async () => {
      // 8x8x2 -> conv s2 -> 4x4x4 -> conv s2 -> 2x2x6 -> dense -> 3 -> dense -> 2x2x6 -> convT s2 x2 -> 8x8x2
      const shapes = [[3, 3, 2, 4], [4], [3, 3, 4, 6], [6], [24, 3], [3], [3, 24], [24], [3, 3, 4, 6], [4], [4, 4, 2, 4], [2]];
      const params = shapes.map((shape) => randomHost(shape, nextSeed()));
      const images = randomHost([2, 8, 8, 2], nextSeed());
      await assertWasmMatchesCpu('encoder-decoder grads', [images, ...params], ([x, ...w]) =>
        tf.grads((...p: tf.Tensor[]) => {
          const h1 = tf.relu(tf.add(tf.conv2d(x as tf.Tensor4D, p[0] as tf.Tensor4D, 2, 'same'), p[1]));
          const h2 = tf.relu(tf.add(tf.conv2d(h1 as tf.Tensor4D, p[2] as tf.Tensor4D, 2, 'same'), p[3]));
          const z = tf.add(tf.matMul(tf.reshape(h2, [2, 24]), p[4]), p[5]);
          const d0 = tf.reshape(tf.relu(tf.add(tf.matMul(z, p[6]), p[7])), [2, 2, 2, 6]) as tf.Tensor4D;
          const d1 = tf.relu(tf.add(tf.conv2dTranspose(d0, p[8] as tf.Tensor4D, [2, 4, 4, 4], 2, 'same'), p[9]));
          const out = tf.tanh(tf.add(tf.conv2dTranspose(d1 as tf.Tensor4D, p[10] as tf.Tensor4D, [2, 8, 8, 2], 2, 'same'), p[11]));
          return tf.mean(tf.square(tf.sub(out, x)));
        })(w),
      );
    });
  });
});

describe('backend-kernel-registry: the wasm kernel registry', () => {
  // The wasm kernel registry of src/backend/wasm-kernels: one list of additions and one of overrides
  // (register-all.ts), each kernel in the file named after it, and TF.js's own kernel kept for each
  // override.

  const FOLDER = new URL('../../src/backend/wasm-kernels/', import.meta.url);

  /** Files of the folder that build or register kernels rather than being one. */
  const HELPERS = ['compose.ts', 'conv-util.ts', 'kernel-names.ts', 'register-all.ts', 'simd-kernel.ts', 'stock-fallback.ts'];

  /** The file a kernel lives in: its name without our Medvae prefix, in kebab-case (Conv2DBackpropFilter: conv2d-backprop-filter.ts). */
  function fileOf(kernelName: string): string {
    return `${kernelName
      .replace(/^Medvae/, '')
      .split(/(?<=[a-z]|\d[A-Z])(?=[A-Z])/)
      .join('-')
      .toLowerCase()}.ts`;
  }

  before(async () => {
    await initBackend('wasm');
  });

  test('kebab-case file names follow the kernel names', () => {
    assert.equal(fileOf('Conv2DBackpropFilter'), 'conv2d-backprop-filter.ts');
    assert.equal(fileOf('DepthwiseConv2dNativeBackpropInput'), 'depthwise-conv2d-native-backprop-input.ts');
    assert.equal(fileOf('MedvaeCol2Im'), 'col2im.ts');
    assert.equal(fileOf('BatchMatMul'), 'batch-mat-mul.ts');
  });

  test('each kernel is exported by the file named after it, and every other file is a known helper', async () => {
    const configs = [...wasmKernelAdditions, ...wasmKernelOverrides];
    for (const config of configs) {
      const module = (await import(new URL(fileOf(config.kernelName), FOLDER).href)) as Record<string, unknown>;
      assert.ok(Object.values(module).includes(config), `${fileOf(config.kernelName)} exports the ${config.kernelName} kernel`);
    }
    const kernelFiles = new Set(configs.map((c) => fileOf(c.kernelName)));
    const files = readdirSync(FOLDER).filter((f) => f.endsWith('.ts'));
    assert.deepEqual(
      files.filter((f) => !kernelFiles.has(f) && !HELPERS.includes(f)),
      [],
      'a file that is neither a listed kernel nor a helper',
    );
    assert.equal(new Set(configs.map((c) => c.kernelName)).size, configs.length, 'a kernel listed twice');
  });

  test('additions are registered; each override replaced a stock kernel that is kept; registering again changes nothing', () => {
    for (const config of wasmKernelAdditions) {
      assert.equal(tf.getKernel(config.kernelName, 'wasm'), config, config.kernelName);
      assert.equal(stockWasmKernel(config.kernelName), undefined, `${config.kernelName} has no stock kernel`);
    }
    for (const config of wasmKernelOverrides) {
      assert.equal(tf.getKernel(config.kernelName, 'wasm'), config, config.kernelName);
      const stock = stockWasmKernel(config.kernelName);
      assert.ok(stock !== undefined && stock !== config, `the stock ${config.kernelName} was kept`);
    }
    registerWasmTrainingKernels();
    for (const config of [...wasmKernelAdditions, ...wasmKernelOverrides]) assert.equal(tf.getKernel(config.kernelName, 'wasm'), config);
  });

  test('an override hands the cases it does not take to the stock kernel, and only those', () => {
    const stock = stockWasmKernel(tf.Identity);
    assert.ok(stock);
    const original = stock.kernelFunc;
    let stockCalls = 0;
    stock.kernelFunc = (args) => {
      stockCalls++;
      return original(args);
    };
    try {
      // Identity shares float buffers, and leaves strings to TF.js's kernel.
      const floats = tf.tensor1d([1, 2]);
      assert.deepEqual(
        tf.tidy(() => [...tf.clone(floats).dataSync()]),
        [1, 2],
      );
      assert.equal(stockCalls, 0);
      const text = tf.tensor1d(['a', 'b'], 'string');
      assert.deepEqual(
        tf.tidy(() => tf.clone(text).dataSync()),
        ['a', 'b'],
      );
      assert.equal(stockCalls, 1);
      tf.dispose([floats, text]);
    } finally {
      stock.kernelFunc = original;
    }
  });
});

describe('backend-simd: the SIMD kernels and the layers built on them', () => {
  // The SIMD kernels of src/backend/simd (LeakyRelu, its gradient, the per-channel ops batch norm is
  // built from, the Adam update) on wasm, against float64 sums computed here and against the cpu backend; and the
  // batch-norm and LeakyReLU layers built on them, against TF.js's stock layers on cpu.

  function randomValues(n: number, seed: number, offset = 0, spread = 2): Float32Array {
    const next = mulberry32(seed);
    return Float32Array.from({ length: n }, () => offset + (next() - 0.5) * spread);
  }

  /** Per-channel float64 sums of f(row, channel) over the rows of a [rows, channels] layout. */
  function channelSums(rows: number, channels: number, f: (i: number, c: number) => number): number[] {
    const sums = new Array<number>(channels).fill(0);
    for (let i = 0; i < rows; i++) for (let c = 0; c < channels; c++) sums[c] += f(i, c);
    return sums;
  }

  function assertNear(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, what: string): void {
    assert.equal(actual.length, expected.length, `${what}: length`);
    for (let i = 0; i < expected.length; i++) {
      const err = Math.abs(actual[i] - expected[i]) / Math.max(1, Math.abs(expected[i]));
      assert.ok(err <= tolerance, `${what}[${i}]: ${actual[i]} vs ${expected[i]} (relative error ${err})`);
    }
  }

  /** Names of the kernels `f` runs (tf.profile lists nested kernels too). */
  async function kernelsRun(f: () => tf.TensorContainer): Promise<string[]> {
    const info = await tf.profile(() => f());
    tf.dispose(info.result);
    return info.kernelNames;
  }

  /** Runs f and checks it leaves exactly its outputs as new tensors and backend buffers. */
  function withoutLeaks<T extends tf.Tensor | tf.Tensor[]>(f: () => T): T {
    const tensors = tf.memory().numTensors;
    const buffers = tf.backend().numDataIds();
    const out = f();
    const count = Array.isArray(out) ? out.length : 1;
    assert.equal(tf.memory().numTensors, tensors + count, 'tensors left behind');
    assert.equal(tf.backend().numDataIds(), buffers + count, 'backend buffers left behind');
    return out;
  }

  before(async () => {
    await initBackend('wasm');
  });

  describe('LeakyRelu and its gradient on wasm (SIMD)', () => {
    // 4099 floats: whole vectors and a 3-float tail; 0 and -0 and tiny values at the start.
    const n = 4099;
    const values = randomValues(n, 1);
    values.set([0, -0, 1e-30, -1e-30, 5, -5]);
    const grads = randomValues(n, 2);

    for (const alpha of [0.3, 0.01, 1.5, -0.5]) {
      test(`alpha ${alpha}: y and dx equal x > 0 ? (x, dy) : (alpha x, alpha dy) exactly, tail included`, async () => {
        const x = tf.tensor1d(values);
        const dy = tf.tensor1d(grads);
        const y = withoutLeaks(() => tf.leakyRelu(x, alpha));
        const dx = withoutLeaks(() => leakyReluGrad(dy, x, alpha));
        const [yv, dxv] = [y.dataSync(), dx.dataSync()];
        for (let i = 0; i < n; i++) {
          const slope = values[i] > 0 ? 1 : Math.fround(alpha);
          assert.equal(yv[i], Math.fround(values[i] * slope), `y[${i}] for x = ${values[i]}`);
          assert.equal(dxv[i], Math.fround(grads[i] * slope), `dx[${i}] for x = ${values[i]}`);
        }
        const names = await kernelsRun(() => [tf.leakyRelu(x, alpha), leakyReluGrad(dy, x, alpha)]);
        assert.ok(names.includes('LeakyRelu') && names.includes('MedvaeLeakyReluGrad'), names.join(','));
        assert.ok(!names.includes('Step'), 'the gradient ran as one kernel');
        tf.dispose([x, dy, y, dx]);
      });
    }

    test("a 4-d activation gives the cpu backend's values", async () => {
      const host = randomValues(2 * 5 * 3 * 7, 3);
      const onWasm = tf.tidy(() => tf.leakyRelu(tf.tensor4d(host, [2, 5, 3, 7]), 0.2).dataSync());
      await tf.setBackend('cpu');
      const onCpu = tf.tidy(() => tf.leakyRelu(tf.tensor4d(host, [2, 5, 3, 7]), 0.2).dataSync());
      await tf.setBackend('wasm');
      // cpu multiplies by alpha in float64 before rounding: equal to float32 rounding.
      assertNear(onWasm, onCpu, 1e-7, 'leakyRelu');
    });

    test('int32 input runs the stock kernel', () => {
      const x = tf.tensor1d([-4, 3, -1, 0, 2], 'int32');
      const y = tf.leakyRelu(x, 0.5);
      assert.deepEqual(Array.from(y.dataSync()), [-2, 3, -0.5, 0, 2]);
      tf.dispose([x, y]);
    });
  });

  describe('per-channel ops on wasm (SIMD)', () => {
    // rows cross the kernels' 128-row blocks (300 = 2 * 128 + 44) and 1 row; channels 4, 32, 36.
    const cases = [
      { rows: 300, channels: 32, shape: [3, 10, 10, 32] },
      { rows: 1, channels: 4, shape: [1, 4] },
      { rows: 7 * 129, channels: 36, shape: [7, 129, 36] },
    ];
    for (const { rows, channels, shape } of cases) {
      test(`${shape.join('x')}: sums, squared deviations, sum-and-dot and affine maps against float64 sums`, async () => {
        const n = rows * channels;
        const xs = randomValues(n, 10 + channels, 3, 4);
        const dys = randomValues(n, 20 + channels);
        const centers = randomValues(channels, 30 + channels, 3);
        const as = randomValues(channels, 40 + channels);
        const bs = randomValues(channels, 50 + channels);
        const ks = randomValues(channels, 60 + channels);
        const x = tf.tensor(xs, shape);
        const dy = tf.tensor(dys, shape);
        const [center, a, b, k] = [centers, as, bs, ks].map((v) => tf.tensor1d(v));
        const at = (i: number, c: number): number => i * channels + c;

        const sum = withoutLeaks(() => channelSum(x));
        assertNear(
          sum.dataSync(),
          channelSums(rows, channels, (i, c) => xs[at(i, c)]),
          1e-6,
          'channelSum',
        );
        const squared = withoutLeaks(() => channelSquaredDeviationSum(x, center));
        assertNear(
          squared.dataSync(),
          channelSums(rows, channels, (i, c) => (xs[at(i, c)] - centers[c]) ** 2),
          1e-6,
          'squared deviations',
        );
        const { sum: dySum, dot } = channelSumAndDot(dy, x, center);
        assertNear(
          dySum.dataSync(),
          channelSums(rows, channels, (i, c) => dys[at(i, c)]),
          1e-5,
          'sum of dy',
        );
        assertNear(
          dot.dataSync(),
          channelSums(rows, channels, (i, c) => dys[at(i, c)] * (xs[at(i, c)] - centers[c])),
          1e-5,
          'dot',
        );

        const affine = withoutLeaks(() => channelAffine(x, a, k)).dataSync();
        const affine2 = withoutLeaks(() => channelAffine(dy, a, k, x, b)).dataSync();
        for (let i = 0; i < rows; i++) {
          for (let c = 0; c < channels; c++) {
            const j = at(i, c);
            assert.ok(Math.abs(affine[j] - (xs[j] * as[c] + ks[c])) <= 1e-5 * (1 + Math.abs(affine[j])), `affine at ${j}`);
            assert.ok(
              Math.abs(affine2[j] - (dys[j] * as[c] + xs[j] * bs[c] + ks[c])) <= 1e-5 * (1 + Math.abs(affine2[j])),
              `affine2 at ${j}`,
            );
          }
        }
        const names = await kernelsRun(() => [
          channelSum(x),
          channelSquaredDeviationSum(x, center),
          Object.values(channelSumAndDot(dy, x, center)),
          channelAffine(dy, a, k, x, b),
          channelAffine(x, a, k),
        ]);
        for (const kernel of [
          'MedvaeChannelSum',
          'MedvaeChannelSquaredDeviationSum',
          'MedvaeChannelSumAndDot',
          'MedvaeChannelAffine',
          'MedvaeChannelScaleShift',
        ]) {
          assert.ok(names.includes(kernel), `${kernel} ran (${names.join(',')})`);
        }
        tf.dispose([x, dy, center, a, b, k, sum, squared, dySum, dot]);
      });
    }

    test('the one-term affine map keeps infinities (it reads no second term to multiply by 0)', () => {
      const x = tf.tensor2d([Infinity, -Infinity, 1, 2, 3, 4, 5, 6], [2, 4]);
      const a = tf.tensor1d([2, 2, 2, 2]);
      const k = tf.tensor1d([1, 1, 1, 1]);
      assert.deepEqual(Array.from(channelAffine(x, a, k).dataSync()), [Infinity, -Infinity, 3, 5, 7, 9, 11, 13]);
      tf.dispose([x, a, k]);
    });

    test('a 262144-row sum keeps float32 accuracy (blocked summation)', () => {
      const rows = 262144;
      const xs = randomValues(rows * 4, 7, 1, 0.5);
      const x = tf.tensor2d(xs, [rows, 4]);
      const sum = channelSum(x);
      assertNear(
        sum.dataSync(),
        channelSums(rows, 4, (i, c) => xs[i * 4 + c]),
        2e-6,
        'sum of 262144 values near 1',
      );
      tf.dispose([x, sum]);
    });

    test('3 channels (not whole vectors) fall back to tf ops with the same results', async () => {
      const xs = randomValues(5 * 3, 8);
      const x = tf.tensor2d(xs, [5, 3]);
      const names = await kernelsRun(() => channelSum(x));
      assert.ok(!names.includes('MedvaeChannelSum'), names.join(','));
      assertNear(
        channelSum(x).dataSync(),
        channelSums(5, 3, (i, c) => xs[i * 3 + c]),
        1e-6,
        'fallback sum',
      );
      tf.dispose(x);
    });

    test('per-channel inputs of the wrong size are refused by name', () => {
      const x = tf.zeros([2, 8]);
      const wrong = tf.zeros([4]);
      const right = tf.zeros([8]) as tf.Tensor1D;
      assert.throws(
        () => tf.engine().runKernel('MedvaeChannelSquaredDeviationSum', { x, center: wrong }),
        (e: unknown) => e instanceof SimdKernelError && /input 'center' has shape \[4\], expected \[8\]/.test(e.message),
      );
      assert.throws(() => channelAffine(x, right, right, tf.zeros([2, 4]), right), /input 'v' has shape \[2,4\], expected \[2,8\]/);
      tf.dispose([x, wrong, right]);
    });
  });

  describe('layers on the SIMD kernels (wasm) against the stock layers (cpu)', () => {
    for (const shape of [
      [4, 5, 5, 8],
      [6, 12],
    ]) {
      test(`BatchNorm on ${shape.join('x')}: output, dx, dgamma, dbeta and moving statistics`, async () => {
        const channels = shape[shape.length - 1];
        const size = shape.reduce((p, s) => p * s, 1);
        const xs = randomValues(size, 70, 0.5, 4);
        const weights = randomValues(size, 71);
        const gamma = randomValues(channels, 72, 1);
        const beta = randomValues(channels, 73);
        const run = (layer: tf.layers.Layer): Record<string, Float32Array> =>
          tf.tidy(() => {
            const input = tf.input({ shape: shape.slice(1) });
            const model = tf.model({ inputs: input, outputs: layer.apply(input) as tf.SymbolicTensor });
            layer.setWeights([tf.tensor1d(gamma), tf.tensor1d(beta), tf.zeros([channels]), tf.ones([channels])]);
            const x = tf.tensor(xs, shape);
            const w = tf.tensor(weights, shape);
            const loss = (v: tf.Tensor): tf.Scalar => tf.sum(tf.mul(model.apply(v, { training: true }) as tf.Tensor, w));
            const y = (model.apply(x, { training: true }) as tf.Tensor).dataSync() as Float32Array;
            const dx = tf.grad(loss)(x).dataSync() as Float32Array;
            const vars = model.trainableWeights.map((v) => v.read() as tf.Variable);
            const { grads } = tf.variableGrads(() => loss(x), vars);
            const [dgamma, dbeta] = vars.map((v) => grads[v.name].dataSync() as Float32Array);
            const [movingMean, movingVariance] = model
              .getWeights()
              .slice(2)
              .map((v) => v.dataSync() as Float32Array);
            return { y, dx, dgamma, dbeta, movingMean, movingVariance } as unknown as tf.TensorContainer;
          }) as unknown as Record<string, Float32Array>;
        const ours = run(new BatchNorm({ momentum: 0.9, epsilon: 1e-5 }));
        await tf.setBackend('cpu');
        const stock = run(tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5 }));
        await tf.setBackend('wasm');
        // Three training calls moved the statistics, each time by the same batch variance: biased in the
        // stock layer, unbiased (PyTorch's running_var) in ours.
        const n = size / channels;
        const kept = 0.9 ** 3;
        stock['movingVariance'] = stock['movingVariance']!.map((v) => kept + ((v - kept) * n) / (n - 1));
        for (const key of Object.keys(stock)) assertNear(ours[key], stock[key], 1e-4, key);
      });
    }

    test('LeakyRelu layer: values and gradients equal the stock layer on cpu', async () => {
      const xs = randomValues(2 * 4 * 4 * 8, 80);
      const dys = randomValues(xs.length, 81);
      const run = (layer: tf.layers.Layer): number[][] =>
        tf.tidy(() => {
          const x = tf.tensor4d(xs, [2, 4, 4, 8]);
          const dy = tf.tensor4d(dys, [2, 4, 4, 8]);
          const y = layer.apply(x) as tf.Tensor;
          const dx = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(layer.apply(v) as tf.Tensor, dy)))(x);
          return [Array.from(y.dataSync()), Array.from(dx.dataSync())];
        });
      const ours = run(new LeakyRelu({ alpha: 0.2 }));
      await tf.setBackend('cpu');
      const stock = run(tf.layers.leakyReLU({ alpha: 0.2 }));
      await tf.setBackend('wasm');
      ours.forEach((values, i) => assertNear(values, stock[i], 1e-7, i === 0 ? 'y' : 'dx'));
    });
  });

  describe('the Adam update on wasm (SIMD)', () => {
    for (const weightDecay of [0, 0.01]) {
      test(`weight decay ${weightDecay}: the same bits as the tf-op arithmetic on cpu, and float64 within 1e-5`, async () => {
        const n = 1027; // whole vectors and a 3-float tail
        const [ps, gs, ms] = [randomValues(n, 90), randomValues(n, 91), randomValues(n, 92, 0, 0.2)];
        const vs = randomValues(n, 93, 0.05, 0.08); // second moments are positive
        const attrs = {
          weightDecay,
          beta1: 0.9,
          beta2: 0.999,
          stepSize: (0.005 * Math.sqrt(1 - 0.999 ** 3)) / (1 - 0.9 ** 3),
          epsHat: 1e-8,
        };
        const run = (): Float32Array[] =>
          tf.tidy(() =>
            adamUpdate(tf.tensor1d(ps), tf.tensor1d(gs), tf.tensor1d(ms), tf.tensor1d(vs), attrs).map((t) => t.dataSync() as Float32Array),
          );
        const names = await kernelsRun(() => adamUpdate(tf.tensor1d(ps), tf.tensor1d(gs), tf.tensor1d(ms), tf.tensor1d(vs), attrs));
        assert.deepEqual(
          names.filter((k) => !k.startsWith('Medvae')),
          [],
          `one kernel ran: ${names.join(',')}`,
        );
        const tensors = tf.memory().numTensors;
        const onWasm = run();
        assert.equal(tf.memory().numTensors, tensors, 'tensors left behind');
        await tf.setBackend('cpu');
        const onCpu = run();
        await tf.setBackend('wasm');
        onWasm.forEach((values, k) => assert.deepEqual(Array.from(values), Array.from(onCpu[k]), ['p', 'm', 'v'][k]));
        for (let i = 0; i < n; i++) {
          const g = gs[i] + weightDecay * ps[i];
          const m = 0.9 * ms[i] + 0.1 * g;
          const v = 0.999 * vs[i] + 0.001 * g * g;
          const p = ps[i] - (attrs.stepSize * m) / (Math.sqrt(v) + attrs.epsHat);
          assertNear([onWasm[0][i], onWasm[1][i], onWasm[2][i]], [p, m, v], 1e-5, `element ${i}`);
        }
      });
    }
  });
});

describe('backend-tensor-io: reading tensors into reusable arrays', () => {
  // Reading tensors into a caller's reusable array and making tensors from one, on the wasm backend
  // (straight from its heap) and on cpu (through an asynchronous data()), checked against dataSync's values.

  for (const backend of ['wasm', 'cpu'] as const) {
    describe(`tensor-io on ${backend}`, () => {
      it('readInto writes every tensor end to end, in order, into the given array', async () => {
        await initBackend(backend);
        const tensors = [
          tf.randomNormal([3, 4], 0, 1, 'float32', 7),
          tf.tensor1d([5]),
          tf.zeros([0]),
          tf.randomUniform([2, 2, 3], -1, 1, 'float32', 8),
        ];
        // A view of the tensor's data, as the step's gradients are after reshapes and slices.
        tensors.push(tf.tidy(() => tf.slice(tf.range(0, 20, 1, 'float32'), [3], [9]).reshape([3, 3])));
        const expected = Float32Array.from(tensors.flatMap((t) => Array.from(t.dataSync())));
        assert.equal(totalSize(tensors), expected.length);
        const target = new Float32Array(expected.length).fill(Number.NaN);
        await readInto(tensors, target);
        assert.deepEqual(target, expected);
        await assert.rejects(() => readInto(tensors, new Float32Array(expected.length + 1)), /target holds 35 floats, the tensors 34/);
        await assert.rejects(() => readInto([tf.tensor1d([1], 'int32')], new Float32Array(1)), /dtype int32, expected float32/);
        // The tensors may go as soon as the read has started: it holds its own reference to their data.
        const early = new Float32Array(expected.length).fill(Number.NaN);
        const started = startReadInto(tensors, early);
        assert.equal(started === undefined, backend === 'wasm', 'wasm copies at once, cpu reads asynchronously');
        tf.dispose(tensors);
        await started;
        assert.deepEqual(early, expected);
      });

      it('tensorsFrom gives tensors that keep their values when the array is overwritten', async () => {
        await initBackend(backend);
        const values = Float32Array.from({ length: 10 }, (_, i) => i + 0.5);
        const parts = tensorsFrom(values, [[2, 2], [0], [3, 2]]);
        values.fill(-1);
        assert.deepEqual(
          parts.map((t) => t.shape),
          [[2, 2], [0], [3, 2]],
        );
        assert.deepEqual(Array.from(parts[0]!.dataSync()), [0.5, 1.5, 2.5, 3.5]);
        assert.deepEqual(Array.from(parts[2]!.dataSync()), [4.5, 5.5, 6.5, 7.5, 8.5, 9.5]);
        tf.dispose(parts);
      });
    });
  }
});

describe('native-threads: the threads the native backend computes with', () => {
  // How many threads the native backend computes with: every core for one process, the cores shared
  // among medvae-dist's workers on one machine, what was asked for when asked (with a warning when it
  // oversubscribes), and train.threads / --threads reaching the config.

  test('threads: every core for one process, shared among local workers, as asked when asked', () => {
    assert.equal(resolveThreads(0, 8, 1), 8);
    assert.equal(resolveThreads(undefined, 8, 1), 8);
    assert.equal(resolveThreads(0, 8, 2), 4);
    assert.equal(resolveThreads(0, 8, 3), 2);
    assert.equal(resolveThreads(0, 2, 4), 1, 'never fewer than one');
    assert.equal(resolveThreads(3, 2, 2), 3, 'asked for: kept');
    assert.equal(resolveThreads(0, 8, Number.NaN), 8, 'an unreadable worker count counts as one');
  });

  test('threads: asking for more than the cores warns in one line naming the key', () => {
    assert.equal(oversubscription(0, 4, 2), undefined);
    assert.equal(oversubscription(1, 2, 2), undefined);
    const warning = oversubscription(2, 2, 2);
    assert.ok(warning);
    assert.match(warning, /^warning: train\.threads=2 x 2 workers = 4 threads on 2 cores/);
    assert.doesNotMatch(warning, /\n/);
  });

  test('train.threads: 0 by default, set by --threads, refused when negative', () => {
    assert.equal(loadConfig({ sets: [] }).train.threads, 0);
    const cfg = configFromFlags({ set: [], threads: '3', backend: 'native', logFormat: 'plain' });
    assert.equal(cfg.train.threads, 3);
    assert.equal(cfg.train.backend, 'native');
    assert.throws(
      () => loadConfig({ sets: ['train.threads=-1'] }),
      (e: unknown) => e instanceof ConfigError && /train\.threads/.test(e.message),
    );
  });
});

describe("native-run-plan: the native backend's run plan", () => {
  // The native backend's run plan (src/backend/native/run-plan.ts): its keys and file, a plan from
  // another onnxruntime started again, and, on onnxruntime, what a deterministic run chooses: the
  // fixed rule's graph, no race, and on several threads the bits of one thread.

  let dir: string;
  let savedChoices: string | undefined;
  before(() => {
    dir = tempDir('medvae-run-plan-');
    // The machine's remembered choices of this test's own (a non-deterministic run reads and adds to them).
    savedChoices = process.env['MEDVAE_NATIVE_CHOICES'];
    process.env['MEDVAE_NATIVE_CHOICES'] = join(dir, 'machine-choices.json');
  });
  after(() => {
    if (savedChoices === undefined) delete process.env['MEDVAE_NATIVE_CHOICES'];
    else process.env['MEDVAE_NATIVE_CHOICES'] = savedChoices;
  });

  const conv: PlannedChoice = { graph: 'conv', threads: 2, by: 'rule' };
  const gemm: PlannedChoice = { graph: 'gemm', threads: 1, by: 'timed' };

  describe('plan keys and file', () => {
    test('a key names the threads, then the kernel and its shape', () => {
      assert.equal(planKey('Conv2D|8,32,32,3', 1), '1 thread|Conv2D|8,32,32,3');
      assert.equal(planKey('Conv2D|8,32,32,3', 4), '4 threads|Conv2D|8,32,32,3');
    });

    test('serialised: one line per choice, sorted by key; parsed back to the same plan', () => {
      const plan: RunPlan = { format: 1, onnxruntime: '1.30.0', graphs: 9, choices: { 'b|x': conv, 'a|y': gemm } };
      const text = serialisePlan(plan);
      assert.deepEqual(text.split('\n').slice(1, 3), [`  "a|y": ${JSON.stringify(gemm)},`, `  "b|x": ${JSON.stringify(conv)}`]);
      assert.deepEqual(JSON.parse(text), plan);
      const parsed = parsePlan(text);
      assert.deepEqual(parsed, plan);
      assert.deepEqual(Object.keys((parsed as RunPlan).choices), ['a|y', 'b|x']);
      assert.deepEqual(parsePlan(serialisePlan({ ...plan, choices: {} })), { ...plan, choices: {} });
    });

    test('what is not a plan is told in one line', () => {
      assert.match(parsePlan('{"format": 1,') as string, /^not JSON/);
      assert.equal(parsePlan('[]'), 'not a JSON object');
      assert.equal(parsePlan('{"format": 2}'), 'format 2, not 1');
      const badChoice = JSON.stringify({
        format: 1,
        onnxruntime: '1.30.0',
        graphs: 9,
        choices: { k: { graph: 'conv', threads: 0, by: 'rule' } },
      });
      assert.equal(parsePlan(badChoice), "choice 'k' is not {graph, threads, by}");
    });
  });

  const skip = nativeUnavailable();

  /** Deterministic values in [-1, 1). */
  function values(size: number, seed: number): Float32Array {
    const out = new Float32Array(size);
    let s = seed;
    for (let i = 0; i < size; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      out[i] = s / 2 ** 31 - 1;
    }
    return out;
  }

  /** A product whose columns onnxruntime splits among threads (K large, M and N small). */
  const product = (): tf.Tensor =>
    tf.matMul(tf.tensor2d(values(64 * 2048, 1), [64, 2048]), tf.tensor2d(values(2048 * 128, 2), [2048, 128]));
  const PRODUCT_KEY = 'BatchMatMul|64,2048|2048,128|00';
  /** A convolution of 8 channels into 16: the blocked-channel graph where this CPU has blocks, else 'conv'. */
  const convolution = (): tf.Tensor =>
    tf.conv2d(tf.tensor4d(values(8 * 16 * 16 * 8, 3), [8, 16, 16, 8]), tf.tensor4d(values(3 * 3 * 8 * 16, 4), [3, 3, 8, 16]), 1, 'same');
  const CONV_KEY = 'Conv2D|8,16,16,8,16,3,3,1,1,1,1,1,1,16,16';

  function bits(build: () => tf.Tensor): Uint32Array {
    const t = tf.tidy(build);
    const out = new Uint32Array((t.dataSync() as Float32Array).slice().buffer);
    t.dispose();
    return out;
  }

  /** `build`'s bits with `graph` forced at `threads` threads (no plan). */
  function forcedBits(build: () => tf.Tensor, graph: string, threads: number): Uint32Array {
    setNativeThreads(threads);
    forceCandidate(graph);
    const out = bits(build);
    forceCandidate(undefined);
    return out;
  }

  /** The plan file of `runDir`, parsed. */
  function planOf(runDir: string): RunPlan {
    const plan = parsePlan(readFileSync(join(runDir, PLAN_FILE), 'utf8'));
    assert.notEqual(typeof plan, 'string', String(plan));
    return plan as RunPlan;
  }

  describe('a run plan on onnxruntime', { skip }, () => {
    const logged: string[] = [];
    const log = (line: string): void => void logged.push(line);
    before(async () => {
      await initBackend('native');
    });
    after(() => {
      closeRunPlan();
      clearSessions();
    });

    test('deterministic: the fixed rule picks the graph, no race, and on 2 threads the bits of 1 thread (written by the chief after the step)', async () => {
      const oneThread = forcedBits(product, 'gemm', 1);
      const twoThreads = forcedBits(product, 'gemm', 2);
      const convGraph = nchwcBlockSize() > 1 ? 'nchwc' : 'conv';
      const convOneThread = forcedBits(convolution, convGraph, 1);
      const runDir = join(dir, 'deterministic');
      setNativeThreads(2);
      useNativePlan(runDir, { deterministic: true, write: true, log });
      assert.deepEqual(bits(product), oneThread);
      assert.deepEqual(bits(convolution), convOneThread);
      assert.equal(chosenGraphs().get(CONV_KEY), convGraph);
      await nextTurn();
      const { choices, onnxruntime, graphs } = planOf(runDir);
      assert.deepEqual([onnxruntime, graphs], [loadBinding().version, GRAPH_SET]);
      // One thread exactly where this onnxruntime's bits depend on the threads (they do here for
      // this product on every machine measured; the test holds either way).
      const dependent = twoThreads.some((b, i) => b !== oneThread[i]);
      assert.deepEqual(choices[planKey(PRODUCT_KEY, 2)], { graph: 'gemm', threads: dependent ? 1 : 2, by: 'rule' });
      assert.equal(choices[planKey(CONV_KEY, 2)]?.graph, convGraph);
      assert.equal(choices[planKey(CONV_KEY, 2)]?.by, 'rule');
      assert.deepEqual(logged, []);
    });

    test('a planned choice is followed; a worker that does not write leaves the file alone', async () => {
      const runDir = join(dir, 'followed');
      mkdirSync(runDir, { recursive: true });
      const file = join(runDir, PLAN_FILE);
      const plan: RunPlan = {
        format: 1,
        onnxruntime: loadBinding().version,
        graphs: GRAPH_SET,
        choices: { [planKey(CONV_KEY, 1)]: { graph: 'im2col-matmul', threads: 1, by: 'timed' } },
      };
      writeFileSync(file, serialisePlan(plan));
      const want = forcedBits(convolution, 'im2col-matmul', 1);
      useNativePlan(runDir, { deterministic: true, write: false, log });
      assert.deepEqual(bits(convolution), want);
      assert.equal(chosenGraphs().get(CONV_KEY), 'im2col-matmul');
      // Not in the plan: chosen by the rule, kept in memory only.
      bits(product);
      await nextTurn();
      assert.equal(readFileSync(file, 'utf8'), serialisePlan(plan));
    });

    test('a plan from another onnxruntime: one line, planned again, rewritten with this version; not deterministic: timed', async () => {
      const runDir = join(dir, 'old');
      const old: RunPlan = {
        format: 1,
        onnxruntime: '0.0.1',
        graphs: GRAPH_SET,
        choices: { [planKey(CONV_KEY, 1)]: { graph: 'wasm', threads: 1, by: 'timed' } },
      };
      mkdirSync(runDir, { recursive: true });
      writeFileSync(join(runDir, PLAN_FILE), serialisePlan(old));
      logged.length = 0;
      setNativeThreads(1);
      useNativePlan(runDir, { deterministic: false, write: true, log });
      assert.equal(logged.length, 1);
      assert.equal(
        logged[0],
        `native plan ${join(runDir, PLAN_FILE)} was made with onnxruntime 0.0.1 (graphs ${GRAPH_SET}), this is ${loadBinding().version} (graphs ${GRAPH_SET}): planning the shapes again`,
      );
      bits(convolution);
      await nextTurn();
      const plan = planOf(runDir);
      assert.equal(plan.onnxruntime, loadBinding().version);
      assert.equal(plan.choices[planKey(CONV_KEY, 1)]?.by, 'timed');
      assert.equal(plan.choices[planKey(CONV_KEY, 1)]?.graph, chosenGraphs().get(CONV_KEY));
    });
  });
});
