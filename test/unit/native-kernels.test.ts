// The native kernels (onnxruntime-node) against the cpu backend: every replaced kernel on the
// training's shapes, odd sizes, batch 1, strides 1 and 2, 'same' and 'valid', each graph a kernel
// offers; the fallback to the wasm kernel; no tensor left behind. And the copies onnxruntime-node's
// run() returns of outputs the kernels already have in place are freed at once
// (src/backend/native/free-buffer.ts), not left for a garbage collection. Skips, saying why, where
// onnxruntime-node cannot load.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { chosenGraphs, forceCandidate, nativeCallCounts } from '../../src/backend/native/kernels.ts';
import { nhwcInfo } from '../../src/backend/native/conv-geometry.ts';
import { conv2dCandidates } from '../../src/backend/native/conv2d.ts';
import { backpropInputCandidates } from '../../src/backend/native/conv2d-backprop-input.ts';
import { backpropFilterCandidates } from '../../src/backend/native/conv2d-backprop-filter.ts';
import { SLICE_BYTES, withBatchSlices } from '../../src/backend/native/batch-slices.ts';
import { nchwcBlockSize } from '../../src/backend/native/nchwc.ts';
import { freeArrayBuffer } from '../../src/backend/native/free-buffer.ts';
import { previousKernel, setPreviousKernel } from '../../src/backend/native/native-kernel.ts';
import { clearSessions, runCached, runsOnWasm, TIMED_ROUNDS, type Candidate } from '../../src/backend/native/sessions.ts';
import { nativeUnavailable } from '../helpers/native.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const skip = nativeUnavailable();
// Graph choices of this test's own, not the machine's.
process.env['MEDVAE_NATIVE_CHOICES'] = join(tempDir('medvae-native-'), 'choices.json');

/** Deterministic values in [-1, 1). */
function values(size: number, seed: number): Float32Array {
  const out = new Float32Array(size);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

type Run = () => tf.Tensor;

const references = new Map<Run, Float32Array>();
/** A Run whose cpu reference is computed another way than by running it on cpu (see filterGradByLoops). */
const referenceOf = new Map<Run, Run>();

/** `build`'s values on the cpu backend, computed once. */
async function reference(build: Run): Promise<Float32Array> {
  let values = references.get(build);
  if (values === undefined) {
    await initBackend('cpu');
    const expected = tf.tidy(referenceOf.get(build) ?? build);
    values = expected.dataSync().slice() as Float32Array;
    expected.dispose();
    references.set(build, values);
  }
  return values;
}

/**
 * Runs `build` on cpu and on native; the largest difference relative to the largest reference
 * value, the native calls it made and the graphs of the shapes it met first (chosenGraphs).
 */
async function relativeError(build: Run): Promise<{ error: number; native: number; ran: string[] }> {
  const expected = await reference(build);
  await initBackend('native');
  const before = nativeCallCounts().native;
  const known = new Set(chosenGraphs().keys());
  const actual = tf.tidy(build);
  const got = actual.dataSync();
  actual.dispose();
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]!));
    worst = Math.max(worst, Math.abs(expected[i]! - got[i]!));
  }
  assert.equal(got.length, expected.length);
  const ran = [...chosenGraphs()].flatMap(([key, graph]) => (known.has(key) ? [] : [graph]));
  return { error: worst / Math.max(scale, 1e-30), native: nativeCallCounts().native - before, ran };
}

interface ConvCase {
  x: [number, number, number, number];
  k: number;
  out: number;
  stride: 1 | 2;
  pad: 'same' | 'valid';
}

