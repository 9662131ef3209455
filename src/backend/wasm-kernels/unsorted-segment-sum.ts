// UnsortedSegmentSum for the wasm backend (the gradient of gather), which TF.js 4.22 does not ship.
//
// A ScatterNd of the rows of x onto their segment ids, which sums duplicates. Ids outside
// [0, numSegments) contribute nothing (as on cpu): they are sent to one extra row that is dropped.
import { tf } from '../../util/tf.ts';
import { composedWasmKernel } from './compose.ts';

export const unsortedSegmentSumConfig = composedWasmKernel(
  tf.UnsortedSegmentSum,
  ['x', 'segmentIds'],
  ({ x, segmentIds }, attrs: tf.UnsortedSegmentSumAttrs) => {
    const { numSegments } = attrs;
    const rows = segmentIds.size;
    const rowShape = x.shape.slice(segmentIds.rank);
    const rowSize = rows === 0 ? 0 : x.size / rows;
    const ids = tf.reshape(segmentIds, [rows]);
    const inRange = tf.logicalAnd(tf.greaterEqual(ids, 0), tf.less(ids, numSegments));
    const targets = tf.reshape(tf.where(inRange, ids, tf.fill([rows], numSegments, ids.dtype)), [rows, 1]);
    const scattered = tf.scatterND(targets, tf.reshape(x, [rows, rowSize]), [numSegments + 1, rowSize]);
    return tf.reshape(tf.slice(scattered, [0, 0], [numSegments, rowSize]), [numSegments, ...rowShape]);
  },
);
