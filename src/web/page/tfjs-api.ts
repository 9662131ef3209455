// The namespace `tf` of the page's bundle (see tfjs-browser.ts).
export * from '@tensorflow/tfjs-core';
export * from '@tensorflow/tfjs-layers';