// The convolutions of a 64x64 VAE at batch 1 (the cpu references of the filter gradient are slow,
// and grow with the batch); the odd cases below sum over batches of 2 and 3.
const TRAINING_CONVS: ConvCase[] = [
  { x: [1, 64, 64, 3], k: 3, out: 32, stride: 2, pad: 'same' },
  { x: [1, 32, 32, 32], k: 3, out: 64, stride: 2, pad: 'same' },
  { x: [1, 16, 16, 64], k: 3, out: 128, stride: 2, pad: 'same' },
  { x: [1, 8, 8, 128], k: 3, out: 256, stride: 2, pad: 'same' },
  { x: [1, 4, 4, 256], k: 3, out: 512, stride: 2, pad: 'same' },
  { x: [1, 64, 64, 32], k: 3, out: 3, stride: 1, pad: 'same' },
  { x: [1, 32, 32, 32], k: 3, out: 32, stride: 1, pad: 'same' },
];
const ODD_CONVS: ConvCase[] = [
  { x: [1, 7, 9, 5], k: 3, out: 6, stride: 2, pad: 'same' },
  { x: [1, 7, 9, 5], k: 3, out: 6, stride: 1, pad: 'valid' },
  { x: [2, 10, 11, 3], k: 3, out: 4, stride: 2, pad: 'valid' },
  { x: [3, 9, 8, 2], k: 4, out: 5, stride: 2, pad: 'same' },
  { x: [1, 6, 6, 7], k: 5, out: 3, stride: 1, pad: 'same' },
  { x: [2, 5, 5, 8], k: 1, out: 9, stride: 1, pad: 'valid' },
  { x: [1, 13, 13, 4], k: 2, out: 3, stride: 2, pad: 'valid' },
  // Channels in whole blocks of the blocked-channel graphs ('nchwc'), and fewer than a block in.
  { x: [1, 11, 9, 16], k: 3, out: 8, stride: 2, pad: 'valid' },
  { x: [3, 9, 8, 3], k: 2, out: 16, stride: 1, pad: 'same' },
  // A top pad of a whole stride (the phase window moves down dy); phases that fill whole blocks only together.
  { x: [2, 8, 8, 16], k: 7, out: 16, stride: 2, pad: 'same' },
  { x: [1, 8, 8, 8], k: 3, out: 16, stride: 2, pad: 'same' },
];

const name = (c: ConvCase): string => `x [${c.x.join(',')}] k${c.k} -> ${c.out} stride ${c.stride} ${c.pad}`;

function outShape(c: ConvCase): [number, number, number, number] {
  const [b, h, w] = c.x;
  const side = (n: number): number => (c.pad === 'same' ? Math.ceil(n / c.stride) : Math.floor((n - c.k) / c.stride) + 1);
  return [b, side(h), side(w), c.out];
}

const filterOf = (c: ConvCase): [number, number, number, number] => [c.k, c.k, c.x[3], c.out];

/** One Run per case and kernel, so that its cpu reference is computed once. */
function memo(make: (c: ConvCase) => Run): (c: ConvCase) => Run {
  const runs = new Map<ConvCase, Run>();
  return (c) => {
    let run = runs.get(c);
    if (run === undefined) runs.set(c, (run = make(c)));
    return run;
  };
}

const conv = memo(
  (c: ConvCase): Run =>
    () =>
      tf.conv2d(
        tf.tensor4d(values(tf.util.sizeFromShape(c.x), 1), c.x),
        tf.tensor4d(values(tf.util.sizeFromShape(filterOf(c)), 2), filterOf(c)),
        c.stride,
        c.pad,
      ),
);

const backpropInput = memo((c: ConvCase): Run => () => {
  const dyShape = outShape(c);
  return tf.engine().runKernel(
    tf.Conv2DBackpropInput,
    {
      dy: tf.tensor4d(values(tf.util.sizeFromShape(dyShape), 3), dyShape),
      filter: tf.tensor4d(values(tf.util.sizeFromShape(filterOf(c)), 4), filterOf(c)),
    },
    { inputShape: c.x, strides: c.stride, pad: c.pad, dataFormat: 'NHWC' } as unknown as tf.NamedAttrMap,
  ) as tf.Tensor;
});

const backpropFilterKernel =
  (c: ConvCase): Run =>
  () => {
    const dyShape = outShape(c);
    return tf
      .engine()
      .runKernel(
        tf.Conv2DBackpropFilter,
        { x: tf.tensor4d(values(tf.util.sizeFromShape(c.x), 5), c.x), dy: tf.tensor4d(values(tf.util.sizeFromShape(dyShape), 6), dyShape) },
        { filterShape: filterOf(c), strides: c.stride, pad: c.pad, dataFormat: 'NHWC' } as unknown as tf.NamedAttrMap,
      ) as tf.Tensor;
  };

