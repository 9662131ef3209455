// The flags `medvae-dist` adds to `medvae train`'s, as commander defines them. Loads no more than
// commander and the ring's defaults: `medvae-dist --help` and commander's usage errors need no more.
import type { Command } from 'commander';
import { DEFAULT_BUCKET_BYTES, DEFAULT_CHUNK_BYTES, TOKEN_ENV } from '../collective/ring-options.ts';
import type { TrainFlags } from './train-flags.ts';

export interface DistFlags extends TrainFlags {
  gpus?: string;
  cpuWorkers?: string;
  maxRestarts: string;
  /** Absent: STEP_TIMEOUT_S, or SOFTWARE_GPU_STEP_TIMEOUT_S on a software adapter. */
  stepTimeout?: string;
  listenHost?: string;
  bucketMb: string;
  chunkKb: string;
  /** false with --no-overlap. */
  overlap: boolean;
  nnodes?: string;
  nodeRank?: string;
  masterAddr?: string;
  masterPort?: string;
  rdzvTimeout: string;
  localAddr?: string;
}

/** --step-timeout's default, seconds. */
export const STEP_TIMEOUT_S = 600;
/** Its default on a software adapter, whose steps (and first shader compilations) run at CPU-emulated speed. */
export const SOFTWARE_GPU_STEP_TIMEOUT_S = 6000;

export function addDistFlags(cmd: Command): Command {
  return cmd
    .option('--gpus <ids>', 'GPU indices, one worker each, e.g. 0,1 (one GPU: no agent, the single-GPU path)')
    .option('--cpu-workers <n>', 'number of CPU workers (the native backend, or the one --backend names)')
    .option('--max-restarts <n>', 'restart all workers from the last checkpoint up to n times when one dies or hangs', '0')
    .option(
      '--step-timeout <seconds>',
      `after its first step, a worker whose step count does not move for this long is treated as hung (start-up may take up to 300 s; default ${STEP_TIMEOUT_S}, ${SOFTWARE_GPU_STEP_TIMEOUT_S} on a software GPU adapter)`,
    )
    .option(
      '--listen-host <host>',
      `data-plane address of the workers (beyond loopback needs ${TOKEN_ENV}; default 127.0.0.1, all interfaces across hosts)`,
    )
    .option('--nnodes <n>', 'number of nodes (hosts), one medvae-dist each (env NNODES; detected under Kubernetes and Slurm)')
    .option('--node-rank <r>', 'this node, 0..nnodes-1; node 0 holds the rendezvous (env NODE_RANK, JOB_COMPLETION_INDEX, SLURM_NODEID)')
    .option('--master-addr <host>', "node 0's address (env MASTER_ADDR; the Indexed Job's pod 0, or Slurm's first host)")
    .option('--master-port <port>', "node 0's rendezvous port (env MASTER_PORT; default 29500)")
    .option('--rdzv-timeout <seconds>', 'longest wait for every node to join the rendezvous', '900')
    .option('--local-addr <host>', "address other nodes reach this node's workers at (default: the one node 0 sees)")
    .option(
      '--bucket-mb <MiB>',
      'all-reduce bucket size: gradients are reduced this many MiB at a time',
      String(DEFAULT_BUCKET_BYTES / 2 ** 20),
    )
    .option(
      '--chunk-kb <KiB>',
      'frame size within a bucket: the unit that is pipelined around the ring',
      String(DEFAULT_CHUNK_BYTES / 2 ** 10),
    )
    .option(
      '--no-overlap',
      'all-reduce the gradients after the backward pass, not bucket by bucket while it runs (to measure what overlap hides)',
    );
}
