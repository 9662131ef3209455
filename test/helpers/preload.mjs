// What `npm test` preloads (after tsx) into every test process: src/backend/quiet-tfjs.ts, so that
// tests computing on TF.js directly print no "Hi, looks like you are running TensorFlow.js in
// Node.js" banner either. Worker threads inherit the preload but not tsx's hooks, and none of them
// computes on TF.js: they skip it.
import { isMainThread } from 'node:worker_threads';

if (isMainThread) await import('../../src/backend/quiet-tfjs.ts');