/**
 * The same filter gradient summed by plain loops: dw[i, j, ci, co] is the sum over images and
 * output positions of x at the position tap (i, j) sees (zero in the padding) times dy there.
 * The cpu backend's own Conv2DBackpropFilter is a plain loop that took over a minute on each
 * large-batch case below, and a tap-wise product on cpu (strided slices) seconds; the test 'the
 * loop-wise filter gradient equals the cpu kernel' checks the two agree.
 */
const filterGradByLoops =
  (c: ConvCase): Run =>
  () => {
    const [b, h, w, cin] = c.x;
    const [, ho, wo, cout] = outShape(c);
    const x = values(tf.util.sizeFromShape(c.x), 5);
    const dy = values(b * ho * wo * cout, 6);
    // TensorFlow's 'same': the total pad needed, the odd pixel at the bottom and right.
    const top = c.pad === 'same' ? Math.floor(Math.max((ho - 1) * c.stride + c.k - h, 0) / 2) : 0;
    const left = c.pad === 'same' ? Math.floor(Math.max((wo - 1) * c.stride + c.k - w, 0) / 2) : 0;
    const dw = new Float64Array(c.k * c.k * cin * cout);
    for (let n = 0; n < b; n++)
      for (let oy = 0; oy < ho; oy++)
        for (let ox = 0; ox < wo; ox++) {
          const dyAt = ((n * ho + oy) * wo + ox) * cout;
          for (let i = 0; i < c.k; i++) {
            const iy = oy * c.stride + i - top;
            if (iy < 0 || iy >= h) continue;
            for (let j = 0; j < c.k; j++) {
              const ix = ox * c.stride + j - left;
              if (ix < 0 || ix >= w) continue;
              const xAt = ((n * h + iy) * w + ix) * cin;
              const dwAt = (i * c.k + j) * cin * cout;
              for (let ci = 0; ci < cin; ci++) {
                const xv = x[xAt + ci]!;
                const row = dwAt + ci * cout;
                for (let co = 0; co < cout; co++) dw[row + co]! += xv * dy[dyAt + co]!;
              }
            }
          }
        }
    return tf.tensor4d(Float32Array.from(dw), filterOf(c));
  };

const backpropFilter = memo((c: ConvCase): Run => {
  const run = backpropFilterKernel(c);
  referenceOf.set(run, filterGradByLoops(c));
  return run;
});

const TOLERANCE = 1e-4;

const KERNELS = ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter'] as const;
type Kernel = (typeof KERNELS)[number];
const RUNS: Record<Kernel, (c: ConvCase) => Run> = {
  Conv2D: conv,
  Conv2DBackpropInput: backpropInput,
  Conv2DBackpropFilter: backpropFilter,
};

/** The graphs of the three convolution kernels, each forced in turn below. */
const KERNEL_GRAPHS = [
  'conv',
  'nchwc',
  'im2col-matmul',
  'im2col-gemm',
  'tap-gemm',
  'conv-transpose',
  'phase-gemm',
  'phase-nchwc',
  'phase-split',
] as const;

/** The labels of the graphs `kernel` offers for case `c` (the kernels' own candidate lists). */
function offered(kernel: Kernel, c: ConvCase): string[] {
  const info = nhwcInfo(c.x, filterOf(c), c.stride, 1, c.pad, undefined, 'NHWC');
  if (info === undefined) return [];
  const candidates =
    kernel === 'Conv2D'
      ? conv2dCandidates(info, 'x', 'filter', 'y')
      : kernel === 'Conv2DBackpropInput'
        ? backpropInputCandidates(info, 'dy', 'filter', 'dx')
        : backpropFilterCandidates(info, 'x', 'dy', 'dw');
  return candidates.map((candidate) => candidate.label);
}

