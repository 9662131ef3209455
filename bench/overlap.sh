#!/usr/bin/env bash
# The measurement behind docs/distributed.md's overlap table: 2 nodes, each a network namespace
# whose link tbf limits to 1 Gbit/s, x 1 CPU worker; Vanilla VAE 64x64, global batch 64; gradients
# all-reduced after the backward pass and during it, in alternating rounds so that both see the
# same minutes of this shared machine. One compute thread per node: the two nodes share this
# machine's cores, where real nodes would each have their own. Needs root and iproute2.
#
# Usage: sudo bash bench/overlap.sh > docs/overlap.jsonl && node --import tsx bench/overlap-doc.ts docs/overlap.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}

node --import tsx bench/meta.ts
for round in $(seq 1 "$rounds"); do
  node --import tsx bench/dist.ts --model vae --size 64 --batch 64 --workers 1 --nnodes 2 --steps 8 --warmup 2 \
    --overlap off,on --set train.threads=1 |
    while IFS= read -r line; do
      if [[ $line == \{* ]]; then printf '{"bench":"dist","round":%d,%s\n' "$round" "${line#\{}"; else printf '%s\n' "$line" >&2; fi
    done
done
