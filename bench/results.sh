#!/usr/bin/env bash
# The README's results: trains the paper's comparison (Vanilla VAE, MS-SSIM VAE, VAE-GAN) and the
# Conditional VAE on the bundled RetinaMNIST at 64x64 for a few epochs each, evaluates every run on
# the test split, writes a side-by-side report, and prints one JSON line per run with the numbers
# and the machine. Usage: bash bench/results.sh [EPOCHS] [OUT_DIR]   (defaults: 5, runs/results)
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-5}
out=${2:-runs/results}
mkdir -p "$out"
declare -A config=( [vae]=configs/vae_retinamnist.yaml [mssim_vae]=configs/vae_retinamnist.yaml [vae_gan]=configs/vae_retinamnist.yaml [cvae]=configs/cvae_retinamnist.yaml )
declare -A extra=( [vae]="" [mssim_vae]="--set model.name=mssim_vae" [vae_gan]="--set model.name=vae_gan --set train.lr=0.0003 --set train.scheduler_gamma=1" [cvae]="" )
for model in vae mssim_vae vae_gan cvae; do
  run="$out/$model"
  if [ ! -f "$run/eval.json" ]; then
    # shellcheck disable=SC2086
    node bin/medvae.js train --config "${config[$model]}" --epochs "$epochs" --out "$run" --log-format plain --metrics-port 0 ${extra[$model]} >&2
    node bin/medvae.js eval --run "$run" --split test --n 400 >&2
  fi
done
node bin/medvae.js report --run "$out/vae" --compare "$out/mssim_vae" --compare "$out/vae_gan" --compare "$out/cvae" --out "$out/report.html" >&2
node --import tsx bench/results-table.ts "$out"/vae "$out"/mssim_vae "$out"/vae_gan "$out"/cvae