test('the loop-wise filter gradient equals the cpu kernel (the reference of every Conv2DBackpropFilter here)', async () => {
  await initBackend('cpu');
  // The odd cases have the training convolutions' geometries too (even sides at stride 2 'same',
  // the odd pixel of padding at the bottom; stride 1 'same'), at a fraction of the cpu kernel's time.
  for (const c of ODD_CONVS) {
    const [kernel, loops] = [backpropFilterKernel(c), filterGradByLoops(c)].map((run) => {
      const t = tf.tidy(run);
      const v = t.dataSync().slice() as Float32Array;
      t.dispose();
      return v;
    });
    assert.equal(loops!.length, kernel!.length, name(c));
    const scale = kernel!.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const worst = kernel!.reduce((m, v, i) => Math.max(m, Math.abs(v - loops![i]!)), 0);
    assert.ok(worst <= 1e-5 * scale, `${name(c)}: ${worst} of ${scale}`);
  }
});

describe('native kernels match the cpu backend', { skip }, () => {
  let tensorsBefore = 0;
  before(async () => {
    await initBackend('native');
    tensorsBefore = tf.memory().numTensors;
  });
  after(async () => {
    forceCandidate(undefined);
    await initBackend('native');
    assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensor left behind');
  });

  // Each graph a kernel offers, forced in turn on the cases where the kernel offers it (forced
  // where it does not, a kernel races its graphs: the group 'native' does that), then the graphs'
  // race, the wasm kernel, and the per-shape choice by timing. The races run on the odd cases
  // only: every graph's values on the training shapes are checked above, forced, and a race is the
  // same code whatever the shape, but runs each graph four times (the deepest training shapes'
  // filters are megabytes).
  const races = [undefined, 'native'];
  for (const graph of [...KERNEL_GRAPHS, 'native', 'wasm', undefined]) {
    const oneGraph = (KERNEL_GRAPHS as readonly (string | undefined)[]).includes(graph);
    describe(graph === undefined ? 'fastest graph or wasm kernel per shape' : `graph '${graph}' where offered`, () => {
      before(() => forceCandidate(graph));
      for (const c of races.includes(graph) ? ODD_CONVS : [...TRAINING_CONVS, ...ODD_CONVS]) {
        for (const kernel of KERNELS) {
          const graphs = offered(kernel, c);
          if (oneGraph && !graphs.includes(graph!)) continue;
          test(`${kernel} ${name(c)}`, async () => {
            const { error, native, ran } = await relativeError(RUNS[kernel](c));
            assert.ok(error <= TOLERANCE, `relative error ${error}`);
            if (graph === undefined) return;
            const oneByOne = kernel === 'Conv2D' && c.x[3] === 1 && c.out === 1;
            assert.equal(native, oneByOne || graph === 'wasm' ? 0 : 1);
            if (oneGraph) assert.deepEqual(ran, [graph], 'the forced graph ran');
            if (graph === 'native')
              assert.ok(ran.length === 1 && graphs.includes(ran[0]!), `a graph of ${graphs.join(', ')} ran: ${ran.join(', ')}`);
          });
        }
      }
    });
  }

  test('every graph forced above is offered on some case (the blocked-channel ones where this CPU has such kernels)', () => {
    const cases = [...TRAINING_CONVS, ...ODD_CONVS];
    const blocked = ['nchwc', 'phase-nchwc', 'phase-split'];
    for (const graph of KERNEL_GRAPHS) {
      if (nchwcBlockSize() === 1 && blocked.includes(graph)) continue;
      assert.ok(
        cases.some((c) => KERNELS.some((kernel) => offered(kernel, c).includes(graph))),
        `no case here is offered '${graph}'`,
      );
    }
  });

  describe('BatchMatMul on its graphs', () => {
    before(() => forceCandidate('native'));
    const products: [number[], number[], boolean, boolean][] = [
      [[64, 2048], [2048, 128], false, false],
      [[64, 128], [2048, 128], false, true],
      [[64, 2048], [64, 128], true, false],
      [[128, 64], [2048, 128], true, true],
      [[1, 2048], [2048, 256], false, false],
      [[33, 65], [65, 129], false, false],
    ];
    for (const [aShape, bShape, ta, tb] of products) {
      test(`BatchMatMul [${aShape}]${ta ? 'ᵀ' : ''} x [${bShape}]${tb ? 'ᵀ' : ''}`, async () => {
        const run: Run = () =>
          tf.matMul(
            tf.tensor2d(values(aShape[0]! * aShape[1]!, 7), aShape as [number, number]),
            tf.tensor2d(values(bShape[0]! * bShape[1]!, 8), bShape as [number, number]),
            ta,
            tb,
          );
        const { error, native } = await relativeError(run);
        assert.ok(error <= TOLERANCE, `relative error ${error}`);
        assert.equal(native, 1);
      });
    }
    test('BatchMatMul batched and broadcast', async () => {
      const run: Run = () =>
        tf.matMul(tf.tensor3d(values(4 * 96 * 80, 9), [4, 96, 80]), tf.tensor3d(values(80 * 112, 10), [1, 112, 80]), false, true);
      const { error, native } = await relativeError(run);
      assert.ok(error <= TOLERANCE, `relative error ${error}`);
      assert.equal(native, 1);
    });
  });

  test('cases native does not take run the wasm kernel: tiny products, the one-channel blur', async () => {
    await initBackend('native');
    const { native: before, fallback: fallbackBefore } = nativeCallCounts();
    const { error, native } = await relativeError(() => tf.matMul(tf.ones([2, 3]), tf.ones([3, 4])));
    assert.ok(error <= TOLERANCE);
    assert.equal(native, 0);
    const blur = await relativeError(() =>
      tf.conv2d(tf.tensor4d(values(2 * 16 * 16, 11), [2, 16, 16, 1]), tf.tensor4d(values(11, 12), [11, 1, 1, 1]), 1, 'same'),
    );
    assert.ok(blur.error <= TOLERANCE);
    assert.equal(blur.native, 0);
    assert.ok(nativeCallCounts().fallback > fallbackBefore);
    assert.ok(nativeCallCounts().native >= before);
  });

  test('the chosen graph of each shape is cached', () => {
    assert.ok(chosenGraphs().size > 0);
  });

  test('the blocked-channel graphs run where this CPU has such kernels', async (t) => {
    if (nchwcBlockSize() === 1) {
      t.skip('onnxruntime has no blocked-channel kernels on this CPU');
      return;
    }
    const c: ConvCase = { x: [2, 8, 8, 16], k: 3, out: 16, stride: 2, pad: 'same' };
    for (const [graph, kernel] of [
      ['nchwc', conv(c)],
      ['phase-nchwc', backpropInput(c)],
      ['phase-split', backpropInput(c)],
    ] as const) {
      forceCandidate(graph);
      const { error } = await relativeError(kernel);
      assert.ok(error <= TOLERANCE, `relative error ${error}`);
      assert.ok([...chosenGraphs().values()].includes(graph), `${graph} ran`);
    }
    forceCandidate(undefined);
  });
});

