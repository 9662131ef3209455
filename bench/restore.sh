#!/usr/bin/env bash
# docs/restoration.md: bench/restore.ts on a Vanilla VAE (imputation of a centred 25% square by both
# chains, denoising at five noise levels, scores) and on a VAE trained on grade 0 only (anomaly
# AUROC of grade 0 against grades 1-4), then the page from its JSON lines. Imputation runs 4 chains
# per image (the mean of 4 imputations is scored) for both methods.
# Trains each run first when it has no checkpoint, with configs/vae_retinamnist.yaml for 50 epochs:
# RUN at the paper's KL weight (0.00025) rather than the config's tenth of it, which sharpens samples
# drawn from the latent density but leaves a rougher latent space for the imputation chains, and the
# grade-0 run as configured, with `data.classes: [0]`.
#
# Usage: bash bench/restore.sh [RUN] [ANOMALY_RUN] [OUT_DIR]
#        (defaults: runs/restore/vae runs/restore/vae-grade0 runs/restore/bench)
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/restore/vae}
anomaly=${2:-runs/restore/vae-grade0}
out=${3:-runs/restore/bench}
mkdir -p "$out"
common=(--config configs/vae_retinamnist.yaml --epochs 50 --log-format plain --metrics-port 0)
if [ ! -d "$run/checkpoints" ]; then
  node bin/medvae.js train "${common[@]}" --set model.kld_weight=0.00025 --out "$run" >&2
fi
if [ ! -d "$anomaly/checkpoints" ]; then
  node bin/medvae.js train "${common[@]}" --set 'data.classes=[0]' --out "$anomaly" >&2
fi
node --import tsx bench/restore.ts --run "$run" --anomaly-run "$anomaly" --normal 0 --n 400 --samples 4 --out "$out" | tee "$out/results.jsonl"
cp "$out/results.jsonl" docs/restoration-results.jsonl
# The page also holds bench/denoise.sh's section when that bench has run.
denoising=()
[ -f docs/denoising-results.jsonl ] && denoising=(docs/denoising-results.jsonl)
node --import tsx bench/restore-docs.ts docs/restoration-results.jsonl docs/restoration.md "${denoising[@]}"
