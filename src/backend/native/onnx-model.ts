// A tiny writer for the subset of ONNX's ModelProto that the native kernels need: one graph of
// float32 inputs and outputs with fixed shapes (or an unknown size the graph decides), nodes of
// ONNX's or another operator set with int/ints/float attributes, and int64 initializers (the
// shapes that Reshape reads). The protobuf wire format is written by hand (varints,
// length-delimited fields, packed int64s): a few dozen lines instead of a dependency.
//
// Field numbers are those of onnx/onnx.proto (IR version 8, opset 17).

const WIRE_VARINT = 0;
const WIRE_FIXED32 = 5;
const WIRE_BYTES = 2;

/** ONNX TensorProto.DataType values used here. */
export const FLOAT = 1;
export const INT64 = 7;

const IR_VERSION = 8;
const OPSET = 17;
/** The version of every other operator set a graph uses (onnxruntime's contrib ops have one). */
const CONTRIB_OPSET = 1;

class Writer {
  private readonly chunks: number[] = [];

  varint(value: number | bigint): this {
    // int64 fields are varints of the two's complement: a negative value takes ten bytes.
    let v = BigInt.asUintN(64, BigInt(value));
    do {
      const byte = Number(v & 0x7fn);
      v >>= 7n;
      this.chunks.push(v === 0n ? byte : byte | 0x80);
    } while (v !== 0n);
    return this;
  }

  private tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }

  int(field: number, value: number): this {
    return this.tag(field, WIRE_VARINT).varint(value);
  }

  float(field: number, value: number): this {
    this.tag(field, WIRE_FIXED32);
    const bytes = new Uint8Array(new Float32Array([value]).buffer);
    this.chunks.push(...bytes);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WIRE_BYTES).varint(value.length);
    for (const byte of value) this.chunks.push(byte);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, build: (w: Writer) => void): this {
    const inner = new Writer();
    build(inner);
    return this.bytes(field, inner.finish());
  }

  packedInts(field: number, values: readonly number[]): this {
    const inner = new Writer();
    for (const v of values) inner.varint(v);
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }
}

/** A node attribute: an int, a list of ints or a float. */
export type AttributeValue = number | readonly number[] | { float: number };

export interface OnnxNode {
  op: string;
  /** The operator set the op is from: ONNX's own unless set (such as onnxruntime's 'com.microsoft.nchwc'). */
  domain?: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attrs?: Record<string, AttributeValue>;
}

export interface OnnxValueInfo {
  name: string;
  /** Fixed sizes; -1 for one the graph decides (an output read back with its own dims). */
  shape: readonly number[];
}

/** An int64 constant (such as a shape for Reshape or the starts of a Slice). */
export interface OnnxInt64Initializer {
  name: string;
  values: readonly number[];
}

export interface OnnxGraph {
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
  nodes: readonly OnnxNode[];
  initializers?: readonly OnnxInt64Initializer[];
}

// AttributeProto.AttributeType
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;

function writeAttribute(w: Writer, name: string, value: AttributeValue): void {
  w.string(1, name);
  if (typeof value === 'number') {
    w.int(3, value).int(20, ATTR_INT);
  } else if ('float' in value) {
    w.float(2, value.float).int(20, ATTR_FLOAT);
  } else {
    w.packedInts(8, value).int(20, ATTR_INTS);
  }
}

function writeValueInfo(w: Writer, info: OnnxValueInfo): void {
  w.string(1, info.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, FLOAT);
      tensor.message(2, (shape) => {
        // A negative size leaves the dimension unnamed and unknown (the graph decides it).
        for (const dim of info.shape) shape.message(1, (d) => (dim < 0 ? d : d.int(1, dim)));
      });
    }),
  );
}

/** The serialized ModelProto of `graph` (float32 tensors, fixed shapes). */
export function encodeModel(graph: OnnxGraph): Uint8Array {
  const w = new Writer();
  w.int(1, IR_VERSION);
  w.string(2, 'medvae');
  w.message(7, (g) => {
    graph.nodes.forEach((node, i) => {
      g.message(1, (n) => {
        for (const input of node.inputs) n.string(1, input);
        for (const output of node.outputs) n.string(2, output);
        n.string(3, `${node.op.toLowerCase()}_${i}`);
        n.string(4, node.op);
        if (node.domain !== undefined) n.string(7, node.domain);
        for (const [name, value] of Object.entries(node.attrs ?? {})) n.message(5, (a) => writeAttribute(a, name, value));
      });
    });
    g.string(2, 'medvae_kernel');
    for (const init of graph.initializers ?? []) {
      g.message(5, (t) => {
        t.packedInts(1, [init.values.length]);
        t.int(2, INT64);
        t.packedInts(7, init.values);
        t.string(8, init.name);
      });
    }
    for (const input of graph.inputs) g.message(11, (v) => writeValueInfo(v, input));
    for (const output of graph.outputs) g.message(12, (v) => writeValueInfo(v, output));
  });
  w.message(8, (o) => o.string(1, '').int(2, OPSET));
  const domains = new Set(graph.nodes.flatMap((node) => (node.domain === undefined ? [] : [node.domain])));
  for (const domain of domains) w.message(8, (o) => o.string(1, domain).int(2, CONTRIB_OPSET));
  return w.finish();
}