describe('kernels over a large batch may run a slice of it at a time', { skip }, () => {
  const whole = (batch: number): Candidate[] => [
    { label: 'g', graph: { inputs: [{ name: 'x', shape: [batch] }], outputs: [], nodes: [] } },
  ];

  test('slices are offered in place of the whole graph where a tensor exceeds SLICE_BYTES; the last one takes the rest', () => {
    const slicing = (batch: number): Parameters<typeof withBatchSlices>[1] => ({
      batch,
      bytesPerImage: SLICE_BYTES / 4,
      batchInputs: ['x'],
      output: 'images',
    });
    assert.deepEqual(
      withBatchSlices(whole, slicing(4)).map((c) => c.label),
      ['g'],
    );
    const [sliced, ...more] = withBatchSlices(whole, slicing(10));
    assert.equal(more.length, 0);
    // At most 4 images a slice: 4 + 4 + 2.
    assert.equal(sliced?.label, 'g/3');
    assert.deepEqual(sliced?.graph.inputs[0]?.shape, [4]);
    assert.deepEqual(sliced?.slicing?.last?.inputs[0]?.shape, [2]);
    assert.deepEqual(
      { ...sliced?.slicing, last: undefined },
      { batch: 10, slice: 4, batchInputs: ['x'], output: 'images', last: undefined },
    );
    // Even slices need no graph for the last.
    const [even] = withBatchSlices(whole, slicing(8));
    assert.deepEqual([even?.label, even?.slicing?.slice, even?.slicing?.last], ['g/2', 4, undefined]);
  });

  // 2 MiB an image of x (and of dx), 10 MiB in all: at most 4 images a slice, so slices of 3 and 2.
  // The filter gradient is the sum of the slices' gradients. Few output channels keep the cpu
  // references cheap; the slicing depends on the bytes an image alone.
  // The strided case's graphs declare outputs of their own shapes (a phase grid, a tap-major matrix).
  const big: ConvCase = { x: [5, 128, 256, 16], k: 1, out: 4, stride: 1, pad: 'same' };
  const bigStrided: ConvCase = { x: [5, 128, 256, 16], k: 3, out: 4, stride: 2, pad: 'same' };
  for (const [label, kernel, c, run] of [
    ['conv/2', 'Conv2D', big, conv(big)],
    ['conv-transpose/2', 'Conv2DBackpropInput', big, backpropInput(big)],
    ['im2col-gemm/2', 'Conv2DBackpropFilter', big, backpropFilter(big)],
    ['conv/2', 'Conv2DBackpropFilter', big, backpropFilter(big)],
    ['phase-split/2', 'Conv2DBackpropInput', bigStrided, backpropInput(bigStrided)],
    ['tap-gemm/2', 'Conv2DBackpropFilter', bigStrided, backpropFilter(bigStrided)],
  ] as const) {
    test(`${kernel} of ${name(c)} on '${label}' (slices of 3 and 2) matches the cpu backend`, async (t) => {
      if (label.startsWith('phase-split') && nchwcBlockSize() === 1) {
        t.skip('onnxruntime has no blocked-channel kernels on this CPU');
        return;
      }
      forceCandidate(label);
      try {
        const { error, native } = await relativeError(run);
        assert.ok(error <= TOLERANCE, `relative error ${error}`);
        assert.equal(native, 1);
        assert.ok([...chosenGraphs().values()].includes(label), `${label} ran`);
      } finally {
        forceCandidate(undefined);
      }
    });
  }
});

