// Training on some classes only (`data.classes: [0]`): a view of a split that holds only the
// samples whose class is listed, so an anomaly detector can learn "normal" from one grade.
import { DatasetError } from './errors.ts';
import type { DatasetSplit, LabelKind, RawImage, SampleRecord } from './types.ts';

/** The samples of `split` whose class index is in `classes`; the split itself when `classes` is empty. */
export async function filterClasses(split: DatasetSplit, classes: readonly number[]): Promise<DatasetSplit> {
  if (classes.length === 0) return split;
  if (split.labelKind !== 'class') {
    throw new DatasetError(split.description, `data.classes needs single-class labels, this split's labels are '${split.labelKind}'; remove data.classes`);
  }
  const labels = await split.labels();
  const wanted = new Set(classes);
  const keep: number[] = [];
  labels.forEach((row, i) => { if (wanted.has(row[0] ?? -1)) keep.push(i); });
  const present = new Set(keep.map((i) => labels[i]![0]));
  const absent = classes.filter((c) => !present.has(c));
  if (absent.length > 0) {
    throw new DatasetError(split.description, `data.classes lists class(es) ${absent.join(', ')} that no sample has (classes 0..${split.labelWidth - 1})`);
  }
  return new ClassSubset(split, keep, classes);
}

class ClassSubset implements DatasetSplit {
  readonly description: string;
  readonly length: number;
  readonly imageShape?: [number, number, 1 | 3];
  readonly labelKind: LabelKind;
  readonly labelWidth: number;
  readonly labelNames: string[];

  constructor(private readonly inner: DatasetSplit, private readonly keep: readonly number[], classes: readonly number[]) {
    this.description = `${inner.description}{classes ${classes.join(',')}}`;
    this.length = keep.length;
    this.imageShape = inner.imageShape;
    this.labelKind = inner.labelKind;
    this.labelWidth = inner.labelWidth;
    this.labelNames = inner.labelNames;
  }

  private map(indices: readonly number[]): number[] {
    return indices.map((i) => {
      const j = this.keep[i];
      if (j === undefined) throw new RangeError(`${this.description}: index ${i} out of range 0..${this.length - 1}`);
      return j;
    });
  }

  async labels(): Promise<Uint8Array[]> {
    const all = await this.inner.labels();
    return this.keep.map((i) => all[i]!);
  }

  read(indices: readonly number[]): Promise<RawImage[]> {
    return this.inner.read(this.map(indices));
  }

  records(indices: readonly number[]): Promise<SampleRecord[]> {
    const mapped = this.map(indices);
    return this.inner.records ? this.inner.records(mapped) : this.inner.read(mapped).then((images) => images.map((image) => ({ kind: 'pixels' as const, image })));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
