#!/usr/bin/env bash
# docs/restoration.md's denoising at the data's native resolution: RetinaMNIST (28 px) at 32x32,
# not upsampled to 64. Trains, each for the paper's 50 epochs:
#   denoise32        configs/denoise_retinamnist32.yaml: the denoiser (the Vanilla VAE with the
#                    denoising criterion, batch 16 and KL weight 0.000025; why, in the config)
#   vae32-denoising  configs/vae_retinamnist.yaml at 32x32 with the denoising criterion
#                    (train.corrupt gaussian:0.2: the encoder reads a noisy copy, the target stays clean)
#   vae32            the same without it, the control
# then bench/denoise.ts scores the three on all 400 test images against a blur and a median filter
# tuned on validation, and bench/restore-docs.ts rewrites the page from the JSON lines.
#
# Resumable: a run with checkpoints but no `trained` marker continues with `medvae train --resume`.
#
# Usage: bash bench/denoise.sh [OUT_DIR]   (default runs/denoise)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/denoise}
mkdir -p "$out"
common=(--log-format plain --metrics-port 0)
runs=(denoise32 vae32-denoising vae32)
# The arguments of each run's first `medvae train` (a resumed run reads its own config.yaml).
declare -A args=(
  [denoise32]="--config configs/denoise_retinamnist32.yaml"
  [vae32-denoising]="--config configs/vae_retinamnist.yaml --set model.image_size=32 --set train.corrupt=gaussian:0.2"
  [vae32]="--config configs/vae_retinamnist.yaml --set model.image_size=32 --set train.corrupt=none"
)
for name in "${runs[@]}"; do
  run="$out/$name"
  [ -f "$run/trained" ] && continue
  if [ -d "$run/checkpoints" ]; then
    node bin/medvae.js train --resume "$run" "${common[@]}" >&2
  else
    # shellcheck disable=SC2086 # args holds several words, none with spaces
    node bin/medvae.js train ${args[$name]} --epochs 50 --out "$run" "${common[@]}" >&2
  fi
  touch "$run/trained"
done
node --import tsx bench/denoise.ts "${runs[@]/#/--run=$out/}" --n 400 --out "$out" | tee "$out/results.jsonl"
cp "$out/results.jsonl" docs/denoising-results.jsonl
node --import tsx bench/restore-docs.ts docs/restoration-results.jsonl docs/restoration.md docs/denoising-results.jsonl