describe('the first call of a shape races its graphs and the wasm kernel', { skip }, () => {
  const n = 256;
  const candidate = (label: string, op = 'MatMul'): Candidate => ({
    label,
    graph: {
      inputs: [
        { name: 'a', shape: [n, n] },
        { name: 'b', shape: [n, n] },
      ],
      outputs: [{ name: 'c', shape: [n, n] }],
      nodes: [{ op, inputs: ['a', 'b'], outputs: ['c'] }],
    },
  });
  const a = values(n * n, 21);
  const b = values(n * n, 22);
  // The product by hand, row by row.
  const expected = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k]!;
      for (let j = 0; j < n; j++) expected[i * n + j] += aik * b[k * n + j]!;
    }
  }
  const feeds = { inputs: { a, b }, output: new Float32Array(n * n) };
  before(async () => {
    await initBackend('native');
    forceCandidate(undefined);
  });

  test('a wasm kernel faster than every graph wins, in as many turns as each graph, and the shape stays on wasm', () => {
    let turns = 0;
    const ran = runCached(
      'race|fast-wasm',
      () => [candidate('matmul')],
      () => feeds,
      () => {
        turns++;
        return 0;
      },
    );
    assert.equal(ran, 'wasm');
    assert.equal(turns, TIMED_ROUNDS + 1);
    assert.ok(runsOnWasm('race|fast-wasm'));
    assert.equal(chosenGraphs().get('race|fast-wasm'), 'wasm');
  });

  test('a slower wasm kernel loses; the output holds the kept graph values; a graph that cannot load is left out', () => {
    // The wasm kernel's own time, as it reports it, is what counts.
    const slow = (): number => 30;
    feeds.output.fill(0);
    const ran = runCached(
      'race|slow-wasm',
      () => [candidate('broken', 'NoSuchOp'), candidate('matmul')],
      () => feeds,
      slow,
    );
    assert.equal(ran, 'graph');
    assert.equal(chosenGraphs().get('race|slow-wasm'), 'matmul');
    assert.ok(!runsOnWasm('race|slow-wasm'));
    let worst = 0;
    for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(expected[i]! - feeds.output[i]!));
    assert.ok(worst <= 1e-3, `max abs error ${worst}`);
  });

  test('the choices are remembered: after the sessions are gone, the shape that went to wasm still runs there', () => {
    clearSessions();
    assert.ok(runsOnWasm('race|fast-wasm'));
    assert.ok(!runsOnWasm('race|slow-wasm'));
    let turns = 0;
    assert.equal(
      runCached(
        'race|slow-wasm',
        () => [candidate('matmul')],
        () => feeds,
        () => {
          turns++;
          return 0;
        },
      ),
      'graph',
    );
    assert.equal(turns, 0);
  });

  test("the wasm kernel races on fresh copies of its weights, as training's changing weights leave it no packed filter to reuse", async () => {
    await initBackend('native');
    const conv = previousKernel(tf.Conv2D)!;
    const seen: { filter: object; values: number[] }[] = [];
    setPreviousKernel({
      ...conv,
      kernelFunc: (args) => {
        const filter = args.inputs['filter']!;
        seen.push({ filter: filter.dataId, values: Array.from(tf.backend().readSync(filter.dataId) as Float32Array) });
        return conv.kernelFunc(args);
      },
    });
    try {
      const x = tf.tensor4d(values(3 * 5 * 5 * 4, 23), [3, 5, 5, 4]);
      const filter = tf.tensor4d(values(3 * 3 * 4 * 8, 24), [3, 3, 4, 8]);
      const buffers = tf.backend().numDataIds();
      const y = tf.conv2d(x, filter, 1, 'same');
      assert.equal(tf.backend().numDataIds(), buffers + 1, 'only the output is left on the heap');
      const raced = seen.filter((s) => s.filter !== filter.dataId);
      assert.ok(raced.length >= TIMED_ROUNDS + 1, `the wasm kernel ran ${raced.length} times on copies`);
      for (const s of raced) assert.deepEqual(s.values, Array.from(filter.dataSync()));
      assert.equal(new Set(raced.map((s) => s.filter)).size, raced.length, 'a fresh copy each round');
      tf.dispose([x, filter, y]);
    } finally {
      setPreviousKernel(conv);
    }
  });
});

