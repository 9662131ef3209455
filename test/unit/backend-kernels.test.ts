// The wasm training kernels of src/backend/wasm-kernels, each checked on seeded random inputs against
// the cpu backend's own implementation (the filter gradient: against its definition in plain loops),
// directly and through tf.grad.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { stockWasmKernel } from '../../src/backend/wasm-kernels/register-all.ts';
import { CHANNEL_SCALE_SHIFT } from '../../src/backend/wasm-kernels/kernel-names.ts';
import { axisSwap } from '../../src/backend/wasm-kernels/transpose.ts';
import { mulberry32 } from '../../src/util/rng.ts';

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
  const cases: { name: string; x: Shape4; filter: Shape4; strides: number | [number, number]; pad: Pad; dilations?: [number, number] }[] = [
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
      tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'valid'), probe)))([
        x,
        w,
      ]),
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
