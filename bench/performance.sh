#!/usr/bin/env bash
# The measurements behind docs/performance.md and the README's main-job duration, one JSON line
# each, tagged with the bench that printed it: the training step of every model on the backend
# `auto` picks, the 256x256 VAE-GAN, data-parallel scaling, the all-reduce and the loader. The
# first line describes the machine and commit. The comparison with PyTorch is bench/vs-peer.ts's
# (docs/native.md). `node --import tsx bench/performance-doc.ts FILE` turns the output into the page.
#
# Usage: bash bench/performance.sh > perf.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
step=(node --import tsx bench/step.ts)

# Prefixes each JSON line of a command's output with "bench": NAME; other output goes to stderr.
tag() {
  local name=$1
  shift
  "$@" | while IFS= read -r line; do
    if [[ $line == \{* ]]; then printf '{"bench":"%s",%s\n' "$name" "${line#\{}"; else printf '%s\n' "$line" >&2; fi
  done
}

node --import tsx bench/meta.ts

# The main job's speed, on the backend `auto` picks here (the README's duration).
tag step "${step[@]}" --model vae --size 64 --batch 64 --backend auto --steps 5
for model in beta mssim cvae joint vaegan; do
  tag step "${step[@]}" --model $model --size 64 --batch 64 --backend auto --steps 5
done

# The 256x256 VAE-GAN on one process (the per-worker memory of Gleason training).
tag step "${step[@]}" --model vaegan --size 256 --batch 4 --backend auto --steps 3

tag dist node --import tsx bench/dist.ts --model vae --size 64 --batch 64 --workers 1,2 --steps 10
tag allreduce node --import tsx bench/allreduce.ts --mb 16,64 --workers 2
loader_root=$(mktemp -d)
trap 'rm -rf "$loader_root"' EXIT
tag loader node --import tsx bench/loader.ts --dataset gleason --root "$loader_root" --size 256 --batch 64 --threads 2 --make-synthetic 640