const MIB = 2 ** 20;

describe('freed outputs', () => {
  test('freeArrayBuffer frees a buffer at once and leaves it detached; a WebAssembly memory it leaves alone', () => {
    const buffer = new ArrayBuffer(32 * MIB);
    new Uint8Array(buffer).fill(7);
    const before = process.memoryUsage().arrayBuffers;
    assert.equal(freeArrayBuffer(buffer), true);
    assert.equal(buffer.byteLength, 0);
    assert.ok(before - process.memoryUsage().arrayBuffers >= 32 * MIB, 'its 32 MiB went back at once');

    const memory = new WebAssembly.Memory({ initial: 1 });
    new Uint8Array(memory.buffer)[0] = 5;
    assert.equal(freeArrayBuffer(memory.buffer), false);
    assert.equal(new Uint8Array(memory.buffer)[0], 5);
  });

  test('native kernels leave no copy of their outputs behind', { skip }, async () => {
    await initBackend('native', undefined, { threads: 1 });
    // The graphs alone (never the wasm kernel, which a product this small might beat).
    forceCandidate('native');
    try {
      // An 8 MiB output (2 x 64 x 64 x 256 floats) of a 1x1 conv of 4 channels (little to compute),
      // computed ten times.
      const x = tf.randomUniform([2, 64, 64, 4], -1, 1, 'float32', 1);
      const filter = tf.randomUniform([1, 1, 4, 256], -1, 1, 'float32', 2);
      const calls = nativeCallCounts().native;
      // Nothing returned from the tidy: it would walk a returned array value by value.
      tf.tidy(() => void tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, 1, 'same').dataSync());
      const before = process.memoryUsage().arrayBuffers;
      for (let i = 0; i < 10; i++) tf.tidy(() => tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, 1, 'same'));
      const grown = process.memoryUsage().arrayBuffers - before;
      assert.equal(nativeCallCounts().native - calls, 11, 'every conv ran on onnxruntime');
      assert.ok(grown < 2 * MIB, `array buffers grew by ${(grown / MIB).toFixed(1)} MiB over ten 8 MiB outputs`);
      tf.dispose([x, filter]);
    } finally {
      forceCandidate(undefined);
    }
    await initBackend('wasm');
  });
});
