// TF.js as every module of the project reaches it: `import { tf } from '../util/tf.ts'`.
//
// Loaded with require, not an ESM import: importing a CommonJS bundle from ESM makes Node scan its
// source for export names (cjs-module-lexer), about half a second of CPU for TF.js's bundles, paid
// again by every command, worker and test process.
//
// The pure-JS cpu backend prints "Hi, looks like you are running TensorFlow.js in Node.js ..." on
// the first tensor it holds. medvae says itself which backend it chose and why, so that banner is
// only noise, printed again in every worker: an accessor on the prototype takes the `firstUse` field
// the backend's constructor assigns and always reads false. That silences the banner and nothing
// else (tfjs-core's PROD and IS_TEST flags would hide every other warning too); if TF.js changes,
// the banner shows and nothing breaks.
import { createRequire } from 'node:module';
import type * as Tfjs from '@tensorflow/tfjs';

const require = createRequire(import.meta.url);

export const tf = require('@tensorflow/tfjs') as typeof Tfjs;

silenceCpuBanner();

function silenceCpuBanner(): void {
  // The cpu backend TF.js itself loads: resolved from @tensorflow/tfjs, not from this package.
  const { MathBackendCPU } = createRequire(require.resolve('@tensorflow/tfjs'))('@tensorflow/tfjs-backend-cpu') as {
    MathBackendCPU?: { prototype: object };
  };
  if (MathBackendCPU)
    Object.defineProperty(MathBackendCPU.prototype, 'firstUse', { configurable: true, get: () => false, set: () => undefined });
}

// The types the project names as `tf.X`: a namespace that holds only types merges with the constant
// above. tsc names any type missing here.
/* eslint-disable @typescript-eslint/no-namespace */
export declare namespace tf {
  type Rank = Tfjs.Rank;
  type Tensor<R extends Rank = Rank> = Tfjs.Tensor<R>;
  type Scalar = Tfjs.Scalar;
  type Tensor1D = Tfjs.Tensor1D;
  type Tensor2D = Tfjs.Tensor2D;
  type Tensor4D = Tfjs.Tensor4D;
  type Variable<R extends Rank = Rank> = Tfjs.Variable<R>;
  type DataType = Tfjs.DataType;
  type DataId = Tfjs.DataId;
  type TensorInfo = Tfjs.TensorInfo;
  type TensorContainer = Tfjs.TensorContainer;
  type TensorContainerObject = Tfjs.TensorContainerObject;
  type NamedTensorMap = Tfjs.NamedTensorMap;
  type NamedTensorInfoMap = Tfjs.NamedTensorInfoMap;
  type NamedAttrMap = Tfjs.NamedAttrMap;
  type KernelBackend = Tfjs.KernelBackend;
  type KernelConfig = Tfjs.KernelConfig;
  type KernelFunc = Tfjs.KernelFunc;
  type GradSaveFunc = Tfjs.GradSaveFunc;
  type BatchMatMulAttrs = Tfjs.BatchMatMulAttrs;
  type Conv2DAttrs = Tfjs.Conv2DAttrs;
  type Conv2DBackpropFilterAttrs = Tfjs.Conv2DBackpropFilterAttrs;
  type Conv2DBackpropInputAttrs = Tfjs.Conv2DBackpropInputAttrs;
  type DepthwiseConv2dNativeBackpropFilterAttrs = Tfjs.DepthwiseConv2dNativeBackpropFilterAttrs;
  type DepthwiseConv2dNativeBackpropInputAttrs = Tfjs.DepthwiseConv2dNativeBackpropInputAttrs;
  type LeakyReluAttrs = Tfjs.LeakyReluAttrs;
  type SliceAttrs = Tfjs.SliceAttrs;
  type SumAttrs = Tfjs.SumAttrs;
  type TransposeAttrs = Tfjs.TransposeAttrs;
  type UnsortedSegmentSumAttrs = Tfjs.UnsortedSegmentSumAttrs;
  type LayersModel = Tfjs.LayersModel;
  type SymbolicTensor = Tfjs.SymbolicTensor;
  type Shape = Tfjs.Shape;
  namespace backend_util {
    type BackendValues = Tfjs.backend_util.BackendValues;
    type Conv2DInfo = Tfjs.backend_util.Conv2DInfo;
    type ExplicitPadding = Tfjs.backend_util.ExplicitPadding;
    type TypedArray = Tfjs.backend_util.TypedArray;
  }
  namespace io {
    type ModelArtifacts = Tfjs.io.ModelArtifacts;
    type ModelJSON = Tfjs.io.ModelJSON;
    type WeightsManifestEntry = Tfjs.io.WeightsManifestEntry;
  }
  namespace layers {
    type Layer = Tfjs.layers.Layer;
  }
  namespace serialization {
    type ConfigDict = Tfjs.serialization.ConfigDict;
    type Serializable = Tfjs.serialization.Serializable;
    type SerializableConstructor<T extends Serializable> = Tfjs.serialization.SerializableConstructor<T>;
  }
}
