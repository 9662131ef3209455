// Where this node stands in a multi-host run: how many nodes, which one this is, and where node 0's
// agent (the rendezvous) listens. Read, in that order, from the flags, from the variables torchrun
// users know (NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT), and from what the scheduler sets: a
// Kubernetes Indexed Job (JOB_COMPLETION_INDEX, the pod's hostname <job>-<index>, the headless
// Service) or a Slurm step (SLURM_NODEID/SLURM_PROCID, SLURM_NNODES, SLURM_JOB_NODELIST).

export const DEFAULT_MASTER_PORT = 29500;
/** The headless Service that gives node 0's pod its DNS name (`<job>-0.<service>`); default: the job's name. */
export const K8S_SERVICE_ENV = 'MEDVAE_K8S_SERVICE';

/** Every variable the layout is read from (cluster manifests are checked against this list). */
export const LAYOUT_ENV = [
  'NNODES',
  'NODE_RANK',
  'MASTER_ADDR',
  'MASTER_PORT',
  'JOB_COMPLETION_INDEX',
  'HOSTNAME',
  K8S_SERVICE_ENV,
  'SLURM_JOB_ID',
  'SLURM_NODEID',
  'SLURM_PROCID',
  'SLURM_NNODES',
  'SLURM_JOB_NUM_NODES',
  'SLURM_JOB_NODELIST',
  'SLURM_NODELIST',
] as const;

export class LayoutError extends Error {
  override name = 'LayoutError';
}

export interface LayoutFlags {
  nnodes?: string;
  nodeRank?: string;
  masterAddr?: string;
  masterPort?: string;
}

export interface NodeLayout {
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  /** Which scheduler was detected, for the start-up line. */
  scheduler: 'kubernetes' | 'slurm' | null;
  /** One line per flag that overrode a different value from the environment. */
  notes: string[];
}

type Setting = keyof LayoutFlags;
interface Candidate {
  source: string;
  value: string;
}

const FLAG_OF: Record<Setting, string> = {
  nnodes: '--nnodes',
  nodeRank: '--node-rank',
  masterAddr: '--master-addr',
  masterPort: '--master-port',
};

/**
 * Expands a Slurm host list as `scontrol show hostnames` does: `node[01-03,7],gpu-a[1-2]` gives
 * node01 node02 node03 node7 gpu-a1 gpu-a2 (zero padding kept; several bracket groups multiply).
 */
export function expandHostlist(list: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= list.length; i++) {
    const c = list[i];
    if (c === '[') depth++;
    else if (c === ']') depth--;
    if (depth < 0) throw new LayoutError(`SLURM_JOB_NODELIST '${list}': a ']' without its '['`);
    if ((c === ',' && depth === 0) || i === list.length) {
      const item = list.slice(start, i).trim();
      if (item !== '') items.push(item);
      start = i + 1;
    }
  }
  if (depth !== 0) throw new LayoutError(`SLURM_JOB_NODELIST '${list}': a '[' without its ']'`);
  return items.flatMap((item) => expandItem(item, list));
}

function expandItem(item: string, list: string): string[] {
  const open = item.indexOf('[');
  if (open < 0) return [item];
  const close = item.indexOf(']', open);
  const prefix = item.slice(0, open);
  const rest = expandItem(item.slice(close + 1), list);
  const out: string[] = [];
  for (const range of item.slice(open + 1, close).split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(range.trim());
    if (!m) throw new LayoutError(`SLURM_JOB_NODELIST '${list}': '${range}' is not a number or a range a-b`);
    const [from, to] = [Number(m[1]), Number(m[2] ?? m[1])];
    if (to < from) throw new LayoutError(`SLURM_JOB_NODELIST '${list}': range ${range} runs backwards`);
    for (let n = from; n <= to; n++) {
      const digits = String(n).padStart(m[1]!.length, '0');
      for (const tail of rest) out.push(`${prefix}${digits}${tail}`);
    }
  }
  return out;
}

