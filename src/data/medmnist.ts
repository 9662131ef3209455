// MedMNIST (v3, zenodo record 10519652): one npz per dataset and size, named {flag}.npz for 28 px
// and {flag}_{size}.npz for 64/128/224, holding {train,val,test}_{images,labels}. Images are uint8
// N x S x S (grey) or N x S x S x 3; labels uint8 N x L (a class index, or L multi-hot findings).
import { basename } from 'node:path';
import { DatasetError } from './errors.ts';
import { NpzArchive, type NpyArray } from './npz.ts';
import type { DatasetSplit, LabelKind, RawImage, SampleRecord } from './types.ts';

export const MEDMNIST_SIZES = [28, 64, 128, 224] as const;
export type MedmnistSize = (typeof MEDMNIST_SIZES)[number];

export interface MedmnistInfo {
  flag: string;
  task: 'multi-class' | 'binary-class' | 'ordinal-regression' | 'multi-label';
  labelKind: Exclude<LabelKind, 'none'>;
  channels: 1 | 3;
  labelNames: string[];
  /** MD5 of each size's file, from MedMNIST's own medmnist/info.py (v3.0.2). */
  md5: Record<MedmnistSize, string>;
}

const ORGAN_LABELS = [
  'bladder', 'femur-left', 'femur-right', 'heart', 'kidney-left', 'kidney-right',
  'liver', 'lung-left', 'lung-right', 'pancreas', 'spleen',
];

function info(
  flag: string,
  task: MedmnistInfo['task'],
  channels: 1 | 3,
  labelNames: string[],
  md5: [string, string, string, string],
): MedmnistInfo {
  return {
    flag,
    task,
    labelKind: task === 'multi-label' ? 'multilabel' : 'class',
    channels,
    labelNames,
    md5: { 28: md5[0], 64: md5[1], 128: md5[2], 224: md5[3] },
  };
}

