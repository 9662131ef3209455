// A training run's plan: which graph (or the wasm kernel) each kernel shape runs, and with how
// many onnxruntime threads, kept in the run directory (native-plan.json). A graph choice changes
// float rounding, and Adam turns rounding noise into learning-rate-sized steps, so every process of
// a run (each worker, a --resume, the same run carried to another machine with the same
// onnxruntime) must make the same choices: each reads the plan, and the chief adds what it chose
// for shapes the plan did not hold, at the first step.
//
// Choices are keyed by kernel, shape and thread count: a choice timed at 2 threads says nothing
// of what is fastest at 1. A plan made by another onnxruntime, or another set of graphs, is
// dropped with one line and made again: its graphs may no longer exist or compute alike.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../util/atomic.ts';

/** The file a run's plan is kept in, in its run directory. */
export const PLAN_FILE = 'native-plan.json';

/** The layout of the file; raise it when its fields change. */
const PLAN_FORMAT = 1;

/** How one kernel shape runs. */
export interface PlannedChoice {
  /** A graph's label ('conv', 'tap-gemm/2'), or 'wasm' for the wasm kernel. */
  graph: string;
  /**
   * The threads its onnxruntime session computes with: the process's, or 1 where the graph's
   * bits were found to depend on the thread count (sessions.ts).
   */
  threads: number;
  /** 'rule': the fixed choice of deterministic runs; 'timed': the fastest of a race. */
  by: 'rule' | 'timed';
}

export interface RunPlan {
  format: number;
  /** The onnxruntime-node version whose graphs and kernels the choices were made with. */
  onnxruntime: string;
  /** The kernels' set of graphs (choices.ts' GRAPH_SET) the choices were made from. */
  graphs: number;
  choices: Record<string, PlannedChoice>;
}

/** The plan's key of a kernel shape (`kernelKey`: kernel name and shape, as sessions.ts names it) at `threads` threads. */
export function planKey(kernelKey: string, threads: number): string {
  return `${threads} thread${threads === 1 ? '' : 's'}|${kernelKey}`;
}

/** The plan as JSON: one line per choice, sorted by key, so that two plans compare line by line. */
export function serialisePlan(plan: RunPlan): string {
  const { choices, ...header } = plan;
  const lines = Object.keys(choices)
    .sort()
    .map((key) => `  ${JSON.stringify(key)}: ${JSON.stringify(choices[key])}`);
  const head = JSON.stringify(header).slice(0, -1);
  return lines.length === 0 ? `${head},"choices":{}}\n` : `${head},"choices":{\n${lines.join(',\n')}\n}}\n`;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function isChoice(v: unknown): v is PlannedChoice {
  return (
    isRecord(v) &&
    typeof v['graph'] === 'string' &&
    Number.isInteger(v['threads']) &&
    (v['threads'] as number) >= 1 &&
    (v['by'] === 'rule' || v['by'] === 'timed')
  );
}

/** The plan in `text`, or a one-line reason why it is not one. */
export function parsePlan(text: string): RunPlan | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return `not JSON (${(e as Error).message})`;
  }
  if (!isRecord(parsed)) return 'not a JSON object';
  if (parsed['format'] !== PLAN_FORMAT) return `format ${JSON.stringify(parsed['format'])}, not ${PLAN_FORMAT}`;
  const { onnxruntime, graphs, choices } = parsed;
  if (typeof onnxruntime !== 'string' || !Number.isInteger(graphs) || !isRecord(choices)) {
    return "'onnxruntime', 'graphs' or 'choices' missing or mistyped";
  }
  const bad = Object.entries(choices).find(([, choice]) => !isChoice(choice));
  if (bad !== undefined) return `choice '${bad[0]}' is not {graph, threads, by}`;
  return { format: PLAN_FORMAT, onnxruntime, graphs: graphs as number, choices: choices as Record<string, PlannedChoice> };
}

/** This process's plan: where it is kept, and whether this process writes it (the chief). */
interface ActivePlan {
  file: string;
  plan: RunPlan;
  write: boolean;
  deterministic: boolean;
  /** A write is queued (choices made within one step are written together). */
  queued: boolean;
}

let active: ActivePlan | undefined;

export interface PlanOptions {
  /** No timing races: shapes the plan lacks get the fixed choice (sessions.ts). */
  deterministic: boolean;
  /** Whether this process writes the plan (the chief; the other workers make the same choices). */
  write: boolean;
  onnxruntime: string;
  graphs: number;
  /** Where the one line about a plan that cannot be used goes. */
  log: (line: string) => void;
}

/**
 * Makes `runDir`'s plan this process's: its choices are used, and (with `write`) the choices made
 * for shapes it lacks are added to it. A plan that cannot be read, or was made with another
 * onnxruntime or set of graphs, is started again, saying so in one line.
 */
export function openRunPlan(runDir: string, options: PlanOptions): void {
  const file = join(runDir, PLAN_FILE);
  const fresh: RunPlan = { format: PLAN_FORMAT, onnxruntime: options.onnxruntime, graphs: options.graphs, choices: {} };
  let plan = fresh;
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // No plan yet: a new run, or one made before plans were kept.
  }
  if (text !== undefined) {
    const read = parsePlan(text);
    if (typeof read === 'string') {
      options.log(`native plan ${file}: ${read}; planning the shapes again`);
    } else if (read.onnxruntime !== options.onnxruntime || read.graphs !== options.graphs) {
      options.log(
        `native plan ${file} was made with onnxruntime ${read.onnxruntime} (graphs ${read.graphs}), this is ${options.onnxruntime} (graphs ${options.graphs}): planning the shapes again`,
      );
    } else {
      plan = read;
    }
  }
  active = { file, plan, write: options.write, deterministic: options.deterministic, queued: false };
}

/** Stops using a run's plan (tests; a process that trains one run needs no closing). */
export function closeRunPlan(): void {
  if (active?.queued === true) writePlan(active);
  active = undefined;
}

/** Whether choices are fixed (train.deterministic): no timing races. */
export function deterministicChoices(): boolean {
  return active?.deterministic === true;
}

/** The plan's choice for `key` (planKey), if a run's plan is in use and holds it. */
export function plannedChoice(key: string): PlannedChoice | undefined {
  return active?.plan.choices[key];
}

function writePlan(plan: ActivePlan): void {
  plan.queued = false;
  try {
    writeFileAtomic(plan.file, serialisePlan(plan.plan));
  } catch {
    // A full disk costs the next process of this run the planning of these shapes again (deterministic runs: the same choices).
  }
}

/** Adds `choice` for `key` (planKey) to the run's plan; the chief writes it once the current step's kernels have run. */
export function recordChoice(key: string, choice: PlannedChoice): void {
  const plan = active;
  if (plan === undefined) return;
  plan.plan.choices[key] = choice;
  if (!plan.write || plan.queued) return;
  plan.queued = true;
  setImmediate(() => {
    if (plan.queued) writePlan(plan);
  });
}
