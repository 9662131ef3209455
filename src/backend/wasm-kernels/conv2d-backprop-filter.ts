// Conv2DBackpropFilter for the wasm backend, which TF.js 4.22 does not ship.
//
// dW[i,j,ci,co] = sum_{b,oh,ow} xPadded[b, oh*s + i, ow*s + j, ci] * dy[b, oh, ow, co].
// One XNNPACK conv computes it with b as the contracted channel axis and dy as the filter:
// input x as [1, H, W*Ci, B] (a 2-D transpose of x viewed as [B, H*W*Ci]), filter dy as
// [OH, OW, B, Co], stride 1, dilation (s_h, s_w*Ci). Along the fused W*Ci axis, output position
// j*Ci + ci reads input positions (j + ow*s_w)*Ci + ci, so the output [1, kh, kw*Ci, Co] is dW
// in its final layout. Why this layout: the 2-D transpose of x is one SIMD axis swap
// (./transpose.ts), where the 4-D one that putting Ci in the batch axis needs falls to the stock
// per-element loop (the output then needs no transpose at all); the padding is done inside the
// conv, per image row. Image layers (at most 4 channels on one side) and long output rows take a
// direct SIMD loop instead (filterGradDirect, below).
import { tf } from '../../util/tf.ts';
import { simdKernels, wasmHeapOffset, type SimdKernels, type WasmKernelBackend } from '../simd/module.ts';
import { composedWasmKernel } from './compose.ts';
import { cropToConvPadding, nhwcConvInfo } from './conv-util.ts';

/** Most floats one conv takes as its filter when the filter is split. */
const FILTER_CHUNK_FLOATS = 2 ** 19;

interface Correlation {
  /** zero rows padded before the input (negative: rows cropped) */
  leadingRows: number;
  /** output rows */
  outRows: number;
  /** [before, after] margins of the input's columns */
  colMargins: readonly [number, number];
  dilations: [number, number];
}

/**
 * The stride-1 conv of `input` ([1, R, C, B]) with `filter` ([FR, FC, B, N]), as one conv or, for
 * a large filter, the sum of convs over chunks of its rows. Why: XNNPACK's GEMM streams the whole
 * packed filter once per few output pixels, and these filters hold a whole activation (dy or x):
 * chunks that fit the L2 cache run faster, slices included (the [64,64,64,32] x, stride 2 case of
 * `npm run bench:kernels`). Chunk rows first..end-1 meet padded input rows
 * first*d .. (end-1)*d + outRows - 1; rows outside the input are zeros.
 */
function correlateInRowChunks(input: tf.Tensor4D, filter: tf.Tensor4D, conv: Correlation): tf.Tensor {
  const [filterRows, filterCols, channels, outChannels] = filter.shape;
  const rowFloats = filterCols * channels * outChannels;
  const rowsPerChunk =
    filterRows * rowFloats > 2 * FILTER_CHUNK_FLOATS ? Math.max(1, Math.floor(FILTER_CHUNK_FLOATS / rowFloats)) : filterRows;
  const [rowDilation] = conv.dilations;
  const parts: tf.Tensor[] = [];
  for (let first = 0; first < filterRows; first += rowsPerChunk) {
    const end = Math.min(filterRows, first + rowsPerChunk);
    const chunk = end - first === filterRows ? filter : tf.slice(filter, [first, 0, 0, 0], [end - first, -1, -1, -1]);
    const { cropped, padding } = cropToConvPadding(input, [
      [conv.leadingRows - first * rowDilation, (end - 1) * rowDilation + conv.outRows - conv.leadingRows - input.shape[1]],
      conv.colMargins,
    ]);
    parts.push(tf.conv2d(cropped, chunk, 1, padding, 'NHWC', conv.dilations));
  }
  return parts.length === 1 ? parts[0] : tf.addN(parts);
}

/** dW with x as the conv's input and dy as its filter (any stride). */
function filterFromXInput(x: tf.Tensor4D, dy: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const { batchSize, inHeight, inWidth, inChannels, outWidth, outChannels } = info;
  // Columns past (OW-1)*s + kw never meet dy: a negative right margin crops them.
  const usedCols = (outWidth - 1) * info.strideWidth + info.filterWidth;
  const { top, left } = info.padInfo;
  const batchLast = tf.transpose(tf.reshape(x, [batchSize, inHeight * inWidth * inChannels]));
  const fusedRows = tf.reshape(batchLast, [1, inHeight, inWidth * inChannels, batchSize]) as tf.Tensor4D;
  const dyAsFilter = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D;
  const correlated = correlateInRowChunks(fusedRows, dyAsFilter, {
    leadingRows: top,
    outRows: info.filterHeight,
    colMargins: [left * inChannels, (usedCols - left - inWidth) * inChannels],
    dilations: [info.strideHeight, info.strideWidth * inChannels],
  });
  return tf.reshape(correlated, [info.filterHeight, info.filterWidth, inChannels, outChannels]);
}