/** The 2D MedMNIST datasets this tool knows by name. */
export const MEDMNIST: Record<string, MedmnistInfo> = Object.fromEntries(
  [
    info('pathmnist', 'multi-class', 3, [
      'adipose', 'background', 'debris', 'lymphocytes', 'mucus', 'smooth muscle',
      'normal colon mucosa', 'cancer-associated stroma', 'colorectal adenocarcinoma epithelium',
    ], ['a8b06965200029087d5bd730944a56c1', '55aa9c1e0525abe5a6b9d8343a507616', 'ac42d08fb904d92c244187169d1fd1d9', '2c51a510bcdc9cf8ddb2af93af1eadec']),
    info('chestmnist', 'multi-label', 1, [
      'atelectasis', 'cardiomegaly', 'effusion', 'infiltration', 'mass', 'nodule', 'pneumonia',
      'pneumothorax', 'consolidation', 'edema', 'emphysema', 'fibrosis', 'pleural thickening', 'hernia',
    ], ['02c8a6516a18b556561a56cbdd36c4a8', '9de6cd0b934ebb5b7426cfba5efbae16', 'db107e5590b27930b62dbaf558aebee3', '45bd33e6f06c3e8cdb481c74a89152aa']),
    info('dermamnist', 'multi-class', 3, [
      'actinic keratoses and intraepithelial carcinoma', 'basal cell carcinoma', 'benign keratosis-like lesions',
      'dermatofibroma', 'melanoma', 'melanocytic nevi', 'vascular lesions',
    ], ['0744692d530f8e62ec473284d019b0c7', 'b70a2f5635c6199aeaa28c31d7202e1f', '2defd784463fa5243564e855ed717de1', '8974907d8e169bef5f5b96bc506ae45d']),
    info('octmnist', 'multi-class', 1, [
      'choroidal neovascularization', 'diabetic macular edema', 'drusen', 'normal',
    ], ['c68d92d5b585d8d81f7112f81e2d0842', 'e229e9440236b774d9f0dfef9d07bdaf', '0a97e76651ace45c5d943ee3f65b63ae', 'abc493b6d529d5de7569faaef2773ba3']),
    info('pneumoniamnist', 'binary-class', 1, ['normal', 'pneumonia'],
      ['28209eda62fecd6e6a2d98b1501bb15f', '8f4eceb4ccffa70c672198ea285246c6', '05b46931834c231683c68f40c47b2971', 'd6a3c71de1b945ea11211b03746c1fe1']),
    info('retinamnist', 'ordinal-regression', 3, ['grade 0', 'grade 1', 'grade 2', 'grade 3', 'grade 4'],
      ['bd4c0672f1bba3e3a89f0e4e876791e4', 'afda852cc34dcda56f86ad2b2457dbcc', 'e48e916a24454daf90583d4e6efb1a18', 'eae7e3b6f3fcbda4ae613ebdcbe35348']),
    info('breastmnist', 'binary-class', 1, ['malignant', 'normal, benign'],
      ['750601b1f35ba3300ea97c75c52ff8f6', '742edef2a1fd1524b2efff4bd7ba9364', '363e4b3f8d712e9b5de15470a2aaadf1', 'b56378a6eefa9fed602bb16d192d4c8b']),
    info('bloodmnist', 'multi-class', 3, [
      'basophil', 'eosinophil', 'erythroblast', 'immature granulocytes', 'lymphocyte', 'monocyte', 'neutrophil', 'platelet',
    ], ['7053d0359d879ad8a5505303e11de1dc', '2b94928a2ae4916078ca51e05b6b800b', 'adace1e0ed228fccda1f39692059dd4c', 'b718ff6835fcbdb22ba9eacccd7b2601']),
    info('tissuemnist', 'multi-class', 1, [
      'collecting duct, connecting tubule', 'distal convoluted tubule', 'glomerular endothelial cells',
      'interstitial endothelial cells', 'leukocytes', 'podocytes', 'proximal tubule segments', 'thick ascending limb',
    ], ['ebe78ee8b05294063de985d821c1c34b', '123ece2eba09d0aa5d698fda57103344', '61b955355d7425a89687b06cca3ce0c2', 'b077128c4a949f0a4eb01517f9037b9c']),
    info('organamnist', 'multi-class', 1, ORGAN_LABELS,
      ['68e3f8846a6bd62f0c9bf841c0d9eacc', '2dcccc29b88e6da5a01161ef20cda288', 'eeae80d0a227a8d099027e1b3cfd3b60', '50747347e05c87dd3aaf92c49f9f3170']),
    info('organcmnist', 'multi-class', 1, ORGAN_LABELS,
      ['b9ceb9546e10131b32923c5bbeaea2b1', '3ce34a8724ea6f548e6db4744d03b6a9', '773c1f009daa3fe5d9a2a201b2a7ed94', '050f5e875dc056f6768abf94ec9995d1']),
    info('organsmnist', 'multi-class', 1, ORGAN_LABELS,
      ['9ab87b696fb54e2a387ebe992d6ed5f1', '53a6d115339d874c25e309a994ff46d3', 'ded0c5fa01a95dc4978b956f613e9b8e', 'b354719e553fbbb2513d5533f52a4cb1']),
  ].map((i) => [i.flag, i]),
);

/** File name of a flag at a size: "chestmnist.npz" (28 px) or "chestmnist_64.npz". */
export function medmnistFileName(flag: string, size: MedmnistSize): string {
  return size === 28 ? `${flag}.npz` : `${flag}_${size}.npz`;
}

/** The known dataset a file name refers to ("retinamnist_128.npz" -> retinamnist), if any. */
export function medmnistInfoForFile(path: string): MedmnistInfo | undefined {
  const match = /^([a-z]+?)(?:_(?:64|128|224))?\.npz$/.exec(basename(path).toLowerCase());
  return match ? MEDMNIST[match[1]] : undefined;
}

