// One data-parallel worker process of `medvae-dist`, forked by the agent with its device already
// chosen (CUDA_VISIBLE_DEVICES): a WorkerSession (src/launch) exposed over the IPC channel.
import * as Comlink from 'comlink';
import { parentProcessEndpoint } from '../src/launch/ipc-endpoint.ts';
import { WorkerSession } from '../src/launch/worker-session.ts';

// Ctrl-C in the terminal reaches the whole process group; the agent decides, via stop().
process.on('SIGINT', () => {});
// An orphaned worker (agent gone) must not train on alone.
process.on('disconnect', () => process.exit(1));
Comlink.expose(new WorkerSession(), parentProcessEndpoint());
