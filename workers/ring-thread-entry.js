// What a ring thread loads when running from source: hooks registered with tsx's register() in the
// main thread do not reach worker threads, so the thread registers tsx itself first.
import { register } from 'tsx/esm/api';

register();
await import('./ring-thread.ts');
