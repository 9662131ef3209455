#!/usr/bin/env bash
# The README's results: trains each of the six models on the bundled RetinaMNIST at 64x64 with its
# configs/*_retinamnist.yaml for the paper's budget in epochs (50; the configs say where they differ
# from the paper and why),
# evaluates every run on all 400 test images (and compares prior draws with draws from the fitted
# aggregate posterior, bench/prior-holes.ts), writes a side-by-side report, and prints one JSON
# line per run with the numbers and the machine. `node --import tsx bench/results-doc.ts` turns
# that output into docs/results.md and the README's table.
#
# Resumable: a run that has checkpoints but no eval.json continues with `medvae train --resume`
# (so a long run may be stopped and started again later), and a run with eval.json is kept.
#
# Usage: bash bench/results.sh [OUT_DIR] [MODEL ...]   (defaults: runs/results, all six)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/results}
shift || true
all=(vae beta_vae mssim_vae cvae joint_vae vae_gan)
if [ $# -gt 0 ]; then models=("$@"); else models=("${all[@]}"); fi
declare -A config=(
  [vae]=configs/vae_retinamnist.yaml [beta_vae]=configs/beta_vae_retinamnist.yaml
  [mssim_vae]=configs/mssim_vae_retinamnist.yaml [cvae]=configs/cvae_retinamnist.yaml
  [joint_vae]=configs/joint_vae_retinamnist.yaml [vae_gan]=configs/vae_gan_retinamnist.yaml
)
common=(--log-format plain --metrics-port 0)
mkdir -p "$out"
for model in "${models[@]}"; do
  run="$out/$model"
  [ -f "$run/eval.json" ] && continue
  if [ -d "$run/checkpoints" ]; then
    node bin/medvae.js train --resume "$run" "${common[@]}" >&2
  else
    node bin/medvae.js train --config "${config[$model]}" --epochs 50 --out "$run" "${common[@]}" >&2
  fi
  node bin/medvae.js eval --run "$run" --split test --n 400 >&2
  # Prior draws against draws from the fitted aggregate posterior (unconditional Gaussian latents).
  case $model in cvae|joint_vae) ;; *) node --import tsx bench/prior-holes.ts --run "$run" --out "$run/prior-holes" > "$run/prior-holes.json" ;; esac
done
runs=()
for model in "${all[@]}"; do [ -f "$out/$model/eval.json" ] && runs+=("$out/$model"); done
[ ${#runs[@]} -gt 0 ] || exit 0
compare=()
for r in "${runs[@]:1}"; do compare+=(--compare "$r"); done
node bin/medvae.js report --run "${runs[0]}" "${compare[@]}" --out "$out/report.html" >&2
node --import tsx bench/results-table.ts "${runs[@]}"