/**
 * dW for stride 1 with the roles swapped: dy [1, OH, OW*Co, B] is the input and x [H, W, B, Ci]
 * the filter, dilation (1, Co). Output position (i', j'*Co + co) then holds the tap (kh-1-i',
 * kw-1-j'), channel ci. Why: with few output channels (the 32->3 image layer) the x-as-input conv
 * has only Co = 3 GEMM columns, a poor fit for XNNPACK's kernels; here it has Ci, and x needs only
 * the block copy [1,2,0,3] instead of a full transpose. The flipped, [kh, kw, Co, Ci] result is tiny.
 */
function filterFromDyInput(x: tf.Tensor4D, dy: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const { batchSize, inWidth, inChannels, outHeight, outWidth, outChannels, filterHeight, filterWidth } = info;
  const { top, left } = info.padInfo;
  const batchLast = tf.transpose(tf.reshape(dy, [batchSize, outHeight * outWidth * outChannels]));
  const fusedRows = tf.reshape(batchLast, [1, outHeight, outWidth * outChannels, batchSize]) as tf.Tensor4D;
  // dy row oh pairs x row oh + i - top: padded by kh-1-top in front, output row i' = kh-1-i.
  const xAsFilter = tf.transpose(x, [1, 2, 0, 3]) as tf.Tensor4D;
  const correlated = correlateInRowChunks(fusedRows, xAsFilter, {
    leadingRows: filterHeight - 1 - top,
    outRows: filterHeight,
    colMargins: [(filterWidth - 1 - left) * outChannels, (inWidth - outWidth + left) * outChannels],
    dilations: [1, outChannels],
  });
  const flippedTaps = tf.reshape(correlated, [filterHeight * filterWidth, outChannels, inChannels]);
  const taps = tf.transpose(tf.reverse(flippedTaps, 0), [0, 2, 1]);
  return tf.reshape(taps, [filterHeight, filterWidth, inChannels, outChannels]);
}

const composed = composedWasmKernel(tf.Conv2DBackpropFilter, ['x', 'dy'], ({ x, dy }, attrs: tf.Conv2DBackpropFilterAttrs) => {
  const info = nhwcConvInfo('Conv2DBackpropFilter', x.shape as [number, number, number, number], attrs.filterShape, attrs);
  const correlate =
    info.strideHeight === 1 && info.strideWidth === 1 && info.outChannels < info.inChannels ? filterFromDyInput : filterFromXInput;
  return correlate(x as tf.Tensor4D, dy as tf.Tensor4D, info);
});

/** Output rows at least this wide make the direct loop faster than the conv (measured down to 8). */
const DIRECT_MIN_OUT_WIDTH = 8;

/**
 * Which operand the direct loop (filterGradDirect) reads as vectors, or undefined to run the conv.
 * The loop wins where the conv's GEMM is badly shaped: when one side has at most 4 channels (the
 * image layers 3 -> 32 and 32 -> 3, a GEMM dimension of 3 or 27) and when output rows are long
 * (the 64x64 and 32x32 layers at batch 64). With 4-wide rows the per-row pass overhead takes over
 * and those stay convs. The Conv2DBackpropFilter cases of `npm run bench:kernels` measure each.
 */
function directVectorOperand(info: tf.backend_util.Conv2DInfo): 'x' | 'dy' | undefined {
  if (info.dataFormat !== 'channelsLast') return undefined;
  if (info.inChannels <= 4 && info.outChannels % 4 === 0) return 'dy';
  if (info.inChannels % 4 === 0 && (info.outChannels <= 4 || info.outWidth >= DIRECT_MIN_OUT_WIDTH)) return 'x';
  return undefined;
}

/** [first, end) of the output positions whose input position o*stride + tap - pad lies in [0, size). */
function validRange(outSize: number, size: number, stride: number, tap: number, pad: number): [number, number] {
  const first = Math.max(0, Math.ceil((pad - tap) / stride));
  const last = Math.min(outSize - 1, Math.floor((size - 1 + pad - tap) / stride));
  return [first, Math.max(first, last + 1)];
}

/** One pass of filter_grad: 8 i32s, as the SIMD module reads them. */
const PASS_INTS = 8;

