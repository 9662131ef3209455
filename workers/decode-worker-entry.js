// What piscina loads in each decode thread. Hooks registered with tsx's register() in the main
// thread (as bin/medvae.js does) do not reach worker threads, so each thread registers tsx itself
// before importing the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
const { default: decode } = await import('./decode-worker.ts');
export default decode;
