#!/usr/bin/env node
// Entry point: TypeScript sources run through tsx's loader, so `npm ci` needs no build step.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli/medvae-dist.ts');
