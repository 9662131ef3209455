// What `src/util/tf.ts` is inside the page's bundle (redirected by ../bundle-page.ts): the core and
// layers APIs the project's model code uses, and the browser backends, without the union package's
// converter and data modules (a third of its size, and the page needs neither).
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import '@tensorflow/tfjs-backend-wasm';

export * as tf from './tfjs-api.ts';