/**
 * dW by the SIMD module's filter_grad: one pass per tap, per pair of channels of the few-channel
 * operand and per group of 16 (or 4) channels of the other, all run together output row by output row. Lanes
 * run over dy's channels (each pass writes a dW row as it lies) or over x's (lanes a dW row apart).
 */
function filterGradDirect(
  kernels: SimdKernels,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  backend: WasmKernelBackend,
  vector: 'x' | 'dy',
): tf.TensorInfo {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels, filterHeight, filterWidth } = info;
  const [sh, sw] = [info.strideHeight, info.strideWidth];
  const { top, left } = info.padInfo;
  const f = 4;
  const out = backend.makeOutput([filterHeight, filterWidth, inChannels, outChannels], 'float32');
  const outAt = wasmHeapOffset(out);
  const xStrides = [inHeight * inWidth * inChannels * f, sh * inWidth * inChannels * f, sw * inChannels * f] as const;
  const dyStrides = [outHeight * outWidth * outChannels * f, outWidth * outChannels * f, outChannels * f] as const;
  const vectorChannels = vector === 'dy' ? outChannels : inChannels;
  const scalarChannels = vector === 'dy' ? inChannels : outChannels;
  // the vector operand's channels in groups of 16 lanes (wide), then of 4
  const groups: { first: number; wide: number }[] = [];
  let v = 0;
  for (; v + 16 <= vectorChannels; v += 16) groups.push({ first: v, wide: 1 });
  for (; v < vectorChannels; v += 4) groups.push({ first: v, wide: 0 });
  const table: number[] = [];
  for (let i = 0; i < filterHeight; i++) {
    const [rowLo, rowHi] = validRange(outHeight, inHeight, sh, i, top);
    for (let j = 0; j < filterWidth; j++) {
      const [colLo, colHi] = validRange(outWidth, inWidth, sw, j, left);
      // from x's start to its position for output (0, 0) and this tap: negative in the padding
      const xTap = ((i - top) * inWidth + (j - left)) * inChannels * f;
      const tapOut = outAt + (i * filterWidth + j) * inChannels * outChannels * f;
      // neighbouring channels of the few-channel operand in pairs (they share each vector load)
      for (let c = 0; c < scalarChannels; c += 2) {
        const pair = c + 1 < scalarChannels ? 2 : 0;
        for (const { first, wide } of groups) {
          const [vecOffset, scalOffset, dst] =
            vector === 'dy'
              ? [first * f, xTap + c * f, tapOut + (c * outChannels + first) * f]
              : [xTap + first * f, c * f, tapOut + (first * outChannels + c) * f];
          table.push(vecOffset, scalOffset, dst, rowLo, rowHi, colLo, colHi, wide | pair);
        }
      }
    }
  }
  const passes = table.length / PASS_INTS;
  const tableInfo = backend.makeOutput([table.length], 'int32', undefined, Int32Array.from(table));
  const sums = backend.makeOutput([passes * 64], 'float32');
  try {
    const [vec, vecStrides, scal, scalStrides] = vector === 'dy' ? [dy, dyStrides, x, xStrides] : [x, xStrides, dy, dyStrides];
    kernels.filter_grad(
      wasmHeapOffset(vec),
      wasmHeapOffset(scal),
      batchSize,
      outHeight,
      ...vecStrides,
      ...scalStrides,
      wasmHeapOffset(tableInfo),
      passes,
      wasmHeapOffset(sums),
      vector === 'dy' ? f : outChannels * f,
      // channel c + 1's dW entries: the next row of dW (lanes over dy) or the next column (over x)
      vector === 'dy' ? outChannels * f : f,
    );
  } finally {
    backend.disposeData(tableInfo.dataId, true);
    backend.disposeData(sums.dataId, true);
  }
  return out;
}

export const conv2dBackpropFilterConfig: tf.KernelConfig = {
  ...composed,
  kernelFunc: (args) => {
    const { x, dy } = args.inputs;
    const kernels = simdKernels();
    if (x !== undefined && dy !== undefined && kernels !== undefined && x.dtype === 'float32' && dy.dtype === 'float32') {
      const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
      const info = nhwcConvInfo('Conv2DBackpropFilter', x.shape as [number, number, number, number], attrs.filterShape, attrs);
      const vector = directVectorOperand(info);
      if (vector !== undefined) return filterGradDirect(kernels, x, dy, info, args.backend as unknown as WasmKernelBackend, vector);
    }
    return composed.kernelFunc(args);
  },
};
