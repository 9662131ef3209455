// Types of cli-entry.js for the TypeScript that imports it (the package test).
export function compiledIsCurrent(compiled?: URL): boolean;
export function runCli(name: string): Promise<void>;
