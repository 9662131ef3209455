// Pixel values between the model's [-1, 1] and the 0..255 people see: plain arithmetic, shared by
// the image files written here and the web explorer's pictures drawn in the browser.

/** [-1, 1] -> [0, 255] uint8, clamped: the inverse of the loader's mean 0.5 / std 0.5 normalisation. */
export function denormalize(x: number): number {
  const v = Math.round((x + 1) * 127.5);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}
