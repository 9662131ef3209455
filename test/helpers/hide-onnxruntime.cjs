// Preloaded (node --require) by tests that need a machine without onnxruntime-node: resolving
// the package fails as it does when the package is not installed.
// eslint-disable-next-line @typescript-eslint/no-require-imports, no-undef
const Module = require('node:module');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (request === 'onnxruntime-node' || request.startsWith('onnxruntime-node/')) {
    const error = new Error(`Cannot find module '${request}'`);
    error.code = 'MODULE_NOT_FOUND';
    throw error;
  }
  return resolve.call(this, request, ...rest);
};
