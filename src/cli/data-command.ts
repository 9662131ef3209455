// `medvae data download <flag>` and `medvae data info <path>`.
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { DatasetFormat } from '../config/schema.ts';
import { downloadMedmnist } from '../data/download.ts';
import { MEDMNIST, MEDMNIST_SIZES } from '../data/medmnist.ts';
import { runCommand, UsageError } from './errors.ts';
import { DatasetNotFoundError } from '../data/errors.ts';
import { DatasetFormatError } from '../data/format.ts';
import { editDistance } from '../util/similar-path.ts';

/** An unknown dataset name, with the nearest known ones. */
function unknownDataset(flag: string): string {
  const names = Object.keys(MEDMNIST);
  const near = names
    .filter((n) => editDistance(flag.toLowerCase(), n) <= 3)
    .sort((a, b) => editDistance(flag.toLowerCase(), a) - editDistance(flag.toLowerCase(), b));
  return `unknown MedMNIST dataset '${flag}'${near.length > 0 ? `; did you mean ${near[0]}?` : ''} (known: ${names.join(', ')})`;
}

function parseSize(value: string): number {
  const size = Number(value);
  if (!(MEDMNIST_SIZES as readonly number[]).includes(size)) {
    throw new InvalidArgumentError(`expected one of ${MEDMNIST_SIZES.join(', ')}`);
  }
  return size;
}

export function registerDataCommands(program: Command): void {
  const data = program.command('data').description('get and inspect datasets');

  data
    .command('download')
    .description(`download a MedMNIST npz and check its MD5 (flags: ${Object.keys(MEDMNIST).join(', ')})`)
    .argument('<flag>', 'dataset, e.g. retinamnist or chestmnist')
    .addOption(new Option('--size <px>', 'image size of the file').argParser(parseSize).default(28))
    .option('--dir <dir>', 'folder to save into', 'data')
    .option('--debug', 'print stack traces on errors')
    .action((flag: string, opts: { size: number; dir: string; debug?: boolean }) =>
      runCommand(Boolean(opts.debug), async () => {
        if (!Object.hasOwn(MEDMNIST, flag)) throw new UsageError(unknownDataset(flag));
        const path = await downloadMedmnist({ flag, size: opts.size, dir: opts.dir, log: (line) => console.error(line) });
        console.log(path);
      }),
    );

  data
    .command('info')
    .description('print the splits, image shapes and label distribution of a dataset')
    .argument('<path>', 'an .npz file, a Gleason root or an image folder')
    .addOption(new Option('--format <format>', 'override the guessed format').choices(['medmnist', 'gleason', 'folder']))
    .option('--debug', 'print stack traces on errors')
    .action((path: string, opts: { format?: DatasetFormat; debug?: boolean }) =>
      runCommand(Boolean(opts.debug), async () => {
        try {
          // Loaded here, at its one use: reading a dataset brings TF.js, which `data download` and --help need not load.
          const { describeDataset } = await import('../data/info.ts');
          console.log(await describeDataset(path, opts.format));
        } catch (e) {
          // The path on the command line is missing or no dataset: a usage mistake (exit 2), as --data's is.
          if (e instanceof DatasetNotFoundError || e instanceof DatasetFormatError) throw new UsageError(e.message, { cause: e });
          throw e;
        }
      }),
    );
}
