// A split made of image files on disk (Gleason patches, image folders): only paths and labels are
// held in memory; each file is read and decoded when a batch asks for it.
import { decodeImageFile } from './decode.ts';
import type { DatasetSplit, LabelKind, RawImage, SampleRecord } from './types.ts';


export class ImageFileSplit implements DatasetSplit {
  readonly length: number;
  readonly labelKind: LabelKind;
  readonly labelWidth: number;

  /** `classes[i]` is sample i's class index; omit it for an unlabelled split. */
  constructor(
    readonly description: string,
    private readonly paths: readonly string[],
    readonly labelNames: string[],
    private readonly classes?: Uint8Array,
  ) {
    this.length = paths.length;
    this.labelKind = classes ? 'class' : 'none';
    this.labelWidth = classes ? labelNames.length : 0;
  }

  async labels(): Promise<Uint8Array[]> {
    const classes = this.classes;
    return Array.from({ length: this.length }, (_, i) => (classes ? Uint8Array.of(classes[i]) : new Uint8Array(0)));
  }

  private path(index: number): string {
    const path = this.paths[index];
    if (path === undefined) throw new RangeError(`${this.description}: index ${index} out of range 0..${this.length - 1}`);
    return path;
  }

  async read(indices: readonly number[]): Promise<RawImage[]> {
    return Promise.all(indices.map((i) => decodeImageFile(this.path(i))));
  }

  async records(indices: readonly number[]): Promise<SampleRecord[]> {
    return indices.map((i) => ({ kind: 'file', path: this.path(i) }));
  }

  async close(): Promise<void> {}
}