/** One split of a MedMNIST npz. Labels are read at open; images on demand. */
export async function openMedmnist(path: string, split: string): Promise<DatasetSplit> {
  const archive = await NpzArchive.open(path);
  try {
    const names = archive.arrayNames();
    if (!names.includes(`${split}_images`) || !names.includes(`${split}_labels`)) {
      const splits = names.filter((n) => n.endsWith('_images')).map((n) => n.replace(/_images$/, ''));
      throw new DatasetError(path, `no split '${split}' (expected ${split}_images and ${split}_labels; splits here: ${splits.join(', ')})`);
    }
    const images = await archive.openArray(`${split}_images`);
    const labelArray = await archive.openArray(`${split}_labels`);
    return await MedmnistSplit.create(archive, split, images, labelArray);
  } catch (err) {
    await archive.close();
    throw err;
  }
}

class MedmnistSplit implements DatasetSplit {
  readonly description: string;
  readonly length: number;
  readonly imageShape: [number, number, 1 | 3];
  readonly labelKind: LabelKind;
  readonly labelWidth: number;
  readonly labelNames: string[];

  private constructor(
    private readonly archive: NpzArchive,
    split: string,
    private readonly images: NpyArray,
    private readonly labelRows: Uint8Array[],
    known: MedmnistInfo | undefined,
  ) {
    this.description = `${archive.path}[${split}]`;
    const [n, h, w, c = 1] = images.shape;
    this.length = n;
    this.imageShape = [h, w, c as 1 | 3];
    const width = labelRows[0]?.length ?? 0;
    if (known) {
      this.labelKind = known.labelKind;
      this.labelNames = known.labelNames;
    } else {
      this.labelKind = width > 1 ? 'multilabel' : 'class';
      const classes = this.labelKind === 'class' ? Math.max(0, ...labelRows.map((r) => r[0])) + 1 : width;
      this.labelNames = Array.from({ length: classes }, (_, i) => String(i));
    }
    this.labelWidth = this.labelNames.length;
  }

  static async create(archive: NpzArchive, split: string, images: NpyArray, labels: NpyArray): Promise<MedmnistSplit> {
    const shape = images.shape;
    if (shape.length < 3 || shape.length > 4 || (shape.length === 4 && shape[3] !== 1 && shape[3] !== 3)) {
      throw new DatasetError(images.source, `image shape (${shape.join(', ')}) is not N x H x W or N x H x W x {1,3}`);
    }
    const n = shape[0];
    if (labels.shape[0] !== n) {
      throw new DatasetError(labels.source, `${labels.shape[0]} labels for ${n} images`);
    }
    const known = medmnistInfoForFile(archive.path);
    const width = labels.rowBytes;
    const all = await labels.readRows(0, n);
    const rows = Array.from({ length: n }, (_, i) => Uint8Array.from(all.subarray(i * width, (i + 1) * width)));
    if (known) {
      const expected = known.labelKind === 'multilabel' ? known.labelNames.length : 1;
      if (width !== expected) {
        throw new DatasetError(labels.source, `label rows have ${width} columns, ${known.flag} has ${expected}`);
      }
      const limit = known.labelKind === 'multilabel' ? 1 : known.labelNames.length - 1;
      const bad = rows.findIndex((r) => r.some((v) => v > limit));
      if (bad >= 0) throw new DatasetError(labels.source, `row ${bad}: label value ${Math.max(...rows[bad])} > ${limit}`);
    }
    return new MedmnistSplit(archive, split, images, rows, known);
  }

  async labels(): Promise<Uint8Array[]> {
    return this.labelRows;
  }

  async read(indices: readonly number[]): Promise<RawImage[]> {
    const [height, width, channels] = this.imageShape;
    // One read per index: copies, so each image owns its buffer and can be transferred.
    return Promise.all(
      indices.map(async (i) => {
        if (!Number.isInteger(i) || i < 0 || i >= this.length) {
          throw new RangeError(`${this.description}: index ${i} out of range 0..${this.length - 1}`);
        }
        const row = await this.images.readRows(i, 1);
        return { data: new Uint8Array(row), height, width, channels };
      }),
    );
  }

  async records(indices: readonly number[]): Promise<SampleRecord[]> {
    return (await this.read(indices)).map((image) => ({ kind: 'pixels', image }));
  }

  async close(): Promise<void> {
    await this.archive.close();
  }
}
