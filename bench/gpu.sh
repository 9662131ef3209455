#!/usr/bin/env bash
# The measurements behind docs/gpu.md's "Measured" section, for a machine with a GPU: what `medvae
# gpus` sees, one training step of the Vanilla VAE and the VAE-GAN at 64x64 batch 64 and 256x256
# batch 16 on webgpu (and on tensorflow where tfjs-node-gpu is installed), and `medvae-dist --gpus
# 0..N-1 --backend webgpu` against one GPU; then the page is regenerated from the results. Resumable:
# run it again after an interruption and it skips, saying so, what this commit already measured on
# this host. Each JSON line carries the commit, date, host and adapter (bench/gpu.ts).
#
# Usage: bash bench/gpu.sh [RESULTS.jsonl]        (default docs/gpu-results.jsonl; commit it with docs/gpu.md)
#
# To check the script itself where there is no GPU, on a software adapter and tiny cases (minutes):
#   GPU_BENCH_SOFTWARE=1 GPU_BENCH_TINY=1 bash bench/gpu.sh
# Those results go to runs/gpu-bench/software.jsonl and are never written into docs/gpu.md (the page
# is only previewed, on stdout).
set -euo pipefail
cd "$(dirname "$0")/.."

flags=()
if [[ ${GPU_BENCH_TINY:-0} == 1 ]]; then flags+=(--tiny); fi
if [[ ${GPU_BENCH_SOFTWARE:-0} == 1 ]]; then
  out=${1:-runs/gpu-bench/software.jsonl}
  node --import tsx bench/gpu.ts --out "$out" --software "${flags[@]}"
  echo "gpu bench: software adapter: docs/gpu.md left as it is; what its Measured section would say:" >&2
  node --import tsx bench/gpu-doc.ts "$out" --include-software --dry-run
else
  out=${1:-docs/gpu-results.jsonl}
  node --import tsx bench/gpu.ts --out "$out" "${flags[@]}"
  node --import tsx bench/gpu-doc.ts "$out"
fi