/** The candidates of each setting the schedulers' variables give, in the order they are trusted. */
function schedulerCandidates(env: NodeJS.ProcessEnv): { scheduler: NodeLayout['scheduler']; found: Partial<Record<Setting, Candidate[]>> } {
  const found: Partial<Record<Setting, Candidate[]>> = {};
  const add = (setting: Setting, source: string, value: string | undefined): void => {
    if (value !== undefined && value !== '') (found[setting] ??= []).push({ source, value });
  };
  if (env.JOB_COMPLETION_INDEX !== undefined) {
    add('nodeRank', 'JOB_COMPLETION_INDEX', env.JOB_COMPLETION_INDEX);
    // An Indexed Job names its pods <job>-<index>; with the headless Service as their subdomain,
    // node 0 answers at <job>-0.<service>.
    const hostname = env.HOSTNAME ?? '';
    const suffix = `-${env.JOB_COMPLETION_INDEX}`;
    if (hostname.endsWith(suffix)) {
      const job = hostname.slice(0, -suffix.length);
      add('masterAddr', `the Indexed Job's pod 0 (${K8S_SERVICE_ENV})`, `${job}-0.${env[K8S_SERVICE_ENV] || job}`);
    }
    return { scheduler: 'kubernetes', found };
  }
  if (env.SLURM_JOB_ID !== undefined || env.SLURM_NNODES !== undefined) {
    if (env.SLURM_NODEID !== undefined && env.SLURM_PROCID !== undefined && env.SLURM_NODEID !== env.SLURM_PROCID) {
      throw new LayoutError(
        `SLURM_PROCID=${env.SLURM_PROCID} but SLURM_NODEID=${env.SLURM_NODEID}: start one medvae-dist per node (srun --ntasks-per-node=1); it forks the workers of its node itself`,
      );
    }
    add('nodeRank', 'SLURM_NODEID', env.SLURM_NODEID);
    add('nodeRank', 'SLURM_PROCID', env.SLURM_PROCID);
    add('nnodes', 'SLURM_NNODES', env.SLURM_NNODES);
    add('nnodes', 'SLURM_JOB_NUM_NODES', env.SLURM_JOB_NUM_NODES);
    const list = env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST;
    if (list) add('masterAddr', 'SLURM_JOB_NODELIST (first host)', expandHostlist(list)[0]);
    return { scheduler: 'slurm', found };
  }
  return { scheduler: null, found };
}

function integer(c: Candidate, min: number, max: number): number {
  const n = Number(c.value);
  if (!/^\d+$/.test(c.value.trim()) || n < min || n > max) {
    throw new LayoutError(`${c.source} must be an integer in ${min}..${max}, got '${c.value}'`);
  }
  return n;
}

/** The node layout from flags, then torchrun's variables, then the scheduler's; disagreeing sources are refused. */
export function resolveNodeLayout(flags: LayoutFlags, env: NodeJS.ProcessEnv = process.env): NodeLayout {
  const { scheduler, found } = schedulerCandidates(env);
  const torchrunEnv: Record<Setting, string> = {
    nnodes: 'NNODES',
    nodeRank: 'NODE_RANK',
    masterAddr: 'MASTER_ADDR',
    masterPort: 'MASTER_PORT',
  };
  const notes: string[] = [];
  const pick = (setting: Setting, fallback: string): Candidate => {
    const fromEnv: Candidate[] = [];
    const torchrunValue = env[torchrunEnv[setting]];
    if (torchrunValue !== undefined && torchrunValue !== '') fromEnv.push({ source: torchrunEnv[setting], value: torchrunValue });
    fromEnv.push(...(found[setting] ?? []));
    const flag = flags[setting];
    if (flag !== undefined) {
      const differing = fromEnv.filter((c) => c.value !== flag);
      if (differing.length > 0)
        notes.push(`${FLAG_OF[setting]} ${flag} overrides ${differing.map((c) => `${c.source}=${c.value}`).join(', ')}`);
      return { source: FLAG_OF[setting], value: flag };
    }
    const [first, ...others] = fromEnv;
    if (!first) return { source: `the default of ${FLAG_OF[setting]}`, value: fallback };
    const other = others.find((c) => c.value !== first.value);
    if (other) {
      throw new LayoutError(
        `${first.source}=${first.value} but ${other.source}=${other.value}: the environment disagrees on ${FLAG_OF[setting]}; unset one or pass ${FLAG_OF[setting]}`,
      );
    }
    return first;
  };
  const nnodesC = pick('nnodes', '1');
  const nnodes = integer(nnodesC, 1, 255);
  const rankC = pick('nodeRank', '0');
  const nodeRank = integer(rankC, 0, 254);
  if (nodeRank >= nnodes) throw new LayoutError(`${rankC.source}=${nodeRank} is not below the node count ${nnodes} (${nnodesC.source})`);
  const masterAddr = pick('masterAddr', '127.0.0.1');
  if (masterAddr.value.trim() === '') throw new LayoutError(`${masterAddr.source} is empty: give node 0's address`);
  const masterPort = integer(pick('masterPort', String(DEFAULT_MASTER_PORT)), 1, 65535);
  return { nnodes, nodeRank, masterAddr: masterAddr.value.trim(), masterPort, scheduler, notes };
}
