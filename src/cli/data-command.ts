// `medvae data download <flag>` and `medvae data info <path>`.
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { DatasetFormat } from '../config/schema.ts';
import { downloadMedmnist } from '../data/download.ts';
import { describeDataset } from '../data/info.ts';
import { MEDMNIST, MEDMNIST_SIZES } from '../data/medmnist.ts';
import { runCommand } from './errors.ts';

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
        console.log(await describeDataset(path, opts.format));
      }),
    );
}
