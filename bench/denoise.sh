#!/usr/bin/env bash
# docs/restoration.md's denoising at the data's native resolution: RetinaMNIST (28 px) at 32x32,
# not upsampled to 64. Trains a Vanilla VAE with the denoising criterion (train.corrupt
# gaussian:0.2: the encoder reads a noisy copy, the target stays clean) and, as its control, the
# same VAE without it, both for the paper's 50 epochs; then bench/denoise.ts scores both on all 400
# test images against a blur and a median filter tuned on validation, and bench/restore-docs.ts
# rewrites the page from the JSON lines.
#
# Resumable: a run with checkpoints but no `trained` marker continues with `medvae train --resume`.
#
# Usage: bash bench/denoise.sh [OUT_DIR]   (default runs/denoise)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/denoise}
mkdir -p "$out"
common=(--log-format plain --metrics-port 0)
declare -A corrupt=([vae32]=none [vae32-denoising]=gaussian:0.2)
for name in vae32-denoising vae32; do
  run="$out/$name"
  [ -f "$run/trained" ] && continue
  if [ -d "$run/checkpoints" ]; then
    node bin/medvae.js train --resume "$run" "${common[@]}" >&2
  else
    node bin/medvae.js train --config configs/vae_retinamnist.yaml --epochs 50 --set model.image_size=32 \
      --set "train.corrupt=${corrupt[$name]}" --out "$run" "${common[@]}" >&2
  fi
  touch "$run/trained"
done
node --import tsx bench/denoise.ts --run "$out/vae32-denoising" --run "$out/vae32" --n 400 --out "$out" | tee "$out/results.jsonl"
cp "$out/results.jsonl" docs/denoising-results.jsonl
node --import tsx bench/restore-docs.ts docs/restoration-results.jsonl docs/restoration.md docs/denoising-results.jsonl
